"""Split a pass@1 gain into "answers better" and "learned the format" (docs/evaluation.md).

Per evaluation (``mirage.evaluate.format_table``): pass@1 ``P``, the format rate ``F`` and the
format-free accuracy ``A`` (the answer scored whatever the format). Per sample, a response counted
correct by pass@1 is also correct whatever its format (the lenient reading takes the <answer> block
first), so ``A >= P`` and ``L = A - P`` is the share of responses whose answer is right but which
pass@1 does not count: *lost to the format*. Between the base and the final evaluation of a cell

    gain = dP = dA - dL
         = answers_better + learned_format,   answers_better = dA,   learned_format = -dL = dP - dA

an exact, additive split with no ordering choice (a product P(format) x P(correct | format) would
need one). ``dF``, the change in format rate, is reported beside it but is not a term of the sum:
the format rate also counts well-formatted WRONG answers, so a model can learn the format without
gaining anything. Where ``A`` is NaN (a folder written before the column, or a family without a
lenient reading) both terms are NaN.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from mirage.evaluate.core import FORMAT_COLUMNS, format_table, read_samples

SPLIT_COLUMNS = ["dataset", "pass_at_1_base", "pass_at_1_final", "gain", "format_rate_base", "format_rate_final",
                 "format_rate_change", "format_free_base", "format_free_final", "answers_better", "learned_format"]


def _table(evaluation: Any) -> pd.DataFrame:
    """A format table from a format table, a sample frame, or an evaluation folder."""
    if isinstance(evaluation, (str, os.PathLike)):
        path = Path(evaluation)
        if not (path / "samples").is_dir():
            raise FileNotFoundError(f"{path}: not an evaluation folder (no samples/)")
        return format_table(read_samples(path))
    if isinstance(evaluation, pd.DataFrame):
        if "sample_index" in evaluation.columns:
            return format_table(evaluation)
        missing = [c for c in ("dataset", "pass_at_1", "format_rate", "format_free_accuracy")
                   if c not in evaluation.columns]
        if missing:
            raise KeyError(f"format_split: a format table needs columns {missing} (have {list(evaluation.columns)})"
                           f"; expected mirage.evaluate.format_table's {FORMAT_COLUMNS} or sample rows")
        return evaluation
    raise TypeError("format_split: an evaluation folder, sample rows or a format table, "
                    f"got {type(evaluation).__name__}")


def split_gain(base: Mapping[str, float], final: Mapping[str, float]) -> dict[str, float]:
    """The split of one dataset from two rows with ``pass_at_1``, ``format_rate``, ``format_free_accuracy``."""
    p0, p1 = float(base["pass_at_1"]), float(final["pass_at_1"])
    f0, f1 = float(base["format_rate"]), float(final["format_rate"])
    a0, a1 = float(base["format_free_accuracy"]), float(final["format_free_accuracy"])
    for name, v in (("pass_at_1", p0), ("pass_at_1", p1), ("format_rate", f0), ("format_rate", f1)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"format_split: {name} must be in [0, 1], got {v}")
    better = a1 - a0
    return {"pass_at_1_base": p0, "pass_at_1_final": p1, "gain": p1 - p0, "format_rate_base": f0,
            "format_rate_final": f1, "format_rate_change": f1 - f0, "format_free_base": a0, "format_free_final": a1,
            "answers_better": better, "learned_format": (p1 - p0) - better}


def format_split(base: Any, final: Any) -> pd.DataFrame:
    """One row per dataset both evaluations hold: the gain and its two terms (module docstring).

    ``base`` / ``final``: an evaluation folder, its sample rows (``read_samples``) or its format table.
    """
    b, f = _table(base).set_index("dataset"), _table(final).set_index("dataset")
    shared = [d for d in b.index if d in f.index]
    if not shared:
        raise ValueError(f"format_split: no dataset in both evaluations (base {list(b.index)}, final {list(f.index)})")
    return pd.DataFrame([{"dataset": d, **split_gain(b.loc[d], f.loc[d])} for d in shared], columns=SPLIT_COLUMNS)
