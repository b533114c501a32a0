"""KOR-Bench scoring on real rows of every category, extraction rules, and modes."""

import json
import random
import re

import pytest

from mirage.rewards import compute_score
from mirage.rewards.checkers import korbench
from conftest import SHARED_DATA

DATA = SHARED_DATA / "korbench"


def rows(category):
    return [json.loads(line) for line in open(DATA / category / "sample.jsonl")]


def info(row):
    return {"rule_id": row["rule_id"], "idx": row["idx"], "index": int(row["idx"])}


def correct_response(category, row):
    """A correct answer as a model would write it: the gold, or one listed alternative."""
    inner = row["answer"][2:-2]
    if category == "puzzle" and row["rule_id"] == "2":  # gold lists acceptable words
        return f"[[{inner.split(',')[0]}]]"
    if category == "puzzle" and row["rule_id"] == "4":  # gold lists acceptable anagrams
        return f"[[{inner.split()[0]}]]"
    if category == "puzzle" and row["rule_id"] == "10":  # gold lists several expressions, one per line
        return f"[[{inner.splitlines()[0]}]]"
    if category == "puzzle" and row["idx"] == "84":
        return None  # KOR-Bench's gold 2+2+3*4=28 is false (16); its own scorer rejects it too
    return row["answer"]


def perturbed(answer):
    """Change the first digit, else append a letter: wrong under every KOR rule."""
    m = re.search(r"\d", answer)
    if m:
        return answer[:m.start()] + str((int(m.group()) + 1) % 10) + answer[m.end():]
    return answer[:-2] + "Zq]]"


@pytest.mark.shared_data
@pytest.mark.parametrize("category", korbench.CATEGORIES)
def test_gold_scores_one_and_perturbed_zero(category):
    for row in rows(category):
        good = correct_response(category, row)
        if good is None:
            continue
        response = f"<think>I apply the rule.</think>\n<answer>{good}</answer>"
        r = compute_score(f"korbench/{category}", response, row["answer"], info(row))
        assert r["acc"] == 1.0 and r["score"] == 1.0, (row["idx"], good)
        assert r["pred"] == "[[" + good[2:-2].strip() + "]]" and r["korbench_mode"] == "published"
        bad = perturbed(good)
        r = compute_score(f"korbench/{category}", f"<think>x</think><answer>{bad}</answer>", row["answer"], info(row))
        assert r["acc"] == 0.0, (row["idx"], bad)


@pytest.mark.shared_data
def test_first_bracket_wins_unless_the_answer_block_holds_one():
    row = rows("operation")[0]  # "[[24]]"
    restated = "The format is [[your answer]]. 4※7 = [[24]]"
    # Raw response (no tags): KOR takes the FIRST [[...]], the restated format, so it is wrong.
    assert compute_score("korbench/operation", restated, row["answer"], info(row))["acc"] == 0.0
    # With the study's format the <answer> block is scored.
    tagged = f"<think>{restated}</think><answer>So [[24]]</answer>"
    assert compute_score("korbench/operation", tagged, row["answer"], info(row))["acc"] == 1.0
    # An answer block without brackets falls back to the whole response.
    tagged = "<think>it is [[24]]</think><answer>24</answer>"
    r = compute_score("korbench/operation", tagged, row["answer"], info(row))
    assert r["acc"] == 1.0 and r["pred"] == "[[24]]"
    assert compute_score("korbench/operation", "<answer>24</answer>", row["answer"], info(row))["pred"] is None


