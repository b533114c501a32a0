"""mirage.rewards: format, extraction, math answers, variants, dispatch, group rewards."""

import json
import random
import re
import threading

import pytest

from mirage.rewards import (RESULT_KEYS, compute_score, compute_scores, extract_answer, format_ok,
                            majority_vote_rewards, mean_token_logprob, random_coin)
from mirage.rewards.group import cluster_answers
from conftest import SHARED_DATA as DATA


def wrap(answer, think="reasoning"):
    return f"<think>{think}</think> <answer>{answer}</answer>"


# --- format and extraction --------------------------------------------------------------
@pytest.mark.parametrize("text, corrected, release", [
    ("<think>a</think><answer>5</answer>", True, True),
    ("  <think>a</think>\n\n<answer>5</answer>\n", True, True),  # whitespace around / between blocks
    ("<think>line1\nline2</think><answer>5</answer>", True, False),  # newline inside think
    ("<think>a</think><answer>\n5\n</answer>", True, False),  # newline inside answer
    ("<think>a</think>", False, False),  # missing answer
    ("<answer>5</answer>", False, False),  # missing think
    ("<think>a</think> text <answer>5</answer>", False, False),  # text between blocks
    ("<think>a</think><answer>5</answer> trailing", False, False),
    ("<think>a<answer>5</answer>", False, False),  # unclosed think
    ("", False, False),
])
def test_format_both_modes(text, corrected, release):
    assert format_ok(text) is corrected
    assert format_ok(text, release_faithful=True) is release


def test_extraction_both_modes():
    assert extract_answer("<think>x</think><answer> 5 </answer>") == "5"
    assert extract_answer("<think>x</think><answer> 5 </answer>", release_faithful=True) == " 5 "
    assert extract_answer("<answer>\n\\frac12\n</answer>") == "\\frac12"
    assert extract_answer("<answer>\n\\frac12\n</answer>", release_faithful=True) is None
    # The release finds the first one-line answer block, skipping multi-line ones.
    assert extract_answer("<answer>a\nb</answer> <answer>7</answer>", release_faithful=True) == "7"
    assert extract_answer("<answer>a\nb</answer> <answer>7</answer>") == "a\nb"
    assert extract_answer("no tags") is None
    assert extract_answer("<answer>unclosed") is None


RELEASE_FORMAT = re.compile(r"^<think>.*?</think>\s*<answer>.*?</answer>$")  # the release's rule, as oracle


def _fuzz_strings(n, seed):
    rng = random.Random(seed)
    atoms = ["<think>", "</think>", "<answer>", "</answer>", "\n", " ", "a", "5", "<", ">", "/"]
    for _ in range(n):
        yield "".join(rng.choice(atoms) for _ in range(rng.randint(0, 12)))


def test_linear_scans_match_the_regexes_they_replace():
    for s in _fuzz_strings(20000, seed=1):
        assert format_ok(s, release_faithful=True) == bool(RELEASE_FORMAT.match(s.strip())), repr(s)
        assert format_ok(s) == bool(re.match(RELEASE_FORMAT.pattern, s.strip(), re.S)), repr(s)
        found = re.findall(r"<answer>(.*?)</answer>", s)
        assert extract_answer(s, release_faithful=True) == (found[0] if found else None), repr(s)
        m = re.search(r"<answer>(.*?)</answer>", s, re.S)
        assert extract_answer(s) == (m.group(1).strip() if m else None), repr(s)


# --- math answers from the real data ----------------------------------------------------
def _jsonl(path):
    return [json.loads(line) for line in open(path)]


def _terminating_decimal(num, den):
    d = den
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return None if d != 1 else repr(num / den)


@pytest.mark.shared_data
def test_math500_fractions_in_equivalent_forms():
    rows = _jsonl(DATA / "math500" / "test.jsonl")
    fractions = [(r["answer"], int(m[1]), int(m[2])) for r in rows
                 if (m := re.fullmatch(r"\\d?frac\{?(\d+)\}?\{?(\d+)\}?", r["answer"]))]
    assert len(fractions) >= 10
    checked = 0
    for gold, num, den in fractions:
        for pred in (f"{num}/{den}", f"\\boxed{{\\frac{{{num}}}{{{den}}}}}", f"$\\dfrac{{{num}}}{{{den}}}$"):
            assert compute_score("math500", wrap(pred), gold)["acc"] == 1.0, (gold, pred)
        assert compute_score("math500", wrap(f"{num + 1}/{den}"), gold)["acc"] == 0.0, gold
        decimal = _terminating_decimal(num, den)
        if decimal:
            assert compute_score("math500", wrap(decimal), gold)["acc"] == 1.0, (gold, decimal)
            checked += 1
    assert checked >= 3


