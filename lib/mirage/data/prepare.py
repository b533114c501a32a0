"""The registry of prepared datasets: each name, what it is converted from, and where it is written.

A task file declares its prepared datasets (``register_dataset``: the converter, where
the source sits in a local mirror of the canonical sources, and how to fetch it where a
network exists); ``prepare(name, source)`` converts one to ``<root>/verl/<name>.parquet``
(atomically) and writes ``<name>.meta.json`` next to it: the source, the row counts, and
everything the converter dropped or noted. Generated datasets (the testbed's,
reasoning-gym's) are not here: their task writes them on use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mirage.data.common import Conversion
from mirage.registry import Registry
from mirage.runs import write_json_atomic, write_parquet_atomic
from mirage.tasks import data_root, dataset_path, load_tasks


@dataclass(frozen=True)
class Dataset:
    name: str
    convert: Callable[[Path, bool], Conversion]  # (source, skip_empty_answers) -> Conversion
    local: str  # its source inside a local mirror of the canonical sources (`prepare --all-local --local DIR`)
    description: str
    # where a network exists: fetch(root) -> the downloaded source; fetch_commands(root) -> what it runs
    fetch: Callable[[Path], Path] | None = None
    fetch_commands: Callable[[Path], list[str]] | None = None
    # run after every dataset of an --all-local pass: (root, local dir) -> notes (e.g. one-shot sets)
    after_local: Callable[[Path, Path], list[str]] | None = None


DATASETS: Registry[Dataset] = Registry("dataset")


def register_dataset(dataset: Dataset) -> Dataset:
    return DATASETS.register(dataset)


def datasets() -> Registry[Dataset]:
    """Every prepared dataset the task files declare."""
    load_tasks()
    return DATASETS


def write_dataset(name: str, conv: Conversion, root: str | Path | None = None) -> Path:
    import pandas as pd

    if not conv.rows:
        raise ValueError(f"{name}: the conversion of {conv.source} produced no rows")
    path = dataset_path(name, root)
    write_parquet_atomic(path, pd.DataFrame(conv.rows))
    write_json_atomic(path.with_suffix(".meta.json"), {"dataset": name, **conv.to_dict()})
    return path


def prepare(name: str, source: str | Path, root: str | Path | None = None,
            skip_empty_answers: bool = False) -> tuple[Path, Conversion]:
    """Convert ``source`` (a file or folder, or "download") into dataset ``name`` under the data root."""
    spec = datasets()[name]
    root = Path(root) if root else data_root()
    if str(source) in ("download", "hub"):
        if spec.fetch is None:
            raise ValueError(f"dataset {name!r} has no download source; pass --source FILE")
        source = spec.fetch(root)
    conv = spec.convert(Path(source), skip_empty_answers)
    return write_dataset(name, conv, root), conv


def write_one_shot(name: str, source: str | Path, root: str | Path | None = None, *, batch_size: int = 128,
                   history: dict | None = None, rank: int = 1, seed: int | None = None) -> tuple[Path, str]:
    """A one-shot set from a verl parquet (see mirage.data.one_shot), written as dataset ``name``."""
    from mirage.data.one_shot import one_shot_set  # why: pandas, which importing mirage.data.prepare does not need

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
    known = datasets()
    out = []
    for name in list(known) + [n for n in present if n not in known]:
        path = present.get(name)
        meta = path.with_suffix(".meta.json") if path else None
        source = json.loads(meta.read_text())["source"] if meta and meta.exists() else None
        out.append({"name": name, "rows": pq.ParquetFile(path).metadata.num_rows if path else None,
                    "path": str(path or dataset_path(name, root)), "source": source,
                    "local": known[name].local if name in known else None})
    return out
