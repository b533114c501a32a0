"""The alignment axis: each condition's gain along the base models' pass@k, per task (docs/science.md 6b).

Read from a finished study's own per-problem table (``problems.parquet``; ``mirage.study.load_problems``)
and, for the alignment k, its results table; nothing is trained or sampled. Three tables, written beside
the figures by ``publish_axis``:

``axis.csv`` (``axis_table``): one row per condition x model x task x dataset x regime. ``gain`` is the
mean over seeds of the pass@1 gain of the last checkpoint over the base model, with the interval of
section 2 (``mirage.study.seeds.seed_interval``: a t over seeds with the shared problems' variance
folded in) and its p; ``gain_holm`` says whether it survives Holm at 0.05 over its **family: the
condition's pairs** (every model x task x dataset of one condition x regime, 15 in testbed-axis), as
pre-registered. ``passk_change`` is the same for the per-problem pass@k (k = the preset's
``eval.alignment_k``, the axis; the unbiased estimator from each evaluation's n samples: 16 for a trained
checkpoint, 32 for the base model), with its own Holm over the same family. Beside them the base model's
pass@1 and pass@k (``base_pass_at_1``, ``base_pass_at_k``: means over the problems of the base rows, the
numbers the alignment step reports) and ``recovered`` = gain / the condition's baseline's gain (ratio of
the means over seeds) where that baseline (``Condition.baseline``) is in the study and gained >= 0.02.

``axis_correlations.csv`` (``axis_correlations``): per condition x regime x task x dataset, Spearman's
rho of the pairs' mean gain with base pass@k and, secondarily, with base pass@1 (ranks with ties
averaged), with its **exact permutation p**: every one of the n! orderings of the gains against the
fixed predictor (n = 7 or 8 pairs per task: 5,040 or 40,320). ``p_two_sided`` = the share of orderings
with |rho| >= the observed |rho| (a perfectly ordered 7-vector: 2 / 5040); ``p_increasing`` = the share
with rho >= the observed rho (one-sided, in the alignment reading's direction: gain rising with
alignment; 1 / 5040 for the perfect order). ``holm_survives``: Holm at 0.05 on ``p_two_sided`` over
the rows of one predictor (every condition x task of the study). No interval for rho: with 7-8 pairs
only a (near-)perfect ordering can be told from chance, so "no relation" is never read from it.

``axis_contrasts.csv`` (``condition_contrasts``): per pair, the difference between two conditions'
mean effects (e.g. PSR's pass@k change minus NSR's), with ``difference_interval``. A condition may come
from a second study (``reference_study``: testbed-axis-extra's PSR against testbed-axis's NSR); each
study's gains are taken against its own base rows, so the difference is of gains.

``difference_interval`` (also the noise axis's, ``mirage.study.noise``): two cells whose seeds are
independent training runs evaluated on the same m problems, x (S_a x m) and y (S_b x m) per-problem
gains. The difference of the means has three sources of error, each with its own t quantile as in
section 2 (Banerjee's interval for a sum of variance components):

    v_a    = var_s(x seed means) / S_a          (S_a - 1 df)
    v_b    = var_s(y seed means) / S_b          (S_b - 1 df)
    v_prob = var_j(x[:, j].mean() - y[:, j].mean()) / m     (m - 1 df: the paired per-problem
                                                difference of the seed means; the shared problems'
                                                variance cancels in it where the two cells agree)
    CI     = diff -+ sqrt(t_{S_a-1}^2 v_a + t_{S_b-1}^2 v_b + t_{m-1}^2 v_prob)

and p, the largest level at which it still contains 0 (as ``seed_interval``'s). A cell with one seed
contributes no seed term (and says nothing about seeds).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from mirage.conditions import get_condition
from mirage.passk import pass_at_k
from mirage.runs import atomic_path
from mirage.study.results import BASE, RUN_KEYS, condition_order, load_problems, load_results, with_defaults
from mirage.study.seeds import ALPHA, P_FLOOR, holm, seed_interval, t_quantile

KEYS = ["condition", "model", "task", "dataset", "regime"]  # one cell of the axis (seeds pooled)
STATISTICS = ("pass@1", "pass@k")
MIN_BASELINE_GAIN = 0.02  # docs/science.md section 2: a "fraction recovered" needs the baseline to gain this much
MAX_PERMUTED = 10  # an exact permutation p enumerates n! orderings: 10! = 3,628,800 is the most allowed
AXIS_COLUMNS = KEYS + ["seeds", "n_problems", "k", "base_pass_at_1", "base_pass_at_k", "gain", "gain_ci_low",
                       "gain_ci_high", "gain_p", "gain_holm", "family_size", "gain_median", "gain_values",
                       "passk_change", "passk_change_ci_low", "passk_change_ci_high", "passk_change_p",
                       "passk_change_holm", "baseline", "baseline_gain", "recovered"]
CORRELATION_COLUMNS = ["condition", "regime", "task", "dataset", "predictor", "outcome", "pairs", "rho",
                       "p_two_sided", "p_increasing", "holm_survives", "family_size"]
CONTRAST_COLUMNS = ["contrast", "statistic", "condition_a", "condition_b", "model", "task", "dataset", "regime",
                    "base_pass_at_k", "seeds_a", "seeds_b", "mean_a", "mean_b", "difference", "ci_low", "ci_high",
                    "se", "p", "holm_survives", "family_size", "n_problems"]


# --- per-problem scores and gains -------------------------------------------------------------------
def _scores(p: pd.DataFrame, statistic: str, k: int | None) -> np.ndarray:
    """Per row: pass@1 (c / n) or the unbiased pass@k from the row's n samples."""
    if statistic == "pass@1":
        return (p["c"] / p["n"]).to_numpy(dtype=np.float64)
    if statistic != "pass@k":
        raise ValueError(f"axis: statistic must be one of {STATISTICS}, got {statistic!r}")
    if k is None or int(k) != k or k < 1:
        raise ValueError(f"axis: pass@k needs a whole k >= 1, got {k!r}")
    short = p[p["n"] < k]
    if not short.empty:
        row = short.iloc[0]
        raise ValueError(f"axis: pass@{k} needs n >= {k} samples per problem; {row['model']} x {row['task']} "
                         f"{row['condition']} seed {row['seed']} step {row['step']} has n = {row['n']}")
    return np.asarray(pass_at_k(p["n"].to_numpy(), p["c"].to_numpy(), int(k)), dtype=np.float64)


