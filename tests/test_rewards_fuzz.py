"""Model text is adversarial: any string returns a well-formed result, and hangs are cut short.

Correctness is asserted here; a hang fails through the pytest timeout.
"""

import random
import time

import pytest

from mirage.rewards import RESULT_KEYS, compute_score, majority_vote_rewards
from mirage.rewards.safe_arith import evaluate

KOR = {"rule_id": "1", "idx": "1"}
MB = 1 << 20


def check(result, acc=None):
    assert tuple(result) == RESULT_KEYS
    assert result["score"] in (0.0, 1.0) and result["acc"] in (0.0, 1.0) and result["format"] in (0.0, 1.0)
    if acc is not None:
        assert result["acc"] == acc
    return result


def score_everywhere(text, **kw):
    check(compute_score("math500", text, "5", **kw))
    check(compute_score("korbench/operation", text, "[[24]]", KOR, **kw))
    check(compute_score("korbench/puzzle", text, "[[(2+1)*8=24]]", {"rule_id": "10", "idx": "91"}, **kw))
    check(compute_score("korbench/operation", text, "[[\\frac{1}{2}]]", {"rule_id": "3", "idx": "18"}, **kw))


@pytest.mark.timeout(300)
def test_random_bytes_and_unicode():
    rng = random.Random(0)
    for _ in range(200):
        raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3000)))
        for release in (False, True):
            check(compute_score("math500", raw, "5", release_faithful=release))
            check(compute_score("korbench/logic", raw, "[[p]]", KOR, release_faithful=release))
    alphabet = "<>/[]{}()$\\^_*+-=0123456789ab \n\t\x00\ud800\u2028é中"
    for _ in range(200):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        score_everywhere(s, variant="random")
        score_everywhere(f"<think>{s}</think><answer>{s}</answer>")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("text", [
    "a" * MB,
    "<think>" * (MB // 7),
    "</think><answer>" * (MB // 16),  # quadratic for the release's regex
    "<think>x" + "</think><answer>" * (MB // 16) + "</answer>",
    "<answer>" * (MB // 8),
    "<think>a</think><answer>" + "1" * MB + "</answer>",  # a million-digit "number"
    "<think>a</think><answer>" + "\\frac{" * (MB // 6) + "</answer>",
    "[[" * (MB // 2),
    "[[" + "x" * MB,
    "$\\boxed{" * (MB // 8),
    "[[" + "\\text{" * (MB // 6) + "]]",
    "<think>" + "[" * MB + "</think><answer>" + "]" * MB + "</answer>",
], ids=lambda t: repr(t[:24]))
def test_megabyte_strings(text):
    score_everywhere(text)
    score_everywhere(text, release_faithful=True)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("text", [
    "<think><think></think><answer><answer>5</answer></answer>",
    "<think>a</think><answer>5</answer><answer>6</answer>",
    "<answer>5</think><think></answer>",
    "</answer><answer>5",
    "<think>a</think></answer><answer>5",
])
def test_unbalanced_and_nested_tags(text):
    score_everywhere(text)
    score_everywhere(text, release_faithful=True)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("answer", [
    "\\frac{" * 2000 + "1" + "}{2}" * 2000,  # 2000 levels of nested LaTeX
    "\\sqrt{" * 2000 + "2" + "}" * 2000,
    "2^{2^{2^{2^{100}}}}",
    "10^{10^{10^{10}}}",
    "9**9**9**9",
    "(" * 5000 + "5" + ")" * 5000,
    "99999999999999999!",
    "\\begin{pmatrix}" + "1&" * 3000 + "1\\end{pmatrix}",
])
def test_pathological_math_answers_score_zero(answer):
    r = check(compute_score("math500", f"<think>a</think><answer>{answer}</answer>", "5"), acc=0.0)
    assert r["format"] == 1.0
    # The worker survives (or is replaced): a normal answer still scores right afterwards.
    check(compute_score("math500", "<think>a</think><answer>\\frac{10}{2}</answer>", "5"), acc=1.0)


@pytest.mark.timeout(300)
def test_pathological_answers_in_a_majority_vote():
    preds = ["\\frac{" * 2000 + "1" + "}{2}" * 2000, "5", "\\frac{10}{2}", "2^{2^{2^{2^{100}}}}", "6"]
    assert majority_vote_rewards(preds, [1] * 5, "math500") == [0, 1, 1, 0, 0]


def test_hostile_puzzle_expressions_score_zero():
    for expr in ("9**9**9**9=24", "__import__('os').system('echo hacked')=24", "(lambda: 24)()=24", "24" * 600 + "=24"):
        r = compute_score("korbench/puzzle", f"<answer>[[{expr}]]</answer>", "[[(2+1)*8=24]]",
                          {"rule_id": "10", "idx": "91"})
        check(r, acc=0.0)


def test_arithmetic_without_eval():
    assert evaluate("(1+2)*8") == 24 and evaluate("-3--27") == 24 and evaluate(" 4*6 ") == 24
    assert evaluate("8/(3-8/3)") != 24  # Python float semantics, as eval (KOR-Bench's rules)
    assert evaluate("8/(3-8/3)", exact=True) == 24  # exact rationals (the game-of-24 fix)
    assert evaluate("2**10") == 1024 and evaluate("7//2") == 3 and evaluate("7%4") == 3
    refused = ["9**9**9**9", "10**5000", "2.5**1000", "1/0", "08+16", "x+1", "abs(-24)", "__import__('os')",
               "(lambda: 24)()", "[24][0]", "'24'", "True+23", "1+" * 600 + "1", "(" * 300 + "1" + ")" * 300,
               "3 4", "", "(-8)**0.5"]
    for expr in refused:
        start = time.monotonic()
        assert evaluate(expr) is None and evaluate(expr, exact=True) is None, expr
        assert time.monotonic() - start < 1.0, expr
