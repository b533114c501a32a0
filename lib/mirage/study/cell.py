"""What the notebooks call: train, evaluate, measure alignment, rank the one-shot history.

Each RQ notebook makes ONE call, ``cell.run(**its parameters)``: it trains the run (or finds it
finished; an interrupted run resumes), evaluates its checkpoints (finished evaluations are read
back), and returns a ``CellResult`` with the training dynamics, the pass@k curves (the base
model's from the study's alignment table, or measured here) and the table of both. The
alignment notebook calls ``measure_alignment``; the study's own steps ``measure_pair`` and
``ensure_history`` (``python -m mirage.study measure|history``).

Relative paths are resolved against ``home()`` ($MIRAGE_HOME, else the mirage checkout), not the
kernel's working directory, so a notebook opened from ``notebooks/`` writes where one run from
the checkout does: ``runs/notebooks/<model>/<task>/<condition>/seed<S>`` (``mirage.runs.run_dir``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mirage.conditions import get_condition, history_condition
from mirage.data.rows import load_rows
from mirage.ranges import check_parameters
from mirage.recipes import RECIPES
from mirage.runs import (RunConfig, atomic_path, is_finished, list_checkpoints, load_metrics, read_manifest,
                         run_dir as run_folder, slug, write_parquet_atomic)
from mirage.study.preset import StudyEval
from mirage.tasks import dataset_file, dataset_path, get_task
from mirage.train.dispatch import run as train_run

NOTEBOOK_RUNS = Path("runs") / "notebooks"
# the types the notebooks' parameter cells promise (a papermill -p value arrives as text: refused, showing -y)
NOTEBOOK_PARAMETERS = {"models": list, "tasks": list, "pairs": list, "eval": dict, "recipe_overrides": dict,
                       "model": str, "task": str, "condition": str, "regime": str, "backend": str, "recipe": str,
                       "seed": int}


# --- where things go ------------------------------------------------------------------------
def checkout() -> Path | None:
    """The mirage checkout this package runs from (None when installed elsewhere)."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").exists() and (root / "notebooks").is_dir() else None


def home() -> Path:
    """Where notebooks' relative paths point: $MIRAGE_HOME, else the checkout, else the working directory."""
    env = os.environ.get("MIRAGE_HOME")
    return Path(env).expanduser().resolve() if env else (checkout() or Path.cwd()).resolve()


def resolve(path: str | os.PathLike | None, default: str | os.PathLike = "") -> Path:
    """A path parameter: empty -> ``default``; relative -> under ``home()``."""
    p = Path(path or default).expanduser()
    return p if p.is_absolute() else home() / p


def sampler_backend(backend: str) -> str:
    """The evaluation sampler of a training backend: the testbed samples with HF, verl runs with vLLM."""
    if backend not in ("local", "verl"):
        raise ValueError(f"backend must be 'local' or 'verl', got {backend!r}")
    return {"local": "hf", "verl": "vllm"}[backend]


def pair_dir(out_dir: str | os.PathLike, model: str, task: str) -> Path:
    """Where one model x task alignment measurement lives (its own alignment.parquet and cache)."""
    return Path(out_dir) / "pairs" / slug(model) / slug(task)


# --- alignment ------------------------------------------------------------------------------
GREEDY = "greedy"  # the tag of the greedy evaluations (T = 0, n = 1): <run>/eval/greedy, <pair>/greedy


def greedy_pair_dir(out_dir: str | os.PathLike, model: str, task: str) -> Path:
    """Where one base model's greedy accuracy on one task lives (measured once per pair, like its pass@k)."""
    return pair_dir(out_dir, model, task) / GREEDY


