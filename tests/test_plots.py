"""Every figure function on the stored study fixture (made by a real tiny study; see its README)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathlib import Path

import matplotlib
import numpy as np
import pytest

if TYPE_CHECKING:  # annotations only: the tests import it where they use it
    import pandas as pd

matplotlib.use("Agg")


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "study"


@pytest.fixture(scope="module")
def tables():
    from mirage import study

    return study.load_results(FIXTURE)


def _line_colours(fig) -> dict[str, str]:
    """{legend label: hex colour} of every labelled line in a figure."""
    from matplotlib.colors import to_hex

    out = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            label = line.get_label()
            if not label.startswith("_"):
                out[label] = to_hex(line.get_color())
    return out


def test_fixture_is_a_real_multi_model_study(tables):
    from mirage import study

    results, dynamics, alignment = tables
    assert results["model"].nunique() >= 2 and results["task"].nunique() == 2
    assert {"base", "ground_truth"} <= set(results["condition"])
    assert not dynamics.empty and (alignment["k"] > 1).any()
    # the preset it was made with (its README says how) still loads and names the same grid
    preset = study.load_preset(str(FIXTURE.parent / "study-fixture.yaml"))
    assert set(results["model"]) == set(preset.models) and set(results["task"]) == set(preset.tasks)
    assert set(results["condition"]) == {"base", *preset.conditions}


def test_colours_come_from_the_condition_registry_and_are_the_same_in_every_figure(tables):
    from matplotlib.colors import to_hex

    from mirage import plots

    from mirage.conditions import CONDITIONS

    results, dynamics, _ = tables
    assert not hasattr(plots, "PALETTE") and not hasattr(plots, "TASK_MARKERS")  # the registries are the one source
    colours = [c.colour for c in CONDITIONS.values()]
    assert len(set(colours)) == len(colours) and plots.BASE_COLOUR not in colours  # one per condition
    curves = _line_colours(plots.plot_passk_curves(results))
    task = sorted(dynamics["task"].unique())[0]
    dyn = _line_colours(plots.plot_dynamics(dynamics, task))
    shared = set(curves) & set(dyn)
    assert shared == set(results["condition"]) - {"base"}
    for cond in shared:
        assert curves[cond] == dyn[cond] == to_hex(CONDITIONS[cond].colour)
    assert curves["base"] == to_hex(plots.BASE_COLOUR)
    with pytest.raises(KeyError, match="condition registry"):
        plots.color("no_such_condition")


def test_a_registered_condition_and_task_are_drawn_without_touching_plots(tables):
    """A plugin's condition gets its registry colour and order; a task its registry marker."""
    import pandas as pd

    from mirage import plots, study

    from mirage.conditions import CONDITIONS, Condition, register_condition
    from mirage.tasks import TASKS

    results, _, _ = tables
    register_condition(Condition("plugin_cond", "RQ1", "ground_truth", colour="#123456"))
    try:
        extra = results[results["condition"] == "random"].assign(condition="plugin_cond")
        both = pd.concat([results, extra], ignore_index=True)
        assert plots.condition_order(["plugin_cond", "random", "base", "ground_truth"]) == [
            "base", "ground_truth", "random", "plugin_cond"]  # registry order, base first
        assert _line_colours(plots.plot_passk_curves(both))["plugin_cond"] == "#123456"
        gains = study.gain_table(both)
        fig = plots.plot_summary(gains, study.MIN_GT_GAIN)
        from matplotlib.markers import MarkerStyle

        def shape(marker):
            style = MarkerStyle(marker)
            return style.get_path().transformed(style.get_transform()).vertices.round(6).tobytes()

        # the absolute-gain panel has every point: its marker shapes are the registry's, one per task
        from matplotlib.collections import PathCollection

        drawn = {c.get_paths()[0].vertices.round(6).tobytes() for c in fig.axes[1].collections
                 if isinstance(c, PathCollection) and len(c.get_offsets())}  # the scatters (not the error bars)
        assert drawn == {shape(TASKS[t].marker) for t in results["task"].unique()} and len(drawn) == 2
    finally:
        CONDITIONS.unregister("plugin_cond")
    assert plots.task_marker("no-such-task") == "o"


