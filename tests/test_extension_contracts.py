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
    from mirage.train.dispatch import run

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


# --- the contracts, one by one ----------------------------------------------------------------------
def test_a_response_reward_scores_one_record_and_the_old_signature_is_refused():
    from mirage.registry import RegistryError

    with pytest.raises(RegistryError, match="score= must take one argument, the ResponseRecord"):
        Reward("five_args", "response", score=lambda fmt, acc, coin, checker, rf: fmt and acc)
    seen = []
    register_reward(Reward("spy", "response", score=lambda record: seen.append(record) or 0.0))
    try:
        compute_score("toy-math", "<think>a</think> <answer> 12 </answer>", "12", {"index": 3}, variant="spy")
    finally:
        REWARDS.unregister("spy")
    (record,) = seen
    assert (record.text, record.answer, record.format_ok, record.correct, record.pred) == (
        "<think>a</think> <answer> 12 </answer>", "12", True, True, "12")
    assert (record.ground_truth, record.extra_info, record.data_source, record.checker.name) == (
        "12", {"index": 3}, "toy-math", "toy")
    assert record.verdict.procedure == "correct" and record.coin() in (True, False)


def test_checker_options_and_columns_are_named_only_in_their_checkers_module():
    """No module outside a checker's own file quotes its options or result columns (the scorer's result keys,
    the evaluation CLI and settings, the probes ask the registry)."""
    import inspect
    from pathlib import Path

    import mirage
    from mirage.tasks import load_tasks

    load_tasks()
    root = Path(mirage.__file__).parent
    sources = {p: p.read_text(encoding="utf-8") for p in root.rglob("*.py")}
    leaks = []
    for checker in CHECKERS.values():
        home = Path(inspect.getsourcefile(checker.options)).resolve()
        names = dict.fromkeys([f.name for f in dataclasses.fields(checker.options)] + list(checker.result_columns))
        for path, text in sources.items():
            if path.resolve() != home:
                leaks += [f"{path.relative_to(root)}: {n!r} (checker {checker.name!r})" for n in names
                          if f'"{n}"' in text or f"'{n}'" in text]
    assert not leaks, "\n".join(leaks)


def test_an_estimator_owns_its_config_keys_and_both_engines_read_them(tmp_path):
    import torch

    from mirage.objectives import ESTIMATORS, Estimator, compute_grpo, register_estimator
    from mirage.registry import RegistryError
    from mirage.train import sampling
    from mirage.train import verl as vb

    def scaled(token_level_rewards, response_mask, index, config=None, **kw):
        adv, ret = compute_grpo(token_level_rewards, response_mask, index, config=config)
        factor = float((config or {}).get("scaled_factor", 1.0))
        return adv * factor, ret * factor

    register_estimator(Estimator("scaled", scaled, drops_unselected=True, config_keys={"factor": "scaled_factor"}))
    register_condition(Condition("scaled", "RQ3", "ground_truth", estimator="scaled",
                                 estimator_kwargs={"factor": 3.0}, colour="#2f4858"))
    try:
        with pytest.raises(RegistryError, match="estimator 'scaled' has no option 'lam'"):
            register_condition(Condition("scaled_bad", "RQ3", "ground_truth", estimator="scaled",
                                         estimator_kwargs={"lam": 3.0}, colour="#2f4859"))
        # verl: the option travels under the entry's key in the algorithm config
        _, argv = vb.build_command("Qwen/Qwen2.5-Math-7B", "math", "scaled", 0, tmp_path / "run",
                                   data_root=tmp_path / "data")
        assert "+algorithm.scaled_factor=3.0" in argv  # what verl's advantage computation reads
        # and what mirage's replay buffer reads to decide which responses it drops
        assert "+trainer.v1.sampler.sampler_kwargs.estimator_config.scaled_factor=3.0" in argv
        # the local engine: the same key, through drop_mask's config
        est, cond = ESTIMATORS["scaled"], CONDITIONS["scaled"]
        rewards, mask = torch.tensor([[1.0], [0.0]]), torch.ones(2, 1)
        _, adv = sampling.drop_mask("scaled", rewards, mask, [0, 0], config=est.config(cond.estimator_kwargs))
        _, plain = sampling.drop_mask("grpo", rewards, mask, [0, 0])
        assert torch.allclose(adv, 3.0 * plain) and plain.abs().sum() > 0
    finally:
        CONDITIONS.unregister("scaled")
        ESTIMATORS.unregister("scaled")


