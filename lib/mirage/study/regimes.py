"""Tables for comparing recipe regimes (the clipping-bias study, notebooks/40_clipping_bias.ipynb).

    run_table        one row per training run: gain at T = 1 and greedy, mean clip fractions, |log ratio|
    regime_summary   per model x task x condition x regime: medians over seeds of the run table
    step_gains       one row per run x evaluated checkpoint: the gain over the base model at that step
    procedure_table  the testbed's procedure shares (train/procedure/*) per run and step
    bandit_runs      the coin-flip bandit (``mirage.mechanism``) under named variants of one setting
    bandit_table     each variant's summary (median / mean / quartiles of the final p(favoured))

Everything is read from the study's stored tables (``results``, ``dynamics``); nothing trains.
A regime is a name of the preset's ``regimes``; "" where the preset has none.
"""

from __future__ import annotations

from typing import Any, Mapping

from mirage.mechanism import BanditSettings, simulate_bandit, summarise
from mirage.ranges import check_parameters
from mirage.study.results import BASE, RUN_KEYS, condition_order, eval_rows, gain_table, with_defaults
from mirage.study.seeds import natural_key

# the training metrics a run is summarised by (their mean over the run's steps)
CLIP_METRICS = {"clipfrac": "actor/pg_clipfrac", "clipfrac_high": "actor/pg_clipfrac_high",
                "clipfrac_low": "actor/pg_clipfrac_low", "abs_log_ratio": "actor/abs_log_ratio",
                "entropy": "actor/entropy"}
PROCEDURE_PREFIX = "train/procedure/"
GREEDY = "greedy"


def run_table(results, dynamics):
    """One row per run (model x task x dataset x condition x regime x seed) at its final checkpoint.

    Columns: the run's keys, step, alignment, pass_at_1 / base_pass_at_1 / gain (T = 1, the
    preset's sampling), greedy / base_greedy / greedy_gain (accuracy at T = 0; NaN without greedy
    evaluations), and the mean over training steps of each ``CLIP_METRICS`` metric (NaN where a
    run did not log it). The clip fraction is the share of tokens whose ratio was clipped,
    averaged over every update of every step.
    """
    import numpy as np

    keys = ["model", "task", "dataset", "condition", "regime", "seed"]
    t1 = gain_table(results)[keys + ["step", "alignment", "pass_at_1", "base_pass_at_1", "gain"]]
    has_greedy = not eval_rows(results, GREEDY).empty
    if has_greedy:
        g = gain_table(results, eval_tag=GREEDY)[keys + ["pass_at_1", "base_pass_at_1", "gain"]]
        g = g.rename(columns={"pass_at_1": "greedy", "base_pass_at_1": "base_greedy", "gain": "greedy_gain"})
        t1 = t1.merge(g, on=keys, how="left")
    else:
        t1 = t1.assign(greedy=np.nan, base_greedy=np.nan, greedy_gain=np.nan)
    d = with_defaults(dynamics)
    d = d[d["metric"].isin(list(CLIP_METRICS.values()))]
    if d.empty:
        means = d.iloc[:0][RUN_KEYS]
    else:
        means = d.pivot_table(index=RUN_KEYS, columns="metric", values="value", aggfunc="mean").reset_index()
    means = means.rename(columns={v: k for k, v in CLIP_METRICS.items()})
    for name in CLIP_METRICS:
        if name not in means.columns:
            means[name] = np.nan
    t1 = t1.assign(seed=t1["seed"].astype("int64"))
    means = means.assign(seed=means["seed"].astype("int64"))
    return t1.merge(means[RUN_KEYS + list(CLIP_METRICS)], on=RUN_KEYS, how="left")


def regime_summary(runs):
    """Per model x task x condition x regime: the number of seeds and the median over seeds of the gains
    and clip fractions of ``run_table`` (the mean gain beside the median: they part where a few seeds drift)."""
    keys = ["model", "task", "condition", "regime"]
    cols = [c for c in ("gain", "greedy_gain", "clipfrac", "clipfrac_high", "clipfrac_low", "abs_log_ratio")
            if c in runs and runs[c].notna().any()]
    g = runs.groupby(keys, sort=False)
    table = g[cols].median().add_prefix("median ")
    table.insert(0, "seeds", g["seed"].nunique())
    table.insert(len(table.columns), "mean gain", g["gain"].mean())
    order = {c: i for i, c in enumerate(condition_order(runs["condition"]))}
    # regimes ranked by natural_key ("u2" < "u16"): an integer rank, since mapping an index to tuples makes
    # pandas build a MultiIndex (which fails on the empty tuple of a study without regimes)
    regime_rank = {r: i for i, r in enumerate(sorted(set(runs["regime"]), key=natural_key))}
    return table.sort_index(key=lambda idx: idx.map(order) if idx.name == "condition" else (
        idx.map(regime_rank) if idx.name == "regime" else idx))


