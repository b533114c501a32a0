"""Notebook hygiene, and the analysis notebook regenerating every figure from the stored fixture.

The RQ and alignment notebooks are executed by papermill in tests/test_study_e2e.py
(the testbed-ci study runs each of them on a minimal parameter set).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIXTURE = ROOT / "tests" / "fixtures" / "study"


def test_the_study_notebooks_exist():
    from mirage import study

    names = {p.name for p in NOTEBOOKS}
    assert {study.ALIGNMENT_NOTEBOOK, study.FIGURES_NOTEBOOK, *study.RQ_NOTEBOOKS.values()} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_with_one_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected exactly 1"
    assert tagged[0].cell_type == "code"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {i} has stored outputs"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count"
    # parameters come first among code cells, so papermill's injected values win
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is tagged[0]


def test_notebooks_match_their_builder():
    r = subprocess.run([sys.executable, str(ROOT / "notebooks" / "build_notebooks.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_analysis_notebook_regenerates_every_figure_from_stored_results(tmp_path):
    """90_figures on the stored fixture (a real tiny study): every figure, nothing trained or sampled."""
    import papermill

    study_dir = tmp_path / "study"
    shutil.copytree(FIXTURE, study_dir, ignore=shutil.ignore_patterns("*.md"))
    figures = tmp_path / "figures"
    papermill.execute_notebook(str(ROOT / "notebooks" / "90_figures.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"study_dir": str(study_dir), "figures_dir": str(figures)},
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    names = {p.stem for p in figures.glob("*.png")}
    tasks = pd.read_parquet(FIXTURE / "dynamics.parquet")["task"].unique()
    expected = {"alignment", "passk_curves", "summary_gain_vs_alignment"} | {f"dynamics_{t}" for t in tasks}
    assert expected <= names, f"missing figures: {expected - names}"
    for stem in names:
        assert (figures / f"{stem}.pdf").stat().st_size > 1000
        assert (figures / f"{stem}.png").stat().st_size > 5000
    # the study directory was only read
    assert sorted(p.relative_to(study_dir) for p in study_dir.rglob("*")) == sorted(
        p.relative_to(FIXTURE) for p in FIXTURE.rglob("*") if p.suffix != ".md")
