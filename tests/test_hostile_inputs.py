"""Hostile inputs (issue 22): numbers that are not finite or out of range, seeds no library takes,
counts of zero, reasoning-gym options of the wrong type, a YAML alias bomb, notebook parameters
given as text, and refusals that name what differs and the flags that exist.

Each is refused before any work, in one line naming the key, flag, option or file; nothing
here trains or samples (the engines are replaced by a failure where a refusal could be late).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from mirage import ranges, runs, study
from mirage.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(argv):
    """(exit status, stderr) of one in-process CLI call; argparse's own errors exit 2."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def no_training(monkeypatch):
    import mirage.train.loop as loop

    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("a bad value reached training"))


@pytest.fixture
def no_sampling(monkeypatch):
    import mirage.evaluate.core as core

    monkeypatch.setattr(core, "make_sampler", lambda *a, **k: pytest.fail("a bad value reached sampling"))


# --- 1. numbers: finite and in range, before any work ---------------------------------------------
@pytest.mark.parametrize("key,value", [("lr", "inf"), ("lr", "1e308"), ("lr", "nan"), ("temperature", "inf"),
                                       ("entropy_coeff", "nan"), ("val_top_p", "nan"), ("clip_ratio_high", "inf"),
                                       ("grad_clip", "inf"), ("weight_decay", "1e308"), ("clip_ratio_c", "nan"),
                                       ("total_steps", "99999999999999999999"), ("rollout_n", "10000000"),
                                       ("tensor_parallel_size", "0")])
def test_train_refuses_a_recipe_number_out_of_range(key, value, capsys, tmp_path, no_training):
    code = run(["train", "--model", "dial-60", "--task", "toy-math", "--condition", "ground_truth",
                "--run-dir", str(tmp_path / "run"), "--set", f"{key}={value}"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and f"recipe key '{key}'" in line and "must be" in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text,key", [("overrides: {lr: .inf}\n", "'lr'"),
                                      ("overrides: {entropy_coeff: .nan}\n", "'entropy_coeff'"),
                                      ("regimes: {hot: {temperature: .inf}}\n", "regimes.hot.*'temperature'"),
                                      ("overrides: {dynamic_sampling: 2}\n", "'dynamic_sampling'"),
                                      ("eval: {temperature: .nan}\n", "eval.temperature"),
                                      ("eval: {top_p: .inf}\n", "eval.top_p"),
                                      ("eval: {seed: 99999999999999999999}\n", "eval.seed"),
                                      ("eval: {max_tokens: 0}\n", "eval.max_tokens"),
                                      ("one_shot: {pool: 0}\n", "one_shot.pool"),
                                      ("one_shot: {epochs: -1}\n", "one_shot.epochs"),
                                      ("seeds: [99999999999999999999]\n", "seeds"),
                                      ("grids: [{seeds: [-1]}]\n", "seeds"),
                                      ("jobs: 100000\n", "jobs")])
