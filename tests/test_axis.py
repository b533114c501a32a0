"""The alignment-axis and noise-axis analyses (mirage.study.axis, mirage.study.noise, mirage.plots.axis):
exact permutation p, the difference interval (and its coverage), Holm per condition, the tables against
seed_summary and the alignment step, contrasts across two studies, the figures."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "study"


def synthetic_problems(cells, pairs, m: int = 40, n: int = 16, base_n: int = 32, seed: int = 0):
    """A per-problem table like problems.parquet: ``pairs`` {(model, task): base logit mean}; ``cells`` a list
    of (condition, model, task, regime, seeds, logit effect, seed SD); every seed evaluated on the same m
    problems at step 40, the base model once (condition "base", step 0, n = base_n)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows, logits = [], {}
    for (model, task), centre in pairs.items():
        logit = centre + rng.standard_normal(m)
        logits[model, task] = logit
        c = rng.binomial(base_n, 1 / (1 + np.exp(-logit)))
        rows += [dict(model=model, task=task, condition="base", regime="", seed=pd.NA, step=0, dataset=f"{task}_test",
                      eval_tag="", problem_id=str(j), n=base_n, c=int(c[j])) for j in range(m)]
    for condition, model, task, regime, seeds, effect, seed_sd in cells:
        for s in range(seeds):
            p = 1 / (1 + np.exp(-(logits[model, task] + effect + seed_sd * rng.standard_normal()
                                  + 0.3 * rng.standard_normal(m))))
            c = rng.binomial(n, p)
            rows += [dict(model=model, task=task, condition=condition, regime=regime, seed=s, step=40,
                          dataset=f"{task}_test", eval_tag="", problem_id=str(j), n=n, c=int(c[j])) for j in range(m)]
    out = pd.DataFrame(rows)
    out["seed"] = out["seed"].astype("Int64")
    return out


PAIRS = {("m1", "toy-math"): -3.0, ("m2", "toy-math"): -1.0, ("m3", "toy-math"): 0.5,
         ("m1", "toy-logic"): -2.0, ("m2", "toy-logic"): 0.0, ("m3", "toy-logic"): 1.5}


def axis_problems(seed: int = 0):
    cells = [(c, model, task, "", 3, eff, 0.05) for (model, task) in PAIRS
             for c, eff in (("ground_truth", 1.5), ("random", 0.0), ("nsr", 0.8))]
    return synthetic_problems(cells, PAIRS, seed=seed)


@pytest.fixture(scope="module")
def axis_frame():
    """(problems, axis_table at k = 16) of the synthetic axis study (computed once: ~5 s of intervals)."""
    from mirage.study.axis import axis_table

    problems = axis_problems()
    return problems, axis_table(problems, k=16)


# --- exact permutation p --------------------------------------------------------------------------
def test_a_perfectly_ordered_vector_has_the_smallest_exact_p():
    from mirage.study.axis import rank_correlation

    x = np.array([0.1, 0.23, 0.405, 0.525, 0.625, 0.79, 0.975])
    r = rank_correlation(x, np.arange(7.0))
    assert r["rho"] == pytest.approx(1.0)
    # two-sided: the identity and the reversal reach |rho| = 1 among 7! orderings; one-sided: the identity only
    assert r["p_two_sided"] == pytest.approx(2 / 5040) and r["p_increasing"] == pytest.approx(1 / 5040)
    down = rank_correlation(x, -np.arange(7.0))
    assert down["rho"] == pytest.approx(-1.0)
    assert down["p_two_sided"] == pytest.approx(2 / 5040) and down["p_increasing"] == pytest.approx(1.0)
    assert rank_correlation(np.arange(8.0), np.arange(8.0) ** 2)["p_two_sided"] == pytest.approx(2 / 40320)