def _default_rows(problems) -> pd.DataFrame:
    p = with_defaults(problems)
    missing = [c for c in ("model", "task", "condition", "seed", "step", "dataset", "problem_id", "n", "c")
               if c not in p.columns]
    if missing:
        raise KeyError(f"axis: the per-problem table has no column(s) {missing}")
    return p[p["eval_tag"].fillna("") == ""]


def base_levels(problems, k: int) -> pd.DataFrame:
    """Per model x task x dataset: the base model's pass@1 and pass@k (means over its problems)."""
    p = _default_rows(problems)
    base = p[p["condition"] == BASE].drop_duplicates(["model", "task", "dataset", "problem_id"])
    base = base.assign(_p1=_scores(base, "pass@1", None), _pk=_scores(base, "pass@k", k))
    out = base.groupby(["model", "task", "dataset"])[["_p1", "_pk"]].mean()
    return out.rename(columns={"_p1": "base_pass_at_1", "_pk": "base_pass_at_k"})


def gain_matrices(problems, statistic: str = "pass@1", k: int | None = None) -> dict[tuple, pd.DataFrame]:
    """{(condition, model, task, dataset, regime): seeds x problems} of per-problem gains: the last
    checkpoint's per-problem ``statistic`` ("pass@1", or "pass@k" at ``k``) minus the base model's on the
    same problem. Every seed of a cell must hold the same problems, each with a base row (an error names
    the cell otherwise)."""
    p = _default_rows(problems)
    p = p.assign(_score=_scores(p, statistic, k)) if not p.empty else p.assign(_score=[])
    base = p[p["condition"] == BASE].drop_duplicates(["model", "task", "dataset", "problem_id"])
    base = base.set_index(["model", "task", "dataset", "problem_id"])["_score"]
    trained = p[p["condition"] != BASE]
    last = trained.groupby(RUN_KEYS + ["dataset"], dropna=False)["step"].transform("max")
    trained = trained[trained["step"] == last]
    out = {}
    for key, g in trained.groupby(KEYS, sort=True):
        matrix = g.pivot_table(index="seed", columns="problem_id", values="_score", aggfunc="first").sort_index()
        if matrix.isna().any(axis=None):
            raise ValueError(f"axis: the seeds of {dict(zip(KEYS, key))} were evaluated on different problems")
        b = base.reindex(pd.MultiIndex.from_tuples([(key[1], key[2], key[3], pid) for pid in matrix.columns]))
        if b.isna().any():
            raise ValueError(f"axis: no base-model score for some problems of {dict(zip(KEYS, key))}")
        out[key] = matrix - b.to_numpy()[None, :]
    return out