def test_a_preset_number_out_of_range_is_refused_naming_the_key_and_the_file(text, key, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("backend: local\nmodels: [dial-90]\ntasks: [toy-math]\nconditions: [random]\n" + text)
    with pytest.raises(study.PresetError, match=key) as err:
        study.load_preset(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("flag,value", [("--temperature", "nan"), ("--temperature", "inf"), ("--top-p", "nan"),
                                        ("--seed", "99999999999999999999"), ("--batch-size", "0"),
                                        ("--threads", "0"), ("--score-processes", "-1"), ("--n", "0"),
                                        ("--max-tokens", "99999999999"), ("--tensor-parallel-size", "0")])
def test_eval_refuses_a_flag_out_of_range_naming_it(flag, value, capsys, tmp_path, no_sampling):
    code = run(["eval", "--model", "dial-60", "--task", "toy-math", "--out", str(tmp_path / "out"), "--no-progress",
                flag, value])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and f"argument {flag}:" in line and "must be" in line, line
    assert not (tmp_path / "out").exists()


def test_the_evaluation_library_checks_the_same_ranges(tmp_path, no_sampling):
    from mirage.evaluate import align, evaluate

    for kwargs, key in (({"temperature": math.nan}, "temperature"), ({"temperature": math.inf}, "temperature"),
                        ({"seed": 2**64}, "seed"), ({"batch_size": 0}, "batch_size"),
                        ({"score_processes": -1}, "score_processes"), ({"top_p": math.nan}, "top_p"),
                        ({"sampler_kwargs": {"threads": 0}}, "threads")):
        with pytest.raises(ValueError, match=f"^{key}: must be"):
            evaluate("dial-60", "toy-math", 2, out_dir=tmp_path / "e", progress=False, **kwargs)
    with pytest.raises(ValueError, match="^n: must be"):  # n=0 was read as "the default"
        align(["dial-60"], ["toy-math"], n=0, out=tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="^max_tokens: must be"):
        align(["dial-60"], ["toy-math"], n=2, max_tokens=0, out=tmp_path / "a", progress=False)
    assert not (tmp_path / "e").exists() and not (tmp_path / "a").exists()
    from mirage.sample.base import SamplingParams

    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=math.nan)


# --- 2. seeds inside what numpy and torch take ----------------------------------------------------
def test_seeds_outside_what_the_libraries_take_are_refused_before_any_work(capsys, tmp_path, no_training,
                                                                          no_sampling):
    from mirage.runs import RunConfig

    huge = "99999999999999999999"
    code = run(["train", "--model", "dial-60", "--task", "toy-math", "--condition", "ground_truth", "--seed", huge,
                "--run-dir", str(tmp_path / "run")])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and "argument --seed:" in line and str(ranges.SEED_MAX) in line
    code = run(["eval", "--model", "dial-60", "--task", "toy-math", "--seed", huge, "--out", str(tmp_path / "out")])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and "argument --seed:" in line and str(ranges.SEED_MAX) in line
    with pytest.raises(ValueError, match="^seed: must be an integer >= 0 and <= 4294967295"):
        RunConfig(model="dial-60", task="toy-math", condition="ground_truth", seed=2**32).resolved()
    assert RunConfig(model="dial-60", task="toy-math", condition="ground_truth", seed=2**32 - 1,
                     run_dir=str(tmp_path / "r")).resolved().seed == 2**32 - 1  # the largest is still taken
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists() and not (tmp_path / "r").exists()


def test_the_largest_seed_is_one_numpy_and_torch_take():
    import numpy as np
    import torch

    np.random.RandomState(ranges.SEED_MAX)
    np.random.default_rng([ranges.SEED_MAX, 3])
    torch.manual_seed(ranges.SEED_MAX)
    with pytest.raises(ValueError):
        np.random.RandomState(ranges.SEED_MAX + 1)  # so the bound is numpy's, not a guess


# --- 3. counts of zero --------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,flag", [
    (["study", "--preset", "testbed-ci", "--jobs", "0", "--dry-run"], "--jobs"),
    (["align", "--models", "dial-60", "--tasks", "toy-math", "--n", "0"], "--n"),
    (["align", "--models", "dial-60", "--tasks", "toy-math", "--batch-size", "0"], "--batch-size"),
    (["train", "--backend", "verl", "--model", "dial-60", "--task", "toy-math", "--condition", "ground_truth",
      "--nnodes", "-1", "--dry-run"], "--nnodes"),
    (["probe", "contamination", "--model", "dial-60", "--task", "toy-math", "--threads", "0"], "--threads"),
    (["data", "one-shot", "--source", "x.parquet", "--random", "--seed", "-1"], "--seed"),
    (["testbed", "pretrain", "--all", "--jobs", "0"], "--jobs"),
])
def test_a_count_of_zero_or_less_is_refused_naming_the_flag(argv, flag, capsys, tmp_path, no_sampling, monkeypatch):
    import mirage.data.one_shot
    import mirage.probe.contamination
    import mirage.testbed.pretrain

    for module, name in ((mirage.probe.contamination, "probe_contamination"), (mirage.data.one_shot, "one_shot_set"),
                         (mirage.testbed.pretrain, "pretrain_family")):  # a late refusal must not start the work
        monkeypatch.setattr(module, name, lambda *a, _name=name, **k: pytest.fail(f"a bad flag reached {_name}"))
    code = run(argv + ["--out" if argv[0] != "train" else "--run-dir", str(tmp_path / "out")])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and f"argument {flag}:" in line, line
    assert not (tmp_path / "out").exists()


