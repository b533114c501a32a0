"""Extension contracts (issue 19): a reward that reads the response's text and a checker option, each added
at run time by registering one entry, reach a local training step and an evaluation run unchanged.

Nothing outside the entries is edited: the reward is one ``register_reward`` call whose ``score`` reads the
``ResponseRecord``; the checker declares its options dataclass (from which ``mirage eval``'s flag is
generated) and its result column; the task and condition that use them are one registration each.
"""

import dataclasses
import json

import pandas as pd
import pytest

from mirage import runs
from mirage.conditions import CONDITIONS, Condition, register_condition
from mirage.rewards import REWARDS, Reward, compute_score, extract_answer, register_reward
from mirage.rewards.checkers import CHECKERS, Checker, Verdict, register_checker
from mirage.tasks import TASKS, Task, register_task

MODEL = "dial-30"  # a shipped testbed model: mostly wrong on toy-math, answers of mixed lengths
SOURCE = "toy-even"  # the data source of the test's task, routed to the test's checker


@dataclasses.dataclass(frozen=True)
class GradeOptions:
    grade_mode: str = dataclasses.field(default="exact", metadata={
        "choices": ("exact", "any_answer"), "help": "exact: the answer equals the ground truth; any_answer: any"})


def _check(data_source, text, answer, ground_truth, extra_info, options, release_faithful):
    if options.grade_mode == "any_answer":
        return Verdict(bool(answer), answer)
    return Verdict(answer is not None and answer.strip() == str(ground_truth).strip(), answer)


def _even_answer(record):
    """1 for answers of even length: reads the extracted answer, which the old contract never passed."""
    return record.answer is not None and len(record.answer) % 2 == 0


@pytest.fixture
def extension(tmp_path, monkeypatch):
    from mirage.tasks.toy import ensure_dataset

    root = tmp_path / "data"
    for split, n in (("train", 32), ("test", 8)):  # toy-math's problems under the test's own data source
        src = ensure_dataset(f"toy-math_{split}", tmp_path / "toy", n=n)
        rows = pd.read_parquet(src).assign(data_source=SOURCE)
        (root / "verl").mkdir(parents=True, exist_ok=True)
        rows.to_parquet(root / "verl" / f"{SOURCE}_{split}.parquet")
    monkeypatch.setenv("MIRAGE_DATA", str(root))
    register_checker(Checker("grade", _check, GradeOptions,
                             result_columns={"grade_mode": lambda options, verdict: options.grade_mode}))
    register_task(Task(SOURCE, "testbed", train=f"{SOURCE}_train", evals=(f"{SOURCE}_test",),
                       sources={SOURCE: "grade"}))
    register_reward(Reward("even_answer", "response", score=_even_answer, summary="1 for answers of even length"))
    register_condition(Condition("even_answer", "RQ1", "even_answer", reward_kwargs={"grade_mode": "any_answer"},
                                 colour="#3c6e71"))
    yield root
    for registry, name in ((CONDITIONS, "even_answer"), (REWARDS, "even_answer"), (TASKS, SOURCE),
                           (CHECKERS, "grade")):
        registry.unregister(name)


def test_a_text_reward_and_a_checker_option_reach_training_and_evaluation(extension, tmp_path):
    from mirage.cli import main
    from mirage.train import run

    # the scorer: the reward sees the answer, the option reaches the checker, the checker's column is in results
    text = "<think>x</think> <answer>12</answer>"
    assert compute_score(SOURCE, text, "7", variant="even_answer")["score"] == 1.0
    assert compute_score(SOURCE, text.replace("12", "123"), "7", variant="even_answer")["score"] == 0.0
    exact, lenient = (compute_score(SOURCE, text, "7", grade_mode=mode) for mode in ("exact", "any_answer"))
    assert (exact["acc"], exact["grade_mode"]) == (0.0, "exact") and (lenient["acc"], lenient["grade_mode"]) == (
        1.0, "any_answer")
    assert compute_score("toy-math", text, "12")["grade_mode"] is None  # every result has every column

    # a local training step with the condition (the even-length reward, the checker option in its reward_kwargs)
    cfg = runs.RunConfig(MODEL, SOURCE, "even_answer", run_dir=str(tmp_path / "run"), data_root=str(extension),
                         progress=False, dump_rollouts=True, validate_before=False,
                         overrides=dict(total_steps=1, train_batch_size=8, rollout_n=2, ppo_mini_batch_size=8,
                                        max_response_length=40, val_freq=0, save_freq=0, dynamic_sampling=False))
    run_dir = run(cfg)
    rollouts = runs.read_jsonl(run_dir / "rollouts" / "1.jsonl")
    answers = [extract_answer(r["text"]) for r in rollouts]
    assert [r["score"] for r in rollouts] == [float(a is not None and len(a) % 2 == 0) for a in answers]
    assert {r["score"] for r in rollouts} == {0.0, 1.0}  # both parities occur: the reward is not a constant
    assert [r["acc"] for r in rollouts] == [float(bool(a)) for a in answers]  # any_answer reached the checker
    rows = {str(r["extra_info"]["index"]): r for r in pd.read_parquet(extension / "verl" / f"{SOURCE}_train.parquet")
            .to_dict("records")}
    assert any(r["acc"] == 1.0 and r["pred"] != rows[str(r["index"])]["reward_model"]["ground_truth"]
               for r in rollouts)  # a wrong answer graded 1: the option, not the exact check, decided

    # an evaluation run, the option given as the flag generated from the checker's options dataclass
    out = tmp_path / "eval"
    assert main(["eval", "--model", MODEL, "--task", f"{SOURCE}_test", "--n", "2", "--max-tokens", "40",
                 "--out", str(out), "--grade-mode", "any_answer", "--no-progress"]) == 0
    manifest = json.loads((out / "eval_manifest.json").read_text())
    assert manifest["config"]["score_kwargs"]["grade_mode"] == "any_answer"
    from mirage.evaluate import read_samples

    samples = read_samples(out)
    assert len(samples) == 16 and (samples["acc"] == samples["pred"].fillna("").astype(bool).astype(float)).all()
    assert ((samples["acc"] == 1.0) & (samples["pred"] != samples["ground_truth"])).any()


def test_a_checker_option_flag_is_generated_and_refuses_a_bad_value(extension, capsys):
    from mirage.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["eval", "--model", "m", "--task", "t", "--grade-mode", "any_answer"])
    from mirage.evaluate.cli import _score_kwargs

    assert _score_kwargs(args) == {"grade_mode": "any_answer"}
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--model", "m", "--task", "t", "--grade-mode", "loose"])
    assert "--grade-mode" in capsys.readouterr().err