@pytest.mark.shared_data
def test_category_rules():
    # Logic rule 5: the ;-separated rows in any order; other logic rules keep the order.
    gold = "[[I1,I2,O];[+,+,+];[+,-,-];[-,+,-];[-,-,-]]"
    assert korbench.is_correct("logic", "[[I1,I2,O];[+,-,-];[+,+,+];[-,+,-];[-,-,-]]", gold, "5", "42")[0]
    assert not korbench.is_correct("logic", "[[I1,I2,O];[+,-,-];[+,+,-];[-,+,-];[-,-,-]]", gold, "5", "42")[0]
    gold = "[[p1&p2];[p3||p4]]"
    assert korbench.is_correct("logic", "[[p1 & p2]; [p3||p4.]]", gold, "1", "1")[0]  # spaces and "." dropped
    assert not korbench.is_correct("logic", "[[p3||p4];[p1&p2]]", gold, "1", "1")[0]
    # Spaces and case: spaces are removed, case matters.
    assert korbench.is_correct("cipher", "[[ N ]]", "[[N]]", "1", "1")[0]
    assert not korbench.is_correct("cipher", "[[n]]", "[[N]]", "1", "1")[0]
    # Operation: "or" alternatives in any order; rules 23-25 compare integers.
    assert korbench.is_correct("operation", "[[3 or -2]]", "[[-2 or 3]]", "2", "40")[0]
    assert korbench.is_correct("operation", "[[1, 2, 3]]", "[[1,2,3]]", "23", "220")[0]
    # Puzzle rule 10 (24 game) evaluates the expression without eval.
    assert korbench.is_correct("puzzle", "[[(1+2)*8=24]]", "[[(2+1)*8=24]]", "10", "91")[0]
    assert not korbench.is_correct("puzzle", "[[(1+2)+8=24]]", "[[(2+1)*8=24]]", "10", "91")[0]
    assert not korbench.is_correct("puzzle", "[[__import__('os')]]", "[[(2+1)*8=24]]", "10", "91")[0]


def test_documented_mode_needs_antlr_411():
    if korbench.latex_parser_problem() is None:
        pytest.skip("antlr 4.11 is installed here; the error path cannot be exercised")
    with pytest.raises(RuntimeError, match="antlr4-python3-runtime 4.11"):
        compute_score("korbench/operation", "<answer>[[1]]</answer>", "[[1]]", {"rule_id": "3", "idx": "18"},
                      korbench_mode="documented")


def test_missing_kor_fields_are_named():
    with pytest.raises(KeyError, match="rule_id"):
        compute_score("korbench/logic", "<answer>[[1]]</answer>", "[[1]]", {"index": 3})


def test_bracket_scans_match_kor_regexes():
    rng = random.Random(0)
    atoms = ["[", "]", "[[", "]]", " ", "\n", "a", "$\\boxed{", "}$", "}", "\\text{", "x"]
    for _ in range(20000):
        s = "".join(rng.choice(atoms) for _ in range(rng.randint(0, 10)))
        # KOR-Bench's own extraction regexes, as oracles.
        m = (re.findall(r"\[\[\s*(.*?)\s*\]\]", s, re.S) or re.findall(r"\$\\boxed\{(.*?)\}\$", s, re.S)
             or re.findall(r"\[\s*(.*?)\s*\]", s, re.S))
        assert korbench.first_bracket(s) == (m[0].strip() if m else None), repr(s)
        inner = re.search(r"\[\[(.*?)\]\]", s, re.S)
        assert korbench.inner_text(s) == (inner.group(1) if inner else korbench.NULL), repr(s)
        flat = s.replace("\n", "")
        assert korbench._strip_text_macros(flat) == re.sub(r"\\text\{.*?\}", "", flat), repr(s)


@pytest.mark.skipif(korbench.latex_parser_problem() is not None,
                    reason="korbench_mode='documented' needs antlr4-python3-runtime 4.11 (hydra-core pins 4.9 here)")
def test_documented_mode_compares_symbolically():
    symbolic_item = {"rule_id": "3", "idx": "18"}  # one of KOR-Bench's symbolic operation items
    response = "<answer>[[\\frac{2}{4}]]</answer>"
    assert compute_score("korbench/operation", response, "[[\\frac{1}{2}]]", symbolic_item)["acc"] == 0.0
    r = compute_score("korbench/operation", response, "[[\\frac{1}{2}]]", symbolic_item, korbench_mode="documented")
    assert r["acc"] == 1.0 and r["korbench_mode"] == "documented"