def test_passk_curves_have_a_panel_per_model_and_task_with_log_k_axis(tables):
    from mirage import plots

    results, _, _ = tables
    fig = plots.plot_passk_curves(results)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    panels = results.groupby(["model", "task", "dataset"]).ngroups
    assert len(visible) == panels
    ax = visible[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("k") and "pass@k" in visible[0].get_ylabel()
    # each panel: the base curve plus one per condition present for that model x task, with CI bands
    assert len(ax.collections) == len([ln for ln in ax.get_lines() if not ln.get_label().startswith("_")])


def test_dynamics_summary_and_rq_figures(tables, tmp_path):
    from mirage import plots, study

    results, dynamics, alignment = tables
    task = sorted(dynamics["task"].unique())[0]
    fig = plots.plot_dynamics(dynamics, task)
    assert len(fig.axes) == len(plots.DYNAMICS_METRICS) * dynamics.loc[dynamics.task == task, "model"].nunique()
    assert all(ax.get_ylabel() for ax in fig.axes[:: dynamics.model.nunique()])
    with pytest.raises(ValueError, match="no training dynamics"):
        plots.plot_dynamics(dynamics, "no-such-task")

    gains = study.gain_table(results)
    fig = plots.plot_summary(gains, study.MIN_GT_GAIN)
    (left, right), (left_p1, right_p1) = fig.axes[:2], fig.axes[2:4]
    assert "alignment" in left.get_xlabel() and f"pass@{int(gains.align_k.iloc[0])}" in left.get_xlabel()
    assert "pass@1" in left_p1.get_xlabel()
    assert "gain / ground_truth's gain" in left.get_ylabel() and "absolute gain" in right.get_ylabel()
    from matplotlib.collections import PathCollection

    def points(ax):  # the scatter points (error bars are LineCollections)
        return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))

    for ax in (right, right_p1):  # one point per model x task x condition x seed in the absolute panels
        assert points(ax) == len(gains)
    n_ratio = gains[(gains.condition != gains.baseline)]["recovered"].notna().sum()
    assert points(left) == n_ratio

    for fig, name in [(plots.plot_alignment(alignment), "alignment"),
                      (plots.plot_reward_vs_accuracy(dynamics), "reward"),
                      (plots.plot_metric_panels(dynamics, plots.POLARITY_METRICS, "t"), "polarity"),
                      (plots.plot_passk_vs_step(results), "steps")]:
        png, pdf = plots.save(fig, name, tmp_path)
        assert png.stat().st_size > 5000 and pdf.read_bytes()[:4] == b"%PDF"
    figs = {**plots.dynamics_figures(dynamics), **plots.step_figures(results)}
    assert set(figs) == {f"dynamics_{t}" for t in dynamics["task"].unique()} | {"pass1_vs_step"}
    assert plots.save_all(figs, tmp_path / "all") == [tmp_path / "all" / f"{n}.png" for n in figs]
    final_only = results[(results["step"] == 0) | (results["step"] == results.groupby(
        ["model", "task", "condition", "seed"])["step"].transform("max"))]
    assert plots.step_figures(final_only) == {}  # one checkpoint per run: nothing to draw over steps


def test_example_history_highlights_the_chosen_example(tmp_path):
    from matplotlib.colors import to_hex

    from mirage import plots

    history = {"a": [0.0, 0.5, 1.0], "b": [0.5, 0.5, 0.5], "c": [0.0, 0.0, 0.0]}
    fig = plots.plot_example_history(history, chosen="a", top=2, colour="#123456")
    chosen = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("chosen")]
    assert len(chosen) == 1 and "example a" in chosen[0].get_label() and to_hex(chosen[0].get_color()) == "#123456"
    # an example chosen at random has no history: the figure says so instead of failing the notebook
    fig = plots.plot_example_history({}, chosen="7")
    assert not fig.axes[0].get_lines() and "no accuracy history" in fig.axes[0].texts[0].get_text()


def test_missing_columns_are_named(tables):
    import pandas as pd

    from mirage import plots

    results, _, _ = tables
    with pytest.raises(KeyError, match="ci_low"):
        plots.plot_passk_curves(results.drop(columns=["ci_low"]))
    with pytest.raises(KeyError, match="alignment"):
        plots.plot_summary(pd.DataFrame({"model": []}), 0.03)


