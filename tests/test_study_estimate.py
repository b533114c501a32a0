"""Issue 21 item 1: the paper preset's dry-run prints each cell's GPUs, attention, rollout TP and estimated hours
against the cell's time limit, and refuses a cell whose estimate exceeds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirage import study
from mirage.recipes import PAPER_RECIPE
from mirage.study import estimate
from mirage.study.runner import dry_run

PAPER = (Path(study.__file__).parent / "presets" / "paper.yaml").read_text()


def test_the_estimate_is_the_documented_formula():
    # 256 samples x 570 problems x (256 + 8192 / 2) tokens x 6 checkpoints on 8 TP-1 engines
    expected = 256 * 570 * (estimate.PROMPT_TOKENS + 4096) * 6 / (8 * estimate.TOKENS_PER_S[1]) / 3600
    assert estimate.eval_hours(256, 570, 8192, 6, engines=8) == pytest.approx(expected)
    assert estimate.eval_hours(256, 570, 8192, 6, engines=4) == pytest.approx(2 * expected)
    assert estimate.n_checkpoints(PAPER_RECIPE, "all") == 6 and estimate.n_checkpoints(PAPER_RECIPE, "last") == 1
    assert estimate.train_hours(PAPER_RECIPE) == pytest.approx(300 * estimate.SECONDS_PER_STEP / 3600)  # 30 h
    half = PAPER_RECIPE.replace(n_gpus_per_node=4)
    assert estimate.train_hours(half) == pytest.approx(2 * estimate.train_hours(PAPER_RECIPE))


def test_paper_dry_run_prints_layout_and_estimate_per_cell(tmp_path):
    lines: list[str] = []
    steps = dry_run(study.load_preset("paper"), tmp_path / "s", log=lines.append)
    layout = [x for x in lines if x.startswith("#   layout:")]
    assert len(layout) == sum(s.kind == "cell" for s in steps) == 40
    for x in layout:
        assert "8 GPU(s)" in x and "rollout TP 4" in x and "attention " in x and "node decides again" in x
        assert "h training" in x and "h evaluation" in x and "resources.cell.timeout_min = 144 h" in x
    # logic has ~2.7x the evaluation problems of math: a longer sweep
    math_h = next(x for x, s in zip(layout, [s for s in steps if s.kind == "cell"]) if s.cell.task == "math")
    logic_h = next(x for x, s in zip(layout, [s for s in steps if s.kind == "cell"]) if s.cell.task == "logic")
    assert "+ 33 h evaluation" in math_h and "+ 88 h evaluation" in logic_h
    assert not (tmp_path / "s").exists()


def test_dry_run_refuses_a_cell_whose_estimate_exceeds_its_time_limit(tmp_path):
    path = tmp_path / "short.yaml"
    path.write_text(PAPER.replace("timeout_min: 8640", "timeout_min: 600"))
    lines: list[str] = []
    with pytest.raises(ValueError, match=r"cell .*: resources.cell.timeout_min \(600\) is below this cell's "
                                         r"estimated \d+ h: raise it to \d+ in the preset's resources"):
        dry_run(study.load_preset(str(path)), tmp_path / "s", log=lines.append)
    assert not (tmp_path / "s").exists()


def test_fewer_gpus_lengthen_the_estimate_and_the_layout_is_printed(tmp_path):
    path = tmp_path / "four.yaml"
    path.write_text(PAPER + "overrides: {n_gpus_per_node: 4}\n")
    lines: list[str] = []
    with pytest.raises(ValueError, match="timeout_min"):  # 60 h training + 66 h math sweep > 144 h for logic
        dry_run(study.load_preset(str(path)), tmp_path / "s", log=lines.append)
    first = next(x for x in lines if x.startswith("#   layout:"))
    assert "4 GPU(s)" in first and "60 h training + 66 h evaluation" in first