# --- intervals ------------------------------------------------------------------------------------
def _half_width(components, alpha: float) -> float:
    return float(np.sqrt(sum(t_quantile(df, alpha) ** 2 * v for v, df in components if df >= 1)))


def _p_value(mean: float, components) -> float:
    """The largest alpha at which the interval still contains 0 (bisection in log alpha)."""
    if sum(v for v, df in components if df >= 1) == 0:
        return 1.0 if mean == 0 else P_FLOOR
    if abs(mean) >= _half_width(components, P_FLOOR):
        return P_FLOOR
    if abs(mean) <= _half_width(components, 0.999999):
        return 1.0
    low, high = np.log(P_FLOOR), np.log(0.999999)
    for _ in range(36):
        mid = (low + high) / 2
        low, high = (mid, high) if _half_width(components, float(np.exp(mid))) > abs(mean) else (low, mid)
    return float(np.exp((low + high) / 2))


def difference_interval(x, y, alpha: float = ALPHA, with_p: bool = True) -> dict:
    """mean(x) - mean(y) for two cells of independent seeds on the same problems (seeds x problems each,
    columns aligned: the same problem in the same column), with its interval and p (module docstring):
    difference, se, ci_low, ci_high, p (NaN without ``with_p``), mean_a, mean_b."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or 0 in a.shape or 0 in b.shape or a.shape[1] != b.shape[1]:
        raise ValueError(f"difference_interval: need two seeds x problems arrays on the same problems, got shapes "
                         f"{a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("difference_interval: NaN or inf in the per-problem values")
    m = a.shape[1]
    if m < 2:
        raise ValueError(f"difference_interval: need >= 2 problems, got {m}")
    diff = float(a.mean() - b.mean())
    components = [(a.mean(axis=1).var(ddof=1) / a.shape[0] if a.shape[0] > 1 else 0.0, a.shape[0] - 1),
                  (b.mean(axis=1).var(ddof=1) / b.shape[0] if b.shape[0] > 1 else 0.0, b.shape[0] - 1),
                  ((a.mean(axis=0) - b.mean(axis=0)).var(ddof=1) / m, m - 1)]
    half = _half_width(components, alpha)
    return dict(difference=diff, se=float(np.sqrt(sum(v for v, _ in components))), ci_low=diff - half,
                ci_high=diff + half, p=_p_value(diff, components) if with_p else float("nan"),
                mean_a=float(a.mean()), mean_b=float(b.mean()))


def aligned(x: pd.DataFrame, y: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Two seeds x problems frames as arrays over the same problems, in the same column order."""
    if set(x.columns) != set(y.columns):
        raise ValueError(f"{what}: the two cells were evaluated on different problems "
                         f"({len(x.columns)} vs {len(y.columns)} problem ids)")
    return x.to_numpy(dtype=np.float64), y[list(x.columns)].to_numpy(dtype=np.float64)


def holm_by(frame: pd.DataFrame, p_column: str, by: list[str]) -> tuple[pd.Series, pd.Series]:
    """Holm (``mirage.study.seeds.holm``) within each group of ``by``: (survives, family size)."""
    survives = pd.Series(False, index=frame.index, dtype="boolean")
    size = pd.Series(0, index=frame.index, dtype="int64")
    for _, g in frame.groupby(by, sort=False, dropna=False):
        survives.loc[g.index] = holm(g[p_column].to_numpy(dtype=np.float64))
        size.loc[g.index] = int(g[p_column].notna().sum())
    return survives, size


# --- the axis table ---------------------------------------------------------------------------------
def alignment_k(results) -> int:
    """The study's alignment k (``align_k`` of its results table: the preset's ``eval.alignment_k``)."""
    ks = sorted({int(v) for v in with_defaults(results)["align_k"].dropna()})
    if len(ks) != 1:
        raise ValueError(f"axis: the results table should have one alignment k, has {ks}")
    return ks[0]