def step_gains(results, eval_tag: str = "", min_checkpoints: int = 2):
    """One row per run x evaluated checkpoint: pass@1 (or greedy accuracy) and its gain over the base model,
    for runs with at least ``min_checkpoints`` evaluated checkpoints (the steps axis); step 0 is the base
    model itself (gain 0), so every curve starts there."""
    import pandas as pd

    r = eval_rows(results, eval_tag)
    r = r[r["k"] == 1]
    keys = ["model", "task", "dataset"]
    base = r[r["condition"] == BASE].drop_duplicates(keys).set_index(keys)["pass_at_k"].rename("base_pass_at_1")
    trained = r[r["condition"] != BASE]
    counts = trained.groupby(RUN_KEYS)["step"].transform("nunique")
    trained = trained[counts >= min_checkpoints]
    if trained.empty:
        return pd.DataFrame(columns=RUN_KEYS + ["dataset", "step", "pass_at_1", "base_pass_at_1", "gain"])
    starts = trained.drop_duplicates(RUN_KEYS + ["dataset"]).assign(step=0).drop(columns="pass_at_k")
    starts = starts.join(base, on=keys)
    starts = starts.assign(pass_at_k=starts["base_pass_at_1"])
    rows = pd.concat([starts, trained.join(base, on=keys)], ignore_index=True)
    rows = rows.rename(columns={"pass_at_k": "pass_at_1"})
    rows["gain"] = rows["pass_at_1"] - rows["base_pass_at_1"]
    cols = RUN_KEYS + ["dataset", "step", "pass_at_1", "base_pass_at_1", "gain"]
    return rows[cols].sort_values(RUN_KEYS + ["step"]).reset_index(drop=True)


def procedure_table(dynamics):
    """The testbed's procedure shares per run and step: columns RUN_KEYS, step, procedure
    (correct | buggy | neither), share. Empty where no run logged them (a task without procedures)."""
    d = with_defaults(dynamics)
    d = d[d["metric"].str.startswith(PROCEDURE_PREFIX)]
    d = d.assign(procedure=d["metric"].str[len(PROCEDURE_PREFIX):], share=d["value"])
    return d[RUN_KEYS + ["step", "procedure", "share"]].sort_values(RUN_KEYS + ["procedure", "step"]).reset_index(
        drop=True)


# --- the bandit -----------------------------------------------------------------------------------
def bandit_runs(settings: Mapping[str, Any] | None, variants: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """``mirage.mechanism.simulate_bandit`` once per variant: ``settings`` (overrides of ``BanditSettings``'
    defaults; empty = the defaults) with each variant's overrides on top. -> {variant: result}."""
    import dataclasses

    check_parameters({"bandit": settings or {}, "bandit_variants": variants}, {"bandit": dict, "bandit_variants": dict})
    known = {f.name for f in dataclasses.fields(BanditSettings)}
    out = {}
    for name, changes in variants.items():
        merged = {**dict(settings or {}), **dict(changes or {})}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise KeyError(f"bandit variant {name!r}: unknown BanditSettings key(s) {unknown}; known: {sorted(known)}")
        out[name] = simulate_bandit(BanditSettings(**merged))
    return out


def bandit_table(runs: Mapping[str, dict]):
    """One row per variant: ``mirage.mechanism.summarise`` (start, median, mean, quartiles, median shift,
    clip fraction) and the settings that differ between variants."""
    import pandas as pd

    table = pd.DataFrame({name: summarise(r) for name, r in runs.items()}).T
    settings = pd.DataFrame({name: r["settings"] for name, r in runs.items()}).T
    varying = [c for c in settings.columns if settings[c].astype(str).nunique() > 1]
    table = pd.concat([settings[varying], table], axis=1)
    table.index.name = "variant"
    return table
