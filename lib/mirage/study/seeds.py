"""Seeds: per-seed values, their median, and a 95% CI over seeds AND problems.

A run's pass@1 varies with its training seed and with which test problems happen to be in the
set; a CI over problems alone (``mirage.passk.bootstrap_ci``) ignores the first. The study's CI
is a two-level percentile bootstrap over the per-problem table (``problems.parquet``):

    for each of ``n_boot`` (1000) draws:
        resample the S seeds with replacement;
        for each resampled seed, resample its m problems with replacement;
        statistic = the mean of the per-problem pass@1 (c / n) over every drawn (seed, problem),
                    or, for a gain, of (trained - base) on the SAME drawn problems, the base model
                    being measured once per model x task (one row per problem, no seed);
    CI = the 2.5th and 97.5th percentiles of the statistic.

The seeds of one cell are evaluated on the SAME problems (a crossed design), so drawing problems
independently per seed (the method above, ``resample="per_seed"``) counts the problem-to-problem
spread once per seed and gives a CI about sqrt(S) too narrow in its problem part when seeds
agree; ``resample="shared"`` draws one problem resample per draw for all its seeds, which keeps
that part at its one-test-set size, and is the default (``RESAMPLE``): on testbed-seeds its CIs
are a median 1.57x (up to 1.81x) wider than per-seed draws. Both are the problem-only bootstrap
with one seed.

Each seed contributes its final checkpoint (or the checkpoint of the ``step`` column when
asked per step). The point estimate reported with it is the median over seeds of the per-seed
mean (Oertell et al.: the clipping-bias effect shows in the median, not the mean); the mean is
reported too. With one seed the seed level draws nothing and the CI is exactly the problem-only
bootstrap of ``mirage.passk.bootstrap_ci`` with the same ``seed`` (the draws are made in the same
order). Deterministic for a fixed ``seed``.
"""

from __future__ import annotations

import re
import numpy as np

N_BOOT = 1000
ALPHA = 0.05
# "shared" (default): one problem resample per draw, for all its seeds (the seeds share the test set);
# "per_seed": problems drawn again for each resampled seed (too narrow by up to sqrt(S); kept to compare)
RESAMPLE = "shared"


