"""Notebook hygiene, their parameters against the study's plan, and notebooks run from their own folder.

The notebooks are the source (edited in JupyterLab, stored without outputs). The RQ and
alignment notebooks are executed by papermill in tests/test_study_e2e.py (the testbed-ci
study runs each of them on a minimal parameter set); here the analysis notebook regenerates
every figure from the stored fixture, and the alignment notebook runs from ``notebooks/``;
40_clipping_bias runs in tests/test_study_mechanism.py (a tiny mechanism-like study).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ast
import inspect
import shutil
from pathlib import Path

import pytest

from mirage import study

if TYPE_CHECKING:  # annotations only: the tests import it where they use it
    import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIXTURE = ROOT / "tests" / "fixtures" / "study"
# Statements and expressions that make a cell a program rather than calls into the library.
LOGIC = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.For, ast.AsyncFor, ast.While, ast.If,
         ast.IfExp, ast.With, ast.Try, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Global)
IMPORTABLE = ("mirage", "IPython.display")


def _read(path: Path) -> nbformat.NotebookNode:
    import nbformat

    return nbformat.read(path, as_version=4)


def _parameters_cell(nb) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))


def _declared(nb) -> set[str]:
    """The names the parameters cell assigns."""
    tree = ast.parse(_parameters_cell(nb).source)
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}


def test_the_study_notebooks_exist_and_nothing_generates_them():
    names = {p.name for p in NOTEBOOKS}
    assert {study.ALIGNMENT_NOTEBOOK, study.FIGURES_NOTEBOOK, *study.RQ_NOTEBOOKS.values()} <= names
    assert not (ROOT / "notebooks" / "build_notebooks.py").exists()  # the .ipynb files are the source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_with_one_parameters_cell(path):
    import nbformat

    nb = _read(path)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected exactly 1"
    assert tagged[0].cell_type == "code"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {i} has stored outputs (clear them before committing)"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count"
    # parameters come first among code cells, so papermill's injected values win
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is tagged[0]
    # every cell keeps an id of its own, so a diff of an edit shows that edit only
    ids = [c.get("id") for c in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: missing or repeated cell ids {ids}"
    assert path.read_text(encoding="utf-8").endswith("\n")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_only_call_the_library(path):
    """No functions, classes, loops or branches in a notebook: that logic belongs in lib/mirage (tested there)."""
    nb = _read(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        logic = [type(n).__name__ for n in ast.walk(tree) if isinstance(n, LOGIC)]
        assert not logic, f"{path.name}: cell {i} has {logic}; move it into the library and call it"
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert all(m in IMPORTABLE or m.startswith("mirage.") for m in modules), (
                    f"{path.name}: cell {i} imports {modules}; a notebook imports only {IMPORTABLE}")
        if "parameters" in cell.metadata.get("tags", []):  # only plain values: papermill replaces them
            for node in tree.body:
                assert isinstance(node, ast.Assign) and isinstance(node.value, (ast.Constant, ast.List, ast.Dict)), (
                    f"{path.name}: the parameters cell may only assign literal values")


FULL_PRESET = """backend: local
pairs: [[dial-90, toy-math], [dial-10, toy-logic]]
conditions: [random, one_shot]
regimes: {a: {}, b: {policy_loss: no_clip}}
eval: {greedy: true}
analysis: [90_figures.ipynb, {40_clipping_bias.ipynb: {bandit: {steps: 5}, bandit_variants: {clip: {}}}},
           {50_contamination.ipynb: {models: [dial-10-leaked, dial-10], task: toy-math+fresh, fractions: "0.5",
                                     limit: 2}}, 60_format_channel.ipynb,
           {70_alignment_axis.ipynb: {reference_study: "", contrasts: {}}}, {45_noise_axis.ipynb: {contrasts: {}}}]
