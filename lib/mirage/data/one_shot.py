"""One-shot RL sets: pick one training example, duplicate it to the batch size.

Selection by "historical variance" (Wang et al. 2025, One-Shot-RLVR): train on
the full data once, record each example's training accuracy per epoch, rank the
examples by the standard deviation of that history, highest first. The std is the
population std (numpy's default, ddof=0); ties keep the history's order. With
One-Shot-RLVR's ``acc_step_500.json`` and DSR-sub this gives the published
pi1 = index 124, pi2 = 267, pi13 = 682.

A history is a plain dict ``{example id: [accuracy per epoch, ...]}`` (ids are
compared as strings to ``extra_info.index``), so any backend's record works.
The set is ``batch_size`` identical rows: verl's loader drops an incomplete
batch, so fewer rows than the batch size would give zero training steps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from mirage.data.common import DataError


def load_history(path: str | Path) -> dict[str, list[float]]:
    path = Path(path)
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(history, dict):
        raise DataError(f"{path}: expected an object {{example id: [accuracy per epoch]}}, "
                        f"got {type(history).__name__}")
    return history


def historical_variance(history: dict) -> pd.DataFrame:
    """Columns id, std, epochs, rank (1 = highest std), sorted by rank."""
    if not history:
        raise DataError("accuracy history is empty")
    stds = []
    for key, accs in history.items():
        ok = isinstance(accs, list) and accs and all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in accs)
        if not ok:
            raise DataError(f"accuracy history: entry {key!r} must be a non-empty list of finite numbers, "
                            f"got {str(accs)[:80]}")
        stds.append(float(np.std(accs)))
    df = pd.DataFrame({"id": [str(k) for k in history], "std": stds,
                       "epochs": [len(v) for v in history.values()]})
    df = df.sort_values("std", ascending=False, kind="stable").reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    return df


def select_by_historical_variance(history: dict, rank: int = 1) -> str:
    """The id of the example ranked ``rank`` (1-based) by std of its accuracy history."""
    ranking = historical_variance(history)
    if not 1 <= rank <= len(ranking):
        raise ValueError(f"rank must be in 1..{len(ranking)}, got {rank}")
    return ranking["id"].iloc[rank - 1]


def select_random(ids, seed: int) -> str:
    """One id drawn uniformly with a seeded generator (same ids and seed -> same id)."""
    ids = [str(i) for i in ids]
    if not ids:
        raise ValueError("select_random: no ids to choose from")
    return ids[int(np.random.default_rng(seed).integers(len(ids)))]


def find_row(df: pd.DataFrame, example_id, source: str = "source") -> dict:
    """The row of ``df`` whose extra_info.index equals ``example_id`` (as strings)."""
    if "extra_info" not in df.columns:
        raise DataError(f"{source}: no 'extra_info' column; expected verl rows")
    hits = [i for i, e in enumerate(df["extra_info"]) if isinstance(e, dict) and str(e.get("index")) == str(example_id)]
    if len(hits) != 1:
        raise DataError(f"{source}: {len(hits)} rows have extra_info.index == {example_id!r}; need exactly one")
    return df.iloc[hits[0]].to_dict()


def duplicate_to_batch(row: dict, batch_size: int) -> pd.DataFrame:
    """``batch_size`` identical copies of one verl row."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return pd.DataFrame([row] * batch_size)


def one_shot_set(source: str | Path, batch_size: int, *, history: dict | None = None, rank: int = 1,
                 seed: int | None = None) -> tuple[pd.DataFrame, str]:
    """(rows, chosen id) from a verl parquet: by historical variance, or at random when ``seed`` is given."""
    import pyarrow.parquet as pq

    df = pd.DataFrame(pq.read_table(source).to_pylist())  # plain lists/dicts, as the converters write
    if (history is None) == (seed is None):
        raise ValueError("give either a history (selection by variance) or a seed (random), not both")
    if history is not None:
        example_id = select_by_historical_variance(history, rank)
    else:
        example_id = select_random([e["index"] for e in df["extra_info"]], seed)
    return duplicate_to_batch(find_row(df, example_id, str(source)), batch_size), example_id
