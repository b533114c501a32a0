"""The one metrics schema both engines write, and its reader.

A run's ``logs/metrics-<attempt>.jsonl`` holds one JSON line per step, ``{"step": N, "data":
{metric: value}}`` (verl's file-logger format). Metric names are verl 0.9.1's; the local
engine writes the same keys, plus the ``train/*`` ones mirage's verl sampler also logs.
``load_metrics`` turns either backend's run into the same tidy frame.
"""

from __future__ import annotations

import os
from pathlib import Path

from mirage.runs.files import read_jsonl
from mirage.runs.manifest import IDENTITY, read_manifest

# Metric names are verl 0.9.1's; the testbed writes the same keys.
METRICS = {
    "critic/score/mean": "mean training reward of the responses used (after the reward variant)",
    "critic/rewards/mean": "mean token-level reward sum (equals score: no KL in reward)",
    "critic/advantages/mean": "mean advantage over valid tokens",
    "actor/entropy": "mean token entropy of the policy on the responses",
    "actor/pg_loss": "policy-gradient loss",
    "actor/pg_clipfrac": "fraction of tokens where the ratio clip was active (either side)",
    "actor/pg_clipfrac_high": "fraction of tokens with advantage > 0 and ratio above 1 + clip_ratio_high (clipped)",
    "actor/pg_clipfrac_low": "fraction of tokens with advantage < 0 and ratio below 1 - clip_ratio_low (clipped)",
    "actor/pg_clipfrac_lower": "fraction of tokens where the dual clip was active",
    "actor/ppo_kl": "mean (old - new) log-prob over tokens",
    "actor/abs_log_ratio": "mean |new - old| log-prob over tokens (how far the policy moved within a rollout)",
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
# Logged where the task knows which procedure an answer follows (the testbed's tasks).
PROCEDURE_METRICS = {f"train/procedure/{p}": f"share of training responses whose answer follows the {p} procedure"
                     for p in ("correct", "buggy", "neither")}
VAL_ACC = "val-core/{data_source}/acc/mean@{n}"  # validation accuracy, as verl names it



def load_metrics(run_dir: str | os.PathLike) -> "pd.DataFrame":
    """Tidy training dynamics of one run, identical in schema for both backends.

    Columns: step, metric, value, attempt, plus the run's identity from the manifest
    (backend, model, task, condition, seed). When a resumed attempt re-logs a step,
    the later attempt wins.
    """
    import pandas as pd

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
    for key in IDENTITY:
        df[key] = manifest.get(key)
    df["run_dir"] = str(run_dir)
    return df
