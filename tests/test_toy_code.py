"""toy-code, the testbed's code task: generated rows scored by the real code checker (the sandbox) through
compute_score; its procedures, token budget, verdict cache; majority vote on code by behaviour."""

from __future__ import annotations

import json

import pytest
from mirage.rewards import REWARDS, Responses, compute_score
from mirage.rewards.checkers import code
from mirage.rewards.group import majority_vote_rewards, vote_values
from mirage.tasks import toy_code as C


def _wrap(program: str, think: str = "plan") -> str:
    """A model answer: think block, then the program in the answer block."""
    return f"<think>{think}</think> <answer>{program}</answer>"


def _score(row, text):
    return compute_score(row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"])


def _rows(split: str, n: int, seed: int, difficulties=None):
    return [C.to_row(p, i, split) for i, p in enumerate(C.generate(split, n, seed, difficulties))]


def test_every_generated_rows_reference_scores_1_and_its_buggy_program_0():
    """Issue 20 item 4: the reference program of each row of toy-code_test (the evaluation set, 200 rows) and of
    train rows of every difficulty, wrapped as a model answer, scores 1 through compute_score (the sandbox);
    the buggy program scores 0 and is named buggy. A checker that rejects everything fails here."""
    from concurrent.futures import ThreadPoolExecutor

    rows = _rows("test", 200, 1) + _rows("train", 20, 0, difficulties=(2, 3, 4))

    def check(i: int) -> None:
        row = rows[i]
        info = row["extra_info"]
        reference = info["reference_solution"]
        if i % 40 == 0:  # the fenced form a real model writes is accepted too
            reference = f"```python\n{reference}\n```"
        result = _score(row, _wrap(reference, info["steps"]))
        assert (result["score"], result["acc"], result["procedure"]) == (1.0, 1.0, "correct"), (info, result)
        assert json.loads(info["buggy_outputs"]) != json.loads(row["reward_model"]["ground_truth"])["outputs"]
        if i % 5 == 0:
            result = _score(row, _wrap(info["buggy_solution"], info["buggy_steps"]))
            assert (result["score"], result["procedure"]) == (0.0, "buggy"), (info, result)

    with ThreadPoolExecutor(2) as pool:  # the sandbox bounds how many run at once
        list(pool.map(check, range(len(rows))))


def test_wrong_or_hostile_programs_score_0():
    row = _rows("test", 1, 1)[0]
    for program in ("def f(n):\n return 0", "def f(n):\n import os; os._exit(0)", "def g(n):\n return 1",
                    "print('PASS')", "def f(n)\n return n"):
        result = _score(row, _wrap(program))
        assert result["score"] == 0.0 and result["procedure"] == "neither", (program, result)
    assert _score(row, "no answer block")["score"] == 0.0


def test_rows_fit_the_testbed_models_and_the_splits_are_disjoint(tmp_path):
    from mirage.sample.base import apply_chat_template
    from mirage.testbed.tokenizer import make_tokenizer

    tokenizer = make_tokenizer()
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    problems = C.generate("train", 200, 0, difficulties=(2, 3, 4))
    assert max(count(apply_chat_template(tokenizer, p.prompt())) for p in problems) <= 64  # testbed max_prompt_length
    longest = max(count(p.response(c) + tokenizer.eos_token) for p in problems for c in (True, False))
    assert longest <= C.MAX_RESPONSE_TOKENS and 64 + C.MAX_RESPONSE_TOKENS <= 160  # the models' positions
    test_keys = {p.key for p in C.generate("test", 200, 1)}
    assert not test_keys & {p.key for p in C.generate("train", 1000, 0)}
    # the tokenizer has every character a program needs (no <unk>)
    assert tokenizer.unk_token_id not in tokenizer(problems[0].response(True))["input_ids"]


def test_ensure_dataset_is_deterministic_and_regenerates_a_stale_file(tmp_path):
    import pandas as pd
    from mirage.tasks import dataset_file

    path = C.ensure_dataset("toy-code_test", tmp_path)
    first = path.read_bytes()
    frame = pd.read_parquet(path)
    assert len(frame) == 200 and set(frame.data_source) == {"toy-code"}
    assert dataset_file("toy-code_test", tmp_path) == path and path.read_bytes() == first  # kept
    meta = path.with_suffix(".meta.json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "generator_version": 0}))
    C.ensure_dataset("toy-code_test", tmp_path)
    assert path.read_bytes() == first and json.loads(meta.read_text())["generator_version"] == C.GENERATOR_VERSION
    with pytest.raises(ValueError, match="not a toy-code dataset"):
        C.ensure_dataset("toy-code_valid", tmp_path)
    with pytest.raises(ValueError, match="difficulties"):
        C.ensure_dataset("toy-code_train", tmp_path, difficulties=(9,))


def test_verdicts_are_cached_by_program_and_tests():
    code.clear_cache()
    row = _rows("test", 3, 1)[2]
    text = _wrap(row["extra_info"]["reference_solution"])
    first = _score(row, text)
    runs = code.CACHE_STATS["runs"]
    assert runs == 1
    assert _score(row, text) == first and code.CACHE_STATS == {"hits": 1, "runs": 1}
    other = _rows("test", 4, 1)[3]  # same program text, other tests: run again
    _score(other, text)
    assert code.CACHE_STATS["runs"] == 2


# --- majority vote on code: by behaviour, not by text -----------------------------------------------
def _group():
    row = _rows("test", 1, 1)[0]
    info = row["extra_info"]
    term, lower = info["question"].split("sum ")[1].split(", i=")
    lower = lower.split("..")[0]
    loop = f"def f(n):\n s=0\n for i in range({lower},n+1):\n  s+={term}\n return s"
    spaced = info["reference_solution"].replace(" for i in", "  for i in")
    # 3 correct programs, all different texts; the buggy one twice (the largest cluster of equal texts)
    texts = [_wrap(info["reference_solution"]), _wrap(loop), _wrap(spaced),
             _wrap(info["buggy_solution"]), _wrap(info["buggy_solution"]), _wrap("def f(n):\n return 1/0")]
    return row, [_score(row, t) for t in texts]


def test_majority_vote_clusters_code_by_what_it_does_on_the_test_inputs():
    _, results = _group()
    assert [r["acc"] for r in results] == [1, 1, 1, 0, 0, 0]
    assert len({r["pred"] for r in results[:3]}) == 3  # three texts ...
    assert len({r["code_vote"] for r in results[:3]}) == 1  # ... one behaviour
    assert results[5]["code_vote"] is None  # crashed on every input: no vote
    sources = ["toy-code"] * len(results)
    votes = vote_values(results, sources)
    responses = Responses(group=[0] * 6, data_source=sources, pred=[r["pred"] for r in results],
                          format=[r["format"] for r in results], vote=votes)
    # by text the buggy program (2 equal texts) would win; by behaviour the correct one (3) does
    assert REWARDS["majority_vote"].rescore(responses, {}) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert "vote" in REWARDS["majority_vote"].needs


def test_the_vote_key_never_reads_the_expected_outputs():
    row, results = _group()
    gt = json.loads(row["reward_model"]["ground_truth"])
    wrong = dict(row, reward_model={"style": "rule", "ground_truth": json.dumps({**gt, "outputs": [0, 0, 0]})})
    text = _wrap(row["extra_info"]["reference_solution"])
    assert _score(wrong, text)["code_vote"] == results[0]["code_vote"]


def test_majority_vote_on_code_without_votes_is_an_error_not_a_text_vote():
    _, results = _group()
    with pytest.raises(ValueError, match="code_vote"):
        majority_vote_rewards([r["pred"] for r in results], [1.0] * 6, "toy-code")
    # other checkers' rows vote by their answers, as before
    assert majority_vote_rewards(["3", "3", "4"], [1, 1, 1], "toy-math") == [1.0, 1.0, 0.0]


def test_a_vote_column_must_be_a_result_column_of_its_checker():
    from mirage.registry import RegistryError
    from mirage.rewards.checkers import CHECKERS, Checker, Verdict

    with pytest.raises(RegistryError, match="vote_column"):
        CHECKERS.register(Checker("vote-test", lambda *a: Verdict(False, None), vote_column="nowhere"))
    assert "vote-test" not in CHECKERS


# --- the toy-code model family and its presets ----------------------------------------------------
def test_a_code_config_trains_on_toy_code_alone_with_exactly_q_correct():
    import dataclasses

    from mirage.testbed import pretrain as P

    config = dataclasses.replace(P.CODE["code-30"], corpus_size=400)
    corpus = P.build_corpus(config)
    assert len(corpus) == 400 and sum(correct for _, correct, _ in corpus) == round(0.3 * 400)
    assert {p.data_source for p, _, _ in corpus} == {"toy-code"} and config.tasks == ("toy-code",)
    assert all(p.split == "train" for p, _, _ in corpus)
    problem, correct, _ = corpus[0]
    assert problem.response(correct).endswith(f"{problem.answer if correct else problem.buggy_answer}</answer>")
    # a family is one task set: toy-code does not join the classic pair's corpus
    with pytest.raises(ValueError, match="q must give a value for each task of one family"):
        P.PretrainConfig("mixed", {"toy-math": 0.5, "toy-logic": 0.5, "toy-code": 0.5})
    with pytest.raises(ValueError, match="share"):
        P.PretrainConfig("bad-share", {"toy-code": 0.5})  # the classic pair's default shares
    assert set(P.CODE) <= set(P.SHIPPED)


def test_the_code_presets_run_toy_code_on_its_own_models_with_room_for_its_responses():
    from mirage import study
    from mirage.conditions import CONDITIONS
    from mirage.testbed.pretrain import CODE

    for name in ("testbed-code", "testbed-code-quick"):
        preset = study.load_preset(name)
        assert preset.tasks == ("toy-code",) and set(preset.models) <= set(CODE), name
        assert preset.recipe_dict()["max_response_length"] >= C.MAX_RESPONSE_TOKENS
        assert {CONDITIONS[c].rq for c in preset.conditions} == {"RQ1", "RQ2", "RQ3"}
    full = study.load_preset("testbed-code")
    assert full.models == tuple(CODE) and len(full.seeds) >= 3
    quick = study.load_preset("testbed-code-quick")
    assert quick.seeds == (0,) and len(quick.models) >= 2


def test_the_shipped_code_dial_follows_q():
    """The code-NN cards (measured when each model was built): base pass@1 follows q, the weakest model's
    pass@16 is <= 0.2, every model writes the format, samples start the correct procedure about q of the
    time, and the strongest computes the procedure it is forced onto (it learnt to copy the expression).
    (The dial does not yet reach pass@16 >= 0.95: docs/testbed.md, "The code dial".)"""
    from mirage.models import CHECKOUT_MODELS, read_card
    from mirage.testbed.pretrain import CODE

    cards = sorted((read_card(CHECKOUT_MODELS / name) for name in CODE), key=lambda c: c["q"]["toy-code"])
    measured = [c["passk"]["toy-code"] for c in cards]
    pass1 = [m["pass@1"] for m in measured]
    assert pass1 == sorted(pass1), pass1
    assert measured[0]["pass@16"] <= 0.2 < measured[-1]["pass@16"], [m["pass@16"] for m in measured]
    assert measured[-1]["forced_greedy_acc_correct"] > 0.7 and measured[-1]["forced_greedy_acc_buggy"] > 0.9
    assert all(m["format_rate"] > 0.99 for m in measured)
    for card, m in zip(cards, measured):
        assert abs(m["correct_start_rate"] - card["q"]["toy-code"]) < 0.12, (card["name"], m)
        assert card["config"] == CODE[card["name"]].to_dict()


def test_train_and_eval_default_to_the_tasks_response_length_on_toy_code_only():
    """A toy-code run without --set max_response_length / --max-tokens gets the 80 tokens its programs need
    (the testbed's 48 would cut every longer program, which then scores 0); other tasks keep the recipe's."""
    from mirage.evaluate.datasets import default_max_tokens
    from mirage.recipes import TESTBED_RECIPE
    from mirage.runs.config import RunConfig

    def recipe(task, **overrides):
        return RunConfig(model="code-30", task=task, condition="ground_truth", seed=0, backend="local",
                         overrides=overrides, run_dir="/tmp/unused-run").resolved().recipe

    assert TESTBED_RECIPE.max_response_length < C.MAX_RESPONSE_TOKENS
    assert recipe("toy-code").max_response_length == C.MAX_RESPONSE_TOKENS
    assert recipe("toy-math").max_response_length == TESTBED_RECIPE.max_response_length
    assert recipe("toy-code", max_response_length="64").max_response_length == 64  # a value given still wins
    assert default_max_tokens("toy-code") == default_max_tokens("toy-code_test") == C.MAX_RESPONSE_TOKENS
    assert default_max_tokens("toy-math") == TESTBED_RECIPE.max_response_length


def test_a_task_response_length_is_checked_when_registered():
    from mirage.registry import RegistryError
    from mirage.tasks import Task

    with pytest.raises(RegistryError, match="response_tokens"):
        Task("bad-length", "testbed", train="x", evals=("y",), response_tokens=-1)