def test_the_exact_p_matches_a_brute_force_count():
    from mirage.study.axis import rank_correlation

    rng = np.random.default_rng(3)
    x, y = rng.random(6), rng.random(6)

    def rho(a, b):  # Pearson on ranks (no ties here)
        ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
        return np.corrcoef(ra, rb)[0, 1]

    observed = rho(x, y)
    null = np.array([rho(x, y[list(p)]) for p in itertools.permutations(range(6))])
    r = rank_correlation(x, y)
    assert r["rho"] == pytest.approx(observed)
    assert r["p_two_sided"] == pytest.approx((np.abs(null) >= abs(observed) - 1e-9).mean())
    assert r["p_increasing"] == pytest.approx((null >= observed - 1e-9).mean())


def test_rank_correlation_refuses_what_it_cannot_do():
    from mirage.study.axis import rank_correlation

    assert np.isnan(rank_correlation([1, 2, 3], [5, 5, 5])["rho"])  # constant: undefined, not 0
    assert np.isnan(rank_correlation([1, 2], [1, 2])["p_two_sided"])
    with pytest.raises(ValueError, match="too many"):
        rank_correlation(np.arange(11.0), np.arange(11.0))
    with pytest.raises(ValueError, match="NaN"):
        rank_correlation([1, 2, np.nan], [1, 2, 3])


# --- the difference interval ----------------------------------------------------------------------
def test_difference_interval_by_hand():
    from mirage.study.axis import difference_interval
    from mirage.study.seeds import t_quantile

    x = np.array([[0.1, 0.3, 0.2], [0.2, 0.4, 0.3]])
    y = np.array([[0.0, 0.1, 0.1], [0.1, 0.1, 0.0], [0.0, 0.2, 0.1]])
    r = difference_interval(x, y)
    va = np.var([0.2, 0.3], ddof=1) / 2
    vb = np.var([0.2 / 3, 0.2 / 3, 0.1], ddof=1) / 3
    vp = np.var(x.mean(axis=0) - y.mean(axis=0), ddof=1) / 3
    half = np.sqrt(t_quantile(1) ** 2 * va + t_quantile(2) ** 2 * vb + t_quantile(2) ** 2 * vp)
    assert r["difference"] == pytest.approx(x.mean() - y.mean())
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((r["difference"] - half, r["difference"] + half))
    assert 0 < r["p"] < 1
    with pytest.raises(ValueError, match="same problems"):
        difference_interval(x, y[:, :2])
    # one seed a side (a quick preset): no seed term, the problem term alone
    one = difference_interval(x[:1], y[:1])
    d = x[0] - y[0]
    assert one["ci_high"] - one["difference"] == pytest.approx(t_quantile(2) * np.sqrt(d.var(ddof=1) / 3))


def test_difference_interval_covers_and_the_seed_only_t_does_not():
    """Two regimes, independent seeds on one shared test set of 200 problems (32 samples each), problem
    effects that differ between the regimes (SD 0.7 logit) and a small seed SD: the interval covers the true
    difference >= 0.93 at 5 seeds (0.97 with this seed); a Welch-like interval over the seed means alone (the
    problem term left out) covers 0.74, so the check can fail."""
    from mirage.study.axis import difference_interval
    from mirage.study.seeds import t_quantile

    rng = np.random.default_rng(5)
    reps, seeds, m, n = 300, 5, 200, 32
    covered, seed_only = 0, 0
    z, w = np.polynomial.hermite_e.hermegauss(64)
    w = w / w.sum()
    for _ in range(reps):
        logit = 0.1 + 1.1 * rng.standard_normal(m)
        da, db = 0.7 * rng.standard_normal(m), 0.7 * rng.standard_normal(m)  # per-problem effect of each regime

        def cell(shift, d, logit=logit):
            u = 0.05 * rng.standard_normal((seeds, 1))
            p = 1 / (1 + np.exp(-(logit + shift + d + u + 0.3 * rng.standard_normal((seeds, m)))))
            return rng.binomial(n, p) / n

        x, y = cell(0.5, da), cell(0.0, db)
        # the truth: population means over problems, seeds and residuals (quadrature), regime a minus b
        sd_a = np.sqrt(1.1 ** 2 + 0.7 ** 2 + 0.05 ** 2 + 0.3 ** 2)
        truth = float((w / (1 + np.exp(-(0.6 + sd_a * z)))).sum() - (w / (1 + np.exp(-(0.1 + sd_a * z)))).sum())
        r = difference_interval(x, y, with_p=False)
        covered += r["ci_low"] <= truth <= r["ci_high"]
        half = t_quantile(seeds - 1) * np.sqrt(x.mean(axis=1).var(ddof=1) / seeds + y.mean(axis=1).var(ddof=1) / seeds)
        seed_only += abs(x.mean() - y.mean() - truth) <= half
    assert covered / reps >= 0.93
    assert seed_only / reps < 0.85