def _sort(frame: pd.DataFrame, by_alignment: str) -> pd.DataFrame:
    order = {c: i for i, c in enumerate(condition_order(frame["condition"]))}
    frame = frame.assign(_c=frame["condition"].map(order))
    return frame.sort_values(["_c", "regime", "task", "dataset", by_alignment, "model"]).drop(columns="_c")


def axis_table(problems, k: int) -> pd.DataFrame:
    """``AXIS_COLUMNS``, one row per condition x model x task x dataset x regime (module docstring)."""
    levels = base_levels(problems, k)
    gains, changes = gain_matrices(problems, "pass@1"), gain_matrices(problems, "pass@k", k)
    rows = []
    for key, matrix in gains.items():
        ci, ck = seed_interval(matrix.to_numpy()), seed_interval(changes[key].to_numpy())
        values = matrix.mean(axis=1)
        level = levels.loc[key[1:4]]
        rows.append({**dict(zip(KEYS, key)), "seeds": len(values), "n_problems": matrix.shape[1], "k": int(k),
                     "base_pass_at_1": float(level["base_pass_at_1"]), "base_pass_at_k": float(level["base_pass_at_k"]),
                     "gain": ci["mean"], "gain_ci_low": ci["ci_low"], "gain_ci_high": ci["ci_high"], "gain_p": ci["p"],
                     "gain_median": float(np.median(values)), "gain_values": " ".join(f"{v:.4f}" for v in values),
                     "passk_change": ck["mean"], "passk_change_ci_low": ck["ci_low"],
                     "passk_change_ci_high": ck["ci_high"], "passk_change_p": ck["p"]})
    out = pd.DataFrame(rows, columns=[c for c in AXIS_COLUMNS if c not in
                                      ("gain_holm", "family_size", "passk_change_holm", "baseline", "baseline_gain",
                                       "recovered")])
    if out.empty:
        return pd.DataFrame(columns=AXIS_COLUMNS)
    out["gain_holm"], out["family_size"] = holm_by(out, "gain_p", ["condition", "regime"])
    out["passk_change_holm"] = holm_by(out, "passk_change_p", ["condition", "regime"])[0]
    out["baseline"] = [get_condition(c).baseline for c in out["condition"]]
    own = out.set_index(["condition", "model", "task", "dataset", "regime"])["gain"]
    base_gain = [own.get((b, m, t, d, r), np.nan) if b and b != c else np.nan
                 for c, b, m, t, d, r in out[["condition", "baseline", "model", "task", "dataset", "regime"]].itertuples(
                     index=False)]
    out["baseline_gain"] = base_gain
    out["recovered"] = np.where(out["baseline_gain"] >= MIN_BASELINE_GAIN, out["gain"] / out["baseline_gain"], np.nan)
    return _sort(out[AXIS_COLUMNS], "base_pass_at_k").reset_index(drop=True)


# --- rank correlation with an exact permutation p ---------------------------------------------------
def _ranks(values) -> np.ndarray:
    return pd.Series(np.asarray(values, dtype=np.float64)).rank(method="average").to_numpy()