def natural_key(text: str) -> tuple:
    """Sort key that orders "u2" < "u8" < "u16" < "u16_hi" (numbers compared as numbers)."""
    parts = [p for p in re.split(r"(\d+)", str(text)) if p]
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def two_level_bootstrap(values, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0,
                        resample: str | None = None) -> tuple[float, float]:
    """(low, high) percentile CI of the mean of ``values`` (seeds x problems), resampling seeds, then
    problems within each resampled seed (``resample`` "per_seed"; "shared": one problem draw for all
    the draw's seeds; default ``RESAMPLE``; module docstring)."""
    resample = resample or RESAMPLE
    if resample not in ("per_seed", "shared"):
        raise ValueError(f"two_level_bootstrap: resample must be 'per_seed' or 'shared', got {resample!r}")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or 0 in x.shape or np.isnan(x).any():
        raise ValueError(f"two_level_bootstrap: need a complete seeds x problems array, got shape {x.shape}"
                         f"{' with NaN' if x.size and np.isnan(x).any() else ''}")
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"two_level_bootstrap: need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    n_seeds, m = x.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 4_000_000 // (n_seeds * m)))  # bound memory: chunk x seeds x problems indices
    stats = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        # problems first: with one seed the stream is mirage.passk.bootstrap_ci's, draw for draw
        problems = rng.integers(0, m, size=(b, n_seeds if resample == "per_seed" else 1, m))
        seeds = rng.integers(0, n_seeds, size=(b, n_seeds)) if n_seeds > 1 else np.zeros((b, 1), dtype=np.int64)
        stats.append(x[seeds[:, :, None], problems].mean(axis=(1, 2)))
    low, high = np.quantile(np.concatenate(stats), [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def seed_summary(problems, gain: bool = False, eval_tag: str = "", per_step: bool = False, n_boot: int = N_BOOT,
                 seed: int = 0, resample: str | None = None):
    """One row per model x task x dataset x condition x regime (x step with ``per_step``): the per-seed
    values, their median and mean, and the two-level bootstrap CI (module docstring).

    ``problems``: the study's per-problem table (``mirage.study.load_problems``). ``gain``: the
    statistic is trained - base on the same problems. ``eval_tag``: "" (the preset's sampling:
    pass@1) or "greedy" (accuracy at T = 0). Without ``per_step`` each seed's last evaluated
    checkpoint is used. Columns: model, task, dataset, condition, regime, [step], seeds (count),
    values (per seed, in seed order), median, mean, ci_low, ci_high, n_problems.
    """
    import pandas as pd

    from mirage.study.results import BASE, RUN_KEYS, condition_order, with_defaults

    p = with_defaults(problems)
    p = p[p["eval_tag"].fillna("") == eval_tag].assign(score=lambda d: d["c"] / d["n"])
    keys = ["model", "task", "dataset"]
    base = p[p["condition"] == BASE].drop_duplicates(keys + ["problem_id"]).set_index(keys + ["problem_id"])["score"]
    trained = p[p["condition"] != BASE]
    if not per_step:
        last = trained.groupby(RUN_KEYS + ["dataset"], dropna=False)["step"].transform("max")
        trained = trained[trained["step"] == last]
    group_keys = keys + ["condition", "regime"] + (["step"] if per_step else [])
    rows = []
    for key, g in trained.groupby(group_keys, sort=False):
        matrix = g.pivot_table(index="seed", columns="problem_id", values="score", aggfunc="first").sort_index()
        if matrix.isna().any(axis=None):
            raise ValueError(f"seed_summary: the seeds of {dict(zip(group_keys, key))} were evaluated on different "
                             "problems; the bootstrap needs the same problems for every seed")
        if gain:
            b = base.reindex(pd.MultiIndex.from_tuples([(*key[:3], pid) for pid in matrix.columns]))
            if b.isna().any():
                raise ValueError(f"seed_summary: no base-model score for some problems of {dict(zip(group_keys, key))}")
            matrix = matrix - b.to_numpy()[None, :]
        values = matrix.mean(axis=1)
        low, high = two_level_bootstrap(matrix.to_numpy(), n_boot=n_boot, seed=seed, resample=resample)
        rows.append({**dict(zip(group_keys, key)), "seeds": len(values), "values": [float(v) for v in values],
                     "median": float(np.median(values)), "mean": float(values.mean()), "ci_low": low, "ci_high": high,
                     "n_problems": matrix.shape[1]})
    columns = group_keys + ["seeds", "values", "median", "mean", "ci_low", "ci_high", "n_problems"]
    out = pd.DataFrame(rows, columns=columns)
    order = {c: i for i, c in enumerate(condition_order(out["condition"]))}
    sort = out.assign(_c=out["condition"].map(order), _r=out["regime"].map(natural_key))
    sort = sort.sort_values(keys + ["_c", "_r"] + (["step"] if per_step else []))
    return sort.drop(columns=["_c", "_r"]).reset_index(drop=True)


def _interval(median: float, low: float, high: float, digits: int, signed: bool) -> str:
    sign = "+" if signed else ""  # a gain shows its sign throughout
    return f"{median:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def ci_table(summary, digits: int = 3, signed: bool = False):
    """A ``seed_summary`` as text, "median [low, high]" (``signed``: with + on positive values, for gains):
    per model x task x dataset one column per condition; where the study has regimes, one row per
    condition x regime instead (too many columns)."""
    from mirage.study.results import column_label

    text = [_interval(m, lo, hi, digits, signed)
            for m, lo, hi in zip(summary["median"], summary["ci_low"], summary["ci_high"])]
    s = summary.assign(text=text)
    if (s["regime"].fillna("") != "").any():
        s = s.rename(columns={"text": "median [95% CI]"})
        return s.set_index(["model", "task", "dataset", "condition", "regime"])[["seeds", "median [95% CI]"]]
    s = s.assign(column=[column_label(c, r) for c, r in zip(s["condition"], s["regime"])])
    table = s.pivot(index=["model", "task", "dataset"], columns="column", values="text")
    table = table[list(dict.fromkeys(s["column"]))].fillna("")
    table.columns.name = None
    return table


def ci_tables(problems, digits: int = 3, n_boot: int = N_BOOT):
    """Every seed summary a study has, stacked (index level ``statistic``): pass@1 and its gain over
    the base model, and, where greedy evaluations exist, greedy accuracy and its gain."""
    import pandas as pd

    from mirage.study.results import with_defaults

    frames = {}
    for tag in sorted(set(with_defaults(problems)["eval_tag"].fillna(""))):
        what = "greedy accuracy (T = 0)" if tag else "pass@1"
        for gain in (False, True):
            summary = seed_summary(problems, gain=gain, eval_tag=tag, n_boot=n_boot)
            if not summary.empty:
                frames[f"{what}{' gain over base' if gain else ''}"] = ci_table(summary, digits, signed=gain)
    if not frames:
        raise ValueError("ci_tables: no trained run in the per-problem table")
    return pd.concat(frames, names=["statistic"])


def seed_summaries(problems, n_boot: int = N_BOOT):
    """Every ``seed_summary`` of a study as one long table (``statistic`` column: pass@1, its gain, and
    greedy accuracy and its gain where evaluated): what ``publish`` writes as seed_summary.csv."""
    import pandas as pd

    from mirage.study.results import with_defaults

    frames = []
    for tag in sorted(set(with_defaults(problems)["eval_tag"].fillna(""))):
        what = "greedy" if tag else "pass@1"
        for gain in (False, True):
            summary = seed_summary(problems, gain=gain, eval_tag=tag, n_boot=n_boot)
            if not summary.empty:
                frames.append(summary.assign(statistic=f"{what}{' gain' if gain else ''}"))
    out = pd.concat(frames, ignore_index=True)
    out["values"] = [" ".join(f"{v:.4f}" for v in values) for values in out["values"]]  # per seed, in seed order
    return out[["statistic"] + [c for c in out.columns if c != "statistic"]]


def publish(study_dir, figures_dir, n_boot: int = N_BOOT) -> list:
    """Write the study's small tables beside its figures: results.csv (one row per model x task x
    condition x regime x seed x step x dataset x k) and seed_summary.csv (``seed_summaries``)."""
    from pathlib import Path

    from mirage.runs import atomic_path
    from mirage.study.results import load_problems, load_results

    figures_dir = Path(figures_dir)
    results = load_results(study_dir)[0]
    summaries = seed_summaries(load_problems(study_dir), n_boot)
    paths = []
    for name, frame in (("results.csv", results), ("seed_summary.csv", summaries)):
        with atomic_path(figures_dir / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.4f")
        paths.append(figures_dir / name)
    return paths


def seeds_per_run(results) -> int:
    """The largest number of seeds any model x task x condition x regime has (1: no seed CI to show)."""
    from mirage.study.results import BASE, with_defaults

    r = with_defaults(results)
    r = r[r["condition"] != BASE]
    if r.empty:
        return 0
    return int(r.groupby(["model", "task", "condition", "regime"])["seed"].nunique().max())