def test_saved_figures_are_byte_identical_on_rerun(tables, tmp_path, monkeypatch):
    """Regenerating the figures from the same results leaves a checkout's figures/ unchanged."""
    from mirage import plots

    _, _, alignment = tables
    saved = []
    for i, when in enumerate(("0", "1700000000")):  # matplotlib stamps the PDF with this time
        monkeypatch.setenv("SOURCE_DATE_EPOCH", when)
        saved.append([p.read_bytes() for p in plots.save(plots.plot_alignment(alignment), "a", tmp_path / str(i))])
    assert saved[0] == saved[1]


# --- the clipping-bias figures (mirage.plots.mechanism) on hand-made tables -------------------------------
def _runs() -> pd.DataFrame:
    import pandas as pd

    rows = []
    for cond, regimes in (("random", ["u2", "u16", "u16_noclip"]), ("ground_truth", ["u2"])):
        for regime in regimes:
            for seed in range(3):
                rows.append(dict(model="dial-90", task="toy-math", condition=cond, regime=regime, seed=seed,
                                 gain=0.01 * seed - 0.01, greedy_gain=0.02 * seed,
                                 clipfrac=0.0 if regime == "u2" else 0.005 * (seed + 1)))
    return pd.DataFrame(rows)


def test_mechanism_figures_draw_a_point_per_seed_and_mark_each_median():
    from mirage import plots

    runs = _runs()
    fig = plots.plot_gain_vs_clipfrac(runs)
    assert len(fig.axes) == 2  # T = 1 and greedy gains, one model x task
    groups = runs.groupby(["condition", "regime"]).ngroups
    offsets = [len(c.get_offsets()) for c in fig.axes[0].collections]
    assert sum(offsets) == len(runs) + groups and offsets.count(1) == groups  # every seed, then each median
    assert "T = 1" in fig.axes[0].get_ylabel() and "greedy" in fig.axes[1].get_ylabel()
    assert fig.axes[0].get_xlim()[0] >= -0.04 * 100 * runs["clipfrac"].max()  # a fraction: no negative axis
    # regimes in natural order (u2 < u16 < u16_noclip), one style each, the same in every figure
    assert list(plots.regime_styles(["u16_noclip", "u2", "u16"])) == ["u2", "u16", "u16_noclip"]
    fig = plots.plot_gain_distributions(runs.drop(columns="greedy_gain"))
    assert len(fig.axes) == 1 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["u2", "u16", "u16_noclip"]
    points = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert points == len(runs)  # the strip: one point per seed (the boxes are patches)


def test_gain_distributions_jitter_is_the_same_whatever_ran_before():
    """The strip's jitter does not depend on numpy's global RNG state, and leaves that state alone."""
    from mirage import plots

    import numpy as np

    runs = _runs().drop(columns="greedy_gain")

    def points(seed):
        np.random.seed(seed)
        fig = plots.plot_gain_distributions(runs)
        after = np.random.random()
        np.random.seed(seed)
        assert after == np.random.random()  # the caller's stream continues where it was
        return np.concatenate([c.get_offsets() for c in fig.axes[0].collections if len(c.get_offsets())])

    np.testing.assert_array_equal(points(1), points(2))


