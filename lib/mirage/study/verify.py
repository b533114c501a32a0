"""What each finished step of a study must have left on disk, read back before its record is trusted.

A step's record (``study_step.json``) says "finished"; the files it wrote may since have been
deleted or damaged (a disk error, a clean-up that went too far, a copy that stopped half-way).
``check_step`` reads a finished step's outputs back against the step's own parameters and
returns every ``Damage`` it finds:

    measure     the pair's alignment.parquet and predictors.parquet, and each evaluation folder
                they were made from (and the greedy one, with eval greedy)
    alignment   alignment.parquet (a row set for every model x task of the step), predictors.parquet
    history     the training run finished, its per-example accuracy log: pool examples x epochs
    cell        the training run finished (every step's metrics on the local engine) and, for each
                checkpoint the study evaluates (the last, or every saved one: save_freq and the
                final step of the recipe), its evaluation folder (and the greedy one)
    analysis    results / problems / dynamics tables readable and consistent with each other
                (``check_tables``: a study-level check, it reads every cell's rows)

An evaluation folder is sound when its manifest is finished and names its datasets, every
dataset's part files are readable and hold exactly n samples for every one of its problems
(``mirage.runs.check_parts``), and passk.parquet is readable with k = 1, 2, 4, ..., n and that
many problems per dataset.

A damage a rerun of its step repairs (the evaluator resumes the missing problems, checkpoints
and tables; a damaged file is moved aside first so it is not read) has no ``fix``; one it cannot
(a training run or a checkpoint gone) carries the one line the user must act on.
``mirage study --verify`` prints them all and changes nothing; the runner repairs what it can
before any work and refuses the rest (``mirage.study.runner``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mirage.conditions import history_condition
from mirage.recipes import RECIPES
from mirage.runs import (Status, check_parts, checkpoint_eval_dir, list_checkpoints, load_metrics, read_jsonl,
                         read_manifest)
from mirage.study.cell import GREEDY
from mirage.study.results import RUN_KEYS, local_dir, with_defaults

EVAL_MANIFEST = "eval_manifest.json"  # mirage.evaluate.core.MANIFEST (not imported: that pulls in torch)
DAMAGED = ".damaged"  # <study>/.damaged/<time>/<path in the study>: what a repair moved aside


class StudyDamaged(ValueError):
    """A finished step's outputs are damaged in a way a rerun cannot repair; the message says what to do."""


@dataclass(frozen=True)
class Damage:
    step: str  # the step id
    path: Path  # the file or folder at fault
    what: str  # what is wrong with it
    aside: tuple[Path, ...] = ()  # damaged files a repair moves aside before the step reruns
    fix: str = ""  # "": a rerun of the step redoes it; else what the user must do

    @property
    def redo(self) -> bool:
        return not self.fix

    def line(self) -> str:
        then = f"fix: {self.fix}" if self.fix else "a rerun of mirage study redoes it"
        return f"{self.step}: {self.path}: {self.what}; {then}"


def _read_parquet(path: Path, sid: str, columns: Sequence[str] | None = None) -> tuple[Any, list[Damage]]:
    """(the table or None, damage): missing, unreadable or lacking ``columns`` is damage."""
    import pandas as pd

    if not path.is_file():
        return None, [Damage(sid, path, "missing")]
    try:
        return pd.read_parquet(path, columns=list(columns) if columns else None), []
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        first = (str(e).splitlines() or [""])[0].replace(f"'{path}'", "it").split(". ")[0][:160]
        return None, [Damage(sid, path, f"unreadable ({type(e).__name__}: {first})", aside=(path,))]


def _present(path: Path, sid: str) -> list[Damage]:
    return [] if path.is_file() else [Damage(sid, path, "missing")]


# --- one evaluation folder -------------------------------------------------------------------------
def check_eval_folder(folder: str | os.PathLike, sid: str) -> list[Damage]:
    """Every damage of one evaluation folder (``mirage.evaluate``'s layout), none when it is sound."""
    from mirage.passk import default_ks  # why: pandas, which importing mirage.study.verify does not need

    folder = Path(folder)
    if not folder.is_dir():
        return [Damage(sid, folder, "missing (the evaluation of this checkpoint)")]
    try:
        manifest = read_manifest(folder, EVAL_MANIFEST)
    except ValueError:
        return [Damage(sid, folder / EVAL_MANIFEST, "unreadable: the settings of its samples are unknown",
                       aside=(folder,))]
    config = manifest.get("config") or manifest.get("settings") or {}
    datasets, n = manifest.get("datasets"), config.get("n")
    if not manifest or not datasets or not isinstance(n, int) or n < 1:
        return [Damage(sid, folder / EVAL_MANIFEST, "missing or without its settings and datasets: its samples "
                       "cannot be trusted", aside=(folder,))]
    damage = []
    if manifest.get("status") != Status.FINISHED.value:
        damage.append(Damage(sid, folder / EVAL_MANIFEST, f"the evaluation did not finish (status "
                             f"{manifest.get('status')!r})"))
    expected = {d["name"]: int(d["n_problems"]) for d in datasets}
    for name, n_problems in expected.items():
        samples = folder / "samples" / name
        done, bad = check_parts(sorted(samples.glob("part-*.parquet")), n, unit="samples (n)")
        damage += [Damage(sid, part, what, aside=(part,)) for part, what in bad]
        if len(done) != n_problems:
            damage.append(Damage(sid, samples, f"sound samples for {len(done)} of {n_problems} problems"))
    passk, bad = _read_parquet(folder / "passk.parquet", sid)
    damage += bad
    if passk is not None:
        for name, n_problems in expected.items():
            rows = passk[passk["dataset"] == name] if "dataset" in passk.columns else passk.iloc[:0]
            ks = sorted(int(k) for k in rows["k"]) if "k" in rows.columns else []
            counts = set(rows["n_problems"]) if "n_problems" in rows.columns else set()
            if ks != default_ks(n) or counts != {n_problems}:
                damage.append(Damage(sid, folder / "passk.parquet", f"{name}: k {ks} over {sorted(counts)} problems, "
                                     f"expected k {default_ks(n)} over {n_problems}"))
    damage += _present(folder / "passk.csv", sid)
    return damage