def measure_pair(model: str, task: str, out_dir: str | os.PathLike, eval: Mapping[str, Any], backend: str = "local"):
    """Base pass@k of one model on one task (``mirage.evaluate.align``, cached in ``pair_dir``); with
    ``eval["greedy"]`` also its greedy accuracy (T = 0, n = 1) in ``greedy_pair_dir``."""
    from mirage.evaluate import align  # why: pandas, which importing mirage.study.cell does not need

    kw = {"backend": sampler_backend(backend), "top_p": eval["top_p"], "max_tokens": eval["max_tokens"],
          "seed": eval["seed"]}
    if eval.get("greedy"):
        align([model], [task], n=1, out=greedy_pair_dir(out_dir, model, task), temperature=0.0, **kw)
    return align([model], [task], n=eval["align_n"], out=pair_dir(out_dir, model, task),
                 temperature=eval["temperature"], **kw)


def measure_alignment(models: Sequence[str], tasks: Sequence[str], out_dir: str | os.PathLike,
                      eval: Mapping[str, Any], backend: str = "local", pairs: Sequence[Sequence[str]] = ()):
    """The alignment table of every model x task (or of ``pairs``) -> ``<out_dir>/alignment.parquet`` (+ .csv),
    and their alignment predictors (``mirage.evaluate.predictors``) -> ``<out_dir>/predictors.parquet`` (+ .csv).

    Each pair is measured (or read back from its cache) by ``measure_pair``; the study
    runs the pairs as parallel steps first, so here they are only read.
    """
    import pandas as pd

    from mirage.evaluate.alignment import write_predictors  # why: pandas, which importing mirage.study.cell does not need

    check_parameters(dict(models=models, tasks=tasks, eval=eval, backend=backend, pairs=pairs), NOTEBOOK_PARAMETERS)
    eval = {**ALIGNMENT_EVAL, **dict(eval)}  # a key left out: the notebook's default
    out_dir = resolve(out_dir)
    pairs = [tuple(p) for p in pairs] or [(m, t) for m in models for t in tasks]
    table = pd.concat([measure_pair(m, t, out_dir, eval, backend) for m, t in pairs], ignore_index=True)
    write_predictors(out_dir, pd.concat([pd.read_parquet(pair_dir(out_dir, m, t) / "predictors.parquet")
                                         for m, t in pairs], ignore_index=True))
    write_parquet_atomic(out_dir / "alignment.parquet", table)
    with atomic_path(out_dir / "alignment.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table


def base_curves(alignment_table: str | os.PathLike, model: str, task: str):
    """The base model's pass@k rows (condition 'base', step 0) from a stored alignment table."""
    import pandas as pd

    table = pd.read_parquet(alignment_table)
    rows = table[(table["model"] == model) & (table["task"] == task)]
    if rows.empty:
        raise KeyError(f"{alignment_table}: no alignment rows for model {model!r} x task {task!r}")
    return rows.assign(condition="base", seed=None, step=0)


# --- training -------------------------------------------------------------------------------
def train(model: str, task: str, condition: str, seed: int, run_dir: str | os.PathLike, *, backend: str = "local",
          recipe: str = "testbed", recipe_overrides: Mapping[str, Any] | None = None,
          history_run: str | os.PathLike = "", progress: bool = True) -> Path:
    """Train one cell through ``mirage.train.dispatch.run``, or return its finished run (an interrupted one resumes).

    A testbed ``one_shot`` run needs a history run: without ``history_run`` one is trained
    next to the run (``<run_dir>/../../one_shot_history``) with the default pool.
    """
    run_dir = Path(run_dir)
    if backend == "verl" and is_finished(read_manifest(run_dir)):
        return run_dir  # launching verl only to find the last checkpoint costs a Ray start-up
    if backend == "local" and get_condition(condition).data == "one_shot_selected" and not history_run:
        history_run = ensure_history(model, task, run_dir.parent.parent / "one_shot_history", recipe=recipe,
                                     recipe_overrides=recipe_overrides, progress=progress)
    cfg = RunConfig(model=model, task=task, condition=condition, seed=int(seed), backend=backend,
                    recipe=RECIPES[recipe], overrides=dict(recipe_overrides or {}), run_dir=str(run_dir),
                    history_run=str(history_run) if history_run else None, progress=progress)
    return train_run(cfg)


def ensure_history(model: str, task: str, run_dir: str | os.PathLike, *, recipe: str = "testbed",
                   recipe_overrides: Mapping[str, Any] | None = None, pool: int = 64, epochs: int = 6,
                   seed: int = 0, progress: bool = True) -> Path:
    """The run one-shot selection ranks: ``history_condition()`` (ground truth) on the first ``pool`` training
    examples, ``epochs`` passes.

    Dynamic sampling is off here so every example is visited exactly once per epoch;
    the trainer logs each visit's accuracy (``logs/example_acc.jsonl``). The pool is
    written as the run's own data root, so the trainer reads it like any dataset.
    """
    import pyarrow.parquet as pq

    run_dir = Path(run_dir)
    task_obj = get_task(task)
    r = RECIPES[recipe].with_overrides(recipe_overrides)
    if pool < r.train_batch_size or pool % r.train_batch_size:
        raise ValueError(f"one-shot pool ({pool}) must be a multiple of train_batch_size ({r.train_batch_size}): "
                         "the loader drops incomplete batches")
    root = run_dir / "pool"
    for name in task_obj.datasets:
        path = dataset_path(name, root)
        if not path.exists():
            load_rows(name)  # generates it if the task does, and checks every row
            table = pq.read_table(dataset_file(name))  # copied as stored: the same rows, types and order
            if name == task_obj.train:
                if table.num_rows < pool:
                    raise ValueError(f"{name}: {table.num_rows} rows, fewer than the one-shot pool of {pool}")
                table = table.slice(0, pool)
            with atomic_path(path) as tmp:
                pq.write_table(table, tmp)
    steps = epochs * pool // r.train_batch_size
    overrides = {**dict(recipe_overrides or {}), "total_steps": steps, "save_freq": steps, "val_freq": 0,
                 "dynamic_sampling": False}
    return train_run(RunConfig(model=model, task=task, condition=history_condition().name, seed=seed,
                               recipe=RECIPES[recipe],
                               overrides=overrides, run_dir=str(run_dir), data_root=str(root), progress=progress,
                               validate_before=False))


def accuracy_history(run_dir: str | os.PathLike) -> dict[str, list[float]]:
    """{example index: [training accuracy per epoch]} of a history run."""
    from mirage.train.loop import accuracy_history as history  # why: torch, which importing mirage.study.cell does not need

    return history(run_dir)


def one_shot_choice(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Which example a one-shot run trained on (as the trainer recorded it), with its dataset row."""
    manifest = read_manifest(run_dir)
    if manifest.get("backend") == "verl":  # trained on a prepared one-shot parquet: its rows are the example
        train_file = manifest["data"]["train"]
        row = load_rows(train_file)[0]
        return {"index": row["problem_id"], "criterion": f"the one-shot set {train_file}", "history_run": "",
                "row": row}
    choice = manifest.get("one_shot")
    if not choice:
        raise KeyError(f"{run_dir}/manifest.json: no 'one_shot' record (not a one-shot run?)")
    row = next((r for r in load_rows(get_task(manifest["task"]).train) if r["problem_id"] == choice["index"]), None)
    if row is None:
        raise KeyError(f"{run_dir}: one-shot example {choice['index']!r} not in the training set")
    return {**choice, "row": row}


def run_dynamics(run_dir: str | os.PathLike, **identity: Any):
    """A run's training metrics (``mirage.runs.load_metrics``), identity columns set from the caller."""
    dyn = load_metrics(run_dir)
    if dyn.empty:
        raise ValueError(f"{run_dir}: no training metrics under logs/metrics-*.jsonl")
    return dyn.assign(**identity)


# --- evaluation -----------------------------------------------------------------------------
def evaluate(run_dir: str | os.PathLike, eval: Mapping[str, Any], backend: str = "local", include_base: bool = False,
             greedy: bool = False, gpus: int = 0):
    """pass@k of a run's checkpoints (the last or all, per ``eval['checkpoints']``); step 0 = base if asked.

    ``greedy``: the same checkpoints evaluated greedily instead (T = 0, n = 1, ``<run>/eval/greedy``).
    ``gpus``: the GPUs the cell holds (verl cells: the recipe's n_gpus_per_node), one vLLM engine on each
    (tensor parallel 1: a 7-8 B model fits one GPU), taken within CUDA_VISIBLE_DEVICES; 0: one engine.
    """
    from mirage.evaluate import evaluate_run  # why: pandas, which importing mirage.study.cell does not need

    ckpts = [s for s, _ in list_checkpoints(run_dir)]
    if not ckpts:
        raise FileNotFoundError(f"{run_dir}: no checkpoint to evaluate (did training finish?)")
    steps = ckpts if eval["checkpoints"] == "all" else ckpts[-1:]
    n, temperature, tag = (1, 0.0, GREEDY) if greedy else (eval["n"], eval["temperature"], None)
    sampler_kwargs = {"gpus": int(gpus)} if gpus and sampler_backend(backend) == "vllm" else {}
    return evaluate_run(run_dir, n, backend=sampler_backend(backend), include_base=include_base,
                        steps=([0] if include_base else []) + steps, temperature=temperature,
                        top_p=eval["top_p"], max_tokens=eval["max_tokens"], seed=eval["seed"], tag=tag,
                        sampler_kwargs=sampler_kwargs)


def cell_gpus(backend: str, recipe: str, recipe_overrides: Mapping[str, Any] | None) -> int:
    """The GPUs a cell holds on its first node: the recipe's n_gpus_per_node for verl cells, none for the testbed."""
    if backend != "verl":
        return 0

    return RECIPES[recipe].with_overrides(recipe_overrides).n_gpus_per_node


# --- one call per RQ notebook ------------------------------------------------------------------
# An RQ notebook's evaluation: the study's (StudyEval), except that an interactive cell evaluates every saved
# checkpoint (a study: the last, unless its preset says "all"). The notebooks' parameter cells state these
# values (tests/test_settings.py holds them equal).
DEFAULT_EVAL = {"n": StudyEval.n, "temperature": StudyEval.temperature, "top_p": StudyEval.top_p,
                "max_tokens": StudyEval.max_tokens, "seed": StudyEval.seed, "checkpoints": "all", "greedy": StudyEval.greedy}
# The alignment notebook's: the study's, with fewer samples and an explicit k for a quick interactive table.
ALIGNMENT_EVAL = {"align_n": 32, "alignment_k": 16, "temperature": StudyEval.temperature, "top_p": StudyEval.top_p,
                  "max_tokens": StudyEval.max_tokens, "seed": StudyEval.seed}


@dataclass
class CellResult:
    """One trained and evaluated cell, as its notebook shows it."""

    run_dir: Path
    figures_dir: Path
    condition: Any  # the mirage.conditions.Condition
    dynamics: Any  # training metrics, tidy (step, metric, value, + identity)
    curves: Any  # pass@k rows of the base model (step 0) and of each evaluated checkpoint
    table: Any  # pass@k per dataset x k: base and each checkpoint side by side
    one_shot: dict[str, Any] | None = None  # one-shot conditions: the example trained on, and why
    history: dict[str, list[float]] = field(default_factory=dict)  # and the accuracy history it was ranked by
    greedy: Any = None  # eval greedy: accuracy at T = 0 of the same checkpoints (step 0 = base when measured here)

    def describe(self) -> str:
        c = self.condition
        return (f"condition {c.name!r} ({c.rq}): {c.summary}\nreward {c.reward!r}, advantage estimator "
                f"{c.estimator!r}, data {c.data!r}; run dir {self.run_dir}")


def run(model: str, task: str, condition: str, seed: int = 0, *, regime: str = "", backend: str = "local",
        recipe: str = "testbed", recipe_overrides: Mapping[str, Any] | None = None, run_dir: str | os.PathLike = "",
        eval: Mapping[str, Any] | None = None, alignment_table: str | os.PathLike = "",
        history_run: str | os.PathLike = "", figures_dir: str | os.PathLike = "", preset: str = "interactive",
        study_dir: str | os.PathLike = "", progress: bool = True) -> CellResult:
    """Train, evaluate and tabulate one cell (model x task x condition x regime x seed); what an RQ notebook runs.

    ``run_dir`` empty: ``runs/notebooks/<model>/<task>/<condition>/[<regime>/]seed<S>`` under ``home()``.
    ``regime`` names the recipe variant (its overrides are in ``recipe_overrides``: the study
    merges them); it places and labels the run. ``eval["greedy"]``: also evaluate the same
    checkpoints greedily (``CellResult.greedy``).
    ``alignment_table`` (the study's base-model table) gives the base curve; empty: the base
    model is evaluated here as step 0. ``preset`` and ``study_dir`` are recorded by the
    notebook only (they say which study ran it).
    """
    import pandas as pd

    check_parameters(dict(model=model, task=task, condition=condition, seed=seed, regime=regime, backend=backend,
                          recipe=recipe, recipe_overrides=recipe_overrides or {}, eval=eval or {}), NOTEBOOK_PARAMETERS)
    unknown = set(eval or {}) - set(DEFAULT_EVAL)
    if unknown:
        raise KeyError(f"eval: unknown key(s) {sorted(unknown)}; known: {sorted(DEFAULT_EVAL)}")
    ev = {**DEFAULT_EVAL, **dict(eval or {})}
    run_dir = resolve(run_dir, NOTEBOOK_RUNS / run_folder(model, task, condition, seed, ".", regime=regime or None))
    figures_dir = resolve(figures_dir, run_dir / "figures")
    cond = get_condition(condition)
    identity = {"model": model, "task": task, "condition": condition, "regime": regime, "seed": seed}

    run_dir = train(model, task, condition, seed, run_dir, backend=backend, recipe=recipe,
                    recipe_overrides=recipe_overrides, history_run=resolve(history_run) if history_run else "",
                    progress=progress)
    dynamics = run_dynamics(run_dir, **identity)
    gpus = cell_gpus(backend, recipe, recipe_overrides)
    curves = evaluate(run_dir, ev, backend, include_base=not alignment_table, gpus=gpus).assign(**identity)
    if alignment_table:
        curves = pd.concat([base_curves(resolve(alignment_table), model, task), curves], ignore_index=True)
    result = CellResult(run_dir, figures_dir, cond, dynamics, curves, cell_table(curves))
    if ev["greedy"]:
        result.greedy = evaluate(run_dir, ev, backend, include_base=not alignment_table, greedy=True,
                                 gpus=gpus).assign(**identity)
    if cond.data != "full":
        result.one_shot = one_shot_choice(run_dir)
        if result.one_shot.get("history_run"):
            result.history = accuracy_history(result.one_shot["history_run"])
    return result


def cell_table(curves):
    """pass@k per dataset x k: the base model (step 0) and each evaluated checkpoint side by side."""
    t = curves.assign(column=["base" if s == 0 else f"step {int(s)}" for s in curves["step"]])
    t = t.pivot_table(index=["dataset", "k"], columns="column", values="pass_at_k", aggfunc="mean")
    steps = sorted((c for c in t.columns if c != "base"), key=lambda c: int(c.split()[1]))
    return t[(["base"] if "base" in t.columns else []) + steps]


def one_shot_table(result: CellResult):
    """The example a one-shot run trained on: its index, why it was chosen, its prompt and answer."""
    import pandas as pd

    choice = dict(result.one_shot or {})
    row = choice.pop("row", None) or {}
    if row:
        choice["prompt"] = row["prompt"][-1]["content"]
        choice["ground_truth"] = row["reward_model"]["ground_truth"]
    return pd.Series(choice, name="one-shot example", dtype=object).to_frame()
