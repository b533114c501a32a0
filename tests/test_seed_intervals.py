"""The seed summary's interval covers: a simulation on testbed-like cells (200 problems, 32 samples each,
per-problem difficulty fitted to a testbed base model, 3 or 5 seeds with seed-to-seed SD 0.02 or 0.05)
measures >= 0.93 coverage of the population effect for ``seed_interval`` and < 0.9 for the two-level
bootstrap it replaced (and for a t over seeds alone, which ignores the shared test set); Holm's procedure
and the t quantiles against known values."""

from __future__ import annotations

import numpy as np
import pytest

from mirage.study import seeds


@pytest.mark.parametrize("n_seeds", [3, 5])
@pytest.mark.parametrize("seed_sd", [0.02, 0.05])
def test_the_seed_interval_covers_the_population_effect(n_seeds, seed_sd):
    r = seeds.simulate_coverage(n_seeds, seed_sd, method="t", reps=2000, seed=11)
    assert r["coverage"] >= 0.93, r
    assert 0.05 < r["truth"] < 0.15 and r["n_problems"] == 200 and r["n_samples"] == 32


def test_the_old_two_level_bootstrap_and_a_t_over_seeds_alone_under_cover():
    """What the suite would have caught: the bootstrap (3 seeds, SD 0.05) and a t over the seed means that
    ignores the problem sampling of the shared test set (5 seeds, SD 0.02) both cover < 0.9."""
    old = seeds.simulate_coverage(3, 0.05, method="bootstrap", reps=300, n_boot=500, seed=11)
    assert old["coverage"] < 0.9, old
    seeds_only = seeds.simulate_coverage(5, 0.02, method="t_seeds", reps=2000, seed=11)
    assert seeds_only["coverage"] < 0.9, seeds_only
    new = seeds.simulate_coverage(3, 0.05, method="t", reps=300, seed=11)  # the same cells
    assert new["coverage"] >= 0.93 and new["truth"] == old["truth"]


def test_the_simulation_hits_the_asked_seed_to_seed_sd():
    """The seed shift is calibrated so that the seeds' mean pass@1 (many problems, many samples) has the
    asked SD: measured on 4,000 seeds of 2,000 problems each."""
    r = seeds.simulate_coverage(3, 0.05, reps=1)
    rng = np.random.default_rng(0)
    s = seeds.SIM_DEFAULTS
    logit = s["base_logit_mean"] + s["base_logit_sd"] * rng.standard_normal(2000)
    shift = s["effect"] + s["effect_sd"] * rng.standard_normal(2000)
    u = r["seed_logit_sd"] * rng.standard_normal((4000, 1))
    v = s["interaction_sd"] * rng.standard_normal((4000, 2000))
    p = 1 / (1 + np.exp(-(logit + shift + u + v)))
    assert p.mean(axis=1).std() == pytest.approx(0.05, rel=0.06)


def test_t_quantiles_and_the_interval_by_hand():
    assert seeds.t_quantile(1) == pytest.approx(12.7062047, abs=1e-6)
    assert seeds.t_quantile(2) == pytest.approx(4.3026527, abs=1e-6)
    assert seeds.t_quantile(4) == pytest.approx(2.7764451, abs=1e-6)
    assert seeds.t_quantile(199) == pytest.approx(1.9719565, abs=1e-6)
    assert seeds.t_quantile(4, 0.01) == pytest.approx(4.6040949, abs=1e-6)
    with pytest.raises(ValueError, match="whole df"):
        seeds.t_quantile(2.5)
    rng = np.random.default_rng(3)
    x = rng.normal(0.1, 0.3, size=(3, 50)) + rng.normal(0, 0.05, size=(3, 1))
    ci = seeds.seed_interval(x)
    v_seed = x.mean(axis=1).var(ddof=1) / 3
    v_prob = x.mean(axis=0).var(ddof=1) / 50
    half = np.sqrt(4.3026527 ** 2 * v_seed + seeds.t_quantile(49) ** 2 * v_prob)
    assert (ci["ci_low"], ci["ci_high"]) == pytest.approx((x.mean() - half, x.mean() + half), abs=1e-6)
    assert ci["se"] == pytest.approx(np.sqrt(v_seed + v_prob))
    # p is the interval's: 0 sits on the bound of the (1 - p) interval
    shifted = x - x.mean() + half  # the same spread, mean exactly on the 95% half-width
    assert seeds.seed_interval(shifted)["p"] == pytest.approx(0.05, rel=1e-6)
    assert seeds.seed_interval(-shifted)["p"] == pytest.approx(0.05, rel=1e-6)
    with pytest.raises(ValueError, match="finite seeds x problems"):
        seeds.seed_interval(np.array([[0.1, np.nan]]))


