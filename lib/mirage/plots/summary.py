"""The paper's claim in one figure: each technique's gain against the base model's alignment."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from mirage.plots.base import color, condition_order, grid, require, task_marker, task_order


def plot_summary(gains: pd.DataFrame, min_gt_gain: float) -> plt.Figure:
    """Gain recovered by each technique, and the absolute gain, vs the base model's alignment.

    Columns: (pass@1_cond - pass@1_base) / (pass@1_baseline - pass@1_base), each condition
    against its own baseline (``gain_table``'s ``baseline`` column), where points whose
    baseline gained less than ``min_gt_gain`` have no ratio (NaN) and are left out (counted
    in the panel); and pass@1_cond - pass@1_base for every point. Rows: two readings of
    alignment, the paper's (base pass@k at the alignment k) and the base pass@1 (what a
    majority of samples does), since the techniques need different things (a correct
    sample at all vs a correct majority). Each seed is a point (faint when there are
    several); lines join a condition's medians over seeds across the dial, each median
    marked with an outlined diamond when there is more than one seed; markers are the
    tasks' (``Task.marker``).
    """
    require(gains, ["model", "task", "dataset", "condition", "baseline", "seed", "alignment", "base_pass_at_1",
                    "gain", "recovered"], "gain table")
    align_label = gains["alignment_label"].iloc[0] if "alignment_label" in gains and len(gains) else "pass@k"
    baselines = sorted(set(gains["baseline"]))
    against = " / ".join(baselines) if baselines else "the baseline"
    rows = [("alignment", f"base-model alignment: {align_label}"), ("base_pass_at_1", "base-model pass@1")]
    cols = [("recovered", f"gain recovered relative to\nthe baseline ({against}; 1 = same gain)"),
            ("gain", "absolute gain in pass@1\n(trained - base)")]
    techniques = gains[gains.condition != gains.baseline]
    several = len(gains) > 0 and gains.groupby(["model", "task", "dataset", "condition"])["seed"].nunique().max() > 1
    fig, axes = grid(len(rows), len(cols), w=5.2, h=3.8)
    for i, (xcol, xlabel) in enumerate(rows):
        for j, (col, ylabel) in enumerate(cols):
            ax = axes[i, j]
            data = gains if col == "gain" else techniques
            for cond in condition_order(data["condition"]):
                s = data[(data.condition == cond) & data[col].notna()]
                for task, t in s.groupby("task"):
                    ax.scatter(t[xcol], t[col], color=color(cond), marker=task_marker(task),
                               s=22 if several else 28, alpha=0.45 if several else 0.8, edgecolor="white", lw=0.5,
                               zorder=3)
                line = s.groupby(["model", "task", "dataset"], as_index=False)[[xcol, col]].median()
                line = line.sort_values(xcol)
                ax.plot(line[xcol], line[col], color=color(cond), lw=1, alpha=0.8, label=cond,
                        marker="D" if several else None, ms=5, mec="black", mew=0.6, zorder=4)
            ax.axhline(0, color="grey", lw=0.8)
            if col == "recovered":
                ax.axhline(1, color=color(baselines[0]) if len(baselines) == 1 else "black", lw=0.8, ls=":")
                dropped = techniques["recovered"].isna().sum()
                ax.text(0.02, 0.02, f"{dropped} point(s) left out: baseline gain < {min_gt_gain:g}",
                        transform=ax.transAxes, va="bottom", fontsize=8, color="dimgrey")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_xlim(-0.02, 1.02)
    legend_ax = axes[0, -1]
    for task in task_order(gains["task"]):
        legend_ax.scatter([], [], marker=task_marker(task), color="grey", label=task)
    legend_ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="condition / task")
    fig.suptitle("Do the surprising techniques only work under strong model-task alignment?\n"
                 "one point per model x task x condition x seed" + ("; lines join the medians over seeds (diamonds)"
                                                                    if several else ""))
    fig.tight_layout()
    return fig
