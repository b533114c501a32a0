"""What every probe shares: resumable per-problem rows in atomic part files, one manifest, a summary.

A probe folder holds ``rows/<dataset>/part-*.parquet`` (``rows_per_problem`` rows per problem),
``<manifest>`` and ``summary.parquet`` / ``summary.csv``. ``run_probe`` skips the problems already on
disk, builds the sampler only when some remain, writes each chunk atomically, checks that every problem
has its rows and only then writes the summary and marks the folder finished.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from mirage import runs
from mirage.evaluate.scoring import make_sampler


def check_settings(out_dir: Path, manifest_name: str, settings: Any, what: str) -> dict:
    """The folder's manifest, or a one-line error when it holds a ``what`` run with other settings."""
    manifest = runs.read_manifest(out_dir, manifest_name)
    diff = runs.config_diff(manifest.get("config"), settings.to_dict())
    if diff:
        raise ValueError(f"{out_dir}: this folder holds {what} with other settings (key: (on disk, requested)) "
                         f"{diff}; use another --out")
    return manifest


def parts(out_dir: Path, dataset: str) -> list[Path]:
    return sorted((out_dir / "rows" / dataset).glob("part-*.parquet"))


def read_rows(out_dir: str | os.PathLike, columns: list[str]) -> pd.DataFrame:
    """Every per-problem row of a probe folder (an empty frame with ``columns`` when there is none)."""
    out_dir = Path(out_dir)
    frames = [pd.read_parquet(p) for d in sorted((out_dir / "rows").iterdir()) for p in parts(out_dir, d.name)] \
        if (out_dir / "rows").is_dir() else []
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def run_probe(model: str, datasets: list, sampler: Any, *, out_dir: Path, manifest_name: str, manifest: dict,
              record: dict, rows_per_problem: int, unit: str, probe_chunk: Callable[[list, Any], pd.DataFrame],
              summarise: Callable[[pd.DataFrame], pd.DataFrame], columns: list[str], batch_size: int,
              desc: str, progress: bool, sampler_kwargs: dict | None = None) -> pd.DataFrame:
    """Probe the problems of ``datasets`` ((name, path, problems) each) not yet on disk, then summarise.

    ``record``: what the manifest says of this probe (its kind, config and datasets); ``sampler``: a Sampler, or a
    backend name built here with ``sampler_kwargs`` only if some problem remains; ``probe_chunk(chunk,
    sampler)``: the rows of one chunk of (dataset, position, problem) items.
    """
    from tqdm.auto import tqdm

    todo = []
    for name, _, problems in datasets:
        done = runs.finished_in_parts(parts(out_dir, name), rows_per_problem, unit=unit)
        todo += [(name, pos, row) for pos, row in enumerate(problems.itertuples()) if row.problem_id not in done]
    started = time.time()
    if todo:
        own = isinstance(sampler, str)
        if own:
            sampler = make_sampler(sampler, model, **(sampler_kwargs or {}))
        manifest.update({"kind": record["kind"], "config": record["config"], "model": str(model),
                         "datasets": record["datasets"], "sampler": sampler.describe(),
                         "status": runs.Status.RUNNING.value,
                         "versions": runs.library_versions("mirage", "torch", "transformers", "vllm")})
        runs.write_json_atomic(out_dir / manifest_name, manifest)
        total = sum(len(p) for _, _, p in datasets)
        bar = tqdm(total=total, initial=total - len(todo), unit="problem", desc=f"{desc} {runs.slug(model)}",
                   disable=not progress, dynamic_ncols=True)
        try:
            for chunk in runs.dataset_chunks(todo, batch_size):
                frame = probe_chunk(chunk, sampler)
                runs.write_parquet_atomic(out_dir / "rows" / chunk[0][0] / f"part-{chunk[0][1]:06d}.parquet", frame)
                bar.update(len(chunk))
        finally:
            bar.close()
            if own and hasattr(sampler, "close"):
                sampler.close()
        manifest.setdefault("attempts", []).append({"started": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                             time.localtime(started)),
                                                    "problems": len(todo),
                                                    "seconds": round(time.time() - started, 3)})
    rows = read_rows(out_dir, columns)
    for name, _, problems in datasets:
        got = rows.loc[rows["dataset"] == name, "problem_id"].nunique()
        if got != len(problems):
            raise RuntimeError(f"{out_dir}: {name} has rows for {got} of {len(problems)} problems")
    summary = summarise(rows)
    runs.write_parquet_atomic(out_dir / "summary.parquet", summary)
    with runs.atomic_path(out_dir / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    manifest.update(status=runs.Status.FINISHED.value, finished=runs.manifest.now())
    runs.write_json_atomic(out_dir / manifest_name, manifest)
    return summary