def test_half_in_every_form():
    for pred in ("0.5", "\\frac12", "\\frac{1}{2}", "1/2", "\\boxed{0.5}", "$\\frac{1}{2}$", ".5"):
        for gold in ("\\frac{1}{2}", "0.5"):
            assert compute_score("math500", wrap(pred), gold)["acc"] == 1.0, (pred, gold)
    assert compute_score("math500", wrap("0.25"), "\\frac{1}{2}")["acc"] == 0.0


@pytest.mark.shared_data
def test_amc_float_answers():
    rows = _jsonl(DATA / "amc23" / "test.jsonl")
    assert all(isinstance(r["answer"], float) for r in rows)
    for r in rows:
        gold = str(r["answer"])  # e.g. "27.0", as the converted parquet stores it
        value = int(r["answer"]) if r["answer"].is_integer() else r["answer"]
        assert compute_score("amc23", wrap(str(value)), gold)["acc"] == 1.0, gold
        assert compute_score("amc23", wrap(f"\\boxed{{{value}}}"), gold)["acc"] == 1.0, gold
        assert compute_score("amc23", wrap(str(value + 1)), gold)["acc"] == 0.0, gold


@pytest.mark.shared_data
def test_aime_and_deepscaler_answers():
    import pandas as pd

    for r in _jsonl(DATA / "aime24" / "test.jsonl")[:10]:
        assert compute_score("aime24", wrap(f"x = {r['answer']}"), r["answer"])["acc"] == 1.0
        assert compute_score("aime24", wrap(str(int(r["answer"]) + 1)), r["answer"])["acc"] == 0.0
    dsr = pd.read_parquet(DATA / "deepscaler" / "one_shot_rlvr" / "dsr_sub.parquet").head(40)
    for _, row in dsr.iterrows():
        gold = row["reward_model"]["ground_truth"]
        assert compute_score("deepscaler", wrap(f"\\boxed{{{gold}}}"), gold, dict(row["extra_info"]))["acc"] == 1.0


def test_math_checkers_and_release_exact_match():
    gold = "\\frac{1}{2}"
    assert compute_score("math500", wrap("0.5"), gold, math_checker="exact")["acc"] == 0.0
    assert compute_score("math500", wrap(" 5 "), "5", math_checker="exact")["acc"] == 1.0
    # The release compares the raw answer text: the prompt's own "<answer> answer here</answer>" style fails.
    assert compute_score("math500", wrap(" 5"), "5", release_faithful=True)["acc"] == 0.0
    assert compute_score("math500", wrap(" 5"), "5")["acc"] == 1.0
    assert compute_score("math500", wrap("0.5"), gold, release_faithful=True)["acc"] == 0.0
    assert compute_score("math500", wrap("0.5"), gold, release_faithful=True, math_checker="math_verify")["acc"] == 1.0


def test_verl_names_of_math_sets():
    for source in ("simplerl/math500", "HuggingFaceH4/MATH-500", "aime_2024"):
        assert compute_score(source, wrap("3"), "3")["acc"] == 1.0


# --- variants -------------------------------------------------------------------------
def test_variants_on_right_and_wrong_answers():
    right, wrong, unformatted = wrap("5"), wrap("6"), "5"
    expect = {  # variant: (right, wrong, unformatted)
        "ground_truth": (1, 0, 0),
        "incorrect": (0, 1, 0),
        "format": (1, 1, 0),
    }
    for variant, scores in expect.items():
        got = tuple(compute_score("deepscaler", t, "5", variant=variant)["score"] for t in (right, wrong, unformatted))
        assert got == scores, variant
    # acc ignores the format (validation metric).
    assert compute_score("deepscaler", "<answer>5</answer>", "5")["acc"] == 1.0


def test_math_incorrect_defect_only_in_release_faithful_mode():
    right, wrong = wrap("5"), wrap("6")
    release = [compute_score("deepscaler", t, "5", variant="incorrect", release_faithful=True)["score"]
               for t in (right, wrong)]
    assert release == [1.0, 0.0]  # the released math-incorrect runs were ground-truth runs
    corrected = [compute_score("deepscaler", t, "5", variant="incorrect")["score"] for t in (right, wrong)]
    assert corrected == [0.0, 1.0]
    # Newline inside the answer: 0 on every format-gated reward in release mode.
    multi = "<think>a</think><answer>\n6\n</answer>"
    assert compute_score("deepscaler", multi, "5", variant="incorrect", release_faithful=True)["score"] == 0.0
    assert compute_score("deepscaler", multi, "5", variant="incorrect")["score"] == 1.0


