"""The one reader of verl-format datasets: rows checked once, with their problem ids.

Training, evaluation and the study read datasets through ``load_rows``. A row is a
dict with ``data_source``, ``prompt`` (a list of ``{"role", "content"}`` messages),
``reward_model.ground_truth`` and ``extra_info``; a row that lacks any of them, or a
message without content, is an error naming the file, the row and the field. A
problem's id is its ``extra_info.index`` when every row has one, else its position.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mirage.runs.files import resolve
from mirage.tasks import dataset_file

REQUIRED = ("data_source", "prompt", "reward_model")
COLUMNS = (*REQUIRED, "extra_info")  # what is read: a file's other columns never enter memory
BATCH_ROWS = 1024  # rows converted to Python at a time (pyarrow iter_batches): memory stays bounded by the batch


def resolve_dataset(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> tuple[str, Path]:
    """(dataset name, parquet path): a registered dataset name (generated on demand) or a parquet path."""
    text = str(name_or_path)
    if text.endswith(".parquet") or os.sep in text:
        path = resolve(text)
        if not path.is_file():
            raise FileNotFoundError(f"dataset file {path} does not exist")
        return path.stem, path
    return text, dataset_file(text, root)


def _check_prompt(prompt: Any, where: str) -> list[dict[str, str]]:
    if hasattr(prompt, "tolist"):  # a numpy array of messages, as pandas reads parquet lists
        prompt = prompt.tolist()
    if not isinstance(prompt, list) or not prompt:
        raise ValueError(f"{where}: 'prompt' must be a non-empty list of messages, got {prompt!r:.200}")
    messages = []
    for j, m in enumerate(prompt):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"{where}: prompt message {j} needs string 'role' and 'content', got {m!r:.200}")
        messages.append({"role": m["role"], "content": m["content"]})
    return messages


def _check_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    for key in REQUIRED:
        if row.get(key) is None:
            raise ValueError(f"{where}: no {key!r}")
    reward_model = row["reward_model"]
    if not isinstance(reward_model, dict) or reward_model.get("ground_truth") is None:
        raise ValueError(f"{where}: reward_model has no 'ground_truth' ({reward_model!r:.200})")
    row["prompt"] = _check_prompt(row["prompt"], where)
    row["data_source"] = str(row["data_source"])
    row["extra_info"] = dict(row.get("extra_info") or {})
    return row


def load_rows(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None,
              unique_ids: bool = False) -> list[dict[str, Any]]:
    """Every row of a dataset, checked, with ``problem_id`` added; an error names the file, row and field.

    ``unique_ids``: two rows with one id are an error (evaluation keys samples by problem id;
    a one-shot training set repeats its example on purpose).
    """
    import pyarrow.parquet as pq

    _, path = resolve_dataset(name_or_path, root)
    rows: list[dict[str, Any]] = []
    try:
        reader = pq.ParquetFile(path)
        columns = [c for c in COLUMNS if c in reader.schema_arrow.names]
        for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            for row in batch.to_pylist():
                rows.append(_check_row(row, f"{path} row {len(rows)}"))
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file; name the file
        raise ValueError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
    if not rows:
        raise ValueError(f"{path}: no rows")
    has_index = all(r["extra_info"].get("index") is not None for r in rows)
    seen: set[str] = set()
    for pos, row in enumerate(rows):
        where = f"{path} row {pos}"
        pid = str(row["extra_info"]["index"]) if has_index else str(pos)
        if unique_ids and pid in seen:
            raise ValueError(f"{where}: duplicate extra_info.index {pid!r}")
        seen.add(pid)
        row["problem_id"] = pid
    return rows
