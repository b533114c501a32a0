"""Alignment predictors: cheap measures of a base model on a task, from its stored samples alone.

The paper reads model-task alignment off pass@k. These are the other candidates, one row per
(dataset) of one evaluation folder (``predictor_table``), all from ``read_samples`` rows:

    pass_at_1, pass_at_half, pass_at_n   unbiased pass@k at k = 1, n // 2 and n (n samples per problem)
    saturation_gap                       pass@n - pass@(n // 2): what doubling the samples still adds
                                         (NaN when n = 1)
    saturated                            saturation_gap < SATURATION_GAP (0.01): the curve is flat at n
    k_knee                               the smallest k of 1, 2, 4, ..., n with pass@n - pass@k <
                                         SATURATION_GAP: where the pass@k curve flattens
    majority_share                       mean over problems of (size of the largest answer cluster) / n.
                                         Samples without an answer (empty pred) stay in the n but never
                                         form the majority: a model that never answers scores 0.
                                         Answers are clustered by the task's checker
                                         (``mirage.rewards.cluster_answers``, as majority-vote reward does)
    maj_at_n                             mean over problems of whether the largest cluster is correct; a tie
                                         between clusters counts the share of the tied clusters that are
                                         correct (the expected accuracy of a uniform tie-break); a problem
                                         without any answer counts 0
    mean_token_entropy                   mean over problems of sum(-log p(sampled token)) / sum(tokens) over
                                         its samples (nats per token; ``sum_neg_logprob`` column). At
                                         top_p = 1 this is an unbiased Monte-Carlo estimate of the sampling
                                         distribution's per-token entropy (at the sampling temperature).
                                         NaN when any sample lacks log-probs (a sampler that gives none,
                                         e.g. vLLM here, or a folder written before the column existed)
    format_rate                          mean of the ``format`` column (the format reward's compliance)
    format_free_accuracy                 mean over problems of the mean ``acc_any_format`` (the answer
                                         scored whatever the format, ``mirage.rewards.lenient``); NaN when
                                         any sample lacks it (a folder written before the column, or a
                                         family without a lenient reading). Not ranked by default: where
                                         the format rate is ~1 (every testbed model so far) it is pass@1
    procedure_correct / _buggy / _neither the testbed only: the share of samples whose answer follows the
                                         correct procedure, the buggy one, or neither
                                         (the checker entry's ``procedure``); NaN on other tasks

``predictor_correlations`` ranks them against a study's gains (``mirage.study``'s gain table):
Spearman's rho per (predictor, condition) over model-task pairs, with a percentile bootstrap CI
that resamples pairs, and seeds within each drawn pair. ``predictor_outcomes`` asks it the way to
read it: two outcomes (gain minus the baseline's; the fraction of the baseline's gain recovered),
rho per task and from within-task ranks (``stratified_spearman``), a bootstrap that resamples
models as clusters (``cluster_bootstrap``), an exact within-task permutation p (``permutation_p``)
and a ``reading`` that follows the CI's width.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from mirage.conditions import condition_order
from mirage.passk import counts_from_samples, default_ks, pass_at_k
from mirage.rewards import cluster_answers
from mirage.rewards.routing import route

SATURATION_GAP = 0.01  # pass@n - pass@(n // 2) below this: the pass@k curve is saturated at n
PREDICTORS = ["pass_at_1", "pass_at_half", "pass_at_n", "saturation_gap", "k_knee", "majority_share", "maj_at_n",
              "mean_token_entropy", "format_rate", "format_free_accuracy", "procedure_correct", "procedure_buggy",
              "procedure_neither"]
# what predictor_correlations ranks by default: procedure_correct is left out (on the testbed an answer
# follows the correct procedure exactly when it is correct: it is pass@1 again), and so is format_free_accuracy
# while the format rate is ~1 (rank it by naming it)
RANKED = [p for p in PREDICTORS if p not in ("procedure_correct", "format_free_accuracy")]
CORRELATION_COLUMNS = ["predictor", "condition", "regime", "outcome", "rho", "ci_low", "ci_high", "n_pairs", "n_seeds",
                       "n_boot_valid"]
PREDICTOR_COLUMNS = ["dataset", "n", "n_problems", *PREDICTORS[:4], "saturated", *PREDICTORS[4:]]


# --- the predictors of one evaluation -----------------------------------------------------
def passk_predictors(counts: pd.DataFrame) -> dict[str, Any]:
    """pass@1, pass@(n // 2), pass@n, the saturation gap and flag, and k_knee, from per-problem n and c."""
    n_values = counts["n"].unique()
    if len(n_values) != 1:
        raise ValueError(f"passk_predictors: every problem needs the same n, got {sorted(n_values)}")
    n = int(n_values[0])
    at = {k: float(pass_at_k(counts["n"].to_numpy(), counts["c"].to_numpy(), k).mean()) for k in
          sorted(set(default_ks(n)) | {max(1, n // 2)})}
    gap = at[n] - at[n // 2] if n >= 2 else float("nan")
    knee = min(k for k in default_ks(n) if at[n] - at[k] < SATURATION_GAP)
    return {"n": n, "pass_at_1": at[1], "pass_at_half": at[max(1, n // 2)], "pass_at_n": at[n],
            "saturation_gap": gap, "saturated": pd.NA if n < 2 else bool(gap < SATURATION_GAP), "k_knee": knee}


def majority(preds: Sequence[Any], correct: Sequence[bool], data_source: str) -> tuple[float, float]:
    """(share of the largest answer cluster among all samples, its correctness; ties: the tied clusters'
    mean correctness) of one problem's samples. No answer at all: (0, 0)."""
    labels = cluster_answers(list(preds), data_source)
    sizes: dict[int, int] = {}
    right: dict[int, bool] = {}
    for label, ok in zip(labels, correct):
        if label is not None:
            sizes[label] = sizes.get(label, 0) + 1
            right[label] = right.get(label, False) or bool(ok)
    if not sizes:
        return 0.0, 0.0
    top = max(sizes.values())
    tied = [label for label, size in sizes.items() if size == top]
    return top / len(labels), float(np.mean([right[label] for label in tied]))


def token_entropy(rows: pd.DataFrame) -> float:
    """Mean over problems of sum(sum_neg_logprob) / sum(num_tokens); NaN when any sample lacks it."""
    if "sum_neg_logprob" not in rows.columns or rows["sum_neg_logprob"].isna().any():
        return float("nan")
    per = rows.groupby("problem_id")[["sum_neg_logprob", "num_tokens"]].sum()
    return float((per["sum_neg_logprob"] / per["num_tokens"].clip(lower=1)).mean())


def format_free_accuracy(rows: pd.DataFrame) -> float:
    """Mean over problems of the mean ``acc_any_format``; NaN when the column is missing or any sample lacks it."""
    if "acc_any_format" not in rows.columns or rows["acc_any_format"].isna().any():
        return float("nan")
    return float(rows.groupby("problem_id")["acc_any_format"].mean().mean())


def procedure_shares(rows: pd.DataFrame, extra_info: Mapping[str, Any],
                     procedure_of: Callable[[Any, Any, Any], str]) -> dict[str, float]:
    """Share of samples whose answer follows each procedure (correct / buggy / neither), given each problem's
    extra_info by problem_id and the task's ``procedure_of(pred, ground_truth, extra_info)``."""
    labels = [procedure_of(p if isinstance(p, str) else "", gt, extra_info.get(pid))
              for p, gt, pid in zip(rows["pred"], rows["ground_truth"], rows["problem_id"])]
    return {f"procedure_{name}": labels.count(name) / len(labels) if labels else float("nan")
            for name in ("correct", "buggy", "neither")}


def predictor_table(samples: pd.DataFrame, problems: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per dataset of an evaluation's sample rows (``read_samples``): the module docstring's columns.

    ``problems`` ({dataset: ``load_problems`` frame}) gives the testbed's procedure shares (the buggy
    answer is in each problem's extra_info); without it, or on another task, they are NaN.
    """
    if samples.empty:
        raise ValueError("predictor_table: no samples")
    out = []
    for dataset, rows in samples.groupby("dataset", sort=True):
        counts = counts_from_samples(rows, by="problem_id", correct="correct")
        row: dict[str, Any] = {"dataset": dataset, "n_problems": len(counts), **passk_predictors(counts)}
        shares, hits = [], []
        for _, p in rows.sort_values("sample_index").groupby("problem_id", sort=True):
            share, hit = majority(p["pred"].tolist(), p["correct"].tolist(), str(p["data_source"].iloc[0]))
            shares.append(share)
            hits.append(hit)
        row.update(majority_share=float(np.mean(shares)), maj_at_n=float(np.mean(hits)),
                   mean_token_entropy=token_entropy(rows), format_rate=float(rows["format"].mean()),
                   format_free_accuracy=format_free_accuracy(rows))
        row.update(_procedures(rows, (problems or {}).get(dataset)))
        out.append(row)
    table = pd.DataFrame(out)[PREDICTOR_COLUMNS]
    table["saturated"] = table["saturated"].astype("boolean")
    return table


def _procedures(rows: pd.DataFrame, problems: pd.DataFrame | None) -> dict[str, float]:
    """The procedure shares where every row's checker entry says which procedure an answer follows
    (``Checker.procedure``: the testbed's), all with the same function; NaN otherwise."""
    nan = {f"procedure_{name}": float("nan") for name in ("correct", "buggy", "neither")}
    if problems is None:
        return nan
    procedures = {route(str(s)).procedure for s in rows["data_source"].unique()}
    if len(procedures) != 1 or None in procedures:
        return nan
    return procedure_shares(rows, dict(zip(problems["problem_id"].astype(str), problems["extra_info"])),
                            procedures.pop())


# --- which predictor predicts what ------------------------------------------------------------
def outcome_table(gains: pd.DataFrame) -> pd.DataFrame:
    """Per model x task x dataset x condition x seed, the outcome a predictor should rank: a technique's
    pass@1 gain minus its baseline's (ground truth's) gain in the same seed, and the baseline's own gain
    over the base model for the baseline itself. ``gains``: ``mirage.study.gain_table`` (one regime)."""
    g = gains.copy()
    if "regime" not in g.columns:
        g["regime"] = ""
    own = g["condition"] == g["baseline"]
    g["outcome"] = np.where(own, g["gain"], g["gain"] - g["baseline_gain"])
    g["outcome_label"] = np.where(own, "gain over base", "gain - " + g["baseline"].astype(str) + " gain")
    return g[["model", "task", "dataset", "condition", "regime", "seed", "outcome", "outcome_label"]].dropna(
        subset=["outcome"]).reset_index(drop=True)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks along each row, tied values sharing their average rank (rows are short: pairs)."""
    x = np.asarray(x, dtype=np.float64)
    less = (x[:, None, :] < x[:, :, None]).sum(axis=-1)
    equal = (x[:, None, :] == x[:, :, None]).sum(axis=-1)
    return less + (equal + 1) / 2


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of ``x`` with the same row of ``y`` (average ranks for ties); NaN for a
    row where either side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=1) / den, np.nan)


def rank_correlation(x: Sequence[float], y_by_pair: Sequence[Sequence[float]], n_boot: int = 2000,
                     alpha: float = 0.05, seed: int = 0) -> dict[str, float]:
    """Spearman's rho between one predictor value per pair and the mean of each pair's outcomes (one per
    seed), and its percentile bootstrap CI: each draw resamples the pairs with replacement, then each
    drawn pair's seeds with replacement. Draws where a side is constant are dropped (counted in
    ``n_boot_valid``); the CI is NaN when fewer than half the draws are valid."""
    x = np.asarray(x, dtype=np.float64)
    ys = [np.asarray(y, dtype=np.float64) for y in y_by_pair]
    m = len(x)
    if m != len(ys) or any(len(y) == 0 for y in ys):
        raise ValueError(f"rank_correlation: {m} predictor values, {len(ys)} pairs of outcomes (none may be empty)")
    rho = float(spearman_rows(x[None, :], np.array([[y.mean() for y in ys]]))[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, m, size=(n_boot, m))
    seed_means = np.empty((n_boot, m))  # column j of draw b: pair idx[b, j], its seeds resampled
    for pair in range(m):
        y = ys[pair]
        at = idx == pair
        draws = rng.integers(0, len(y), size=(int(at.sum()), len(y)))
        seed_means[at] = y[draws].mean(axis=1)
    boot = spearman_rows(x[idx], seed_means)
    valid = boot[~np.isnan(boot)]
    low = high = float("nan")
    if len(valid) >= n_boot / 2:
        low, high = (float(v) for v in np.quantile(valid, [alpha / 2, 1 - alpha / 2]))
    return {"rho": rho, "ci_low": low, "ci_high": high, "n_pairs": m,
            "n_seeds": int(np.median([len(y) for y in ys])), "n_boot_valid": int(len(valid))}


def predictor_correlations(predictors: pd.DataFrame, gains: pd.DataFrame, names: Sequence[str] | None = None,
                           n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Spearman's rho (with ``rank_correlation``'s bootstrap CI) of each predictor with each condition's
    outcome (``outcome_table``) over the model-task pairs both tables hold. ``predictors``: one row per
    model x task x dataset (the alignment step's predictors table); ``names``: default ``RANKED``. A
    predictor that is NaN for some pair, or constant over the pairs, gets rho NaN. One row per (predictor,
    condition, regime)."""
    names = [p for p in (names or RANKED) if p in predictors.columns]
    dup = predictors.duplicated(["model", "task", "dataset"])
    if dup.any():
        pair = tuple(predictors.loc[dup.idxmax(), ["model", "task", "dataset"]])
        raise ValueError(f"predictors: model x task x dataset {pair} appears twice; one row per pair")
    outcomes = outcome_table(gains)
    keys = ["model", "task", "dataset"]
    order = {c: i for i, c in enumerate(condition_order(outcomes["condition"]))}
    groups = sorted(outcomes.groupby(["condition", "regime"]).groups, key=lambda cr: (order[cr[0]], cr[1]))
    rows = []
    for condition, regime in groups:
        o = outcomes[(outcomes["condition"] == condition) & (outcomes["regime"] == regime)]
        by_pair = o.groupby(keys)["outcome"].apply(list)
        joined = predictors.set_index(keys).reindex(by_pair.index)
        for name in names:
            x = joined[name].astype("float64").to_numpy()
            base = {"predictor": name, "condition": condition, "regime": regime, "outcome": o["outcome_label"].iloc[0]}
            if np.isnan(x).any() or len(set(x)) < 2 or len(x) < 3:
                rows.append({**base, "rho": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_pairs": len(x),
                             "n_seeds": int(by_pair.map(len).median()) if len(by_pair) else 0, "n_boot_valid": 0})
                continue
            rows.append({**base, **rank_correlation(x, by_pair.tolist(), n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


# --- the predictors re-asked: two outcomes, per task, models resampled as clusters ----------------------------
# ``predictor_outcomes`` replaces the pooled ranking above for reading a result: a model appears in pairs of
# every task, so pairs are not independent draws (resample models), and a between-task difference in both the
# predictor and the outcome makes a pooled rho without any model ranking (rank within each task).
MIN_BASELINE_GAIN = 0.02  # the fraction of the baseline's gain recovered is asked only where it gained this much
UNINFORMATIVE_WIDTH = 1.0  # a CI wider than this (half of [-1, 1]) cannot tell a strong predictor from none
OUTCOMES = {"gain_minus_baseline": "gain - baseline gain", "fraction_recovered": "gain / baseline gain",
            "baseline_gain": "baseline gain over base"}
STRATIFIED = "within-task"  # the stratum name of the statistic pooled over tasks from within-task ranks
OUTCOME_COLUMNS = ["predictor", "condition", "regime", "outcome", "stratum", "rho", "ci_low", "ci_high", "ci_width",
                   "reading", "p_perm", "n_pairs", "n_models", "n_seeds", "n_boot_valid", "cluster"]


def centred_ranks(x: np.ndarray, strata: Sequence[Any]) -> np.ndarray:
    """Average ranks of each row of ``x`` (rows, items) within each stratum (items with the same label in
    ``strata``), minus that stratum's mean rank: what a within-stratum Spearman correlates."""
    x = np.asarray(x, dtype=np.float64)
    strata = np.asarray(strata, dtype=object)
    out = np.zeros_like(x)
    for label in set(strata):
        cols = strata == label
        r = average_ranks(x[:, cols])
        out[:, cols] = r - r.mean(axis=1, keepdims=True)
    return out


def stratified_spearman(x: np.ndarray, y: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Spearman's rho pooled over strata from within-stratum ranks (the pooled Pearson correlation of the
    centred within-stratum ranks), per row: equal to Spearman's rho for one stratum, and blind to any difference
    between strata. NaN for a row where either side is constant within every stratum."""
    rx, ry = centred_ranks(x, strata), centred_ranks(y, strata)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=1) / den, np.nan)


def permutation_p(x: Sequence[float], y: Sequence[float], strata: Sequence[Any], max_exact: int = 1_000_000,
                  n_random: int = 20_000, seed: int = 0) -> float:
    """Two-sided p of ``stratified_spearman(x, y, strata)`` under no association: the share of the
    permutations of ``y`` within each stratum whose |rho| is at least the observed one. Exact (every
    permutation) when their number is at most ``max_exact``, else ``n_random`` random ones (seeded). It takes
    the pair values as given (no seed noise): a check on the bootstrap CI, whose percentile interval is too
    narrow with ~5 clusters (a perfect ranking of 5 resamples to a perfect ranking). NaN when rho is."""
    import itertools
    import math

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    strata = np.asarray(strata, dtype=object)
    rx, ry = centred_ranks(x[None, :], strata)[0], centred_ranks(y[None, :], strata)[0]
    den = math.sqrt(float((rx ** 2).sum() * (ry ** 2).sum()))
    if den == 0:
        return float("nan")
    observed = abs(float((rx * ry).sum())) / den
    groups = [np.flatnonzero(strata == label) for label in sorted(set(strata), key=str)]
    if math.prod(math.factorial(len(g)) for g in groups) <= max_exact:
        total = np.zeros(1)
        for g in groups:  # numerator = sum over strata of rx . permuted ry: an outer sum over the strata
            perms = np.array(list(itertools.permutations(range(len(g)))))
            part = (rx[g][None, :] * ry[g][perms]).sum(axis=1)
            total = (total[:, None] + part[None, :]).ravel()
    else:
        rng = np.random.default_rng(seed)
        total = np.zeros(n_random)
        for g in groups:
            perms = np.argsort(rng.random((n_random, len(g))), axis=1)
            total += (rx[g][None, :] * ry[g][perms]).sum(axis=1)
    return float(np.mean(np.abs(total) / den >= observed - 1e-9))


def reading(low: float, high: float, p: float = float("nan"), level: float = 0.05) -> str:
    """What a rho's CI allows saying: "uninformative" when it is wider than ``UNINFORMATIVE_WIDTH`` (it cannot
    tell a strong predictor from none: never read as a null); "positive" / "negative" when it excludes 0 and the
    permutation p (``permutation_p``, where given) is below ``level`` (with 4-5 clusters a percentile bootstrap
    alone excludes 0 too easily); else "not established"; "n/a" without a CI. Uncorrected for the many rhos of
    a table: a lead, not a finding."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "n/a"
    if high - low > UNINFORMATIVE_WIDTH:
        return "uninformative"
    if (low > 0 or high < 0) and not (np.isfinite(p) and p >= level):
        return "positive" if low > 0 else "negative"
    return "not established"


def _pair_outcome(outcome: str, gain: np.ndarray, base: np.ndarray) -> np.ndarray:
    """An outcome from seed means (last axis: seeds) of a technique's gain and its baseline's."""
    g, b = gain.mean(axis=-1), base.mean(axis=-1)
    if outcome == "gain_minus_baseline":
        return g - b
    if outcome == "fraction_recovered":
        with np.errstate(invalid="ignore", divide="ignore"):
            return g / b
    return b


def cluster_bootstrap(x: np.ndarray, gains: Sequence[np.ndarray], bases: Sequence[np.ndarray], tasks: Sequence[str],
                      models: Sequence[str], outcome: str, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0,
                      cluster: str = "model") -> list[dict[str, Any]]:
    """Spearman's rho of each predictor (rows of ``x``: (predictors, pairs)) with a pair outcome, per task and
    pooled from within-task ranks (``STRATIFIED``), each with a percentile bootstrap CI. Per pair: its task, its
    model, and its per-seed gains of the technique and of the baseline (paired by seed). The outcome of a pair is
    ``_pair_outcome`` of its seed means. A draw resamples the clusters with replacement (``cluster`` "model": the
    models, each drawn model bringing its pairs of every task; "pair": the pairs, independently), then each drawn
    pair's seeds with replacement (technique and baseline together). Draws where a side is constant in every
    stratum are dropped (``n_boot_valid``); the CI is NaN when fewer than half are valid. Beside it ``p_perm``,
    the exact permutation p of the same rho (``permutation_p``). One dict per (predictor, stratum), strata in
    order: each task (sorted), then ``STRATIFIED`` when there are several."""
    if cluster not in ("model", "pair"):
        raise ValueError(f"cluster_bootstrap: cluster {cluster!r}; one of 'model', 'pair'")
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    tasks, models = np.asarray(tasks, dtype=object), np.asarray(models, dtype=object)
    n = x.shape[1]
    if not (len(gains) == len(bases) == len(tasks) == len(models) == n) or any(
            len(g) == 0 or len(g) != len(b) for g, b in zip(gains, bases)):
        raise ValueError(f"cluster_bootstrap: {n} pairs of predictors, {len(gains)} of gains, {len(bases)} of "
                         f"baseline gains, {len(tasks)} tasks, {len(models)} models (seeds paired, none empty)")
    y = np.array([_pair_outcome(outcome, np.asarray(g, float), np.asarray(b, float)) for g, b in zip(gains, bases)])
    strata = sorted(set(tasks))
    names = strata + ([STRATIFIED] if len(strata) > 1 else [])

    def stat(xs, ys, ts):  # rho per (predictor, stratum) of one draw
        out = np.full((xs.shape[0], len(names)), np.nan)
        for k, name in enumerate(names):
            cols = np.ones(len(ts), bool) if name == STRATIFIED else ts == name
            if cols.sum() >= 3:  # a rank correlation of 2 pairs is +-1 whatever the relation
                out[:, k] = stratified_spearman(xs[:, cols], np.broadcast_to(ys[cols], xs[:, cols].shape), ts[cols])
        return out

    point = stat(x, y, tasks)
    rng = np.random.default_rng(seed)
    clusters = sorted(set(models)) if cluster == "model" else list(range(n))
    members = [np.flatnonzero(models == c) for c in clusters] if cluster == "model" else [np.array([i]) for i in range(n)]
    boot = np.full((n_boot, *point.shape), np.nan)
    for b in range(n_boot):
        drawn = np.concatenate([members[i] for i in rng.integers(0, len(clusters), size=len(clusters))])
        ys = np.empty(len(drawn))
        for j, p in enumerate(drawn):
            s = rng.integers(0, len(gains[p]), size=len(gains[p]))
            ys[j] = _pair_outcome(outcome, np.asarray(gains[p], float)[s], np.asarray(bases[p], float)[s])
        boot[b] = stat(x[:, drawn], ys, tasks[drawn])
    rows = []
    for i in range(x.shape[0]):
        for k, name in enumerate(names):
            cols = np.ones(n, bool) if name == STRATIFIED else tasks == name
            valid = boot[:, i, k][~np.isnan(boot[:, i, k])]
            low = high = float("nan")
            if np.isfinite(point[i, k]) and len(valid) >= n_boot / 2:
                low, high = (float(v) for v in np.quantile(valid, [alpha / 2, 1 - alpha / 2]))
            p = permutation_p(x[i, cols], y[cols], tasks[cols]) if np.isfinite(point[i, k]) else float("nan")
            rows.append({"stratum": name, "rho": float(point[i, k]), "ci_low": low, "ci_high": high,
                         "ci_width": high - low, "reading": reading(low, high, p), "p_perm": p, "n_pairs": int(cols.sum()),
                         "n_models": int(len(set(models[cols]))),
                         "n_seeds": int(np.median([len(gains[p]) for p in np.flatnonzero(cols)])),
                         "n_boot_valid": int(len(valid)), "cluster": cluster})
    return rows


def predictor_outcomes(predictors: pd.DataFrame, gains: pd.DataFrame, names: Sequence[str] | None = None,
                       n_boot: int = 2000, seed: int = 0, min_baseline_gain: float = MIN_BASELINE_GAIN,
                       cluster: str = "model") -> pd.DataFrame:
    """Each predictor against each technique's two outcomes, per task and within-task pooled, models resampled
    as clusters (``cluster_bootstrap``): ``gain_minus_baseline`` (the mean gain over seeds minus the baseline's,
    ground truth's for every shipped technique) over every pair, and ``fraction_recovered`` (mean gain / the
    baseline's mean gain) over the pairs where the baseline's mean gain is >= ``min_baseline_gain`` (an
    outcome with fewer than 3 such pairs is left out); the baseline itself gets ``baseline_gain`` (its own gain
    over the base model). A predictor that is NaN for some pair, or constant within every stratum, gets rho NaN
    ("n/a"). ``gains``: ``mirage.study.gain_table`` (columns model, task, dataset, condition, regime, seed,
    baseline, gain, baseline_gain); ``predictors``: one row per model x task x dataset. Columns
    ``OUTCOME_COLUMNS``, one row per (condition, regime, outcome, predictor, stratum); ``reading`` follows the
    CI's width (``reading``)."""
    names = [p for p in (names or RANKED) if p in predictors.columns]
    keys = ["model", "task", "dataset"]
    dup = predictors.duplicated(keys)
    if dup.any():
        raise ValueError(f"predictors: model x task x dataset {tuple(predictors.loc[dup.idxmax(), keys])} appears "
                         "twice; one row per pair")
    g = gains.assign(regime=gains["regime"].fillna("") if "regime" in gains else "")
    g = g.dropna(subset=["gain", "baseline_gain"])
    order = {c: i for i, c in enumerate(condition_order(g["condition"]))}
    groups = sorted(g.groupby(["condition", "regime"]).groups, key=lambda cr: (order[cr[0]], cr[1]))
    table = predictors.set_index(keys)
    sets = g.groupby("task")["dataset"].nunique()  # a task with several test sets: a stratum per test set
    rows = []
    for k, (condition, regime) in enumerate(groups):
        o = g[(g["condition"] == condition) & (g["regime"] == regime)].sort_values(keys + ["seed"])
        own = bool((o["condition"] == o["baseline"]).all())
        by_pair = list(o.groupby(keys, sort=True))
        gain = [p["gain"].to_numpy(float) for _, p in by_pair]
        base = [p["baseline_gain"].to_numpy(float) for _, p in by_pair]
        for j, outcome in enumerate(["baseline_gain"] if own else ["gain_minus_baseline", "fraction_recovered"]):
            keep = [i for i, b in enumerate(base) if outcome != "fraction_recovered" or b.mean() >= min_baseline_gain]
            if len(keep) < 3:
                continue
            sub = pd.MultiIndex.from_tuples([by_pair[i][0] for i in keep], names=keys)
            x = table.reindex(sub)[names].astype("float64").to_numpy().T
            ok = ~np.isnan(x).any(axis=1)
            strata = [task if sets[task] == 1 else f"{task}/{dataset}" for _, task, dataset in sub]
            result = cluster_bootstrap(x[ok], [gain[i] for i in keep], [base[i] for i in keep],
                                       strata, sub.get_level_values("model"), outcome,
                                       n_boot=n_boot, seed=seed * 1000 + 10 * k + j, cluster=cluster) if ok.any() else []
            strata = list(dict.fromkeys(r["stratum"] for r in result))
            it = iter(result)
            for name, has in zip(names, ok):
                for stratum in strata:
                    r = next(it) if has else {"stratum": stratum, "rho": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                                              "ci_width": np.nan, "reading": "n/a", "p_perm": np.nan, "n_pairs": len(keep),
                                              "n_models": len(set(sub.get_level_values("model"))), "n_seeds": 0,
                                              "n_boot_valid": 0, "cluster": cluster}
                    rows.append({"predictor": name, "condition": condition, "regime": regime, "outcome": outcome, **r})
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
