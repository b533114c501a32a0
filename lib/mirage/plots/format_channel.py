"""The format channel's figure: each condition's pass@1 gain split into "learned the format" and "answers
better" along the format dial (``mirage.study.format_split.format_summary``; docs/science.md section 6)."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mirage.plots.base import condition_order, color, figure_legend, grid, require

# (statistic of format_summary.csv, panel title)
SPLIT_PANELS = (("pass@1 gain", "pass@1 gain"),
                ("learned format", "learned the format\n(pass@1 gain - format-free gain)"),
                ("answers better", "answers better\n(format-free accuracy gain)"),
                ("format rate change", "format rate change"))


def plot_format_split(summary: pd.DataFrame, labels: Mapping[str, str] | None = None) -> plt.Figure:
    """One panel per ``SPLIT_PANELS`` statistic; x the models in their order in ``summary`` (``labels``:
    a tick label per model, e.g. its format-break share F); per condition (its registry colour) the mean over
    seeds with its 95% interval over seeds and problems; a filled marker where the gain survives Holm over its
    statistic's family, a hollow one where it does not."""
    require(summary, ["statistic", "model", "condition", "mean", "ci_low", "ci_high", "holm_survives"],
            "format summary")
    rows = summary[summary["statistic"].isin([s for s, _ in SPLIT_PANELS])]
    if rows.empty:
        raise ValueError(f"plot_format_split: no row of {[s for s, _ in SPLIT_PANELS]} in the summary")
    models = list(dict.fromkeys(rows["model"]))
    conditions = condition_order(rows["condition"])
    labels = dict(labels or {})
    fig, axes = grid(1, len(SPLIT_PANELS), w=3.3, h=3.2, sharey=False)
    width = 0.7 / max(1, len(conditions))
    for ax, (statistic, title) in zip(axes[0], SPLIT_PANELS):
        panel = rows[rows["statistic"] == statistic]
        for i, condition in enumerate(conditions):
            g = panel[panel["condition"] == condition].set_index("model").reindex(models)
            x = np.arange(len(models)) + (i - (len(conditions) - 1) / 2) * width
            mean, low, high = (g[c].to_numpy(dtype=float) for c in ("mean", "ci_low", "ci_high"))
            survives = g["holm_survives"].astype("boolean").fillna(False).to_numpy(dtype=bool)
            colour = color(condition)
            ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="none", ecolor=colour, capsize=2, lw=1.1)
            ax.scatter(x[survives], mean[survives], color=colour, s=22, zorder=3, label=condition)
            ax.scatter(x[~survives], mean[~survives], facecolor="white", edgecolor=colour, s=22, zorder=3,
                       label=None if survives.any() else condition)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(np.arange(len(models)))
        ax.set_xticklabels([labels.get(m, m) for m in models], fontsize=8)
        ax.set_title(title, fontsize=9)
    axes[0, 0].set_ylabel("change after RL (mean over seeds)")
    figure_legend(fig, axes, title="condition\n(filled: survives Holm)")
    fig.suptitle("Format dial: pass@1 gain split into format learned and answers improved (95% CI)",
                 y=1.03, fontsize=11)
    fig.tight_layout()
    return fig
