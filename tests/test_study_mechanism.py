"""Seeds and regimes: the two-level (seeds, problems) bootstrap, the regime tables of the clipping-bias
notebook, and a tiny mechanism-like study end to end (2 regimes x 2 seeds, greedy evaluation, the
40_clipping_bias notebook through papermill)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import subprocess
import sys

import numpy as np
import pytest

from mirage import study

if TYPE_CHECKING:  # annotations only: the tests import it where they use it
    import pandas as pd


# --- the two-level bootstrap ---------------------------------------------------------------------
def _problems(scores: dict[int, np.ndarray], base: np.ndarray, n: int = 4, step: int = 20, condition: str = "random",
              regime: str = "", eval_tag: str = "") -> pd.DataFrame:
    """A per-problem table (the problems.parquet schema) from per-seed correct counts and the base model's."""
    import pandas as pd

    rows = []
    for pid, c in enumerate(base):
        rows.append(dict(model="m", task="t", condition="base", regime="", seed=pd.NA, step=0, dataset="d",
                         eval_tag=eval_tag, problem_id=f"p{pid:03d}", n=n, c=int(c)))
    for seed, counts in scores.items():
        for pid, c in enumerate(counts):
            rows.append(dict(model="m", task="t", condition=condition, regime=regime, seed=seed, step=step,
                             dataset="d", eval_tag=eval_tag, problem_id=f"p{pid:03d}", n=n, c=int(c)))
    return pd.DataFrame(rows)


RNG = np.random.default_rng(7)
BASE = RNG.integers(0, 5, size=60)
SEED0 = RNG.integers(0, 5, size=60)


def test_one_seed_gives_exactly_the_problem_only_bootstrap_and_a_t_interval_over_problems():
    import pandas as pd

    from mirage.passk import bootstrap_ci

    n = np.full(60, 4)
    ref = bootstrap_ci(n, SEED0, ks=[1], n_boot=1000, seed=3).iloc[0]
    for resample in ("per_seed", "shared"):
        low, high = study.two_level_bootstrap((SEED0 / 4)[None, :], seed=3, resample=resample)
        assert (low, high) == pytest.approx((ref["ci_low"], ref["ci_high"]), abs=1e-12)
    # the summary's interval with one seed: mean -+ t_59 sd / sqrt(60) over problems (t_59 = 2.00100)
    row = study.seed_summary(_problems({0: SEED0}, BASE)).iloc[0]
    x = SEED0 / 4
    half = 2.000995378 * x.std(ddof=1) / np.sqrt(60)
    assert row["seeds"] == 1 and row["median"] == pytest.approx(ref["pass_at_k"]) == row["mean"]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((x.mean() - half, x.mean() + half), abs=1e-8)
    assert row["ci_high"] - row["ci_low"] == pytest.approx(ref["ci_high"] - ref["ci_low"], rel=0.1)
    assert np.isnan(row["p"]) and pd.isna(row["holm_survives"])  # a level: no test against 0


def test_the_ci_widens_with_the_spread_between_seeds():
    """Same pooled mean, same problems: seeds that disagree give a wider CI than seeds that agree."""
    agree = {s: SEED0 for s in range(4)}
    spread = {0: np.clip(SEED0 - 2, 0, 4), 1: np.clip(SEED0 - 1, 0, 4), 2: np.clip(SEED0 + 1, 0, 4),
              3: np.clip(SEED0 + 2, 0, 4)}
    a, b = (study.seed_summary(_problems(x, BASE)).iloc[0] for x in (agree, spread))
    assert a["values"] == pytest.approx([SEED0.mean() / 4] * 4) and len(set(b["values"])) == 4
    assert (b["ci_high"] - b["ci_low"]) > 1.5 * (a["ci_high"] - a["ci_low"])
    assert b["ci_low"] < b["mean"] < b["ci_high"]
    # seeds that agree are one test set, not four: exactly the one-seed interval (the seed term is 0)
    one = study.seed_summary(_problems({0: SEED0}, BASE)).iloc[0]
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((one["ci_low"], one["ci_high"]), abs=1e-12)