def test_procedure_shares_come_from_the_checker_entry(tmp_path):
    """A task's checker that declares ``procedure`` gets the procedure predictors; no predictor names a task."""
    from mirage.evaluate import predictors as pr

    register_checker(Checker("parity_proc", lambda *a: Verdict(False, None),
                             procedure=lambda pred, gt, info: "correct" if pred == gt else "buggy"))
    register_task(Task("parity-task", "testbed", train="parity_train", evals=("parity_test",),
                       sources={"parity-src": "parity_proc"}))
    try:
        rows = pd.DataFrame({"dataset": "d", "problem_id": ["a"] * 4, "data_source": "parity-src",
                             "sample_index": range(4), "pred": ["1", "1", "2", "3"], "correct": [1, 1, 0, 0],
                             "ground_truth": "1", "format": 1.0, "num_tokens": 4, "sum_neg_logprob": float("nan")})
        problems = {"d": pd.DataFrame({"problem_id": ["a"], "extra_info": [{}]})}
        row = pr.predictor_table(rows, problems).iloc[0]
        assert (row["procedure_correct"], row["procedure_buggy"], row["procedure_neither"]) == (0.5, 0.5, 0.0)
    finally:
        TASKS.unregister("parity-task")
        CHECKERS.unregister("parity_proc")


def test_one_shot_history_is_a_flag_on_one_condition():
    from mirage.conditions import history_condition
    from mirage.registry import RegistryError

    assert history_condition().name == "ground_truth" and history_condition().data == "full"
    with pytest.raises(RegistryError, match="one_shot_history is already condition 'ground_truth'"):
        register_condition(Condition("gt_again", "RQ1", "ground_truth", one_shot_history=True, colour="#2f485a"))
    with pytest.raises(RegistryError, match="one_shot_history needs full-data runs"):
        register_condition(Condition("gt_one", "RQ2", "ground_truth", data="one_shot_random", one_shot_history=True,
                                     colour="#2f485b"))
    assert "one_shot_history" not in CONDITIONS["ground_truth"].to_dict()  # run manifests keep their keys


def test_the_cost_estimate_reads_a_tasks_evaluation_size_from_its_entry():
    from mirage.study.estimate import DEFAULT_EVAL_PROBLEMS, eval_problems

    register_task(Task("sized-task", "paper", train="sized_train", evals=("sized_test",), sources={"sized": "exact"},
                       eval_problems=123))
    try:
        assert eval_problems("sized-task") == 123 and eval_problems("math") == 570
        assert eval_problems("no-such-task") == DEFAULT_EVAL_PROBLEMS
    finally:
        TASKS.unregister("sized-task")


def test_result_columns_follow_the_checker_registry():
    from mirage.rewards import result_keys
    from mirage.registry import RegistryError

    text = "<think>x</think> <answer>1</answer>"
    assert "probe_col" not in compute_score("toy-math", text, "1") and "probe_col" not in result_keys()
    register_checker(Checker("col_probe", _check, result_columns={"probe_col": lambda options, verdict: 7}))
    try:
        assert compute_score("toy-math", text, "1")["probe_col"] is None  # another checker's row: None
        assert result_keys()[-3:] == ("probe_col", "error", "procedure")
        with pytest.raises(RegistryError, match="result column 'probe_col' is already checker 'col_probe'"):
            register_checker(Checker("col_probe2", _check, result_columns={"probe_col": lambda o, v: 8}))
        with pytest.raises(RegistryError, match="result column 'acc' is one of compute_score's own keys"):
            register_checker(Checker("col_probe3", _check, result_columns={"acc": lambda o, v: 8}))
    finally:
        CHECKERS.unregister("col_probe")
    assert "probe_col" not in compute_score("toy-math", text, "1") and "probe_col" not in result_keys()
