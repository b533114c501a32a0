"""The contamination figures: the probe (exact match, ROUGE-L, truncated-problem accuracy vs the share of the
statement shown) and the RQ1 gains of a leaked vs a clean model, on the leaked and on a fresh test set."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mirage.plots.base import color, figure_legend, grid, require

MODEL_COLOURS = ("#c0392b", "#1b6ca8", "#7f7f7f", "#2e8b57", "#8e44ad")
PROBE_PANELS = {"exact_match": "exact match of the remainder", "rouge_l": "ROUGE-L vs the remainder",
                "answer_acc": "accuracy, asked the truncated problem"}


def dataset_style(dataset: str) -> str:
    """Solid for a set the leaked model saw (``*_test``), dashed for a fresh one."""
    return "--" if dataset.endswith("_fresh") else "-"


def plot_probe(summary: pd.DataFrame) -> plt.Figure:
    """One panel per measure; x the share of the statement given; a colour per model, solid = ``<task>_test``
    (the leaked set), dashed = ``<task>_fresh``; error bars: 95% Wilson interval (exact match and accuracy)."""
    require(summary, ["model", "dataset", "fraction", "problems", *PROBE_PANELS], "probe summary")
    models = list(dict.fromkeys(summary["model"]))
    fig, axes = grid(1, len(PROBE_PANELS), w=3.6, h=3.0, sharey=True)
    for ax, (measure, title) in zip(axes[0], PROBE_PANELS.items()):
        for i, model in enumerate(models):
            for dataset, g in summary[summary["model"] == model].groupby("dataset", sort=True):
                g = g.sort_values("fraction")
                kind = "fresh" if dataset.endswith("_fresh") else "test (leaked set)"
                yerr = None
                if measure != "rouge_l":
                    low, high = wilson(g[measure].to_numpy(), g["problems"].to_numpy())
                    yerr = [g[measure] - low, high - g[measure]]
                ax.errorbar(g["fraction"], g[measure], yerr=yerr, marker="o", ms=4, capsize=2,
                            color=MODEL_COLOURS[i % len(MODEL_COLOURS)], ls=dataset_style(dataset),
                            label=f"{model}, {kind}")
        if measure == "exact_match" and "em_ceiling" in summary:  # a memoriser's ceiling on the leaked set
            c = summary[~summary["dataset"].str.endswith("_fresh")].groupby("fraction")["em_ceiling"].mean()
            ax.plot(c.index, c.values, color="black", ls=":", lw=1.2, label="ceiling: memorised all, prefix shared")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("share of the statement given")
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].set_ylabel("rate / score")
    figure_legend(fig, axes, title="model, evaluation set")
    fig.suptitle("Contamination probe: greedy continuation of the raw statement prefix", y=1.02, fontsize=11)
    fig.tight_layout()
    return fig


def wilson(rate: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """The 95% Wilson score interval of a rate over ``n`` problems."""
    rate, n = np.asarray(rate, float), np.asarray(n, float)
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def plot_gains(seed_summary: pd.DataFrame, statistic: str = "pass@1 gain") -> plt.Figure:
    """RQ1 on leaked vs clean: one panel per evaluation set, a group per condition, a point per model
    (mean over seeds, 95% CI over seeds and problems of the same mean, ``mirage.study.seeds``)."""
    require(seed_summary, ["statistic", "model", "dataset", "condition", "mean", "ci_low", "ci_high"],
            "seed summary")
    s = seed_summary[seed_summary["statistic"] == statistic]
    if s.empty:
        raise ValueError(f"seed summary: no rows of statistic {statistic!r}")
    datasets = sorted(s["dataset"].unique(), key=lambda d: d.endswith("_fresh"))
    models = list(dict.fromkeys(s["model"]))
    conditions = list(dict.fromkeys(s["condition"]))
    fig, axes = grid(1, len(datasets), w=3.8, h=3.0, sharey=True)
    width = 0.8 / max(1, len(models))
    for ax, dataset in zip(axes[0], datasets):
        d = s[s["dataset"] == dataset]
        for i, model in enumerate(models):
            m = d[d["model"] == model].set_index("condition").reindex(conditions)
            x = np.arange(len(conditions)) - 0.4 + width * (i + 0.5)
            ax.errorbar(x, m["mean"], yerr=[(m["mean"] - m["ci_low"]).clip(lower=0),
                                            (m["ci_high"] - m["mean"]).clip(lower=0)],
                        fmt="o", ms=5, capsize=2.5, color=MODEL_COLOURS[i % len(MODEL_COLOURS)], label=model)
        ax.axhline(0, color="grey", lw=0.8)
        ax.grid(axis="x", visible=False)  # ticks sit between a condition's points
        ax.set_xticks(np.arange(len(conditions)))
        ax.set_xticklabels(conditions, rotation=20)
        for tick, condition in zip(ax.get_xticklabels(), conditions):
            tick.set_color(color(condition))
        kind = "fresh (never leaked)" if dataset.endswith("_fresh") else "test (the leaked set)"
        ax.set_title(f"{dataset}\n{kind}", fontsize=10)
    axes[0, 0].set_ylabel(f"{statistic} (mean over seeds, 95% CI)")
    figure_legend(fig, axes, title="model")
    fig.tight_layout()
    return fig