def test_mechanism_steps_procedures_and_bandit_figures():
    import pandas as pd

    from mirage import plots

    steps = pd.DataFrame([dict(model="m", task="t", condition="random", regime=r, seed=s, step=st, gain=g)
                          for r in ("steps300_clip", "steps300_noclip") for s in range(2)
                          for st, g in ((0, 0.0), (50, 0.01 * s), (100, 0.02 * s))])
    fig = plots.plot_gain_vs_step(steps)
    labelled = [ln for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")]
    assert [ln.get_label() for ln in labelled] == ["steps300_clip", "steps300_noclip"]
    assert list(labelled[0].get_ydata()) == pytest.approx([0.0, 0.005, 0.01])  # the median over seeds
    procedures = pd.DataFrame([dict(model="m", task="t", condition="random", regime=r, seed=0, step=st, procedure=p,
                                    share=0.3) for r in ("u2", "u16") for st in range(1, 5)
                               for p in ("correct", "buggy", "neither")])
    fig = plots.plot_procedure_shares(procedures)
    assert len(fig.axes) == 3 and fig.axes[0].get_title() == "correct procedure"
    bandit = {"clip": {"steps": [0, 10, 20], "p_favoured": np.array([[0.7, 0.8, 0.9], [0.7, 0.6, 0.7]]),
                       "clipfrac": np.array([0.01, 0.02])}}
    fig = plots.plot_bandit(bandit)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert list(lines["median over seeds"].get_ydata()) == pytest.approx([0.7, 0.7, 0.8])
    assert "clipped 1.50%" in fig.axes[0].get_title()
    # a table without data leaves its figure out rather than failing the notebook
    empty = steps.iloc[:0]
    figs = plots.mechanism_figures(None, _runs(), empty, None, procedures.iloc[:0])
    assert set(figs) == {"mechanism_gain_vs_clipfrac", "mechanism_gain_distributions"}
    with pytest.raises(ValueError, match="steps axis"):
        plots.plot_gain_vs_step(empty)


def test_summary_shows_intervals_and_joins_only_pairs_of_one_task(tables):
    """Every panel: one line per condition and task (never a line across tasks), through the means over seeds of
    that task's pairs, each mean with an error bar (the 95% t-interval over seeds)."""
    from mirage import plots, study
    from mirage.study.seeds import t_quantile

    results, _, _ = tables
    gains = study.gain_table(results)
    assert gains["seed"].nunique() >= 2 and gains["task"].nunique() == 2  # the fixture: several seeds, two tasks
    fig = plots.plot_summary(gains, study.MIN_GT_GAIN)
    for ax, col in zip(fig.axes[:4], ["recovered", "gain", "recovered", "gain"]):
        lines = {ln.get_gid(): ln for ln in ax.get_lines() if ln.get_gid()}
        shown = gains[gains[col].notna() & ((gains.condition != gains.baseline) | (col == "gain"))]
        assert set(lines) == {f"{c}|{t}" for c, t in zip(shown["condition"], shown["task"])}
        assert len({gid.split("|")[1] for gid in lines}) == (2 if col == "gain" else 1)  # fixture: GT gains < 0.03 on one
        bars = [c for c in ax.containers if c.has_yerr]
        assert len(bars) == len(lines)  # an error bar set per line
    ax = fig.axes[1]  # absolute gain vs alignment
    for task, t in gains[gains.condition == "ground_truth"].groupby("task"):
        line = next(ln for ln in ax.get_lines() if ln.get_gid() == f"ground_truth|{task}")
        per = t.groupby("model").agg(x=("alignment", "first"), m=("gain", "mean"), sd=("gain", "std"), n=("gain", "size"))
        drawn = np.array(sorted(zip(line.get_xdata(), line.get_ydata())))
        assert np.allclose(drawn, np.array(sorted(zip(per["x"], per["m"]))))  # this task's pairs only
        bars = next(c for c in ax.containers if c.lines[0] is line)
        half = t_quantile(int(per["n"].iloc[0]) - 1) * per["sd"] / np.sqrt(per["n"])
        segs = sorted((seg[0][0], seg[1][1] - seg[0][1]) for seg in bars.lines[2][0].get_segments())
        assert np.allclose([w for _, w in segs], 2 * half.loc[per.sort_values("x").index].to_numpy())
    title = fig._suptitle.get_text()
    assert "95% t-interval over seeds" in title and "one task" in title


TITLE_CLAIMS = ("because", "erosion", "erode", "drift", "random walk", "only work", "mechanism", "?")


def test_figure_titles_state_what_is_shown_not_a_mechanism(tables):
    """No suptitle asks the study's question or asserts an untested cause."""
    import pandas as pd
    from mirage import plots, study
    import matplotlib.pyplot as plt

    results, dynamics, _ = tables
    steps = pd.DataFrame([dict(model="m", task="t", condition="random", regime=r, seed=s, step=st, gain=0.01 * st)
                          for r in ("a", "b") for s in range(2) for st in (0, 10, 20)])
    figs = [plots.plot_summary(study.gain_table(results), study.MIN_GT_GAIN), plots.plot_gain_vs_step(steps),
            plots.plot_gain_vs_clipfrac(_runs()), plots.plot_gain_distributions(_runs()),
            plots.plot_procedure_shares(_procedures(["u2", "u16"]))]
    for fig in figs:
        title = fig._suptitle.get_text().lower()
        plt.close(fig)
        assert title and not [w for w in TITLE_CLAIMS if w in title], title


def _procedures(regimes, conditions=("random",), length=4):
    import pandas as pd
    return pd.DataFrame([dict(model="m", task="t", condition=c, regime=r, seed=s, step=st, procedure=p,
                              share=0.1 * s + (0.5 if p == "neither" else 0.2))
                         for c in conditions for r in regimes for s in range(3) for st in range(1, length + 1)
                         for p in ("correct", "buggy", "neither")])


def test_procedure_shares_are_readable_medians_with_at_most_six_colours_a_panel():
    """The suptitle sits above the column titles, the row labels are legible, the curves are the median over
    seeds (what the docs quote), and a row with more than 6 regimes is split so no panel has more than 6 colours."""
    from mirage import plots
    regimes = [f"u{i}" for i in range(1, 9)]  # 8 regimes: two rows of at most 6
    fig = plots.plot_procedure_shares(_procedures(regimes))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    suptitle = fig._suptitle.get_window_extent(renderer)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2 * 3
    from matplotlib.colors import to_hex

    for ax in panels:
        colours = {to_hex(ln.get_color()) for ln in ax.get_lines() if ln.get_alpha() in (None, 1.0)}
        assert 1 <= len(colours) <= 6
        if ax.get_title():
            assert ax.title.get_window_extent(renderer).y1 <= suptitle.y0 + 1  # the headers clear of the title
        assert ax.yaxis.label.get_fontsize() >= 9 and ax.xaxis.label.get_fontsize() >= 9
    drawn = {ln.get_label(): ln for ln in panels[0].get_lines() if not ln.get_label().startswith("_")}
    # shares 0.2, 0.3, 0.4 over 3 seeds at every step: the median 0.3 (the mean would be 0.3 too: make them differ)
    skewed = _procedures(["u2"]).assign(share=lambda d: np.where(d["seed"] == 2, 0.9, 0.1))
    line = next(ln for ln in plots.plot_procedure_shares(skewed).axes[0].get_lines() if ln.get_label() == "u2")
    assert np.allclose(line.get_ydata(), 0.1)  # median of 0.1, 0.1, 0.9 (the mean is 0.367)
    assert drawn and "median over seeds" in fig._suptitle.get_text()


def test_predictor_outcomes_figure_has_a_dot_and_interval_per_stratum_and_dashes_the_uninformative():
    import pandas as pd
    from mirage import plots
    rows = []
    for cond, outcomes in (("ground_truth", ["baseline_gain"]), ("random", ["gain_minus_baseline", "fraction_recovered"])):
        for outcome in outcomes:
            for p in ("pass_at_1", "maj_at_n"):
                for stratum, (lo, hi) in (("a", (-0.9, 0.9)), ("b", (0.2, 0.8)), ("within-task", (-0.5, 0.4))):
                    rows.append(dict(predictor=p, condition=cond, regime="", outcome=outcome, stratum=stratum,
                                     rho=(lo + hi) / 2, ci_low=lo, ci_high=hi, n_pairs=5))
    fig = plots.plot_predictor_outcomes(pd.DataFrame(rows))
    shown = [ax for ax in fig.axes if ax.axison and ax.get_title()]
    assert len(shown) == 3  # ground truth's own gain; random's two outcomes (the empty slot has no panel)
    for ax in shown:
        bars = [c for c in ax.containers if c.has_xerr]
        styles = sorted(c.lines[2][0].get_linestyle()[0][1] is not None for c in bars)  # dashed: a dash pattern
        assert len(bars) == 3 and styles == [False, False, True]  # only stratum a (width 1.8) is dashed
        assert not [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1 and ln.get_linestyle() not in ("None", "")
                    and ln.get_xdata()[0] != ln.get_xdata()[-1]]  # no line joins strata
    assert "bootstrap over models" in fig._suptitle.get_text()
