"""One definition of a run's and an evaluation's settings: the CLI flags, the study cell's signature and the
notebooks' parameter cells state the defaults of ``RunConfig``, ``SamplingParams`` / ``EvalSettings`` and
``StudyEval``, or differ from them only where a caller keeps its own value explicit (listed here)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest

from mirage.cli import build_parser
from mirage.runs import RunConfig
from mirage.sample.base import SamplingParams
from mirage.study import cell
from mirage.study.preset import StudyEval

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
RQ_NOTEBOOKS = ("10_rq1_reward_signal.ipynb", "20_rq2_one_shot.ipynb", "30_rq3_sample_polarity.ipynb")
SAMPLING = ("temperature", "top_p", "seed")


def defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def parameters(notebook: str) -> dict:
    """The names and values the notebook's ``parameters`` cell assigns."""
    nb = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))
    source = next("".join(c["source"]) for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(source).body
            if isinstance(node, ast.Assign)}


def test_the_sampling_defaults_are_stated_once():
    from mirage.evaluate.core import EvalSettings

    sampling = defaults(SamplingParams)
    for cls in (EvalSettings, StudyEval):
        mine = defaults(cls)
        assert {k: mine[k] for k in SAMPLING} == {k: sampling[k] for k in SAMPLING}, cls.__name__
    assert defaults(EvalSettings)["max_tokens"] == sampling["max_tokens"]
    # the study's None is its own: the recipe's max_response_length, what training sampled
    assert defaults(StudyEval)["max_tokens"] is None


def test_the_eval_cli_flags_default_to_the_evaluation_settings():
    from mirage.evaluate.core import EvalSettings

    args = build_parser().parse_args(["eval", "--model", "m", "--task", "t"])
    sampling = defaults(SamplingParams)
    assert {k: getattr(args, k) for k in SAMPLING} == {k: sampling[k] for k in SAMPLING}
    assert args.max_tokens is None  # the CLI's own: the task's recipe decides (docs/evaluation.md)
    assert args.vllm_seeding == defaults(EvalSettings)["vllm_seeding"]
    assert args.format_gated == defaults(EvalSettings)["format_gated"]


def test_the_train_cli_flags_default_to_the_run_config():
    args = build_parser().parse_args(["train", "--model", "m", "--task", "t", "--condition", "c"])
    run = defaults(RunConfig)
    flags = {"seed": "seed", "backend": "backend", "run_dir": "run_dir", "release_faithful": "release_faithful",
             "data_root": "data_root", "train_file": "train_file", "history_run": "history_run",
             "restart": "restart", "resume_from": "resume_from"}
    assert {field: getattr(args, flag) for flag, field in flags.items()} == {field: run[field] for field in flags.values()}
    assert tuple(args.extra) == run["extra"] and tuple(args.logger) == run["loggers"]
    assert dict(args.overrides) == {}  # RunConfig.overrides: an empty mapping


@pytest.mark.parametrize("notebook", RQ_NOTEBOOKS)
def test_an_rq_notebook_states_the_cell_signature_and_its_defaults(notebook):
    params = parameters(notebook)
    signature = inspect.signature(cell.run).parameters
    assert set(params) == set(signature) - {"progress"}  # progress: the notebook shows it as is
    for name, value in params.items():
        default = signature[name].default
        if name == "eval":
            assert value == {k: v for k, v in cell.DEFAULT_EVAL.items() if k in value}, notebook
            assert set(cell.DEFAULT_EVAL) - set(value) == {"greedy"}  # off unless a preset asks
        elif default is inspect.Parameter.empty:  # model, task, condition: the notebook's example case
            assert name in ("model", "task", "condition")
        elif default is None:  # a mapping left out: recipe_overrides {}
            assert value == {}, name
        else:
            assert value == default, (notebook, name)
    assert params["seed"] == defaults(RunConfig)["seed"] and params["backend"] == defaults(RunConfig)["backend"]


def test_the_cell_evaluation_is_the_studys_but_for_its_checkpoints():
    study = defaults(StudyEval)
    assert {k: v for k, v in cell.DEFAULT_EVAL.items() if k != "checkpoints"} == {
        k: study[k] for k in cell.DEFAULT_EVAL if k != "checkpoints"}
    assert (cell.DEFAULT_EVAL["checkpoints"], study["checkpoints"]) == ("all", "last")


def test_the_alignment_notebook_states_the_alignment_defaults():
    params = parameters("00_alignment.ipynb")
    assert params["eval"] == cell.ALIGNMENT_EVAL
    study = defaults(StudyEval)
    assert {k: cell.ALIGNMENT_EVAL[k] for k in (*SAMPLING, "max_tokens")} == {k: study[k] for k in (*SAMPLING, "max_tokens")}
    signature = inspect.signature(cell.measure_alignment).parameters
    assert params["backend"] == signature["backend"].default and params["pairs"] == list(signature["pairs"].default)