# --- the steps ---------------------------------------------------------------------------------------
def check_step(step) -> list[Damage]:
    """Every damage of a finished step's outputs (``[]`` when sound; an analysis step: see ``check_tables``)."""
    return CHECKS.get(step.kind, lambda s: [])(step)


def _check_measure(step) -> list[Damage]:
    out = Path(step.params["study_dir"])
    folders = [step.dir] + ([step.dir / GREEDY] if step.params["eval"].get("greedy") else [])
    damage = []
    for folder in folders:
        table, bad = _read_parquet(folder / "alignment.parquet", step.id)
        damage += bad
        if table is not None:
            if table.empty or "eval_dir" not in table.columns:
                damage.append(Damage(step.id, folder / "alignment.parquet", "holds no rows", aside=(folder /
                                                                                                 "alignment.parquet",)))
            for recorded in dict.fromkeys(table.get("eval_dir", [])):
                damage += check_eval_folder(local_dir(recorded, out), step.id)
    damage += _read_parquet(step.dir / "predictors.parquet", step.id)[1]
    return damage


def _check_alignment(step) -> list[Damage]:
    p = step.params
    pairs = {tuple(x) for x in p.get("pairs") or [(m, t) for m in p["models"] for t in p["tasks"]]}
    table, damage = _read_parquet(step.dir / "alignment.parquet", step.id)
    if table is not None:
        have = set(map(tuple, table[["model", "task"]].drop_duplicates().itertuples(index=False))) if {
            "model", "task"} <= set(table.columns) else set()
        if pairs - have:
            damage.append(Damage(step.id, step.dir / "alignment.parquet", f"no rows for {sorted(pairs - have)}"))
    damage += _read_parquet(step.dir / "predictors.parquet", step.id)[1]
    return damage + _present(step.dir / "alignment.csv", step.id)


def _retrain(folder: Path) -> str:
    return f"move {folder} aside (or delete it) and rerun mirage study: this run is trained again"


def _check_training(step, identity: dict) -> tuple[dict, list[Damage]]:
    """(the run's manifest, damage): the run exists, is the step's own and finished."""
    path = step.dir / "manifest.json"
    try:
        manifest = read_manifest(step.dir)
    except ValueError:
        return {}, [Damage(step.id, path, "unreadable", fix=_retrain(step.dir))]
    if not manifest:
        return {}, [Damage(step.id, path, "missing: the training run is gone", fix=_retrain(step.dir))]
    clash = {k: (manifest.get(k), v) for k, v in identity.items() if manifest.get(k) != v}
    if clash:
        return manifest, [Damage(step.id, path, f"holds another run (on disk, expected) {clash}",
                                 fix=_retrain(step.dir))]
    if manifest.get("status") != Status.FINISHED.value:
        return manifest, [Damage(step.id, path, f"training did not finish (status {manifest.get('status')!r})",
                                 fix=_retrain(step.dir))]
    return manifest, []


