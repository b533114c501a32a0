"""The dataset registry: each name, what it is converted from, and where it is written.

``prepare(name, source)`` converts one dataset to ``<root>/verl/<name>.parquet``
(atomically) and writes ``<name>.meta.json`` next to it: the source, the row
counts, and everything the converter dropped or noted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from mirage.data import hub
from mirage.data.common import Conversion
from mirage.tasks import data_root, dataset_path


def _deepscaler(src, skip):
    from mirage.data.math_data import convert_deepscaler
    return convert_deepscaler(src, skip_empty_answers=skip)


def _math_eval(name, src, skip):
    from mirage.data.math_data import convert_math_eval
    return convert_math_eval(src, name)


def _korbench(category, src, skip):
    from mirage.data.korbench import convert_korbench
    return convert_korbench(src, category)


def _synlogic(split, src, skip):
    from mirage.data.synlogic import convert_synlogic
    return convert_synlogic(src, split)


@dataclass(frozen=True)
class Dataset:
    name: str
    convert: Callable[[Path, bool], Conversion]  # (source, skip_empty_answers) -> Conversion
    shared: str  # its source inside a folder laid out like ../shared/data
    description: str


DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("deepscaler", _deepscaler, "deepscaler/deepscaler.json",
            "DeepScaleR-Preview train (40,315 problems; hub file deepscaler.json)"),
    Dataset("deepscaler_dsr_sub", _deepscaler, "deepscaler/one_shot_rlvr/dsr_sub.parquet",
            "DSR-sub: One-Shot-RLVR's 1,209-problem random subset of DeepScaleR"),
    *[Dataset(n, partial(_math_eval, n), f"{n}/test.jsonl", f"{n.upper()} test set")
      for n in ("math500", "aime24", "amc23")],
    *[Dataset(f"korbench_{c}", partial(_korbench, c), f"korbench/{c}", f"KOR-Bench {c} (250 questions)")
      for c in ("operation", "logic", "cipher", "puzzle", "counterfactual")],
    Dataset("synlogic_easy_train", partial(_synlogic, "train"), "synlogic/synlogic_easy/train.parquet",
            "SynLogic-Easy train (hub MiniMaxAI/SynLogic)"),
    Dataset("synlogic_easy_val", partial(_synlogic, "test"), "synlogic/synlogic_easy/validation.parquet",
            "SynLogic-Easy validation (hub MiniMaxAI/SynLogic)"),
    Dataset("synlogic_sample", partial(_synlogic, "train"), "synlogic/sample_rows.jsonl",
            "33 generated SynLogic rows (an offline stand-in, not HF rows)"),
]}
# One-shot sets written by --all-local from DSR-sub and One-Shot-RLVR's accuracy history.
ONE_SHOT_HISTORY = "deepscaler/one_shot_rlvr/acc_step_500.json"


def write_dataset(name: str, conv: Conversion, root: str | Path | None = None) -> Path:
    import pandas as pd

    from mirage.runs import write_json_atomic, write_parquet_atomic

    if not conv.rows:
        raise ValueError(f"{name}: the conversion of {conv.source} produced no rows")
    path = dataset_path(name, root)
    write_parquet_atomic(path, pd.DataFrame(conv.rows))
    write_json_atomic(path.with_suffix(".meta.json"), {"dataset": name, **conv.to_dict()})
    return path


def prepare(name: str, source: str | Path, root: str | Path | None = None,
            skip_empty_answers: bool = False) -> tuple[Path, Conversion]:
    """Convert ``source`` (a file or folder, or "hub") into dataset ``name`` under the data root."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    root = Path(root) if root else data_root()
    if str(source) == "hub":
        source = hub.fetch(name, root)
    conv = DATASETS[name].convert(Path(source), skip_empty_answers)
    return write_dataset(name, conv, root), conv


def write_one_shot(name: str, source: str | Path, root: str | Path | None = None, *, batch_size: int = 128,
                   history: dict | None = None, rank: int = 1, seed: int | None = None) -> tuple[Path, str]:
    """A one-shot set from a verl parquet (see mirage.data.one_shot), written as dataset ``name``."""
    from mirage.data.one_shot import one_shot_set

    rows, example_id = one_shot_set(source, batch_size, history=history, rank=rank, seed=seed)
    how = f"historical-variance rank {rank}" if history is not None else f"random, seed {seed}"
    conv = Conversion(rows=rows.to_dict("records"), source=str(source), read=1,
                      notes=[f"example extra_info.index={example_id} ({how}) x {batch_size}"])
    return write_dataset(name, conv, root), example_id


def list_datasets(root: str | Path | None = None) -> list[dict]:
    """Every registered or present dataset: name, rows (None when absent), path, source."""
    import json

    import pyarrow.parquet as pq

    root = Path(root) if root else data_root()
    present = {p.stem: p for p in sorted((root / "verl").glob("*.parquet"))}
    out = []
    for name in list(DATASETS) + [n for n in present if n not in DATASETS]:
        path = present.get(name)
        meta = path.with_suffix(".meta.json") if path else None
        source = json.loads(meta.read_text())["source"] if meta and meta.exists() else None
        out.append({"name": name, "rows": pq.ParquetFile(path).metadata.num_rows if path else None,
                    "path": str(path or dataset_path(name, root)), "source": source})
    return out
