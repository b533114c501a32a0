"""Seeds: per-seed values, their mean with a 95% interval over seeds AND problems, and Holm.

A cell's effect is the **mean over its S seeds** of the per-seed statistic: pass@1 of the final
checkpoint on the test set, or its gain, pass@1(trained) - pass@1(base), paired per problem (the base
model is measured once per model x task, one row per problem, no seed). The interval is for the same
quantity (``seed_interval``). The seeds of a cell are evaluated on the SAME m problems, so with
x[s, j] the score (or gain) of seed s on problem j the mean has two sources of error, the training
seeds and the sample of test problems (the evaluation's sampling noise is in both):

    v_seed = var_s(x[s, :].mean()) / S         (sample variance of the S seed means, ddof 1; S - 1 df)
    v_prob = var_j(x[:, j].mean()) / m         (of the m problem means, averaged over seeds; m - 1 df)
    CI     = mean -+ sqrt(t_{S-1}^2 v_seed + t_{m-1}^2 v_prob)       (t_d: two-sided 95% quantile)

The first term alone is the t-interval over seeds: it covers the mean on THIS test set, but the seeds
share their problems, so it misses the problem-sampling variance of the test set when the estimand is
the population of problems; the second term adds it (with the base model's per-problem noise, shared by
every seed). Under a two-way random-effects model x = mu + a_s + b_j + e_sj the two terms estimate
var(a)/S + var(b)/m + 2 var(e)/(S m), the variance of the mean plus var(e)/(S m) once more. Combining
the two terms with each its own t quantile is Banerjee's (1960) interval for a sum of two variance
components: at least as wide as the t-interval of each term alone, it keeps its level for normal data
whatever their ratio, where a Welch-Satterthwaite df (estimated from 3 seeds) covered 0.93 at 3 seeds
and 0.90-0.91 in skewed cells (docs/science.md). With one seed the seed term is not estimable: the interval is over
problems only and says nothing about seeds. ``p`` is the two-sided p of the same interval (the largest
level at which it still contains 0; below 1e-12 written 1e-12). ``simulate_coverage`` measures the
coverage of this interval and of the older one (below) on testbed-like data; ``tests/test_seed_intervals.py``
asserts >= 0.93 at 3 and 5 seeds.

``holm`` marks which effects of a family survive Holm's step-down correction at 0.05 (on ``p``);
``seed_summaries`` (the published seed_summary.csv) uses one family per statistic of a study: every
condition x model x task x dataset x regime gain of that statistic (docs/science.md). Levels (pass@1
itself) get an interval but no p: "pass@1 > 0" is no claim.

The older interval, kept to compare (``two_level_bootstrap``; ``simulate_coverage(method="bootstrap")``):
a two-level percentile bootstrap (seeds with replacement, then one problem resample shared by the
draw's seeds) of the pooled mean, which the tables printed beside the median over seeds. With 3-5 seeds
the seed level of a bootstrap draws from 3-5 values (10 distinct resamples at S = 3) where a t with 2-4
df is due: it under-covers (0.82 at 3 seeds, 0.89 at 5, seed SD 0.05: docs/science.md). ``median`` is
still reported, labelled, as the median over seeds of the per-seed values (Oertell et al.: a clipping
drift shows in the median); it is not the interval's quantity. Nothing in the t-interval is random.
"""

from __future__ import annotations

import functools

import numpy as np

from mirage.runs import atomic_path
from mirage.study.results import (BASE, RUN_KEYS, column_label, condition_order, load_problems, load_results,
                                  natural_key, with_defaults)

N_BOOT = 1000
ALPHA = 0.05
P_FLOOR = 1e-12  # p below this is written as this (only its rank against 0.05 / family size matters)
# "shared" (default): one problem resample per draw, for all its seeds (the seeds share the test set);
# "per_seed": problems drawn again for each resampled seed (too narrow by up to sqrt(S); kept to compare)
RESAMPLE = "shared"


# --- Student's t, through mpmath's regularized incomplete beta ----------------------------------------
@functools.lru_cache(maxsize=65536)
def _t_quantile(df: int, alpha: float) -> float:
    """t_{df, 1 - alpha/2}: solve I_{df/(df+q^2)}(df/2, 1/2) = alpha for q (secant in log q from the
    Cornish-Fisher start)."""
    import mpmath
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - alpha / 2)
    start = z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)

    def tail(log_q):
        q = mpmath.exp(log_q)
        return mpmath.betainc(df / 2, 0.5, 0, df / (df + q * q), regularized=True) - alpha

    return float(mpmath.exp(mpmath.findroot(tail, mpmath.log(start), tol=1e-24)))