"""


def test_each_notebook_declares_the_parameters_the_study_passes(tmp_path):
    """papermill injects the plan's parameters: a name the notebook does not declare would be silently unused.

    A preset using every key (pairs, regimes, greedy evaluation, analysis notebooks with their own
    parameters) passes each notebook exactly what it declares; an older preset passes the same minus
    the parameters of the keys it does not use (so its finished steps stay finished).
    """
    path = tmp_path / "full.yaml"
    path.write_text(FULL_PRESET)
    full = study.plan(study.load_preset(str(path)), tmp_path / "full")
    plain = study.plan(study.load_preset("testbed-ci"), tmp_path / "plain")
    seen = set()
    for steps, optional in ((full, {}), (plain, {"alignment": {"pairs"}, "cell": {"regime"}})):
        for step in (s for s in steps if s.kind in ("alignment", "cell", "analysis")):
            name = Path(step.argv[3]).name
            seen.add(name)
            assert _declared(_read(Path(step.argv[3]))) - set(step.params) == optional.get(step.kind, set()), name
            assert set(step.params) <= _declared(_read(Path(step.argv[3]))), name
    assert seen == {p.name for p in NOTEBOOKS}  # every notebook is some step's
    # and what an RQ notebook declares is exactly what cell.run takes
    takes = set(inspect.signature(study.cell.run).parameters) - {"progress"}
    for name in study.RQ_NOTEBOOKS.values():
        assert _declared(_read(ROOT / "notebooks" / name)) == takes, name


def test_analysis_notebook_regenerates_every_figure_from_stored_results(tmp_path):
    """90_figures on the stored fixture (a real tiny study): every figure, nothing trained or sampled."""
    import pandas as pd

    import papermill

    study_dir = tmp_path / "study"
    shutil.copytree(FIXTURE, study_dir, ignore=shutil.ignore_patterns("*.md"))
    figures = tmp_path / "figures"
    papermill.execute_notebook(str(ROOT / "notebooks" / "90_figures.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"study_dir": str(study_dir), "figures_dir": str(figures)},
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    names = {p.stem for p in figures.glob("*.png")}
    tasks = pd.read_parquet(FIXTURE / "dynamics.parquet")["task"].unique()
    # the fixture evaluated every checkpoint, so the pass@1-over-steps figure is drawn too
    expected = {"alignment", "passk_curves", "summary_gain_vs_alignment", "pass1_vs_step"} | {
        f"dynamics_{t}" for t in tasks}
    assert expected == names, f"missing figures: {expected - names}, unexpected: {names - expected}"
    for stem in names:
        assert (figures / f"{stem}.pdf").stat().st_size > 1000
        assert (figures / f"{stem}.png").stat().st_size > 5000
    # the study directory was only read
    assert sorted(p.relative_to(study_dir) for p in study_dir.rglob("*")) == sorted(
        p.relative_to(FIXTURE) for p in FIXTURE.rglob("*") if p.suffix != ".md")


def test_a_notebook_run_from_its_own_folder_writes_under_home(tmp_path, monkeypatch):
    """`jupyter lab` started in notebooks/: relative paths still resolve from $MIRAGE_HOME (else the checkout)."""
    import pandas as pd

    import papermill

    monkeypatch.setenv("MIRAGE_HOME", str(tmp_path / "home"))
    before = sorted(p.name for p in (ROOT / "notebooks").iterdir())
    papermill.execute_notebook(str(ROOT / "notebooks" / study.ALIGNMENT_NOTEBOOK), str(tmp_path / "out.ipynb"),
                               parameters={"models": ["dial-90"], "tasks": ["toy-math"],
                                           "eval": {"align_n": 2, "alignment_k": None, "temperature": 1.0,
                                                    "top_p": 1.0, "max_tokens": None, "seed": 0}},
                               kernel_name="python3", progress_bar=False, cwd=str(ROOT / "notebooks"))
    out = tmp_path / "home" / "runs" / "alignment"
    table = pd.read_parquet(out / "alignment.parquet")
    assert set(table["model"]) == {"dial-90"} and set(table["k"]) == {1, 2}
    assert (out / "figures" / "alignment.png").exists()
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir()) == before  # nothing written beside the notebooks
