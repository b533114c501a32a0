"""A training run's evaluations (the base model and every checkpoint), and the reader of any evaluation.

``evaluate_run`` writes ``<run_dir>/eval/step_<N>/`` (N = 0: the base model); finished
steps are read back, not resampled. ``load_eval`` turns evaluation folders, run folders
or any folder above them into one tidy pass@k frame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from mirage.evaluate.core import MANIFEST, evaluate
from mirage.evaluate.scoring import CheckpointError
from mirage.runs import Status, checkpoint_eval_dir, list_checkpoints, read_manifest, slug, update_manifest
from mirage.runs.files import check_link
from mirage.runs.layout import incomplete_checkpoints
from mirage.train.verl.command import merge_checkpoint


def evaluate_run(run_dir: str | os.PathLike, n: int | None = None, *, backend: str = "hf",
                 include_base: bool = True, steps: Sequence[int] | None = None, model: str | None = None,
                 task: str | None = None, tag: str | None = None, **eval_kwargs: Any) -> pd.DataFrame:
    """Evaluate the base model (step 0) and every saved checkpoint of a run.

    Results go to ``<run_dir>/eval/step_<N>/`` (with ``tag``, e.g. "greedy":
    ``<run_dir>/eval/<tag>/step_<N>/``); finished steps are skipped. ``model`` and
    ``task`` default to the run's manifest. A checkpoint that cannot be loaded (damaged
    weights) is recorded as failed in its folder's manifest and the sweep goes on; an
    error naming every failed checkpoint is raised at the end. Returns ``load_eval`` of the sweep.
    """
    run_dir = Path(run_dir)
    check_link(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder (--run-dir names a training run's folder)")
    manifest = read_manifest(run_dir)
    model = model or manifest.get("model")
    task = task or manifest.get("task")
    if not model or not task:
        raise ValueError(f"{run_dir}/manifest.json: needs 'model' and 'task' (or pass model=, task=)")
    bad = incomplete_checkpoints(run_dir)
    if bad:
        for d in bad:
            check_link(d)
        more = f"; {len(bad) - 1} more like it" if len(bad) > 1 else ""
        shards = sorted((bad[0] / "actor").glob("model_world_size_*_rank_*.pt"))
        if shards:  # FSDP shards without HF weights (saved without hf_model, e.g. another save_contents or LoRA)
            import shlex

            step = int(bad[0].name.rsplit("_", 1)[-1])
            merge = " ".join(shlex.quote(a) for a in merge_checkpoint_argv(run_dir, step))
            raise FileNotFoundError(f"{bad[0]}: FSDP shards but no HF weights (actor/huggingface){more}: write them "
                                    f"with verl's model merger, `{merge}`, then rerun")
        raise FileNotFoundError(f"{bad[0]}: not a checkpoint (no actor/huggingface/config.json with *.safetensors "
                                f"weights{more}): delete it (a save that never finished) or write its HF weights "
                                "(verl's model merger: mirage.train.verl.command.merge_checkpoint), then rerun")
    targets = ([(0, str(model))] if include_base else []) + [(s, str(p)) for s, p in list_checkpoints(run_dir)]
    if steps is not None:
        targets = [(s, p) for s, p in targets if s in set(steps)]
    if not targets:
        raise FileNotFoundError(f"{run_dir}: no checkpoints under checkpoints/global_step_*/actor/huggingface")
    failed = []
    for step, path in targets:
        out_dir = checkpoint_eval_dir(run_dir, step, tag)
        try:
            evaluate(path, task, n, sampler=backend, step=step, out_dir=out_dir, **eval_kwargs)
        except CheckpointError as e:
            update_manifest(out_dir, MANIFEST, kind="eval", status=Status.FAILED, error=str(e))
            failed.append(str(e))
    if failed:
        raise CheckpointError(f"{len(failed)} of {len(targets)} evaluations failed: " + "; ".join(failed))
    table = load_eval(run_dir / "eval")
    return table[table["eval_tag"] == (slug(tag) if tag else "")].reset_index(drop=True)


def merge_checkpoint_argv(run_dir: str | os.PathLike, step: int) -> list[str]:
    """verl's model-merger command for one checkpoint (mirage.train.verl.command.merge_checkpoint: light to import,
    no verl needed to print it)."""
    return merge_checkpoint(run_dir, step)


def load_eval(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """pass@k of evaluation folders, run folders (their eval/step_*) or any folder above them.

    Columns: model, task, dataset, condition, seed, step, k, pass_at_k, ci_low, ci_high,
    n_problems, plus n, temperature, top_p, eval_seed, eval_tag ("" for a run's default
    evaluation, else the tag of ``evaluate_run(tag=...)``, e.g. "greedy"), eval_dir. ``model``
    is the run's base model for checkpoints; ``condition`` and ``seed`` come from the run's
    manifest ("base" and None outside a run).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    dirs = []
    for p in map(Path, paths):
        found = [p] if (p / "passk.parquet").exists() else sorted(f.parent for f in p.rglob("passk.parquet"))
        if not found:
            raise FileNotFoundError(f"{p}: no evaluation (passk.parquet) found")
        dirs += found
    frames = []
    for d in dirs:
        m = read_manifest(d, MANIFEST)
        s = m.get("config", m.get("settings"))
        tagged = d.parent.parent.name == "eval"  # <run>/eval/<tag>/step_N
        run_dir = d.parent.parent.parent if tagged else d.parent.parent if d.parent.name == "eval" else None
        run = read_manifest(run_dir) if run_dir is not None else {}
        df = pd.read_parquet(d / "passk.parquet")
        df = df.assign(model=run.get("model") or s["model"], task=run.get("task") or s["task"],
                       condition=run.get("condition", "base"), seed=run.get("seed"), step=s.get("step"),
                       n=s["n"], temperature=s["temperature"], top_p=s["top_p"], eval_seed=s["seed"],
                       eval_tag=d.parent.name if tagged else "", eval_dir=str(d))
        frames.append(df)
    cols = ["model", "task", "dataset", "condition", "seed", "step", "k", "pass_at_k", "ci_low", "ci_high",
            "n_problems", "n", "temperature", "top_p", "eval_seed", "eval_tag", "eval_dir"]
    return pd.concat(frames, ignore_index=True)[cols]