def t_quantile(df: int, alpha: float = ALPHA) -> float:
    """The two-sided critical value t_{df, 1 - alpha/2} of Student's t with ``df`` (a whole number >= 1)
    degrees of freedom (cached)."""
    if int(df) != df or df < 1:
        raise ValueError(f"t_quantile: need a whole df >= 1, got {df}")
    if not 0 < alpha < 1:
        raise ValueError(f"t_quantile: need 0 < alpha < 1, got {alpha}")
    return _t_quantile(int(df), float(alpha))


# --- the interval ---------------------------------------------------------------------------------
def _components(x):
    """For x (..., S, m): the mean, v_seed (0 with one seed) and v_prob (module docstring)."""
    n_seeds, m = x.shape[-2], x.shape[-1]
    mean = x.mean(axis=(-2, -1))
    v_prob = x.mean(axis=-2).var(axis=-1, ddof=1) / m
    v_seed = x.mean(axis=-1).var(axis=-1, ddof=1) / n_seeds if n_seeds > 1 else np.zeros_like(mean)
    return mean, v_seed, v_prob


def _half_width(v_seed, v_prob, n_seeds: int, m: int, alpha: float = ALPHA):
    seed_part = t_quantile(n_seeds - 1, alpha) ** 2 * v_seed if n_seeds > 1 else 0.0
    return np.sqrt(seed_part + t_quantile(m - 1, alpha) ** 2 * v_prob)


def _p_value(mean: float, v_seed: float, v_prob: float, n_seeds: int, m: int) -> float:
    """The largest alpha at which the (1 - alpha) interval still contains 0 (bisection in log alpha)."""
    if v_seed + v_prob == 0:
        return 1.0 if mean == 0 else P_FLOOR
    if abs(mean) >= _half_width(v_seed, v_prob, n_seeds, m, P_FLOOR):
        return P_FLOOR
    if abs(mean) <= _half_width(v_seed, v_prob, n_seeds, m, 0.999999):
        return 1.0

    low, high = np.log(P_FLOOR), np.log(0.999999)  # bisection in log alpha: the half-width falls with alpha
    for _ in range(36):
        mid = (low + high) / 2
        if _half_width(v_seed, v_prob, n_seeds, m, float(np.exp(mid))) > abs(mean):
            low = mid
        else:
            high = mid
    return float(np.exp((low + high) / 2))


def seed_interval(values, alpha: float = ALPHA) -> dict:
    """The mean of ``values`` (seeds x problems: per-problem scores or gains) with its interval over
    seeds and problems (module docstring): mean, se (sqrt(v_seed + v_prob)), ci_low, ci_high and p
    (two-sided, against 0, of the same interval). Zero variance (every seed scores every problem alike):
    the interval is the point."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or 0 in x.shape or not np.isfinite(x).all():
        raise ValueError(f"seed_interval: need a complete, finite seeds x problems array, got shape {x.shape}"
                         f"{' with NaN or inf' if x.size and not np.isfinite(x).all() else ''}")
    if x.shape[1] < 2:
        raise ValueError(f"seed_interval: need >= 2 problems, got {x.shape[1]}")
    n_seeds, m = x.shape
    mean, v_seed, v_prob = (float(v) for v in _components(x))
    half = float(_half_width(v_seed, v_prob, n_seeds, m, alpha))
    return dict(mean=mean, se=float(np.sqrt(v_seed + v_prob)), ci_low=mean - half, ci_high=mean + half,
                p=_p_value(mean, v_seed, v_prob, n_seeds, m))


def holm(pvalues, alpha: float = ALPHA) -> np.ndarray:
    """Which hypotheses of one family Holm's step-down procedure rejects at family-wise level ``alpha``:
    sort the p ascending, reject while p_(i) <= alpha / (n - i + 1), stop at the first that is not.
    NaN p (no test) are not in the family and come back False."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or ((p < 0) | (p > 1)).any():
        raise ValueError("holm: need a 1-D array of p-values in [0, 1] (NaN: not tested)")
    tested = np.flatnonzero(~np.isnan(p))
    keep = np.zeros(p.shape, dtype=bool)
    order = tested[np.argsort(p[tested], kind="stable")]
    for i, idx in enumerate(order):
        if p[idx] > alpha / (len(order) - i):
            break
        keep[idx] = True
    return keep


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