def test_random_reward_rate_and_reproducibility():
    texts = [wrap(str(i % 7), think=f"attempt {i}") for i in range(4000)]
    for p in (0.5, 0.2):
        scores = [compute_score("deepscaler", t, "3", {"index": 11}, variant="random", p=p)["score"] for t in texts]
        assert abs(sum(scores) / len(scores) - p) < 0.04  # 5 standard deviations
        again = [compute_score("deepscaler", t, "3", {"index": 11}, variant="random", p=p)["score"] for t in texts]
        assert scores == again
    other_seed = [compute_score("deepscaler", t, "3", {"index": 11}, variant="random", seed=1)["score"]
                  for t in texts[:400]]
    base = [compute_score("deepscaler", t, "3", {"index": 11}, variant="random")["score"] for t in texts[:400]]
    assert 100 < sum(a != b for a, b in zip(base, other_seed)) < 300  # ~ half differ
    # Unformatted responses never win the coin.
    assert all(compute_score("deepscaler", f"3 {i}", "3", variant="random")["score"] == 0.0 for i in range(200))


def test_random_coin_is_per_response_not_per_group():
    same = wrap("3")
    by_index = [random_coin(0.5, 0, "deepscaler", same, "3", {"index": 5}, step=1, sample_index=i) for i in range(2000)]
    assert 900 < sum(by_index) < 1100  # identical texts in a group get independent coins
    by_prompt = [random_coin(0.5, 0, "deepscaler", same, "3", {"index": i}) for i in range(2000)]
    assert 900 < sum(by_prompt) < 1100
    by_step = [random_coin(0.5, 0, "deepscaler", same, "3", {"index": 5}, step=s) for s in range(2000)]
    assert 900 < sum(by_step) < 1100


# --- the verl contract ------------------------------------------------------------------
def test_result_keys_are_the_same_for_every_source():
    results = [
        compute_score("math500", wrap("1"), "1"),
        compute_score("korbench/cipher", wrap("[[N]]"), "[[N]]", {"rule_id": "1", "idx": "1"}),
        compute_score("aime24", "garbage", "1"),
    ]
    for r in results:
        assert tuple(r) == RESULT_KEYS
        json.dumps(r)  # JSON-friendly
        assert isinstance(r["score"], float) and isinstance(r["acc"], float)


def test_verl_extra_kwargs_are_ignored_but_bad_options_are_errors():
    r = compute_score(data_source="math500", solution_str=wrap("2"), ground_truth="2", extra_info={"index": 0},
                      return_dict=True, reward_router_address=None)
    assert r["score"] == 1.0
    with pytest.raises(ValueError, match="variant"):
        compute_score("math500", wrap("2"), "2", variant="gold")
    with pytest.raises(ValueError, match="math_checker"):
        compute_score("math500", wrap("2"), "2", math_checker="sympy")
    with pytest.raises(ValueError, match="korbench_mode"):
        compute_score("math500", wrap("2"), "2", korbench_mode="best")
    with pytest.raises(ValueError, match="p must be"):
        compute_score("math500", wrap("2"), "2", variant="random", p=1.5)


def test_unknown_data_source_is_an_error_naming_it():
    for source in ("gsm8k", "korbench/chess", "val/not_a_task", "math-5000"):
        with pytest.raises(KeyError, match=re.escape(repr(source))) as info:
            compute_score(source, wrap("1"), "1")
        assert "math500" in str(info.value) and "korbench/operation" in str(info.value)