# --- Holm per condition, and the axis table -------------------------------------------------------
def test_holm_by_is_per_family():
    import pandas as pd

    from mirage.study.axis import holm_by

    frame = pd.DataFrame({"condition": ["a"] * 3 + ["b"] * 3, "p": [0.001, 0.02, 0.04, 0.5, 0.6, 0.9]})
    survives, size = holm_by(frame, "p", ["condition"])
    assert list(survives) == [True, True, True, False, False, False] and list(size) == [3] * 6
    # one family of six: 0.02 > 0.05 / 5, so only the first survives
    pooled, _ = holm_by(frame.assign(condition="x"), "p", ["condition"])
    assert list(pooled) == [True] + [False] * 5


def test_axis_table_agrees_with_seed_summary_and_holms_per_condition(axis_frame):
    import pandas as pd

    from mirage.passk import pass_at_k
    from mirage.study.axis import seed_notes
    from mirage.study.seeds import holm, seed_summary

    problems, axis = axis_frame
    assert len(axis) == 18 and set(axis["family_size"]) == {6}
    assert seed_notes(axis) == []  # every cell has its 3 seeds
    short = axis.assign(seeds=[2] + [3] * 17)
    first = short.loc[0]
    expected = f"1 cell(s) have fewer than 3 seeds: {first['condition']} {first['model']} x {first['task']} (2)"
    assert seed_notes(short) == [expected]
    summary = seed_summary(problems, gain=True).set_index(["condition", "model", "task"])
    for row in axis.itertuples():
        s = summary.loc[(row.condition, row.model, row.task)]
        assert (row.gain, row.gain_ci_low, row.gain_ci_high) == pytest.approx((s["mean"], s["ci_low"], s["ci_high"]))
        base = problems[(problems["condition"] == "base") & (problems["model"] == row.model)
                        & (problems["task"] == row.task)]
        assert row.base_pass_at_1 == pytest.approx((base["c"] / base["n"]).mean())
        assert row.base_pass_at_k == pytest.approx(pass_at_k(base["n"], base["c"], 16).mean())
    for condition, g in axis.groupby("condition"):
        assert list(g["gain_holm"]) == list(holm(g["gain_p"].to_numpy()))
    # ground truth's big effect survives on every pair; random reward's none
    assert axis.loc[axis["condition"] == "ground_truth", "gain_holm"].all()
    assert not axis.loc[axis["condition"] == "random", "gain_holm"].any()
    # recovered = gain / ground truth's gain, where that gained >= 0.02; ground truth has none of its own
    nsr = axis[axis["condition"] == "nsr"].set_index(["model", "task"])
    gt = axis[axis["condition"] == "ground_truth"].set_index(["model", "task"])["gain"]
    assert nsr["recovered"].to_numpy() == pytest.approx((nsr["gain"] / gt.reindex(nsr.index)).to_numpy())
    assert axis.loc[axis["condition"] == "ground_truth", "recovered"].isna().all()
    # the pass@16 change of a trained evaluation with n = 16: 1 where any sample was right
    one = problems[(problems["condition"] == "nsr") & (problems["model"] == "m2") & (problems["task"] == "toy-math")]
    base = problems[(problems["condition"] == "base") & (problems["model"] == "m2") & (problems["task"] == "toy-math")]
    expected = (one["c"] > 0).mean() - pass_at_k(base["n"], base["c"], 16).mean()
    assert nsr.loc[("m2", "toy-math"), "passk_change"] == pytest.approx(expected)
    assert isinstance(axis, pd.DataFrame) and axis["k"].eq(16).all()