def test_holm_step_down():
    # sorted 0.001 <= 0.05/4, 0.012 <= 0.05/3, 0.03 > 0.05/2: stop (0.04 is not rejected though <= 0.05)
    p = np.array([0.04, 0.001, 0.03, 0.012])
    assert seeds.holm(p).tolist() == [False, True, False, True]
    assert seeds.holm(np.array([0.01, 0.02, 0.03])).tolist() == [True, True, True]  # 0.03 <= 0.05/1
    # NaN: not in the family (the family size is 2 here, not 3)
    assert seeds.holm(np.array([0.02, np.nan, 0.025])).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="p-values in"):
        seeds.holm(np.array([0.5, 1.5]))


def test_seed_summary_gains_carry_p_and_holm_over_the_summary_as_one_family():
    """Two conditions, 3 seeds, 100 problems: a clear gain survives, a tiny one does not; levels carry no p."""
    import pandas as pd

    rng = np.random.default_rng(5)
    base = rng.integers(0, 9, size=100)
    rows = [dict(model="m", task="t", condition="base", regime="", seed=pd.NA, step=0, dataset="d", eval_tag="",
                 problem_id=f"p{j:03d}", n=8, c=int(c)) for j, c in enumerate(base)]
    for condition, lift in (("ground_truth", 3), ("random", 0)):
        for seed in range(3):
            counts = np.clip(base + lift + rng.integers(-1, 2, size=100), 0, 8)
            rows += [dict(model="m", task="t", condition=condition, regime="", seed=seed, step=40, dataset="d",
                          eval_tag="", problem_id=f"p{j:03d}", n=8, c=int(c)) for j, c in enumerate(counts)]
    problems = pd.DataFrame(rows)
    gains = seeds.seed_summary(problems, gain=True).set_index("condition")
    assert gains.loc["ground_truth", "holm_survives"] and not gains.loc["random", "holm_survives"]
    assert gains.loc["ground_truth", "p"] < 0.025 < gains.loc["random", "p"]
    for _, row in gains.iterrows():
        x = np.array(row["values"])
        assert row["mean"] == pytest.approx(x.mean()) and row["ci_low"] < row["mean"] < row["ci_high"]
    levels = seeds.seed_summary(problems)
    assert levels["p"].isna().all() and levels["holm_survives"].isna().all()
    table = seeds.seed_summaries(problems)
    assert list(table.columns[8:15]) == ["mean", "ci_low", "ci_high", "se", "p", "holm_survives", "median"]
    assert table["p"].iloc[0] == "" and float(table.loc[table.condition.eq("random") & table.statistic.eq(
        "pass@1 gain"), "p"].iloc[0]) > 0.05
    text = seeds.ci_tables(problems)
    assert text.loc["pass@1 gain over base (* survives Holm)"].iloc[0]["ground_truth"].endswith("]*")
    # the contamination notebook's figure draws the same mean and interval
    import matplotlib

    matplotlib.use("Agg")
    from mirage.plots.contamination import plot_gains

    fig = plot_gains(table)
    ax = fig.axes[0]
    assert "mean over seeds" in ax.get_ylabel()
    centres = sorted(float(y) for line in ax.lines if line.get_marker() == "o" for y in line.get_ydata())
    assert centres == pytest.approx(sorted(gains["mean"]))
