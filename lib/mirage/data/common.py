"""What every converter shares: reading records with their location, field checks,
verl rows, and the conversion report.

A record's location is ``<file>:<line>`` (1-based) for JSON Lines and
``<file> row <i>`` (0-based, as pandas and ``extra_info.index`` count) for a
JSON list or a parquet file. Every error message starts with it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirage.data.rows import BATCH_ROWS


class DataError(ValueError):
    """Bad input data. The message names the file, the row and the field at fault."""


def read_records(path: str | Path) -> list[tuple[str, dict]]:
    """(location, record) for every record of a .jsonl, .json (a list) or .parquet file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        out = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{where}: not valid JSON ({e})") from None
                out.append((where, rec))
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
        out = [(f"{path} row {i}", rec) for i, rec in enumerate(data)]
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        out = []
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            out += [(f"{path} row {len(out) + i}", rec) for i, rec in enumerate(batch.to_pylist())]
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json or .parquet)")
    for where, rec in out:
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object with named fields, got {type(rec).__name__}")
    return out


def get_field(rec: dict, key: str, where: str, types: tuple = (str,), *, required: bool = True,
              nonempty: bool = True) -> Any:
    """rec[key], checked: present and not null (if required), of one of ``types``, not blank."""
    value = rec.get(key)
    if value is None:
        if required:
            raise DataError(f"{where}: field {key!r} is {'null' if key in rec else 'missing'}")
        return None
    # bool is an int subclass; a True where a number is expected is a wrong type
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join(t.__name__ for t in types)
        raise DataError(f"{where}: field {key!r} has type {type(value).__name__}, expected {names}")
    if nonempty and isinstance(value, str) and not value.strip():
        raise DataError(f"{where}: field {key!r} is empty")
    return value


def is_blank(value: Any) -> bool:
    """An answer that carries nothing: null, or a blank string."""
    return value is None or (isinstance(value, str) and not value.strip())


def answer_text(value: Any, where: str, key: str = "answer") -> str:
    """An answer as the string reward code compares against: str as is, 27.0 -> "27"."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{where}: field {key!r} has type {type(value).__name__}, expected str or number")
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{where}: field {key!r} is empty")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DataError(f"{where}: field {key!r} is {value!r}")
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def verl_row(data_source: str, content: str, ability: str, ground_truth: str, extra_info: dict,
             style: str = "rule") -> dict:
    """One row in verl's schema: a single user message as the prompt."""
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": content}],
        "ability": ability,
        "reward_model": {"style": style, "ground_truth": ground_truth},
        "extra_info": extra_info,
    }


@dataclass
class Conversion:
    """The rows a converter produced, and an account of everything it did not keep as read."""

    rows: list[dict]
    source: str
    read: int = 0
    dropped: dict[str, list[str]] = field(default_factory=dict)  # reason -> locations
    notes: list[str] = field(default_factory=list)

    def drop(self, reason: str, where: str) -> None:
        self.dropped.setdefault(reason, []).append(where)

    def summary(self) -> str:
        lines = [f"{self.source}: read {self.read} records, wrote {len(self.rows)} rows"]
        for reason, places in self.dropped.items():
            shown = "; ".join(places[:3]) + (" ..." if len(places) > 3 else "")
            lines.append(f"  dropped {len(places)} ({reason}): {shown}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"source": self.source, "read": self.read, "written": len(self.rows),
                "dropped": {r: {"count": len(p), "where": p} for r, p in self.dropped.items()},
                "notes": self.notes}
