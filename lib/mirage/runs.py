"""Run directories, atomic writes, and the one metrics schema both backends share.

A run directory (testbed or verl) looks the same on disk:

    <run_dir>/
      manifest.json                 what ran: condition, recipe, model, task, seed, versions, status
      logs/metrics-<attempt>.jsonl  one JSON line per step: {"step": N, "data": {metric: value}}
                                    (verl's file-logger format; a fresh file per attempt
                                    because verl truncates its file on resume)
      checkpoints/global_step_<N>/actor/huggingface/   HF-format weights + tokenizer
      eval/...                      evaluation outputs (mirage.evaluate)

``load_metrics`` turns either backend's run directory into the same tidy frame.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

# Metric names are verl 0.9.1's; the testbed writes the same keys.
METRICS = {
    "critic/score/mean": "mean training reward of the responses used (after the reward variant)",
    "critic/rewards/mean": "mean token-level reward sum (equals score: no KL in reward)",
    "critic/advantages/mean": "mean advantage over valid tokens",
    "actor/entropy": "mean token entropy of the policy on the responses",
    "actor/pg_loss": "policy-gradient loss",
    "actor/pg_clipfrac": "fraction of tokens where the ratio clip was active",
    "actor/pg_clipfrac_lower": "fraction of tokens where the dual clip was active",
    "actor/ppo_kl": "mean (old - new) log-prob over tokens",
    "actor/grad_norm": "gradient norm before clipping",
    "actor/lr": "learning rate",
    "response_length/mean": "mean response length in tokens",
    "response_length/clip_ratio": "fraction of responses cut at max length",
    "train/acc/mean": "ground-truth accuracy of the training responses, whatever the reward variant",
    "train/format/mean": "format-ok rate of the training responses",
    "train/kept_groups": "prompt groups kept by dynamic sampling",
    "train/num_gen_batches": "generation batches used this step (dynamic sampling)",
    "timing_s/step": "seconds per training step",
}
VAL_ACC = "val-core/{data_source}/acc/mean@{n}"  # validation accuracy, as verl names it


def default_threads() -> int:
    """Torch threads for a testbed process: the study runner's share (MIRAGE_TORCH_THREADS), else 1."""
    return int(os.environ.get("MIRAGE_TORCH_THREADS") or 1)


# --- atomic file writes ----------------------------------------------------------
def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: do that once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    A crash or kill leaves the old file (or none), never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the mode a plain open() would (umask applies)
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder path next to ``path``; swap it in for ``path`` on success.

    The old folder is moved aside before the new one is renamed in, so a crash or
    kill leaves the old folder or the new one, never a half-written one; a kill
    between the two renames leaves the old one aside, and the next call puts it back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = path.parent / f".{path.name}.tmp", path.parent / f".{path.name}.old"
    if old.exists() and not path.exists():
        os.replace(old, path)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet_atomic(path: str | os.PathLike, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append whole lines and fsync: a kill loses at most the line being written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read JSON lines; a truncated last line (a kill mid-write) is skipped, any other bad line is an error."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines):
                break
            raise ValueError(f"{path}:{i}: not valid JSON ({e})") from None
    return out


# --- run directories ----------------------------------------------------------------
def read_manifest(run_dir: str | os.PathLike) -> dict:
    p = Path(run_dir) / "manifest.json"
    if not p.exists():
        return {}
    return json.loads(p.read_text(encoding="utf-8"))


def update_manifest(run_dir: str | os.PathLike, **fields: Any) -> dict:
    manifest = read_manifest(run_dir)
    manifest.update(fields)
    write_json_atomic(Path(run_dir) / "manifest.json", manifest)
    return manifest


def next_metrics_path(run_dir: str | os.PathLike, create: bool = True) -> Path:
    """A fresh metrics file for a new attempt (verl truncates its log on resume).

    ``create=False`` only names it (a dry run must not write anything).
    """
    logs = Path(run_dir) / "logs"
    if create:
        logs.mkdir(parents=True, exist_ok=True)
    n = len(list(logs.glob("metrics-*.jsonl"))) if logs.is_dir() else 0
    return logs / f"metrics-{n:03d}.jsonl"


_STEP_DIR = re.compile(r"global_step_(\d+)$")


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, HF model dir) for every saved checkpoint with HF weights, in step order.

    verl writes config.json and the tokenizer into ``huggingface/`` even when it saves
    no HF weights there (``hf_model`` not in save_contents), so weights are required.
    """
    out = []
    for d in (Path(run_dir) / "checkpoints").glob("global_step_*"):
        m = _STEP_DIR.search(d.name)
        hf = d / "actor" / "huggingface"
        has_weights = any(hf.glob("*.safetensors")) or any(hf.glob("pytorch_model*.bin"))
        if m and (hf / "config.json").exists() and has_weights:
            out.append((int(m.group(1)), hf))
    return sorted(out)


def load_metrics(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Tidy training dynamics of one run, identical in schema for both backends.

    Columns: step, metric, value, attempt, plus the run's identity from the manifest
    (backend, model, task, condition, seed). When a resumed attempt re-logs a step,
    the later attempt wins.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    rows = []
    for attempt, path in enumerate(sorted((run_dir / "logs").glob("metrics-*.jsonl"))):
        for rec in read_jsonl(path):
            if "step" not in rec or "data" not in rec:
                raise ValueError(f"{path}: line without 'step'/'data' keys: {rec!r:.200}")
            for key, value in rec["data"].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append((int(rec["step"]), key, float(value), attempt))
    df = pd.DataFrame(rows, columns=["step", "metric", "value", "attempt"])
    if not df.empty:
        df = df.sort_values("attempt").drop_duplicates(["step", "metric"], keep="last")
        df = df.sort_values(["metric", "step"]).reset_index(drop=True)
    for key in ("backend", "model", "task", "condition", "seed"):
        df[key] = manifest.get(key)
    df["run_dir"] = str(run_dir)
    return df