def test_base_levels_are_the_alignment_steps_numbers():
    """On a real tiny study (the fixture): base pass@1 and pass@k from problems.parquet equal the alignment
    step's align_pass_at_1 / align_pass_at_k."""
    import pandas as pd

    from mirage.study.axis import alignment_k, base_levels

    results = pd.read_parquet(FIXTURE / "results.parquet")
    k = alignment_k(results)
    levels = base_levels(pd.read_parquet(FIXTURE / "problems.parquet"), k)
    align = results[results["condition"] == "base"].drop_duplicates(["model", "task", "dataset"]).set_index(
        ["model", "task", "dataset"])
    assert levels["base_pass_at_1"].to_numpy() == pytest.approx(align.loc[levels.index, "align_pass_at_1"].to_numpy())
    assert levels["base_pass_at_k"].to_numpy() == pytest.approx(align.loc[levels.index, "align_pass_at_k"].to_numpy())


def test_axis_correlations_read_each_task_alone():
    import pandas as pd

    from mirage.study.axis import axis_correlations

    # within each task the gain rises with pass@k; pooled, toy-logic's smaller gains would spoil the order
    axis = pd.DataFrame({"condition": "nsr", "regime": "", "dataset": "d", "k": 16,
                         "task": ["toy-math"] * 4 + ["toy-logic"] * 4,
                         "base_pass_at_k": [0.1, 0.4, 0.7, 0.9, 0.2, 0.5, 0.6, 0.95],
                         "base_pass_at_1": [0.01, 0.05, 0.3, 0.2, 0.02, 0.1, 0.3, 0.6],
                         "gain": [0.1, 0.2, 0.3, 0.4, 0.01, 0.02, 0.03, 0.04]})
    c = axis_correlations(axis).set_index(["task", "predictor"])
    assert c.loc[("toy-math", "base pass@16"), "rho"] == pytest.approx(1.0)
    assert c.loc[("toy-logic", "base pass@16"), "p_increasing"] == pytest.approx(1 / 24)
    assert c.loc[("toy-math", "base pass@1"), "rho"] == pytest.approx(0.8)
    assert set(c["family_size"]) == {2}


def test_contrasts_take_a_condition_from_a_reference_study():
    from mirage.study.axis import aligned, condition_contrasts, difference_interval, gain_matrices

    problems = axis_problems()
    here = problems[problems["condition"] != "nsr"]  # "psr" stands in: ground truth's cells under another name
    here = here.assign(condition=here["condition"].replace({"ground_truth": "psr"}))
    reference = problems[problems["condition"] != "random"]
    spec = {"psr - nsr, pass@16 change": ["psr", "nsr", "pass@k"], "psr - missing": ["psr", "entropy_min", "pass@1"]}
    table, notes = condition_contrasts(here, spec, 16, reference)
    assert len(table) == 6 and set(table["contrast"]) == {"psr - nsr, pass@16 change"}
    assert notes == ["psr - missing: no entropy_min cell in this study or its reference study: left out"]
    key = ("m2", "toy-logic", "toy-logic_test", "")
    x, y = aligned(gain_matrices(here, "pass@k", 16)[("psr", *key)], gain_matrices(reference, "pass@k", 16)[("nsr", *key)],
                   "t")
    row = table[(table["model"] == "m2") & (table["task"] == "toy-logic")].iloc[0]
    assert row["difference"] == pytest.approx(difference_interval(x, y)["difference"])
    assert row["ci_low"] == pytest.approx(difference_interval(x, y)["ci_low"])
    assert table["family_size"].eq(6).all()
    with pytest.raises(ValueError, match="must be"):
        condition_contrasts(here, {"bad": ["psr", "nsr"]}, 16)
    # a reference still running (seed 2 of its nsr cells missing) is named in the notes
    running = reference[~((reference["condition"] == "nsr") & (reference["seed"] == 2))]
    _, notes = condition_contrasts(here, {"psr - nsr": ["psr", "nsr", "pass@k"]}, 16, running)
    assert notes == ["contrasts draw on cells of [2, 3] seeds (a study still running, or a failed cell): "
                     "see seeds_a / seeds_b"]