# --- coverage, by simulation ----------------------------------------------------------------------
# Testbed-like defaults (docs/science.md): 200 problems, 32 samples each; the base model's per-problem
# logit ~ N(0.1, 1.1^2), the logit-normal that fits dial-60 x toy-math's committed pass@1..16 curve
# (0.515 ... 0.980); the training effect +0.5 logit, varying by problem (SD 0.5) and by seed x problem
# (SD 0.5) besides the seed's shift (calibrated to ``seed_sd`` on the pass@1 scale).
SIM_DEFAULTS = dict(n_problems=200, n_samples=32, base_logit_mean=0.1, base_logit_sd=1.1, effect=0.5,
                    effect_sd=0.5, interaction_sd=0.5)


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _normal_expit_mean(centre, sd, nodes: int = 64):
    """E[expit(centre + sd Z)], Z standard normal, by Gauss-Hermite quadrature (``centre`` may be an array)."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    return (_expit(np.asarray(centre, dtype=np.float64)[..., None] + sd * z) * w).sum(axis=-1)


def _seed_logit_sd(seed_sd: float, centre: float, spread: float) -> float:
    """The SD of the seed's logit shift u that gives SD_u[pass@1 over the problem population] = ``seed_sd``."""
    z, w = np.polynomial.hermite_e.hermegauss(64)
    w = w / w.sum()

    def sd(sigma):
        p = _normal_expit_mean(centre + sigma * z, spread)
        mean = (w * p).sum()
        return float(np.sqrt((w * (p - mean) ** 2).sum()))

    if seed_sd <= 0:
        return 0.0
    low, high = 0.0, 20.0
    if sd(high) < seed_sd:
        raise ValueError(f"simulate_coverage: seed_sd {seed_sd} is out of reach for this pass@1 distribution")
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (mid, high) if sd(mid) < seed_sd else (low, mid)
    return (low + high) / 2


def simulate_coverage(n_seeds: int, seed_sd: float, method: str = "t", reps: int = 2000, seed: int = 0,
                      gain: bool = True, alpha: float = ALPHA, n_boot: int = N_BOOT, **scenario) -> dict:
    """The share of ``reps`` simulated cells whose 95% interval covers the true effect.

    Each cell: a fresh test set of ``n_problems`` problems (base logit ~ N(base_logit_mean,
    base_logit_sd^2)); the base model evaluated once, ``n_samples`` samples per problem (binomial); S =
    ``n_seeds`` trained models, model s solving problem j with probability expit(logit_j + effect +
    d_j + u_s + v_sj), d_j ~ N(0, effect_sd^2), v_sj ~ N(0, interaction_sd^2), u_s ~ N(0, sigma^2) with
    sigma set so that the seeds' pass@1 over the problem population has SD ``seed_sd``; each evaluated
    with ``n_samples`` samples per problem. The truth is the population effect: E[pass@1 trained] (over
    problems and seeds) minus E[pass@1 base] (``gain``; else E[pass@1 trained]), by quadrature.
    ``method``: "t" (``seed_interval``), "t_seeds" (a t over the S seed means alone, df S - 1) or
    "bootstrap" (``two_level_bootstrap``, the older interval; ``n_boot`` draws, slow: one call per cell).
    ``scenario`` overrides ``SIM_DEFAULTS``. Returns coverage, mean_width, truth, reps and the settings."""
    unknown = set(scenario) - set(SIM_DEFAULTS)
    if unknown:
        raise ValueError(f"simulate_coverage: unknown scenario keys {sorted(unknown)} (known: {sorted(SIM_DEFAULTS)})")
    if method not in ("t", "t_seeds", "bootstrap"):
        raise ValueError(f"simulate_coverage: method must be 't', 't_seeds' or 'bootstrap', got {method!r}")
    if n_seeds < 1 or reps < 1 or seed_sd < 0 or (method == "t_seeds" and n_seeds < 2):
        raise ValueError(f"simulate_coverage: need n_seeds >= 1 (2 for t_seeds), reps >= 1, seed_sd >= 0; got "
                         f"{n_seeds}, {reps}, {seed_sd}")
    s = {**SIM_DEFAULTS, **scenario}
    m, n = int(s["n_problems"]), int(s["n_samples"])
    centre = s["base_logit_mean"] + s["effect"]
    spread = float(np.sqrt(s["base_logit_sd"] ** 2 + s["effect_sd"] ** 2 + s["interaction_sd"] ** 2))
    sigma = _seed_logit_sd(seed_sd, centre, spread)
    truth = float(_normal_expit_mean(centre, np.sqrt(spread ** 2 + sigma ** 2)))
    if gain:
        truth -= float(_normal_expit_mean(s["base_logit_mean"], s["base_logit_sd"]))

    rng = np.random.default_rng(seed)
    logit = s["base_logit_mean"] + s["base_logit_sd"] * rng.standard_normal((reps, 1, m))
    shift = (s["effect"] + s["effect_sd"] * rng.standard_normal((reps, 1, m))
             + sigma * rng.standard_normal((reps, n_seeds, 1))
             + s["interaction_sd"] * rng.standard_normal((reps, n_seeds, m)))
    x = rng.binomial(n, _expit(logit + shift)) / n
    if gain:
        x = x - rng.binomial(n, _expit(logit)) / n
    if method == "bootstrap":
        bounds = np.array([two_level_bootstrap(x[r], n_boot=n_boot, alpha=alpha, seed=r) for r in range(reps)])
        low, high = bounds[:, 0], bounds[:, 1]
    else:
        mean, v_seed, v_prob = _components(x)
        if method == "t":
            half = _half_width(v_seed, v_prob, n_seeds, m, alpha)
        else:
            half = t_quantile(n_seeds - 1, alpha) * np.sqrt(v_seed)
        low, high = mean - half, mean + half
    covered = (low <= truth) & (truth <= high)
    return dict(method=method, n_seeds=n_seeds, seed_sd=seed_sd, coverage=float(covered.mean()),
                mean_width=float((high - low).mean()), truth=truth, seed_logit_sd=sigma, reps=reps, **s)