# --- 4. reasoning-gym options ---------------------------------------------------------------------
@pytest.mark.parametrize("task,words", [
    ("rg:basic_arithmetic@min_terms=abc", ["min_terms=abc", "an integer"]),
    ("rg:basic_arithmetic@min_terms=5,max_terms=2", ["min_terms=5,max_terms=2", "max_terms must be >= min_terms"]),
    ("rg:basic_arithmetic@format_style=fancy", ["format_style=fancy", "'simple', 'natural'"]),
    ("rg:basic_arithmetic@allow_negation=1", ["allow_negation=1", "true or false"]),
    ("rg:basic_arithmetic@min_digits=0", ["min_digits", "positive"]),
])
def test_reasoning_gym_options_of_the_wrong_type_or_inconsistent_are_one_line(task, words, capsys, tmp_path):
    from mirage.tasks import get_task

    with pytest.raises(KeyError) as err:
        get_task(task)
    message = str(err.value)
    assert f"task {task!r}" in message and all(w in message for w in words), message
    for argv in (["train", "--model", "dial-60", "--condition", "ground_truth", "--dry-run", "--task", task,
                  "--run-dir", str(tmp_path / "run"), "--data-root", str(tmp_path / "data")],
                 ["eval", "--model", "dial-60", "--task", task, "--n", "2", "--out", str(tmp_path / "out")]):
        code = run(argv)
        line = _one_line(capsys.readouterr().err)
        assert code == 2 and task in line, line
    assert not list(tmp_path.iterdir())


def test_good_reasoning_gym_options_still_compose():
    from mirage.tasks import get_task

    assert get_task("rg:basic_arithmetic@min_terms=3,max_terms=5").options["config"] == {"min_terms": 3,
                                                                                        "max_terms": 5}
    assert get_task("rg:basic_arithmetic@format_style=natural").options["config"] == {"format_style": "natural"}


@pytest.mark.parametrize("task", ["rg:no_such_generator", "rg:basic_arithmetic@min_terms=abc"])
def test_a_preset_naming_an_unknown_rg_task_is_refused_at_load_and_dry_run(task, tmp_path, capsys):
    path = tmp_path / "rg.yaml"
    path.write_text(f"backend: verl\nmodels: [dial-90]\ntasks: ['{task}']\nconditions: [random]\n")
    with pytest.raises(study.PresetError, match="no_such_generator|min_terms") as err:
        study.load_preset(path)
    assert str(path) in str(err.value)
    code = run(["study", "--preset", str(path), "--out", str(tmp_path / "s"), "--dry-run"])
    assert code == 2 and task in _one_line(capsys.readouterr().err)


# --- 5. a YAML alias bomb ---------------------------------------------------------------------------
GOOD = "backend: local\nmodels: [dial-90]\ntasks: [toy-math]\nconditions: [random]\n"