def test_publish_axis_on_a_real_study_and_a_missing_reference(tmp_path):
    from mirage.study.axis import publish_axis

    study_dir = tmp_path / "study"
    shutil.copytree(FIXTURE, study_dir, ignore=shutil.ignore_patterns("*.md"))
    figures = tmp_path / "figures"
    out = publish_axis(study_dir, figures, reference_study="not-run-yet",
                       contrasts={"nsr - ground_truth": ["nsr", "ground_truth", "pass@1"],
                                  "psr - nsr": ["psr", "nsr", "pass@k"]})
    assert {p.name for p in out["paths"]} == {"axis.csv", "axis_correlations.csv", "axis_contrasts.csv"}
    # the correlations recompute from the committed axis.csv alone
    import pandas as pd

    from mirage.study.axis import axis_correlations

    again = axis_correlations(pd.read_csv(figures / "axis.csv"))
    written = pd.read_csv(figures / "axis_correlations.csv")
    assert len(again) == len(written) == 12
    assert again["pairs"].tolist() == written["pairs"].tolist()
    assert any("not-run-yet" in n and "no problems.parquet" in n for n in out["notes"])
    assert len(out["contrasts"]) == 4  # 2 models x 2 tasks
    # a rerun with nothing to contrast removes the stale table rather than leaving it
    again = publish_axis(study_dir, figures)
    assert not (figures / "axis_contrasts.csv").exists() and again["contrasts"].empty


# --- the noise axis -------------------------------------------------------------------------------
def noise_problems(seed: int = 0):
    cells = [("random", "dial-90", "toy-math", f"b{b}_{clip}", 5, eff, 0.05)
             for b, clip, eff in ((8, "clip", -1.5), (8, "noclip", -2.0), (32, "clip", -0.8), (32, "noclip", -1.0),
                                  (128, "clip", 0.0), (128, "noclip", -0.3))]
    return synthetic_problems(cells, {("dial-90", "toy-math"): 2.0}, m=60, seed=seed)


def test_noise_table_regimes_and_the_preregistered_differences():
    from mirage.study.axis import difference_interval, gain_matrices
    from mirage.study.noise import DEFAULT_CONTRASTS, noise_table

    problems = noise_problems()
    table = noise_table(problems)
    regimes, contrasts = table[table["kind"] == "regime"], table[table["kind"] == "contrast"]
    assert list(regimes["label"]) == ["b8_clip", "b8_noclip", "b32_clip", "b32_noclip", "b128_clip", "b128_noclip"]
    assert list(contrasts["label"]) == list(DEFAULT_CONTRASTS)
    assert set(regimes["family_size"]) == {6} and set(contrasts["family_size"]) == {3}
    g = gain_matrices(problems)
    key = ("random", "dial-90", "toy-math", "toy-math_test")
    first = contrasts.iloc[0]
    assert first["mean"] == pytest.approx(g[(*key, "b128_clip")].to_numpy().mean() - g[(*key, "b8_clip")].to_numpy().mean())
    assert first["mean"] == pytest.approx(first["mean_a"] - first["mean_b"])
    assert first["ci_low"] == pytest.approx(difference_interval(g[(*key, "b128_clip")], g[(*key, "b8_clip")])["ci_low"])
    # the simulated damage shrinks with the batch: both b128 - b8 differences above 0, surviving Holm
    assert (contrasts.iloc[:2]["ci_low"] > 0).all() and contrasts.iloc[:2]["holm_survives"].all()
    with pytest.raises(KeyError, match="b512_clip"):
        noise_table(problems, {"x": ["b512_clip", "b8_clip"]})