def seed_summary(problems, gain: bool = False, eval_tag: str = "", per_step: bool = False, n_boot: int = N_BOOT,
                 seed: int = 0, resample: str | None = None, count: str = "c"):
    """One row per model x task x dataset x condition x regime (x step with ``per_step``): the per-seed
    values, their mean with its 95% interval over seeds and problems (``seed_interval``), and for a gain
    its p and whether it survives Holm over the rows of this summary (one family: module docstring).

    ``problems``: the study's per-problem table (``mirage.study.load_problems``). ``gain``: the
    statistic is trained - base on the same problems. ``eval_tag``: "" (the preset's sampling:
    pass@1) or "greedy" (accuracy at T = 0). Without ``per_step`` each seed's last evaluated
    checkpoint is used. Columns: model, task, dataset, condition, regime, [step], seeds (count),
    values (per seed, in seed order), mean, ci_low, ci_high, se, p and holm_survives (gains only; NaN /
    missing for levels), median (over seeds, labelled: not the interval's quantity), n_problems.
    ``n_boot``, ``seed``, ``resample``: unused since the t-interval replaced the bootstrap (kept so old
    calls still run; ``two_level_bootstrap`` is the old interval). ``count``: the per-problem count the
    statistic is the share of ("c": pass@1; "f": the format rate; "a": format-free accuracy).
    """
    import pandas as pd

    p = with_defaults(problems)
    if count not in p.columns:
        raise KeyError(f"seed_summary: the per-problem table has no {count!r} column (a study analysed before it "
                       "existed: rerun its analysis)")
    p = p[p["eval_tag"].fillna("") == eval_tag].assign(score=lambda d: d[count] / d["n"])
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
                             "problems; the interval needs the same problems for every seed")
        if gain:
            b = base.reindex(pd.MultiIndex.from_tuples([(*key[:3], pid) for pid in matrix.columns]))
            if b.isna().any():
                raise ValueError(f"seed_summary: no base-model score for some problems of {dict(zip(group_keys, key))}")
            matrix = matrix - b.to_numpy()[None, :]
        values = matrix.mean(axis=1)
        ci = seed_interval(matrix.to_numpy())
        rows.append({**dict(zip(group_keys, key)), "seeds": len(values), "values": [float(v) for v in values],
                     "mean": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "se": ci["se"],
                     "p": ci["p"] if gain else float("nan"), "median": float(np.median(values)),
                     "n_problems": matrix.shape[1]})
    columns = group_keys + ["seeds", "values", "mean", "ci_low", "ci_high", "se", "p", "holm_survives", "median",
                            "n_problems"]
    out = pd.DataFrame(rows, columns=[c for c in columns if c != "holm_survives"])
    out.insert(out.columns.get_loc("p") + 1, "holm_survives",
               pd.array(holm(out["p"].to_numpy(dtype=np.float64)), dtype="boolean") if gain
               else pd.array([pd.NA] * len(out), dtype="boolean"))
    order = {c: i for i, c in enumerate(condition_order(out["condition"]))}
    sort = out.assign(_c=out["condition"].map(order), _r=out["regime"].map(natural_key))
    sort = sort.sort_values(keys + ["_c", "_r"] + (["step"] if per_step else []))
    return sort.drop(columns=["_c", "_r"]).reset_index(drop=True)


