"""The paper's claim in one figure: each technique's gain against the base model's alignment."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mirage.plots.base import color, condition_order, grid, require, task_marker, task_order
from mirage.study.seeds import t_quantile

TASK_LINESTYLES = ["-", "--", ":", "-."]


def seed_means(points: pd.DataFrame, xcol: str, col: str) -> pd.DataFrame:
    """Per model x task x dataset: the x value, the mean of ``col`` over seeds, the number of seeds and the
    half-width of its 95% t-interval over seeds (NaN with one seed): the seed term of the effect's interval
    (docs/science.md, section 2), without the problem term, so it is the narrowest the full interval can be."""
    g = points.groupby(["model", "task", "dataset"], as_index=False).agg(
        x=(xcol, "first"), mean=(col, "mean"), sd=(col, "std"), n=(col, "size"))
    g["half"] = [t_quantile(int(n) - 1) * sd / np.sqrt(n) if n > 1 else np.nan for n, sd in zip(g["n"], g["sd"])]
    return g.sort_values("x")


def plot_summary(gains: pd.DataFrame, min_gt_gain: float) -> plt.Figure:
    """Gain recovered by each technique, and the absolute gain, vs the base model's alignment.

    Columns: (pass@1_cond - pass@1_base) / (pass@1_baseline - pass@1_base), each condition
    against its own baseline (``gain_table``'s ``baseline`` column), where points whose
    baseline gained less than ``min_gt_gain`` have no ratio (NaN) and are left out (counted
    in the panel); and pass@1_cond - pass@1_base for every point. Rows: two readings of
    alignment, the paper's (base pass@k at the alignment k) and the base pass@1. Each seed is a
    faint point; per model x task the mean over seeds is a marker with its 95% t-interval over
    seeds (``seed_means``: the seed term alone, the narrowest the effect's interval can be) when
    there is more than one seed. Lines join a condition's means across the models of ONE task and
    test set (a line style each, the marker the task's ``Task.marker``): pairs of different tasks
    or test sets are never joined.
    """
    require(gains, ["model", "task", "dataset", "condition", "baseline", "seed", "alignment", "base_pass_at_1",
                    "gain", "recovered"], "gain table")
    align_label = gains["alignment_label"].iloc[0] if "alignment_label" in gains and len(gains) else "pass@k"
    baselines = sorted(set(gains["baseline"]))
    against = " / ".join(baselines) if baselines else "the baseline"
    rows = [("alignment", f"base-model alignment: {align_label}"), ("base_pass_at_1", "base-model pass@1")]
    cols = [("recovered", f"gain / {against}'s gain\n(1 = the same gain)"),
            ("gain", "absolute gain in pass@1\n(trained - base)")]
    techniques = gains[gains.condition != gains.baseline]
    several = len(gains) > 0 and gains.groupby(["model", "task", "dataset", "condition"])["seed"].nunique().max() > 1
    sets = [(t, d) for t in task_order(gains["task"]) for d in sorted(set(gains.loc[gains.task == t, "dataset"]))]
    styles = {td: TASK_LINESTYLES[i % len(TASK_LINESTYLES)] for i, td in enumerate(sets)}
    several_sets = {t: sum(1 for tt, _ in sets if tt == t) > 1 for t, _ in sets}

    def name(task, dataset):  # a line's task, and its test set where the task has several
        return f"{task} / {dataset}" if several_sets[task] else task

    fig, axes = grid(len(rows), len(cols), w=5.2, h=3.8)
    for i, (xcol, xlabel) in enumerate(rows):
        for j, (col, ylabel) in enumerate(cols):
            ax = axes[i, j]
            data = gains if col == "gain" else techniques
            for cond in condition_order(data["condition"]):
                s = data[(data.condition == cond) & data[col].notna()]
                for task, dataset in [td for td in sets if ((s.task == td[0]) & (s.dataset == td[1])).any()]:
                    t = s[(s.task == task) & (s.dataset == dataset)]
                    if several:
                        ax.scatter(t[xcol], t[col], color=color(cond), marker=task_marker(task), s=12, alpha=0.3,
                                   lw=0, zorder=2)
                    m = seed_means(t, xcol, col)
                    bars = ax.errorbar(m["x"], m["mean"], yerr=m["half"] if several else None, color=color(cond),
                                       ls=styles[task, dataset], lw=1, marker=task_marker(task), ms=5, mec="black", mew=0.5,
                                       elinewidth=0.9, capsize=2, zorder=4)
                    bars[0].set_gid(f"{cond}|{name(task, dataset)}")  # one line per condition and test set
            ax.axhline(0, color="grey", lw=0.8)
            if col == "recovered":
                ax.axhline(1, color=color(baselines[0]) if len(baselines) == 1 else "black", lw=0.8, ls=":")
                dropped = techniques["recovered"].isna().sum()
                ax.text(0.02, 0.02, f"{dropped} point(s) left out: baseline gain < {min_gt_gain:g}",
                        transform=ax.transAxes, va="bottom", fontsize=8, color="dimgrey")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_xlim(-0.02, 1.02)
    handles = [plt.Line2D([], [], color=color(c), lw=1.5, label=c) for c in condition_order(gains["condition"])]
    handles += [plt.Line2D([], [], color="grey", marker=task_marker(t), ls=styles[t, d], mec="black", mew=0.5,
                           label=name(t, d)) for t, d in sets]
    axes[0, -1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       title="condition / task")
    detail = ("faint: each seed; marker: the mean over seeds with its 95% t-interval over seeds\n(the seed term "
              "only: the narrowest the effect's interval can be); " if several else
              "one seed per point: no interval over seeds; ")
    fig.suptitle("pass@1 gain of each condition vs the base model's alignment, per model x task\n"
                 f"{detail}lines join the models of one task (and test set)")
    fig.tight_layout()
    return fig
