"""The alignment axis and the noise axis (``mirage.study.axis``, ``mirage.study.noise``; docs/science.md 6, 6b).

``plot_axis``: one panel per condition (x regime), x = the base model's pass@k, y = the mean change over
seeds (the pass@1 gain, or the pass@k change) with its 95% interval as an error bar; one series per task
(its registry marker and a colour of its own), a thin line joining only that task's pairs in order of
pass@k, never two tasks; a filled marker where the effect survives Holm over the condition's pairs.

``plot_noise``: left, each regime's mean pass@1 gain with its interval; right, the pre-registered
differences between regimes with theirs; filled where Holm survives.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mirage.plots.base import color, condition_order, grid, require, task_marker, task_order

VALUES = {"gain": ("pass@1 gain over the base model", "gain_ci_low", "gain_ci_high", "gain_holm"),
          "passk_change": ("pass@{k} change over the base model", "passk_change_ci_low", "passk_change_ci_high",
                           "passk_change_holm")}


def _points(ax, x, mean, low, high, survives, colour, marker, label):
    ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="none", ecolor=colour, capsize=2, lw=1.0, alpha=0.9)
    ax.scatter(x[survives], mean[survives], color=colour, marker=marker, s=28, zorder=3,
               label=label if survives.any() else None)
    ax.scatter(x[~survives], mean[~survives], facecolor="white", edgecolor=colour, marker=marker, s=28, zorder=3,
               label=None if survives.any() else label)


def plot_axis(axis: pd.DataFrame, value: str = "gain", columns: int = 4) -> plt.Figure:
    """The axis figure (module docstring) from ``mirage.study.axis.axis_table``; ``value`` "gain" or
    "passk_change"."""
    if value not in VALUES:
        raise ValueError(f"plot_axis: value must be one of {sorted(VALUES)}, got {value!r}")
    ylabel, low_col, high_col, holm_col = VALUES[value]
    require(axis, ["condition", "regime", "task", "dataset", "base_pass_at_k", "k", value, low_col, high_col, holm_col],
            "axis table")
    if axis.empty:
        raise ValueError("plot_axis: the axis table is empty")
    k = int(axis["k"].iloc[0])
    panels = list(dict.fromkeys(
        (c, r) for c in condition_order(axis["condition"])
        for r in sorted(axis.loc[axis["condition"] == c, "regime"].unique())))
    series = [(t, d) for t in task_order(axis["task"]) for d in sorted(axis.loc[axis["task"] == t, "dataset"].unique())]
    palette = dict(zip(series, sns.color_palette("colorblind", len(series))))
    n_cols = min(columns, len(panels))
    n_rows = -(-len(panels) // n_cols)
    fig, axes = grid(n_rows, n_cols, w=3.4, h=3.0, sharex=True, sharey=True)
    for ax, (condition, regime) in zip(axes.ravel(), panels):
        panel = axis[(axis["condition"] == condition) & (axis["regime"] == regime)]
        for task, dataset in series:
            g = panel[(panel["task"] == task) & (panel["dataset"] == dataset)].sort_values("base_pass_at_k")
            if g.empty:
                continue
            x = g["base_pass_at_k"].to_numpy(dtype=float)
            mean, low, high = (g[c].to_numpy(dtype=float) for c in (value, low_col, high_col))
            survives = g[holm_col].astype("boolean").fillna(False).to_numpy(dtype=bool)
            colour = palette[(task, dataset)]
            ax.plot(x, mean, color=colour, lw=0.8, alpha=0.6, gid=f"task:{task}:{dataset}")  # this task's pairs only
            _points(ax, x, mean, low, high, survives, colour, task_marker(task),
                    task if len(series) == len({t for t, _ in series}) else f"{task} ({dataset})")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(f"{condition} @{regime}" if regime else condition, fontsize=10, color=color(condition))
        ax.set_xlim(-0.03, 1.03)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(f"base model's pass@{k}")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel.format(k=k))
    handles, labels = [], []
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
               title="task\n(filled: survives Holm\nover the condition's pairs)")
    what = "pass@1 gain" if value == "gain" else f"pass@{k} change"
    fig.suptitle(f"{what} after RL vs the base model's pass@{k}, per task (mean over seeds, 95% CI)",
                 y=1.02, fontsize=11)
    fig.tight_layout()
    return fig


def plot_noise(table: pd.DataFrame) -> plt.Figure:
    """The noise-axis figure (module docstring) from ``mirage.study.noise.noise_table``."""
    require(table, ["kind", "label", "condition", "mean", "ci_low", "ci_high", "holm_survives"], "noise table")
    regimes, contrasts = table[table["kind"] == "regime"], table[table["kind"] == "contrast"]
    if regimes.empty:
        raise ValueError("plot_noise: the noise table has no regime row")
    fig, axes = grid(1, 2, w=4.4, h=3.4)
    for ax, rows, title in ((axes[0, 0], regimes, "pass@1 gain per regime"),
                            (axes[0, 1], contrasts, "difference between regimes")):
        if rows.empty:
            ax.set_visible(False)
            continue
        labels = list(dict.fromkeys(rows["label"]))
        cells = list(dict.fromkeys(zip(rows["condition"], rows["model"], rows["task"], rows["dataset"])))
        width = 0.6 / max(1, len(cells))
        for i, cell in enumerate(cells):
            g = rows[(rows["condition"] == cell[0]) & (rows["model"] == cell[1]) & (rows["task"] == cell[2])
                     & (rows["dataset"] == cell[3])].set_index("label").reindex(labels)
            y = np.arange(len(labels)) + (i - (len(cells) - 1) / 2) * width
            mean, low, high = (g[c].to_numpy(dtype=float) for c in ("mean", "ci_low", "ci_high"))
            survives = g["holm_survives"].astype("boolean").fillna(False).to_numpy(dtype=bool)
            label = f"{cell[0]}, {cell[1]} x {cell[2]}"
            ax.errorbar(mean, y, xerr=[mean - low, high - mean], fmt="none", ecolor=color(cell[0]), capsize=2, lw=1.1)
            ax.scatter(mean[survives], y[survives], color=color(cell[0]), s=26, zorder=3,
                       label=label if survives.any() else None)
            ax.scatter(mean[~survives], y[~survives], facecolor="white", edgecolor=color(cell[0]), s=26, zorder=3,
                       label=None if survives.any() else label)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(np.arange(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("mean over seeds, 95% CI")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
               title="filled: survives Holm over its rows")
    conditions = ", ".join(condition_order(table["condition"]))
    fig.suptitle(f"{conditions}: pass@1 gain per recipe regime, and differences between regimes (95% CI)",
                 y=1.03, fontsize=11)
    fig.tight_layout()
    return fig