def test_the_gain_is_measured_on_the_same_problems_as_the_base():
    # a trained model identical to the base problem by problem: the gain is exactly 0, p 1
    same = study.seed_summary(_problems({0: BASE, 1: BASE}, BASE), gain=True).iloc[0]
    assert same["mean"] == same["ci_low"] == same["ci_high"] == 0 and same["p"] == 1
    assert not same["holm_survives"]
    # one more correct sample on every problem: gain 1/n on every problem and seed, no variance
    plus = study.seed_summary(_problems({0: BASE + 1, 1: BASE + 1}, BASE, n=8), gain=True).iloc[0]
    assert plus["ci_low"] == pytest.approx(1 / 8) and plus["ci_high"] == pytest.approx(1 / 8)
    assert plus["p"] == study.seeds.P_FLOOR and plus["holm_survives"]


def test_seed_summary_uses_each_seeds_last_checkpoint_and_refuses_unequal_problem_sets():
    import pandas as pd

    early = _problems({0: np.zeros(60), 1: np.zeros(60)}, BASE, step=10)
    late = _problems({0: SEED0, 1: np.full(60, 4)}, BASE, step=20)
    table = pd.concat([early, late[late.condition != "base"]], ignore_index=True)
    row = study.seed_summary(table).iloc[0]
    assert row["values"] == pytest.approx([SEED0.mean() / 4, 1.0]) and row["median"] == pytest.approx(
        (SEED0.mean() / 4 + 1) / 2) == row["mean"]
    per_step = study.seed_summary(table, per_step=True)
    assert list(per_step["step"]) == [10, 20] and per_step["median"].iloc[0] == 0
    with pytest.raises(ValueError, match="different problems"):
        study.seed_summary(table[~((table.seed == 1) & (table.problem_id == "p000"))])
    with pytest.raises(ValueError, match="complete seeds x problems"):
        study.two_level_bootstrap(np.array([[0.5, np.nan]]))
    # the console / notebook form: "median [low, high]", gains signed
    text = study.ci_tables(table)
    assert list(text.index.get_level_values("statistic").unique()) == [
        "pass@1", "pass@1 gain over base (* survives Holm)"]
    assert text.iloc[0, 0] == f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


# --- the regime tables ------------------------------------------------------------------------------
def _results_and_dynamics():
    import pandas as pd

    rows, dyn = [], []

    def add(cond, regime, seed, step, p1, tag=""):
        rows.append(dict(model="m", task="t", dataset="d", condition=cond, rq="RQ1", regime=regime, seed=seed,
                         step=step, eval_tag=tag, k=1, pass_at_k=p1, align_k=4, align_pass_at_k=0.9))

    add("base", "", pd.NA, 0, 0.50)
    add("base", "", pd.NA, 0, 0.60, "greedy")
    for seed, (p_mid, p_end, greedy_end, clip) in enumerate([(0.52, 0.55, 0.70, 0.01), (0.48, 0.45, 0.58, 0.03)]):
        add("random", "u16", seed, 20, p_mid)
        add("random", "u16", seed, 40, p_end)
        add("random", "u16", seed, 40, greedy_end, "greedy")
        for step in (1, 2):
            for metric, value in (("actor/pg_clipfrac", clip * step), ("train/procedure/correct", 0.5 + 0.1 * step)):
                dyn.append(dict(model="m", task="t", condition="random", regime="u16", seed=seed, step=step,
                                metric=metric, value=value))
    add("ground_truth", "u2", 0, 40, 0.80)  # one checkpoint: not on the steps axis
    add("ground_truth", "u2", 0, 40, 0.90, "greedy")
    return pd.DataFrame(rows), pd.DataFrame(dyn)


def test_run_table_has_each_runs_gains_and_mean_clip_fraction():
    results, dynamics = _results_and_dynamics()
    runs = study.run_table(results, dynamics).set_index(["condition", "regime", "seed"])
    r = runs.loc[("random", "u16", 1)]
    assert r["step"] == 40 and r["gain"] == pytest.approx(-0.05) and r["greedy_gain"] == pytest.approx(-0.02)
    assert r["clipfrac"] == pytest.approx(0.045)  # the mean over the run's steps (0.03, 0.06)
    assert runs.loc[("ground_truth", "u2", 0), "greedy_gain"] == pytest.approx(0.30)
    assert np.isnan(runs.loc[("ground_truth", "u2", 0), "clipfrac"])  # the run logged no clip fraction
    summary = study.regime_summary(study.run_table(results, dynamics))
    assert list(summary.index.get_level_values("condition")) == ["ground_truth", "random"]  # registry order
    assert summary.loc[("m", "t", "random", "u16"), "median gain"] == pytest.approx(0.0)
    # without greedy rows the greedy columns are there, empty
    assert study.run_table(results[results.eval_tag == ""], dynamics)["greedy_gain"].isna().all()