def _check_history(step) -> list[Damage]:
    p = step.params
    _, damage = _check_training(step, {"model": p["model"], "task": p["task"],
                                       "condition": history_condition().name, "seed": p["seed"]})
    if damage:
        return damage
    log = step.dir / "logs" / "example_acc.jsonl"  # mirage.train.loop.accuracy_history reads it
    try:
        epochs: dict[str, set[int]] = {}
        for rec in read_jsonl(log):
            epochs.setdefault(str(rec["index"]), set()).add(int(rec["epoch"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [Damage(step.id, log, f"unreadable ({e})", fix=_retrain(step.dir))]
    short = [i for i, seen in epochs.items() if len(seen) != p["epochs"]]
    if len(epochs) != p["pool"] or short:
        return [Damage(step.id, log, f"{len(epochs)} examples ({len(short)} without {p['epochs']} epochs), "
                       f"expected {p['pool']} x {p['epochs']} epochs", fix=_retrain(step.dir))]
    return []


def evaluated_steps(recipe: dict, checkpoints: str) -> list[int]:
    """The checkpoint steps a cell evaluates: the last, or every one the trainer saves (every
    ``save_freq`` steps and the final one)."""
    total, freq = int(recipe["total_steps"]), int(recipe["save_freq"])
    saved = sorted({s for s in range(1, total + 1) if (freq > 0 and s % freq == 0) or s == total})
    return saved if checkpoints == "all" else saved[-1:]


def _check_cell(step) -> list[Damage]:
    p, c = step.params, step.cell
    manifest, damage = _check_training(step, {"model": c.model, "task": c.task, "condition": c.condition,
                                              "seed": c.seed})
    if damage:
        return damage
    recipe = RECIPES[p["recipe"]].with_overrides(p["recipe_overrides"]).to_dict()
    try:
        metrics = load_metrics(step.dir)
    except (OSError, ValueError) as e:
        return [Damage(step.id, step.dir / "logs", f"training metrics unreadable ({e})", fix=_retrain(step.dir))]
    missing = sorted(set(range(1, recipe["total_steps"] + 1)) - set(metrics["step"]))
    if p["backend"] == "local" and missing:  # verl's logging is its own; the local engine logs every step
        return [Damage(step.id, step.dir / "logs", f"no training metrics for step(s) {missing[:10]}",
                       fix=_retrain(step.dir))]
    saved = {s for s, _ in list_checkpoints(step.dir)}
    for tag in ["", GREEDY] if p["eval"].get("greedy") else [""]:
        for s in evaluated_steps(recipe, p["eval"]["checkpoints"]):
            bad = check_eval_folder(checkpoint_eval_dir(step.dir, s, tag or None), step.id)
            if bad and s not in saved:  # nothing to evaluate again from
                bad = [Damage(d.step, d.path, f"{d.what}, and checkpoint global_step_{s} (what it evaluates) is "
                              "gone", fix=_retrain(step.dir)) for d in bad]
            damage += bad
    return damage


CHECKS = {"measure": _check_measure, "alignment": _check_alignment, "history": _check_history, "cell": _check_cell}


# --- the study's tables ------------------------------------------------------------------------------
def check_tables(out: str | os.PathLike, steps: Sequence, sid: str = "analysis") -> list[Damage]:
    """The results tables against each other: every evaluation's n_problems in results.parquet is the
    number of problems problems.parquet holds for it, and every finished cell has rows in both."""
    out = Path(out)
    results, damage = _read_parquet(out / "results.parquet", sid)
    problems, bad = _read_parquet(out / "problems.parquet", sid)
    damage += bad + _read_parquet(out / "dynamics.parquet", sid)[1] + _present(out / "results.csv", sid)
    if results is None or problems is None:
        return damage
    keys = RUN_KEYS + ["step", "dataset", "eval_tag"]
    # the base model's rows have no seed: -1 stands for it on both sides, so the keys compare
    results, problems = (with_defaults(t).assign(seed=t["seed"].astype("Int64").fillna(-1)) if "seed" in t.columns
                         else t for t in (results, problems))
    try:
        counted = problems.groupby(keys)["problem_id"].nunique()
        stated = results[results["k"] == 1].set_index(keys)["n_problems"]
    except KeyError as e:
        return damage + [Damage(sid, out / "results.parquet", f"lacks column {e}")]
    for key, n in stated.items():
        got = int(counted.get(key, 0))
        if got != n:
            what = ", ".join(f"{k} {v}" for k, v in zip(keys, key) if v != "")
            damage.append(Damage(sid, out / "problems.parquet", f"{got} problems for {what}, while "
                                 f"results.parquet says {n}"))
    for s in steps:
        if s.kind == "cell" and s.finished:
            c = s.cell
            rows = results[(results["model"] == c.model) & (results["task"] == c.task) & (
                results["condition"] == c.condition) & (results["regime"].fillna("") == c.regime) & (
                results["seed"] == c.seed)]
            if rows.empty:
                damage.append(Damage(sid, out / "results.parquet", f"no rows for the finished cell {s.id}"))
    return damage


# --- repair --------------------------------------------------------------------------------------------
def move_aside(paths: Sequence[Path], out: str | os.PathLike) -> list[Path]:
    """Move damaged files (or folders) to ``<out>/.damaged/<time>/<their path in out>``: nothing is deleted,
    and nothing the step's rerun reads is damaged. Returns the new paths."""
    import shutil

    out = Path(out)
    root = out / DAMAGED / time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for path in paths:
        if not path.exists():
            continue
        try:
            rel = path.resolve().relative_to(out.resolve())
        except ValueError:
            rel = Path(path.name)
        target = root / rel
        i = 1
        while target.exists():
            target, i = root / f"{rel}.{i}", i + 1
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(target))
        moved.append(target)
    return moved