# --- figures --------------------------------------------------------------------------------------
def test_axis_figure_never_joins_two_tasks_and_marks_holm(tmp_path, axis_frame):
    import matplotlib.collections

    from mirage import plots
    from mirage.plots.axis import plot_axis

    axis = axis_frame[1]
    fig = plot_axis(axis)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["ground_truth", "random", "nsr"]
    for ax, (condition, g) in zip(panels, [(c, axis[axis["condition"] == c]) for c in ("ground_truth", "random", "nsr")]):
        lines = [line for line in ax.get_lines() if str(line.get_gid()).startswith("task:")]
        assert len(lines) == 2  # one per task, and no other joining line (the rest: error bars, the 0 line)
        drawn = [line for line in ax.get_lines() if line not in lines and line.get_linestyle() not in ("None", "")]
        assert all(len(line.get_xdata()) <= 2 for line in drawn)  # the 0 line; error-bar caps are markers only
        for line in lines:  # each joins the pairs of ONE task, in order of pass@k
            task = line.get_gid().split(":")[1]
            assert list(line.get_xdata()) == pytest.approx(sorted(g.loc[g["task"] == task, "base_pass_at_k"]))
        filled = sum(len(c.get_offsets()) for c in ax.collections
                     if isinstance(c, matplotlib.collections.PathCollection) and c.get_facecolor()[0][:3].tolist() != [1, 1, 1])
        assert filled == int(g["gain_holm"].sum())
    paths = plots.save(fig, "axis_gain_vs_alignment", tmp_path)
    assert all(p.stat().st_size > 1000 for p in paths)
    plots.save(plot_axis(axis, "passk_change"), "axis_passk_change", tmp_path)


def test_noise_figure(tmp_path):
    from mirage import plots
    from mirage.plots.axis import plot_noise
    from mirage.study.noise import noise_table

    fig = plot_noise(noise_table(noise_problems()))
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert labels == ["b128 - b8, clipped", "b128 - b8, unclipped", "clipped - unclipped at b128"]
    assert all(p.stat().st_size > 1000 for p in plots.save(fig, "noise", tmp_path))