def rank_correlation(x, y) -> dict:
    """Spearman's rho of ``x`` and ``y`` (ranks with ties averaged) and its exact permutation p over all n!
    orderings of y against x: p_two_sided (|rho| at least the observed) and p_increasing (rho at least the
    observed). rho and both p are NaN where either vector is constant or n < 3."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"rank_correlation: need two 1-D vectors of one length, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("rank_correlation: NaN or inf in the values")
    n = len(x)
    if n > MAX_PERMUTED:
        raise ValueError(f"rank_correlation: an exact permutation p over {n}! orderings is too many (at most "
                         f"{MAX_PERMUTED} values)")
    nan = dict(rho=float("nan"), p_two_sided=float("nan"), p_increasing=float("nan"), n=n)
    rx, ry = _ranks(x) - (n + 1) / 2, _ranks(y) - (n + 1) / 2
    norm = float(np.sqrt((rx ** 2).sum() * (ry ** 2).sum()))
    if n < 3 or norm == 0:
        return nan
    rho = float((rx * ry).sum() / norm)
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.int8)
    null = (ry[perms] * rx[None, :]).sum(axis=1) / norm
    tol = 1e-9  # the same rho computed from another ordering may differ in its last bits
    return dict(rho=rho, p_two_sided=float((np.abs(null) >= abs(rho) - tol).mean()),
                p_increasing=float((null >= rho - tol).mean()), n=n)


PREDICTORS = {"base pass@k": "base_pass_at_k", "base pass@1": "base_pass_at_1"}


def axis_correlations(axis: pd.DataFrame, outcome: str = "gain") -> pd.DataFrame:
    """``CORRELATION_COLUMNS``: per condition x regime x task x dataset and predictor (base pass@k, base
    pass@1; the predictor label names k), rho of the pairs' mean ``outcome`` with it and its exact
    permutation p (``rank_correlation``); Holm over the rows of one predictor (module docstring). ``axis`` may
    be a committed axis.csv read back (``pd.read_csv``): the correlations need nothing else."""
    axis = axis.assign(regime=axis["regime"].fillna("").astype(str))  # axis.csv read back: "" is NaN there
    rows = []
    for (condition, regime, task, dataset), g in axis.groupby(["condition", "regime", "task", "dataset"], sort=False):
        for label, column in PREDICTORS.items():
            r = rank_correlation(g[column], g[outcome])
            k = int(g["k"].iloc[0])
            rows.append(dict(condition=condition, regime=regime, task=task, dataset=dataset,
                             predictor=label.replace("@k", f"@{k}"), outcome=outcome, pairs=r["n"], rho=r["rho"],
                             p_two_sided=r["p_two_sided"], p_increasing=r["p_increasing"]))
    out = pd.DataFrame(rows, columns=[c for c in CORRELATION_COLUMNS if c not in ("holm_survives", "family_size")])
    if out.empty:
        return pd.DataFrame(columns=CORRELATION_COLUMNS)
    out["holm_survives"], out["family_size"] = holm_by(out, "p_two_sided", ["predictor", "outcome"])
    return out[CORRELATION_COLUMNS]


# --- contrasts between two conditions, possibly of two studies --------------------------------------
def condition_contrasts(problems, contrasts: Mapping[str, list], k: int, reference_problems=None
                        ) -> tuple[pd.DataFrame, list[str]]:
    """(``CONTRAST_COLUMNS``, notes). ``contrasts``: {label: [condition_a, condition_b, statistic]} with
    statistic "pass@1" (the gain) or "pass@k" (the pass@k change at ``k``); per pair both conditions hold,
    mean_a - mean_b with ``difference_interval``, Holm over the rows of one contrast. A condition missing from
    the study is looked up in ``reference_problems`` (another study of the same pairs and test sets; its
    gains against its own base rows); a contrast with a condition in neither is left out with a note."""
    rows, notes = [], []
    cache: dict = {}

    def matrices(table, statistic):
        key = (id(table), statistic)
        if key not in cache:
            cache[key] = gain_matrices(table, statistic, k if statistic == "pass@k" else None)
        return cache[key]

    levels = base_levels(problems, k)
    for label, spec in contrasts.items():
        if not isinstance(spec, (list, tuple)) or len(spec) != 3 or spec[2] not in STATISTICS:
            raise ValueError(f"contrasts: {label!r} must be [condition_a, condition_b, statistic in {STATISTICS}], "
                             f"got {spec!r}")
        cond_a, cond_b, statistic = spec
        sources = {}
        for cond in (cond_a, cond_b):
            for table in (problems, reference_problems):
                found = {} if table is None else {key[1:]: m for key, m in matrices(table, statistic).items()
                                                  if key[0] == cond}
                if found:
                    sources[cond] = found
                    break
        missing = [c for c in (cond_a, cond_b) if c not in sources]
        if missing:
            notes.append(f"{label}: no {' or '.join(missing)} cell in this study"
                         f"{'' if reference_problems is None else ' or its reference study'}: left out")
            continue
        for pair in sorted(set(sources[cond_a]) & set(sources[cond_b])):
            x, y = aligned(sources[cond_a][pair], sources[cond_b][pair], f"contrast {label} on {pair}")
            ci = difference_interval(x, y)
            model, task, dataset, regime = pair
            rows.append(dict(contrast=label, statistic=statistic, condition_a=cond_a, condition_b=cond_b, model=model,
                             task=task, dataset=dataset, regime=regime,
                             base_pass_at_k=float(levels.loc[(model, task, dataset), "base_pass_at_k"])
                             if (model, task, dataset) in levels.index else float("nan"),
                             seeds_a=x.shape[0], seeds_b=y.shape[0], mean_a=ci["mean_a"], mean_b=ci["mean_b"],
                             difference=ci["difference"], ci_low=ci["ci_low"], ci_high=ci["ci_high"], se=ci["se"],
                             p=ci["p"], n_problems=x.shape[1]))
    out = pd.DataFrame(rows, columns=[c for c in CONTRAST_COLUMNS if c not in ("holm_survives", "family_size")])
    if out.empty:
        return pd.DataFrame(columns=CONTRAST_COLUMNS), notes
    out["holm_survives"], out["family_size"] = holm_by(out, "p", ["contrast"])
    counts = sorted(set(out["seeds_a"]) | set(out["seeds_b"]))
    if len(counts) > 1:  # e.g. a reference study still running
        notes.append(f"contrasts draw on cells of {counts} seeds (a study still running, or a failed cell): "
                     "see seeds_a / seeds_b")
    out = out[CONTRAST_COLUMNS].sort_values(["contrast", "task", "dataset", "regime", "base_pass_at_k", "model"],
                                            kind="stable")
    return out.reset_index(drop=True), notes


# --- the study's files ------------------------------------------------------------------------------
def reference_dir(study_dir: str | os.PathLike, reference: str | os.PathLike) -> Path | None:
    """The reference study of a contrast: "" -> None; an absolute path as is; a relative one beside
    ``study_dir`` (a sibling study folder, e.g. "testbed-axis" for study/testbed-axis-extra)."""
    if not str(reference):
        return None
    path = Path(reference).expanduser()
    return path if path.is_absolute() else Path(study_dir).parent / path


def write_csv(frame: pd.DataFrame, path: str | os.PathLike, significant: tuple = ()) -> Path:
    """``frame`` as CSV at ``path`` (atomic; 4 decimals as every table beside the figures; p, and the columns
    named in ``significant``, with 3 significant digits: %.4f would write a small p or clip fraction as 0.0000)."""
    path = Path(path)
    frame = frame.copy()
    for column in [c for c in frame.columns if c == "p" or c.endswith("_p") or c.startswith("p_") or c in significant]:
        frame[column] = ["" if pd.isna(v) else f"{v:.3g}" for v in frame[column]]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4f")
    return path


def seed_notes(table: pd.DataFrame, column: str = "seeds") -> list[str]:
    """A line naming the cells with fewer seeds than the most any cell has (a study still running, or a
    failed cell), or none."""
    if table.empty or table[column].nunique() <= 1:
        return []
    most = int(table[column].max())
    short = table[table[column] < most]
    cells = ", ".join(f"{r.condition} {r.model} x {r.task}{' @' + r.regime if r.regime else ''} ({getattr(r, column)})"
                      for r in short.itertuples())
    return [f"{len(short)} cell(s) have fewer than {most} seeds: {cells}"]


def publish_axis(study_dir: str | os.PathLike, figures_dir: str | os.PathLike, reference_study: str = "",
                 contrasts: Mapping[str, list] | None = None) -> dict:
    """Compute and write axis.csv, axis_correlations.csv and (when a contrast could be computed)
    axis_contrasts.csv beside the figures; return {"axis", "correlations", "contrasts", "notes", "paths"}.
    ``reference_study``: another study the contrasts may draw a condition from (``reference_dir``); missing
    or not yet analysed (no problems.parquet), it is noted and the contrasts needing it are left out."""
    problems = load_problems(study_dir)
    k = alignment_k(load_results(study_dir)[0])
    axis = axis_table(problems, k)
    correlations = axis_correlations(axis)
    notes, reference = seed_notes(axis), reference_dir(study_dir, reference_study)
    ref_problems = None
    if reference is not None:
        if (reference / "problems.parquet").exists():
            ref_problems = load_problems(reference)
        else:
            notes.append(f"reference study {reference}: no problems.parquet yet (not run or not analysed); "
                         "contrasts that need it are left out")
    table, more = condition_contrasts(problems, dict(contrasts or {}), k, ref_problems)
    notes += more
    figures_dir = Path(figures_dir)
    paths = [write_csv(axis, figures_dir / "axis.csv"), write_csv(correlations, figures_dir / "axis_correlations.csv")]
    stale = figures_dir / "axis_contrasts.csv"
    if not table.empty:
        paths.append(write_csv(table, stale))
    elif stale.exists():  # an earlier run's contrasts no longer hold: no table rather than a wrong one
        stale.unlink()
        notes.append(f"{stale}: removed (no contrast could be computed this time)")
    return dict(axis=axis, correlations=correlations, contrasts=table, notes=notes, paths=paths)