def test_calls_from_worker_threads_match_sequential_calls():
    cases = [(wrap(p), g) for p, g in [("0.5", "\\frac12"), ("x = 3", "3"), ("\\sqrt{4}", "2"), ("7", "\\frac{14}{3}"),
                                       ("\\frac{6}{4}", "1.5"), ("2\\pi", "\\pi + \\pi")]] * 4
    expected = [compute_score("math500", t, g)["acc"] for t, g in cases]
    assert expected[:6] == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    results = [None] * len(cases)

    def run(i):
        results[i] = compute_score("math500", *cases[i])["acc"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def test_compute_scores_pool_preserves_order():
    items = [("deepscaler", wrap(str(i % 5)), "2", {"index": i}) for i in range(40)]
    items.append({"data_source": "math500", "solution_str": wrap("0.5"), "ground_truth": "\\frac12",
                  "extra_info": None, "variant": "incorrect"})
    serial = compute_scores(items)
    pooled = compute_scores(items, processes=2)
    assert serial == pooled
    assert [r["acc"] for r in serial[:5]] == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert serial[-1]["acc"] == 1.0 and serial[-1]["score"] == 0.0  # per-item kwargs apply
    with pytest.raises(TypeError, match="item 0"):
        compute_scores(["just a string"])


# --- group and log-prob rewards ---------------------------------------------------------
def test_majority_vote_clusters_equivalent_math_answers():
    preds = ["3", "0.5", "\\frac12", "1/2", "3", None, "\\frac{1}{2}"]
    formats = [1, 1, 1, 0, 1, 1, 1]
    assert cluster_answers(preds, "math500") == [0, 1, 1, 1, 0, None, 1]
    # Cluster {0.5, \frac12, 1/2, \frac{1}{2}} (4 votes) beats {3, 3}; "1/2" lacks the format.
    assert majority_vote_rewards(preds, formats, "math500") == [0, 1, 1, 0, 0, 0, 1]
    # Exact equality for non-math sources.
    assert majority_vote_rewards(["[[A]]", "[[a]]", "[[a]]"], [1, 1, 1], "korbench/counterfactual") == [0, 1, 1]


def test_majority_vote_ties_and_empty_groups():
    assert majority_vote_rewards(["4", "5", "5", "4"], [1] * 4, "aime24") == [1, 0, 0, 1]  # tie: first cluster wins
    assert majority_vote_rewards([None, " ", None], [1, 1, 1], "aime24") == [0, 0, 0]
    with pytest.raises(ValueError, match="length"):
        majority_vote_rewards(["1"], [1, 1], "aime24")


def test_mean_token_logprob_on_tensors_and_lists():
    torch = pytest.importorskip("torch")
    logprobs = torch.tensor([[-1.0, -3.0, float("-inf")], [-0.5, -0.5, -2.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = mean_token_logprob(logprobs, mask)
    assert torch.allclose(out, torch.tensor([-2.0, -1.0]))
    assert mean_token_logprob([[-1.0, -3.0, -9.0], [-0.5]], [[1, 1, 0], [1]]) == [-2.0, -0.5]
    assert mean_token_logprob([[-1.0, -2.0]]) == [-1.5]
    assert mean_token_logprob([[-1.0]], [[0]]) == [0.0]
    with pytest.raises(ValueError, match="row 0"):
        mean_token_logprob([[-1.0, -2.0]], [[1]])


def test_testbed_sources_use_the_testbed_checker():
    assert compute_score("toy-math", wrap(" 12 "), "12")["score"] == 1.0
    assert compute_score("val/toy-math", wrap("13"), "12")["acc"] == 0.0
    assert compute_score("toy-logic", "12", "12")["acc"] == 0.0  # no <answer>: nothing to check


# --- regressions from real rows --------------------------------------------------------------------
ESCAPED_DOLLAR_GOLDS = [("\\$32,\\!348", "32348"), ("\\$18.90", "18.90"), ("\\$36", "36")]  # MATH500's three


@pytest.mark.parametrize("gold, answer", ESCAPED_DOLLAR_GOLDS)
def test_an_escaped_dollar_is_a_currency_sign_not_math_mode(gold, answer):
    for pred in (answer, gold, f"${answer}$", f"\\${answer}"):
        assert compute_score("math500", f"<think>x</think> <answer>{pred}</answer>", gold)["acc"] == 1.0, pred
    assert compute_score("math500", "<think>x</think> <answer>35</answer>", gold)["acc"] == 0.0
    assert compute_score("math500", f"<think>x</think> <answer>{gold}</answer>", answer)["acc"] == 1.0


@pytest.mark.shared_data
def test_escaped_dollar_golds_of_math500_score_their_own_value():
    from conftest import SHARED_DATA

    rows = [json.loads(line) for line in (SHARED_DATA / "math500" / "test.jsonl").read_text().splitlines()]
    golds = [r["answer"] for r in rows if "\\$" in r["answer"]]
    assert sorted(golds) == sorted(g for g, _ in ESCAPED_DOLLAR_GOLDS)
    for gold in golds:
        plain = gold.replace("\\$", "").replace(",\\!", "")
        assert compute_score("math500", f"<think>x</think> <answer>{plain}</answer>", gold)["acc"] == 1.0


def test_korbench_extraction_answer_block_or_kors_own_raw_rule():
    text = "<think>first guess [[23]]</think><answer>[[24]]</answer>"
    info = {"rule_id": "1", "idx": "1"}
    assert compute_score("korbench/counterfactual", text, "[[24]]", info)["acc"] == 1.0  # default: the answer block
    raw = compute_score("korbench/counterfactual", text, "[[24]]", info, korbench_extract="raw")
    assert raw["acc"] == 0.0 and raw["pred"] == "[[23]]"  # KOR-Bench: the first [[...]] of the raw response