# --- the notebooks, as the analysis stage runs them -----------------------------------------------
def _run_notebook(name: str, tmp_path: Path, **parameters) -> Path:
    import papermill

    study_dir = tmp_path / "study"
    shutil.copytree(FIXTURE, study_dir, ignore=shutil.ignore_patterns("*.md"))
    figures = tmp_path / "figures"
    papermill.execute_notebook(str(ROOT / "notebooks" / name), str(tmp_path / "out.ipynb"),
                               parameters={"study_dir": str(study_dir), "figures_dir": str(figures), **parameters},
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    return figures


@pytest.mark.slow
def test_the_axis_notebook_writes_its_tables_and_figures(tmp_path):
    """70_alignment_axis on the stored fixture (a real tiny study), with a contrast and a reference study that
    is not there yet: every table and figure, the contrast from the study itself, a note for the rest."""
    import pandas as pd

    figures = _run_notebook("70_alignment_axis.ipynb", tmp_path, reference_study="testbed-axis",
                            contrasts={"nsr - ground_truth": ["nsr", "ground_truth", "pass@1"],
                                       "psr - nsr": ["psr", "nsr", "pass@k"]})
    assert {p.name for p in figures.iterdir()} == {
        "axis.csv", "axis_correlations.csv", "axis_contrasts.csv", "axis_gain_vs_alignment.png",
        "axis_gain_vs_alignment.pdf", "axis_passk_change.png", "axis_passk_change.pdf"}
    axis = pd.read_csv(figures / "axis.csv")
    assert len(axis) == 12 and set(axis["family_size"]) == {4}  # 3 conditions x 2 models x 2 tasks
    assert set(pd.read_csv(figures / "axis_contrasts.csv")["contrast"]) == {"nsr - ground_truth"}


@pytest.mark.slow
def test_the_noise_notebook_writes_its_tables_and_figure(tmp_path):
    import pandas as pd

    figures = _run_notebook("45_noise_axis.ipynb", tmp_path, contrasts={})
    assert {p.name for p in figures.iterdir()} == {"noise.csv", "noise_runs.csv", "noise_axis.png", "noise_axis.pdf"}
    noise = pd.read_csv(figures / "noise.csv")
    assert set(noise["kind"]) == {"regime"} and len(noise) == 12
    assert {"clipfrac", "gain", "seed"} <= set(pd.read_csv(figures / "noise_runs.csv").columns)


def test_write_csv_keeps_small_p_and_clip_fractions(tmp_path):
    import pandas as pd

    from mirage.study.axis import write_csv

    frame = pd.DataFrame({"gain": [0.123456], "gain_p": [3.2e-7], "clipfrac": [0.000123456], "entropy": [0.5]})
    write_csv(frame, tmp_path / "t.csv", significant=("clipfrac",))
    assert (tmp_path / "t.csv").read_text().splitlines()[1] == "0.1235,3.2e-07,0.000123,0.5000"


def test_clip_summary_means_and_maxima_over_seeds():
    import pandas as pd

    from mirage.study.noise import clip_summary

    runs = pd.DataFrame({"condition": "random", "model": "dial-90", "task": "toy-math",
                         "regime": ["b8_clip"] * 2 + ["b128_clip"] * 2 + ["b32_noclip"] * 2, "seed": [0, 1] * 3,
                         "gain": [-0.2, -0.4, 0.0, 0.02, -0.1, -0.1], "clipfrac": [0.01, 0.03, 0.001, 0.003, 0, 0]})
    s = clip_summary(runs)
    assert list(s["regime"]) == ["b8_clip", "b32_noclip", "b128_clip"]  # 8 < 32 < 128, not text order
    assert s.loc[0, "mean gain"] == pytest.approx(-0.3) and s.loc[0, "clipfrac max"] == pytest.approx(0.03)
    assert s.loc[2, "clipfrac mean"] == pytest.approx(0.002) and list(s["seeds"]) == [2, 2, 2]


def test_the_axis_and_noise_presets_run_these_analyses_on_what_they_have():
    """The shipped axis presets list 70_alignment_axis; the extra presets' contrasts compare a condition of
    their own with one of the study they name as reference (a preset of the same pairs); the noise presets
    list 45_noise_axis and have every regime its default contrasts name."""
    from mirage import study
    from mirage.study.noise import DEFAULT_CONTRASTS

    for axis_name, extra_name in (("testbed-axis", "testbed-axis-extra"),
                                  ("testbed-axis-quick", "testbed-axis-extra-quick")):
        axis, extra = study.load_preset(axis_name), study.load_preset(extra_name)
        assert "70_alignment_axis.ipynb" in dict(axis.analysis_notebooks())
        own = dict(extra.analysis_notebooks())["70_alignment_axis.ipynb"]
        assert own["reference_study"] == axis_name and axis.pairs == extra.pairs
        assert own["contrasts"]
        for a, b, statistic in own["contrasts"].values():
            assert a in extra.conditions and b in axis.conditions and statistic in ("pass@1", "pass@k")
    for name in ("testbed-noise", "testbed-noise-quick"):
        noise = study.load_preset(name)
        assert "45_noise_axis.ipynb" in dict(noise.analysis_notebooks())
        assert {r for spec in DEFAULT_CONTRASTS.values() for r in spec} <= set(noise.regimes)


def test_the_correlations_recompute_from_a_written_axis_csv(tmp_path, axis_frame):
    import pandas as pd

    from mirage.study.axis import axis_correlations, write_csv

    axis = axis_frame[1]
    direct = axis_correlations(axis)
    write_csv(axis, tmp_path / "axis.csv")
    again = axis_correlations(pd.read_csv(tmp_path / "axis.csv"))  # regime "" reads back as NaN
    assert len(direct) == len(again) == 12 and direct["rho"].notna().all()
    assert again["rho"].to_numpy() == pytest.approx(direct["rho"].to_numpy(), abs=1e-12)
    assert again["p_two_sided"].to_numpy() == pytest.approx(direct["p_two_sided"].to_numpy())


def test_noise_figure_legend_names_each_cell_once():
    from mirage.plots.axis import plot_noise
    from mirage.study.noise import noise_table

    table = noise_table(noise_problems()).assign(holm_survives=False)  # nothing survives: hollow markers only
    fig = plot_noise(table)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["random, dial-90 x toy-math"]
