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
from mirage.runs import atomic_path
from mirage.study.results import BASE, RUN_KEYS, load_problems, with_defaults
from mirage.study.seeds import seed_summary
from mirage.testbed.pretrain import SHIPPED

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


# --- a study's split: per cell and seed, and over seeds with intervals --------------------------------
# format_summary.csv's statistics: (name, per-problem count, gain over the base model?). Each gain is one
# Holm family over every model x task x dataset x condition x regime of the study, like seed_summary.csv's.
SUMMARY_STATISTICS = [("pass@1 gain", "c", True), ("format rate change", "f", True),
                      ("answers better", "a", True), ("learned format", "c_minus_a", True),
                      ("pass@1", "c", False), ("format rate", "f", False), ("format-free accuracy", "a", False)]
STUDY_SPLIT_COLUMNS = ["model", "task", "dataset", "condition", "regime", "seed", "step"] + SPLIT_COLUMNS[1:]


def _format_problems(problems) -> pd.DataFrame:
    """The per-problem table's default evaluation (eval_tag ""), checked to hold f and a for every row."""

    p = with_defaults(problems)
    p = p[p["eval_tag"].fillna("") == ""]
    missing = [c for c in ("f", "a") if c not in p.columns]
    if missing:
        raise KeyError(f"format_split: the per-problem table has no {missing} column(s): a study analysed before "
                       "they existed (rerun its analysis: mirage study ... --stage analysis --force-analysis)")
    if p[["f", "a"]].isna().any(axis=None):
        raise ValueError("format_split: some evaluations have no format-free reading (a column a is NaN): the "
                         "split needs it for every sample")
    return p


def has_format_counts(problems) -> bool:
    """Whether a per-problem table can be split: f and a present and defined for every default evaluation."""
    try:
        _format_problems(problems)
    except (KeyError, ValueError):
        return False
    return True


def study_split(problems) -> pd.DataFrame:
    """``STUDY_SPLIT_COLUMNS``: per model x task x dataset x condition x regime x seed, the last checkpoint's
    split against the base model (module docstring), each share a mean over the problems of the per-problem
    share (pass@1's estimator), on the problems both evaluations hold."""

    p = _format_problems(problems).assign(P=lambda d: d["c"] / d["n"], F=lambda d: d["f"] / d["n"],
                                          A=lambda d: d["a"] / d["n"])
    keys = ["model", "task", "dataset"]
    base = p[p["condition"] == BASE].drop_duplicates(keys + ["problem_id"]).set_index(keys + ["problem_id"])
    trained = p[p["condition"] != BASE]
    trained = trained[trained["step"] == trained.groupby(RUN_KEYS + ["dataset"], dropna=False)["step"].transform("max")]
    rows = []
    for key, g in trained.groupby(keys + ["condition", "regime", "seed", "step"], sort=True):
        b = base.reindex([(*key[:3], pid) for pid in g["problem_id"]])
        if b["P"].isna().any():
            raise ValueError(f"format_split: no base-model row for some problems of {dict(zip(keys, key[:3]))}")
        split = split_gain({"pass_at_1": b["P"].mean(), "format_rate": b["F"].mean(), "format_free_accuracy": b["A"].mean()},
                           {"pass_at_1": g["P"].mean(), "format_rate": g["F"].mean(), "format_free_accuracy": g["A"].mean()})
        rows.append({**dict(zip(keys + ["condition", "regime", "seed", "step"], key)), **split})
    return pd.DataFrame(rows, columns=STUDY_SPLIT_COLUMNS)


def format_summary(problems) -> pd.DataFrame:
    """Over seeds, per model x task x dataset x condition x regime: each ``SUMMARY_STATISTICS`` entry's
    mean with its 95% interval over seeds and problems, p and Holm (``mirage.study.seeds.seed_summary``,
    with the statistic's per-problem count), and ``base``, the base model's value of a level statistic."""

    p = _format_problems(problems)
    p = p.assign(c_minus_a=p["c"] - p["a"])  # pass@1 minus format-free accuracy: minus the share lost to the format
    keys = ["model", "task", "dataset"]
    base = p[p["condition"] == BASE].drop_duplicates(keys + ["problem_id"])
    frames = []
    for name, count, gain in SUMMARY_STATISTICS:
        summary = seed_summary(p, gain=gain, count=count)
        if not gain:
            level = (base.assign(_s=base[count] / base["n"]).groupby(keys)["_s"].mean().rename("base"))
            summary = summary.join(level, on=keys)
        frames.append(summary.assign(statistic=name))
    out = pd.concat(frames, ignore_index=True)
    out["values"] = [" ".join(f"{v:.4f}" for v in values) for values in out["values"]]
    out["p"] = ["" if pd.isna(v) else f"{v:.3g}" for v in out["p"]]
    return out[["statistic"] + [c for c in out.columns if c != "statistic"]]


def publish_format(study_dir: str | os.PathLike, figures_dir: str | os.PathLike) -> list[Path]:
    """Write format.csv (``study_split``) and format_summary.csv (``format_summary``) beside the figures;
    nothing (an empty list) when the study's per-problem table cannot be split (``has_format_counts``)."""

    problems = load_problems(study_dir)
    if not has_format_counts(problems):
        return []
    paths = []
    for name, frame in (("format.csv", study_split(problems)), ("format_summary.csv", format_summary(problems))):
        with atomic_path(Path(figures_dir) / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.4f")
        paths.append(Path(figures_dir) / name)
    return paths


def format_dial_labels(models) -> dict[str, str]:
    """A tick label per model: its name and, for a shipped testbed model, its toy-math format-break share F
    (``mirage.testbed.pretrain``); a model that is not shipped keeps its name."""

    return {m: f"{m}\nF = {SHIPPED[m].broken_share('toy-math'):g}" if m in SHIPPED else str(m)
            for m in dict.fromkeys(models)}
