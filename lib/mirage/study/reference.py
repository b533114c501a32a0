"""A study's tables against the committed ones (``figures/<preset>/*.csv`` of the checkout).

What is guaranteed (README, docs/study.md): the same bytes on one machine, and on every
x86-64 machine with AVX2 (``mirage.cpu_kernels`` pins torch's kernels; pass@k is computed
exactly); elsewhere (ARM, a CPU without AVX2, ``MIRAGE_CPU_KERNELS=native``) every number within
``TOLERANCE`` of the committed tables is what to expect. The study writes its figures and
tables inside its own folder and ends by comparing them here, so running it never changes the
checkout; ``--figures figures/<preset>`` publishes over the committed ones on purpose.

``compare`` reads two CSV tables as text: columns that hold numbers (a number per cell, or
several separated by spaces, as seed_summary.csv's per-seed ``values``) are compared within the
tolerance, every other column exactly; rows are compared in order (the study writes them sorted).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from mirage.study.cell import checkout

# Absolute, on every number of the tables (pass@k, CIs, gains, alignment, predictors). Measured:
# torch's AVX-512 vs AVX2 kernels (unpinned) changed one sample in 3,200 of one of testbed-quick's
# 30 cells: its pass@k by at most 7.1e-4, a bootstrap CI bound by 2.2e-3. 0.01 is 4.5x that
# (32 samples in 3,200 at pass@1).
TOLERANCE = 0.01


@dataclass
class TableCheck:
    """One table: "identical" (same bytes), "within" (tolerance), "differs", or "missing" (not written here)."""

    name: str
    status: str
    max_diff: float = 0.0  # largest absolute difference of a number
    changed: int = 0  # numbers that differ at all
    beyond: list[str] = field(default_factory=list)  # where a number differs by more than the tolerance, or text


def committed_dir(preset_name: str, home: str | os.PathLike | None = None) -> Path | None:
    """The checkout's committed ``figures/<preset>`` folder, if it holds tables (``home``: the checkout)."""
    root = Path(home) if home else checkout()
    folder = root / "figures" / preset_name if root else None
    return folder if folder and any(folder.glob("*.csv")) else None


def _numbers(cell: str) -> list[float] | None:
    try:
        values = [float(v) for v in cell.split()]
    except ValueError:
        return None
    return values if values and all(math.isfinite(v) for v in values) else None


def compare_table(new: Path, ref: Path, tolerance: float = TOLERANCE) -> TableCheck:
    import csv

    name = ref.name
    if not new.exists():
        return TableCheck(name, "missing")
    if new.read_bytes() == ref.read_bytes():
        return TableCheck(name, "identical")
    with open(new, newline="", encoding="utf-8") as f:
        new_rows = list(csv.reader(f))
    with open(ref, newline="", encoding="utf-8") as f:
        ref_rows = list(csv.reader(f))
    check = TableCheck(name, "within")
    if not new_rows or not ref_rows or new_rows[0] != ref_rows[0] or len(new_rows) != len(ref_rows):
        check.status = "differs"
        check.beyond.append(f"other columns or row count ({len(new_rows) - 1} rows vs {len(ref_rows) - 1} committed)")
        return check
    header = ref_rows[0]
    for i, (a, b) in enumerate(zip(new_rows[1:], ref_rows[1:]), start=2):
        for col, x, y in zip(header, a, b):
            if x == y:
                continue
            xs, ys = _numbers(x), _numbers(y)
            if xs is None or ys is None or len(xs) != len(ys):
                check.beyond.append(f"line {i} {col}: {x!r} (committed {y!r})")
                continue
            diff = max(abs(p - q) for p, q in zip(xs, ys))
            check.changed += 1
            check.max_diff = max(check.max_diff, diff)
            if diff > tolerance:
                check.beyond.append(f"line {i} {col}: {x} (committed {y})")
    if check.beyond:
        check.status = "differs"
    return check


def compare(new_dir: str | os.PathLike, ref_dir: str | os.PathLike, tolerance: float = TOLERANCE) -> list[TableCheck]:
    """Every CSV table of ``ref_dir`` against the one of the same name in ``new_dir``."""
    return [compare_table(Path(new_dir) / ref.name, ref, tolerance) for ref in sorted(Path(ref_dir).glob("*.csv"))]


def report(checks: list[TableCheck], ref_dir: str | os.PathLike, tolerance: float = TOLERANCE,
           examples: int = 5) -> list[str]:
    """Lines for the study's summary: one per table, and the first ``examples`` differences beyond tolerance."""
    lines = [f"[study] compared with the committed tables in {ref_dir} (tolerance {tolerance} on every number):"]
    for c in checks:
        if c.status == "identical":
            lines.append(f"    {c.name}: identical bytes")
        elif c.status == "missing":
            lines.append(f"    {c.name}: not written by this study")
        elif c.status == "within":
            lines.append(f"    {c.name}: equal within tolerance ({c.changed} numbers differ, max |diff| "
                         f"{c.max_diff:.2g}); committed file left as it is")
        else:
            lines.append(f"    {c.name}: DIFFERS beyond tolerance ({len(c.beyond)} entries; max |diff| {c.max_diff:.2g})")
            lines += [f"        {b}" for b in c.beyond[:examples]]
            if len(c.beyond) > examples:
                lines.append(f"        ... and {len(c.beyond) - examples} more")
    return lines


def log_comparison(preset_name: str, figures_dir: str | os.PathLike, log=print,
                   home: str | os.PathLike | None = None) -> list[TableCheck] | None:
    """Compare a study's tables (in ``figures_dir``) with the committed ones of its preset and log it;
    None (and nothing logged) when there are none, or when ``figures_dir`` is that committed folder."""
    ref = committed_dir(preset_name, home)
    if ref is None or ref.resolve() == Path(figures_dir).resolve():
        return None
    checks = compare(figures_dir, ref)
    for line in report(checks, ref):
        log(line)
    return checks