HOLM_MARK = "*"  # after an interval: the effect survives Holm over its family at 0.05


def _interval(mean: float, low: float, high: float, digits: int, signed: bool, mark: bool = False) -> str:
    sign = "+" if signed else ""  # a gain shows its sign throughout
    return f"{mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]" + (HOLM_MARK if mark else "")


def ci_table(summary, digits: int = 3, signed: bool = False):
    """A ``seed_summary`` as text, "mean [low, high]" (``signed``: with + on positive values, for gains),
    followed by ``*`` where the effect survives Holm over its family: per model x task x dataset one
    column per condition; where the study has regimes, one row per condition x regime instead (too many
    columns)."""

    marks = ([False] * len(summary) if "holm_survives" not in summary
             else summary["holm_survives"].fillna(False).astype(bool))
    text = [_interval(m, lo, hi, digits, signed, mark)
            for m, lo, hi, mark in zip(summary["mean"], summary["ci_low"], summary["ci_high"], marks)]
    s = summary.assign(text=text)
    if (s["regime"].fillna("") != "").any():
        s = s.rename(columns={"text": "mean [95% CI]"})
        return s.set_index(["model", "task", "dataset", "condition", "regime"])[["seeds", "mean [95% CI]"]]
    s = s.assign(column=[column_label(c, r) for c, r in zip(s["condition"], s["regime"])])
    table = s.pivot(index=["model", "task", "dataset"], columns="column", values="text")
    table = table[list(dict.fromkeys(s["column"]))].fillna("")
    table.columns.name = None
    return table


def ci_tables(problems, digits: int = 3, n_boot: int = N_BOOT):
    """Every seed summary a study has, stacked (index level ``statistic``): pass@1 and its gain over
    the base model, and, where greedy evaluations exist, greedy accuracy and its gain; "mean over seeds
    [95% CI over seeds and problems]", ``*``: the gain survives Holm over its statistic's family."""
    import pandas as pd

    frames = {}
    for tag in sorted(set(with_defaults(problems)["eval_tag"].fillna(""))):
        what = "greedy accuracy (T = 0)" if tag else "pass@1"
        for gain in (False, True):
            summary = seed_summary(problems, gain=gain, eval_tag=tag)
            if not summary.empty:
                label = f"{what}{' gain over base (* survives Holm)' if gain else ''}"
                frames[label] = ci_table(summary, digits, signed=gain)
    if not frames:
        raise ValueError("ci_tables: no trained run in the per-problem table")
    return pd.concat(frames, names=["statistic"])


def seed_summaries(problems, n_boot: int = N_BOOT):
    """Every ``seed_summary`` of a study as one long table (``statistic`` column: pass@1, its gain, and
    greedy accuracy and its gain where evaluated): what ``publish`` writes as seed_summary.csv. Each gain
    statistic is one Holm family (every condition x model x task x dataset x regime of the study)."""
    import pandas as pd

    frames = []
    for tag in sorted(set(with_defaults(problems)["eval_tag"].fillna(""))):
        what = "greedy" if tag else "pass@1"
        for gain in (False, True):
            summary = seed_summary(problems, gain=gain, eval_tag=tag)
            if not summary.empty:
                frames.append(summary.assign(statistic=f"{what}{' gain' if gain else ''}"))
    out = pd.concat(frames, ignore_index=True)
    out["values"] = [" ".join(f"{v:.4f}" for v in values) for values in out["values"]]  # per seed, in seed order
    # p as text with 3 significant digits (the CSV's %.4f would write a small p as 0.0000); "" for levels
    out["p"] = ["" if np.isnan(v) else f"{v:.3g}" for v in out["p"].to_numpy(dtype=np.float64)]
    return out[["statistic"] + [c for c in out.columns if c != "statistic"]]


def publish(study_dir, figures_dir, n_boot: int = N_BOOT) -> list:
    """Write the study's small tables beside its figures: results.csv (one row per model x task x
    condition x regime x seed x step x dataset x k) and seed_summary.csv (``seed_summaries``). The format
    split's tables (format.csv, format_summary.csv) are ``mirage.study.format_split.publish_format``'s."""
    from pathlib import Path

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

    r = with_defaults(results)
    r = r[r["condition"] != BASE]
    if r.empty:
        return 0
    return int(r.groupby(["model", "task", "condition", "regime"])["seed"].nunique().max())
