"""The plan of a study: its cells and the steps that compute them, in launch order with their dependencies.

    alignment/<model>/<task>          base pass@k of one model on one task (the pairs run in parallel)
    alignment                         notebooks/00_alignment.ipynb: the alignment table and curves
    history/<model>/<task>            a ground-truth run over a small pool, several epochs: the
                                      per-example accuracy history one-shot selection ranks
                                      (testbed only, where the grid has a one-shot condition)
    runs/<model>/<task>/<cond>/[<regime>/]seedS
                                      notebooks/<RQ notebook>: train, evaluate, record
    analysis                          notebooks/90_figures.ipynb: every figure, from stored results
    analysis/<notebook stem>          each further notebook of the preset's ``analysis`` list

A step is a process (papermill and its kernel, or ``python -m mirage.study measure|history``)
given its parameters as JSON; it is finished when its record (``study_step.json``, the
``mirage.runs`` manifest schema) says so for these very parameters.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mirage.conditions import get_condition
from mirage.runs import Status, read_manifest, slug
from mirage.study.cell import checkout, pair_dir
from mirage.study.grid import RQ_NOTEBOOKS, Cell  # noqa: F401  (the plan's names)
from mirage.study.preset import Preset

ALIGNMENT_NOTEBOOK = "00_alignment.ipynb"
FIGURES_NOTEBOOK = "90_figures.ipynb"
STEP_RECORD = "study_step.json"  # a step's record; a cell's folder is its run folder, whose manifest.json is training's
STAGES = ("all", "alignment", "cells", "analysis")
NBEXEC = "mirage.study.nbexec"  # papermill's command line (python -m NBEXEC NOTEBOOK OUTPUT ...)
ONLY_KEYS = ("model", "task", "condition", "regime", "seed")


@dataclass
class Step:
    """One unit of work: run ``argv`` (a notebook through papermill, or a python module) in ``dir``."""

    id: str
    kind: str  # "measure" | "alignment" | "history" | "cell" | "analysis"
    dir: Path
    argv: list[str]
    params: dict[str, Any]
    deps: list[str] = field(default_factory=list)
    cell: Cell | None = None

    @property
    def record_path(self) -> Path:
        return self.dir / STEP_RECORD

    def record(self) -> dict:
        return read_manifest(self.dir, STEP_RECORD)

    @property
    def notebook(self) -> Path | None:
        return self.dir / "notebook.ipynb" if NBEXEC in self.argv else None

    @property
    def finished(self) -> bool:
        """Finished with these very parameters (the alignment step reruns, from its cache, on a wider grid)."""
        rec = self.record()
        return rec.get("status") == Status.FINISHED.value and _portable(rec.get("config")) == _portable(self.params)


def _portable(params: Any) -> Any:
    """Parameters with the study directory's own path factored out, so a study directory copied
    elsewhere (a cluster's results on a laptop) is still finished where it was finished."""
    params = json.loads(json.dumps(params))
    root = params.get("study_dir") if isinstance(params, dict) else None
    if not root:
        return params

    def strip(v: Any) -> Any:
        if isinstance(v, str) and (v == root or v.startswith(root + os.sep)):
            return "<study_dir>" + v[len(root):]
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return strip(params)


def notebooks_dir() -> Path:
    """The checkout's ``notebooks/`` folder ($MIRAGE_NOTEBOOKS; the notebooks are not in the installed package)."""
    d = Path(os.environ.get("MIRAGE_NOTEBOOKS") or (checkout() or Path.cwd()) / "notebooks")
    if not (d / ALIGNMENT_NOTEBOOK).exists():
        raise FileNotFoundError(f"notebooks not found in {d}: run from a mirage checkout or set MIRAGE_NOTEBOOKS")
    return d


def _papermill(notebook: Path, out_nb: Path, params_file: Path) -> list[str]:
    # -k python3: jupyter_client maps the "python3" kernel onto this very interpreter,
    # so the kernel sees the same environment (and mirage) as the runner. NBEXEC is papermill's
    # command line without an unused second of imports (mirage.study.nbexec).
    return [sys.executable, "-m", NBEXEC, str(notebook), str(out_nb), "-f", str(params_file),
            "-k", "python3", "--cwd", str(out_nb.parent), "--no-progress-bar", "--log-output"]


def _module(entry: str, params_file: Path) -> list[str]:
    return [sys.executable, "-m", "mirage.study", entry, str(params_file)]


def parse_only(spec: Sequence[str] | str | None) -> dict[str, set[str]]:
    """``model=a,task=b,condition=c|d,regime=u2,seed=0`` (repeatable) -> {key: allowed values}."""
    if not spec:
        return {}
    parts = [spec] if isinstance(spec, str) else list(spec)
    only: dict[str, set[str]] = {}
    for part in parts:
        for item in part.split(","):
            if not item.strip():
                continue
            if "=" not in item:
                raise ValueError(f"--only: expected KEY=VALUE, got {item!r}")
            key, value = (s.strip() for s in item.split("=", 1))
            if key not in ONLY_KEYS:
                raise ValueError(f"--only: unknown key {key!r} ({', '.join(ONLY_KEYS)})")
            only.setdefault(key, set()).update(v.strip() for v in value.split("|"))
    return only


def only_arg(cell: Cell) -> str:
    """The ``--only`` value that selects exactly this cell."""
    regime = f",regime={cell.regime}" if cell.regime else ""
    return f"model={cell.model},task={cell.task},condition={cell.condition}{regime},seed={cell.seed}"


def _selected(cell: Cell, only: Mapping[str, set[str]]) -> bool:
    return all(str(getattr(cell, key)) in values for key, values in only.items())


def eval_params(preset: Preset) -> tuple[dict, dict]:
    """(alignment, cell) evaluation settings; each holds only what its steps use, so changing
    e.g. align_n reruns no training cell. max_tokens defaults to what training sampled.
    ``greedy`` is there only when on, so the steps of a study made before it existed stay finished."""
    ev = dataclasses.asdict(preset.eval)
    ev["max_tokens"] = ev["max_tokens"] or preset.recipe_dict()["max_response_length"]
    sampling = {k: ev[k] for k in ("temperature", "top_p", "max_tokens", "seed")}
    greedy = {"greedy": True} if ev["greedy"] else {}
    return ({**sampling, "align_n": ev["align_n"], "alignment_k": ev["alignment_k"], **greedy},
            {**sampling, "n": ev["n"], "checkpoints": ev["checkpoints"], **greedy})


def plan(preset: Preset, out: str | os.PathLike, only: Mapping[str, set[str]] | None = None,
         figures_dir: str | os.PathLike | None = None) -> list[Step]:
    """The steps of a study, in launch order, with their dependencies."""
    out = Path(out).resolve()
    nb = notebooks_dir()
    only = only or {}
    cells = [c for c in preset.cells() if _selected(c, only)]
    if not cells:
        raise ValueError(f"--only {dict(only)} selects no cell of {preset.where}")
    models = list(dict.fromkeys(c.model for c in cells))
    tasks = list(dict.fromkeys(c.task for c in cells))
    ev_align, ev_cell = eval_params(preset)
    common = {"backend": preset.backend, "preset": preset.name, "study_dir": str(out)}
    steps: list[Step] = []

    # alignment: one measurement step per model x task pair of the cells (they run in parallel), then
    # the notebook that assembles the table from their caches and draws it; a grid of pairs measures
    # only its pairs (the notebook is then given them, a full product only its models and tasks)
    align_dir = out / "alignment"
    product = [(m, t) for m in models for t in tasks]
    used = list(dict.fromkeys((c.model, c.task) for c in cells))
    pairs = product if set(used) == set(product) else used
    measure_ids: dict[tuple[str, str], str] = {}  # (model, task) -> its measure step
    for model, task in pairs:
        mdir = pair_dir(align_dir, model, task)
        mid = f"alignment/{model}/{task}"
        params = {**common, "model": model, "task": task, "out_dir": str(align_dir), "eval": ev_align}
        steps.append(Step(mid, "measure", mdir, _module("measure", mdir / "params.json"), params))
        measure_ids[model, task] = mid
    params = {**common, "models": models, "tasks": tasks, "out_dir": str(align_dir), "eval": ev_align,
              **({"pairs": [list(p) for p in pairs]} if pairs != product else {})}
    steps.append(Step("alignment", "alignment", align_dir,
                      _papermill(nb / ALIGNMENT_NOTEBOOK, align_dir / "notebook.ipynb", align_dir / "params.json"),
                      params, deps=list(measure_ids.values())))

    # the testbed ranks its own history run; verl's one-shot sets are made by `mirage data one-shot`
    # from a published history (docs/cluster.md), so a verl preset has no history step
    history: dict[tuple[str, str], Step] = {}
    for cell in cells:
        selected = get_condition(cell.condition).data == "one_shot_selected"
        if preset.backend == "local" and selected and (cell.model, cell.task) not in history:
            hdir = out / "history" / slug(cell.model) / slug(cell.task)
            params = {**common, "model": cell.model, "task": cell.task, "run_dir": str(hdir),
                      "recipe": preset.recipe, "recipe_overrides": dict(preset.overrides),
                      "pool": preset.one_shot.pool, "epochs": preset.one_shot.epochs, "seed": 0}
            history[cell.model, cell.task] = Step(f"history/{cell.model}/{cell.task}", "history", hdir,
                                                  _module("history", hdir / "params.json"), params)
    steps += history.values()

    for cell in cells:
        rdir = cell.run_dir(out)
        hist = history.get((cell.model, cell.task)) if get_condition(cell.condition).data == "one_shot_selected" else None
        # a regime is a parameter only where there is one, so a study made before regimes existed stays finished
        regime = {"regime": cell.regime} if cell.regime else {}
        # the base model's curve comes from its own pair's measurement, so a cell waits for that pair only
        params = {**common, "model": cell.model, "task": cell.task, "condition": cell.condition, "seed": cell.seed,
                  **regime, "run_dir": str(rdir), "recipe": preset.recipe,
                  "recipe_overrides": preset.cell_overrides(cell.regime), "eval": ev_cell,
                  "alignment_table": str(pair_dir(align_dir, cell.model, cell.task) / "alignment.parquet"),
                  "history_run": str(hist.dir) if hist else "", "figures_dir": str(rdir / "figures")}
        deps = [measure_ids[cell.model, cell.task]] + ([hist.id] if hist else [])
        steps.append(Step(cell.id, "cell", rdir, _papermill(nb / cell.notebook, rdir / "notebook.ipynb",
                                                            rdir / "params.json"), params, deps=deps, cell=cell))

    fdir = Path(figures_dir).resolve() if figures_dir else out / "figures"  # run_study passes its default
    for name, own in preset.analysis_notebooks():
        if not (nb / name).exists():
            raise FileNotFoundError(f"{preset.where}: analysis: notebook {name!r} is not in {nb}")
        unknown = sorted(set(own) - declared_parameters(nb / name))
        if unknown:
            raise KeyError(f"{preset.where}: analysis: {name} declares no parameter(s) {unknown}; it declares "
                           f"{sorted(declared_parameters(nb / name))}")
        sid, adir = analysis_step_id(name), out / analysis_step_id(name)
        steps.append(Step(sid, "analysis", adir, _papermill(nb / name, adir / "notebook.ipynb", adir / "params.json"),
                          {"study_dir": str(out), "figures_dir": str(fdir), "results_digest": "", **own}))
    return steps


def declared_parameters(notebook: Path) -> set[str]:
    """The names a notebook's ``parameters`` cell assigns (what papermill can set)."""
    import ast

    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return set()
    tree = ast.parse("".join(cell["source"]))
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def analysis_step_id(notebook: str) -> str:
    """``analysis`` for the figures notebook (where it always was), ``analysis/<stem>`` for any other."""
    return "analysis" if notebook == FIGURES_NOTEBOOK else f"analysis/{Path(notebook).stem}"


def stage_steps(steps: list[Step], stage: str) -> list[Step]:
    """The steps a ``--stage`` runs (the analysis is run separately, after the results are collected)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    kinds = {"all": ("measure", "alignment", "history", "cell"), "alignment": ("measure", "alignment"),
             "cells": ("history", "cell"), "analysis": ()}[stage]
    return [s for s in steps if s.kind in kinds]