def test_regime_summary_of_a_study_without_regimes_and_with_numbered_regimes():
    """A study without regimes (regime "" everywhere) is summarised too (sorting by natural_key's tuples made
    pandas build a MultiIndex and fail on the empty tuple), and regimes sort as numbers (u2 < u8 < u16)."""
    import pandas as pd

    results, dynamics = _results_and_dynamics()
    plain = results.assign(regime="")
    summary = study.regime_summary(study.run_table(plain, dynamics.assign(regime="")))
    assert list(summary.index.get_level_values("regime")) == ["", ""] and list(summary["seeds"]) == [1, 2]
    many = pd.concat([results.assign(regime=results["regime"].replace({"u16": r})) for r in ("u16", "u8", "u2")])
    many = many[many.condition != "ground_truth"]
    summary = study.regime_summary(study.run_table(many, dynamics))
    assert list(summary.index.get_level_values("regime")) == ["u2", "u8", "u16"]


def test_step_gains_start_at_the_base_model_and_skip_single_checkpoint_runs():
    results, _ = _results_and_dynamics()
    steps = study.step_gains(results)
    assert set(steps["condition"]) == {"random"}  # ground_truth evaluated one checkpoint only
    seed0 = steps[steps.seed == 0]
    assert list(seed0["step"]) == [0, 20, 40] and list(seed0["gain"]) == pytest.approx([0.0, 0.02, 0.05])
    greedy = study.step_gains(results, eval_tag="greedy", min_checkpoints=1)
    assert set(greedy["condition"]) == {"random", "ground_truth"}
    assert greedy.query("condition == 'ground_truth' and step == 40")["gain"].iloc[0] == pytest.approx(0.30)
    procedures = study.procedure_table(_results_and_dynamics()[1])
    assert set(procedures["procedure"]) == {"correct"} and len(procedures) == 4


def test_bandit_variants_run_the_mechanism_module_with_their_overrides():
    variants = {"clip": {}, "no-clip": {"policy_loss": "no_clip"}}
    runs = study.bandit_runs({"steps": 3, "seeds": 4, "group": 4, "mini_batches": 2}, variants)
    assert list(runs) == ["clip", "no-clip"] and runs["no-clip"]["settings"]["policy_loss"] == "no_clip"
    assert runs["clip"]["p_favoured"].shape[0] == 4 and runs["clip"]["settings"]["steps"] == 3
    table = study.bandit_table(runs)
    assert list(table.index) == ["clip", "no-clip"] and "policy_loss" in table.columns and "median" in table.columns
    with pytest.raises(KeyError, match="stepz"):
        study.bandit_runs({"stepz": 3}, variants)


# --- a tiny mechanism-like study, end to end -----------------------------------------------------------
TINY = """name: mech-tiny
backend: local
pairs: [[dial-90, toy-math]]
conditions: [random]
seeds: [0, 1]
recipe: testbed
overrides: {total_steps: 4, train_batch_size: 4, rollout_n: 4, ppo_mini_batch_size: 4, save_freq: 2, val_freq: 0}
regimes:
  clip: {ppo_mini_batch_size: 1, lr: 1.0e-4}
  noclip: {ppo_mini_batch_size: 1, policy_loss: no_clip, lr: 1.0e-4}
eval: {n: 2, align_n: 4, alignment_k: 4, checkpoints: all, greedy: true}
analysis:
  - 90_figures.ipynb
  - 40_clipping_bias.ipynb: {bandit: {steps: 10, seeds: 8, group: 8, mini_batches: 4}}
jobs: 2
"""