def test_yaml_aliases_are_refused_naming_the_file(tmp_path):
    # a modest "billion laughs": 10^5 list items from 6 lines (the 9 levels took 3.7 GB and 90 s)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcd", "bcde"))
    for name, text in (("bomb.yaml", GOOD + "description: x\n" + bomb.replace("a: &a", "x_a: &a")),
                       ("alias.yaml", GOOD + "overrides: &o {total_steps: 3}\nregimes: {u2: *o}\n")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(study.PresetError, match="aliases") as err:
            study.load_preset(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_an_oversized_preset_file_is_refused_before_it_is_parsed(tmp_path):
    from mirage.study.preset import MAX_PRESET_BYTES

    path = tmp_path / "big.yaml"
    path.write_text(GOOD + "# " + "x" * MAX_PRESET_BYTES + "\n")
    with pytest.raises(study.PresetError, match="more than a preset may hold") as err:
        study.load_preset(path)
    assert str(path) in str(err.value)
    assert max(p.stat().st_size for p in (ROOT / "lib" / "mirage" / "study" / "presets").glob("*.yaml")) \
        < MAX_PRESET_BYTES / 100
    ok = tmp_path / "anchor.yaml"
    ok.write_text(GOOD + "overrides: &o {total_steps: 3}\n")  # an anchor without an alias is harmless
    assert study.load_preset(ok).overrides == {"total_steps": 3}


# --- 6. notebook parameters given as text ---------------------------------------------------------
def test_notebook_parameters_given_as_text_are_refused_showing_the_yaml_form(tmp_path):
    from mirage.study import cell, regimes
    from mirage.probe.contamination import probe_models

    with pytest.raises(ValueError, match=r"""'models'.*papermill -y 'models: \[dial-90\]'"""):
        cell.measure_alignment('["dial-90"]', ["toy-math"], tmp_path / "a", {"align_n": 2})
    with pytest.raises(ValueError, match=r"'eval'.*-y 'eval: \{n: 4\}'"):
        cell.run("dial-90", "toy-math", "random", eval='{"n": 4}', run_dir=tmp_path / "r")
    with pytest.raises(ValueError, match=r"'recipe_overrides'.*-y 'recipe_overrides: \{total_steps: 3\}'"):
        cell.run("dial-90", "toy-math", "random", recipe_overrides="{total_steps: 3}", run_dir=tmp_path / "r")
    with pytest.raises(ValueError, match=r"'seed'.*expected an integer"):
        cell.run("dial-90", "toy-math", "random", seed="0", run_dir=tmp_path / "r")
    with pytest.raises(ValueError, match=r"'models'.*-y 'models: \[dial-90, dial-10\]'"):
        probe_models('["dial-90", "dial-10"]', "toy-math", tmp_path / "p")
    with pytest.raises(ValueError, match=r"'bandit_variants'"):
        regimes.bandit_runs({}, '{"clip": {}}')
    assert not list(tmp_path.iterdir())


def test_the_parameter_types_are_what_the_notebooks_declare():
    import ast

    import nbformat

    from mirage.study.cell import NOTEBOOK_PARAMETERS

    seen = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cell = next(c for c in nbformat.read(path, as_version=4).cells
                    if "parameters" in c.get("metadata", {}).get("tags", []))
        for node in ast.parse(cell.source).body:
            name = node.targets[0].id if isinstance(node, ast.Assign) else None
            if name in NOTEBOOK_PARAMETERS:
                ranges.check_parameters({name: ast.literal_eval(node.value)}, NOTEBOOK_PARAMETERS)
                seen.add(name)
    assert seen == set(NOTEBOOK_PARAMETERS)  # every typed name is a notebook parameter


def test_papermill_p_with_a_list_fails_in_the_notebook_with_the_yaml_form(tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("MIRAGE_HOME", str(tmp_path / "home"))
    with pytest.raises(papermill.PapermillExecutionError, match=r"-y 'models: \[dial-90\]'"):
        papermill.execute_notebook(str(ROOT / "notebooks" / "00_alignment.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"models": '["dial-90"]'}, kernel_name="python3",
                                   progress_bar=False, cwd=str(tmp_path))
    assert not (tmp_path / "home").exists()


# --- 7. refusals that name what differs and the flags that exist -----------------------------------
def test_a_run_with_another_recipe_is_refused_naming_only_the_keys_that_differ(tmp_path):
    from mirage.runs import RunConfig
    from mirage.train.loop import _check_folder

    def cfg(**overrides):
        return RunConfig(model="dial-60", task="toy-math", condition="ground_truth", run_dir=str(tmp_path),
                         overrides=overrides).resolved()

    old = cfg()
    manifest = {**old.identity(), "config": old.to_dict(), "recipe": old.recipe.to_dict(), "status": "finished"}
    with pytest.raises(ValueError) as err:
        _check_folder(cfg(lr=3e-4, total_steps=7), manifest)
    message = str(err.value)
    assert "{'recipe': {'lr': (2e-05, 0.0003), 'total_steps': (40, 7)}}" in message, message
    assert "rollout_n" not in message and "clip_ratio_low" not in message  # not the other 28 keys
    assert "--run-dir" in message and "--restart" in message
    assert _check_folder(old, manifest) == "finished"
    assert runs.config_diff({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"x": 1, "y": 3}, "b": 2}) == {
        "a": {"y": (2, 3)}, "b": (1, 2)}
    assert runs.config_diff({"a": None}, {"a": {"x": 1}}) == {"a": (None, {"x": 1})}


def test_the_evaluation_refusal_names_flags_that_exist(tmp_path):
    import json

    from mirage.cli import build_parser
    from mirage.evaluate.core import MANIFEST, EvalSettings, _check_settings

    (tmp_path / MANIFEST).write_text(json.dumps({"config": EvalSettings("dial-60", "toy-math", 4).to_dict()}))
    with pytest.raises(ValueError) as err:
        _check_settings(tmp_path, EvalSettings("dial-60", "toy-math", 8), restart=False)
    message = str(err.value)
    assert "{'n': (4, 8)}" in message and "--out" in message and "--restart" in message
    flags = {a for action in build_parser()._subparsers._group_actions[0].choices["eval"]._actions
             for a in action.option_strings}
    for flag in ("--out", "--restart"):  # the flags the message names are flags of `mirage eval`
        assert flag in flags
    assert build_parser().parse_args(["eval", "--model", "m", "--task", "t", "--restart"]).restart is True


# --- the ranges are declared once, cover every number, and the docs list them ----------------------
def _numeric_fields(cls) -> set[str]:
    import typing

    hints = typing.get_type_hints(cls)
    return {f.name for f in dataclasses.fields(cls)
            if any(t in (int, float) for t in (typing.get_args(hints[f.name]) or (hints[f.name],)))
            and hints[f.name] is not bool}


def test_every_numeric_setting_has_a_range():
    from mirage.evaluate.core import EVAL_RANGES, EvalSettings
    from mirage.recipes import RANGES as RECIPE_RANGES
    from mirage.recipes import Recipe
    from mirage.runs.config import RANGES as RUN_RANGES
    from mirage.runs.config import RunConfig
    from mirage.study.preset import EVAL_RANGES as STUDY_EVAL_RANGES
    from mirage.study.preset import ONE_SHOT_RANGES, PRESET_RANGES, OneShotSettings, Preset, StudyEval

    for cls, table in ((Recipe, RECIPE_RANGES), (RunConfig, RUN_RANGES), (EvalSettings, EVAL_RANGES),
                       (StudyEval, STUDY_EVAL_RANGES), (OneShotSettings, ONE_SHOT_RANGES), (Preset, PRESET_RANGES)):
        assert _numeric_fields(cls) <= set(table), (cls.__name__, _numeric_fields(cls) - set(table))
    for name, recipe in __import__("mirage.recipes", fromlist=["RECIPES"]).RECIPES.items():
        recipe.check()  # the shipped recipes are inside their own ranges
    for name in study.list_presets():
        study.load_preset(name)  # and so are the shipped presets


@pytest.mark.parametrize("doc,tables", [
    ("engine.md", ["mirage.recipes:RANGES", "mirage.runs.config:RANGES"]),
    ("evaluation.md", ["mirage.evaluate.core:EVAL_RANGES"]),
    ("study.md", ["mirage.study.preset:EVAL_RANGES:eval.", "mirage.study.preset:ONE_SHOT_RANGES:one_shot.",
                  "mirage.study.preset:PRESET_RANGES"]),
])
def test_the_docs_state_the_ranges_the_code_checks(doc, tables):
    import importlib

    text = (ROOT / "docs" / doc).read_text()
    for spec in tables:
        module, name, prefix = (spec + ":").split(":")[:3]
        table = getattr(importlib.import_module(module), name)
        for row in ranges.table_rows({prefix + key: rng for key, rng in table.items()}):
            assert row in text, f"docs/{doc} lacks the row {row!r} ({spec})"


def test_range_semantics():
    r = ranges.Range(0, 1, low_open=True)
    assert [r.ok(v) for v in (0, 1e-9, 1, 1.5, math.nan, math.inf, True, "0.5", None)] == [
        False, True, True, False, False, False, False, False, False]
    i = ranges.Range(1, 4, integer=True, none_ok=True)
    assert [i.ok(v) for v in (1, 4, 5, 2.0, None)] == [True, True, False, False, True]
    assert r.interval() == "(0, 1]" and i.interval() == "[1, 4] (integer)"
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="must be an integer >= 1 and <= 4, got 0"):
        ranges.flag_type(i)("0")
    assert ranges.flag_type(i)("3") == 3
