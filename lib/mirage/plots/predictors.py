"""Which alignment measure predicts which gain: Spearman's rho with its bootstrap CI, a panel per condition."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mirage.plots.base import color, grid, require

LABELS = {"pass_at_1": "pass@1", "pass_at_half": "pass@(n/2)", "pass_at_n": "pass@n",
          "saturation_gap": "pass@n - pass@(n/2)", "k_knee": "k where pass@k flattens",
          "majority_share": "majority-answer share", "maj_at_n": "maj@n accuracy",
          "mean_token_entropy": "mean token entropy", "format_rate": "format compliance",
          "format_free_accuracy": "format-free accuracy",
          "procedure_correct": "correct-procedure share", "procedure_buggy": "buggy-procedure share",
          "procedure_neither": "neither-procedure share"}


def plot_predictor_correlations(table: pd.DataFrame) -> plt.Figure:
    """One panel per condition (and regime): each predictor's Spearman rho with the condition's outcome
    (``mirage.evaluate.predictors.predictor_correlations``), a dot with its 95% bootstrap CI; a
    predictor without a rho (NaN on some pair, or constant) is listed with "n/a"."""
    require(table, ["predictor", "condition", "outcome", "rho", "ci_low", "ci_high", "n_pairs", "n_seeds"],
            "predictor correlation table")
    table = table.assign(regime=table["regime"] if "regime" in table else "")
    panels = list(dict.fromkeys(zip(table["condition"], table["regime"])))
    names = list(dict.fromkeys(table["predictor"]))
    fig, axes = grid(1, len(panels), w=3.0, h=0.38 * len(names) + 1.4, sharey=True)
    y = np.arange(len(names))[::-1]
    for ax, (condition, regime) in zip(axes[0], panels):
        t = table[(table["condition"] == condition) & (table["regime"] == regime)].set_index("predictor")
        t = t.reindex(names)
        c = color(condition)
        ax.axvline(0, color="grey", lw=0.8)
        ok = t["rho"].notna().to_numpy()
        ax.errorbar(t["rho"][ok], y[ok], xerr=[(t["rho"] - t["ci_low"])[ok].clip(lower=0),
                                              (t["ci_high"] - t["rho"])[ok].clip(lower=0)],
                    fmt="o", color=c, ecolor=c, elinewidth=1.2, capsize=2.5, ms=5)
        for yi in y[~ok]:
            ax.text(0, yi, "n/a", ha="center", va="center", fontsize=8, color="dimgrey")
        ax.set_xlim(-1.05, 1.05)
        name = f"{condition} @{regime}" if regime else condition
        ax.set_title(f"{name}\n{t['outcome'].dropna().iloc[0] if t['outcome'].notna().any() else ''}", fontsize=10)
        ax.set_xlabel("Spearman rho (95% CI)")
    axes[0, 0].set_yticks(y)
    axes[0, 0].set_yticklabels([LABELS.get(n, n) for n in names])
    pairs, seeds = int(table["n_pairs"].max()), int(table["n_seeds"].max())
    fig.suptitle(f"Which base-model measure ranks the gains: {pairs} model-task pairs x {seeds} seed(s); "
                 "CI: bootstrap over pairs and seeds", y=1.02, fontsize=11)
    fig.tight_layout()
    return fig