@pytest.mark.slow
def test_a_mechanism_study_runs_its_regimes_seeds_greedy_evaluation_and_notebook(tmp_path):
    import pandas as pd

    from mirage.evaluate import read_samples

    preset_file = tmp_path / "mech-tiny.yaml"
    preset_file.write_text(TINY)
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "mirage.cli", "study", "--preset", str(preset_file), "--out", str(out)]
    # first the clip regime's cells only (as a cluster job would select them), then the rest
    first = subprocess.run(cmd + ["--stage", "cells", "--only", "regime=clip"], capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 1 and "blocked" in first.stdout  # the alignment has not run: nothing is trained
    for stage in ("alignment", "cells"):
        run = subprocess.run(cmd + ["--stage", stage, "--only", "regime=clip"], capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
    preset = study.load_preset(str(preset_file))
    cells = preset.cells()
    assert all(c.run_dir(out).exists() == (c.regime == "clip") for c in cells)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "resuming: 2/4 cells already finished" in run.stdout
    assert "mean over seeds [95% CI over seeds and problems" in run.stdout  # two seeds: the console shows CIs

    results = pd.read_parquet(out / "results.parquet")
    key = ["model", "task", "condition", "regime", "seed", "step", "dataset", "eval_tag", "k"]
    assert not results.duplicated(key).any()
    assert set(results["regime"]) == {"", "clip", "noclip"} and set(results["eval_tag"]) == {"", "greedy"}
    greedy = results[results.eval_tag == "greedy"]
    assert set(greedy["k"]) == {1} and set(greedy["temperature"]) == {0.0} and set(greedy["n"]) == {1}
    trained = greedy[greedy.condition != "base"]
    assert len(trained) == len(cells) * 2  # both checkpoints of every run, and the base model once
    assert len(greedy[greedy.condition == "base"]) == 1
    # problems.parquet holds the counts every pass@1 is the mean of
    problems = pd.read_parquet(out / "problems.parquet")
    p1 = results[results.k == 1].set_index(key[:-1])["pass_at_k"]
    means = problems.assign(s=problems.c / problems.n).groupby(key[:-1], dropna=False)["s"].mean()
    assert len(means) == len(p1) and np.allclose(means.reindex(p1.index).to_numpy(), p1.to_numpy())
    c = cells[-1]
    samples = read_samples(c.run_dir(out) / "eval" / "greedy" / "step_4")
    counts = problems.query("regime == @c.regime and seed == @c.seed and step == 4 and eval_tag == 'greedy'")
    assert len(counts) == samples["problem_id"].nunique() and counts["c"].sum() == samples["correct"].sum()
    dyn = pd.read_parquet(out / "dynamics.parquet")
    assert set(dyn["regime"]) == {"clip", "noclip"}
    # the two analysis notebooks ran and drew their figures
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"mechanism_bandit", "mechanism_gain_vs_clipfrac", "mechanism_gain_vs_step", "mechanism_procedure_shares",
            "mechanism_gain_distributions", "passk_curves", "summary_gain_vs_alignment"} <= figures
    assert all((out / "figures" / f"{f}.pdf").exists() for f in figures)
    assert (out / "analysis" / "40_clipping_bias" / "notebook.ipynb").exists()


def test_tables_written_before_regimes_and_greedy_are_read_with_both_empty(tmp_path):
    """A study directory from before (no regime / eval_tag columns) still loads, and its gains compute."""
    import pandas as pd

    results, dynamics = _results_and_dynamics()
    old = results[results.eval_tag == ""].drop(columns=["regime", "eval_tag"])
    (tmp_path / "alignment").mkdir()
    old.to_parquet(tmp_path / "results.parquet")
    dynamics.drop(columns="regime").to_parquet(tmp_path / "dynamics.parquet")
    pd.DataFrame({"model": ["m"]}).to_parquet(tmp_path / "alignment" / "alignment.parquet")
    r, d, _ = study.load_results(tmp_path)
    assert set(r["regime"]) == set(r["eval_tag"]) == set(d["regime"]) == {""}
    gains = study.gain_table(r)
    assert set(gains["regime"]) == {""} and len(gains) == 3
    with pytest.raises(FileNotFoundError, match="problems.parquet"):
        study.load_problems(tmp_path)
