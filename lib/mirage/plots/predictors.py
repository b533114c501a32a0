"""Which alignment measure predicts which gain: Spearman's rho with its bootstrap CI, a panel per condition."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mirage.evaluate.predictors import STRATIFIED, UNINFORMATIVE_WIDTH
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


OUTCOME_TITLES = {"baseline_gain": "own gain over base", "gain_minus_baseline": "gain - ground truth's gain",
                  "fraction_recovered": "gain / ground truth's gain"}
STRATUM_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]  # tasks; the within-task rho is black


def plot_predictor_outcomes(table: pd.DataFrame) -> plt.Figure:
    """Spearman rho of each predictor with each outcome (``mirage.evaluate.predictors.predictor_outcomes``):
    a column per condition (and regime), a row per outcome; in a panel a dot per stratum (each task, and the
    within-task pooled rho in black) with its 95% CI (bootstrap over models, then seeds); a CI wider than the
    uninformative width is drawn dashed. Never a line across tasks."""
    require(table, ["predictor", "condition", "outcome", "stratum", "rho", "ci_low", "ci_high", "n_pairs"],
            "predictor outcome table")

    table = table.assign(regime=table["regime"].fillna("") if "regime" in table else "")
    columns = list(dict.fromkeys(zip(table["condition"], table["regime"])))
    outcomes = [o for o in OUTCOME_TITLES if o in set(table["outcome"])]
    rows = [o for o in outcomes if o != "baseline_gain"] or outcomes
    names = list(dict.fromkeys(table["predictor"]))
    strata = list(dict.fromkeys(s for s in table["stratum"] if s != STRATIFIED)) + (
        [STRATIFIED] if (table["stratum"] == STRATIFIED).any() else [])
    colours = {s: "black" if s == STRATIFIED else STRATUM_COLOURS[i % len(STRATUM_COLOURS)] for i, s in enumerate(strata)}
    fig, axes = grid(len(rows), len(columns), w=2.9, h=0.42 * len(names) + 1.3, sharey=True)
    y = np.arange(len(names))[::-1]
    offsets = {s: 0.25 - 0.5 * i / max(1, len(strata) - 1) for i, s in enumerate(strata)}
    for j, (condition, regime) in enumerate(columns):
        mine = table[(table["condition"] == condition) & (table["regime"] == regime)]
        own = set(mine["outcome"]) == {"baseline_gain"}
        for i, outcome in enumerate(rows):
            ax = axes[i, j]
            shown = "baseline_gain" if own else outcome
            t = mine[mine["outcome"] == shown]
            if t.empty or (own and i > 0):  # an empty panel; the first column keeps the predictor names
                ax.set_xticks([])
                ax.grid(False)
                ax.set_frame_on(False)
                if j > 0:
                    ax.set_axis_off()
                continue
            ax.axvline(0, color="grey", lw=0.8)
            for stratum in strata:
                s = t[t["stratum"] == stratum].set_index("predictor").reindex(names)
                ok = s["rho"].notna().to_numpy()
                if not ok.any():
                    continue
                yy = y + offsets[stratum]
                wide = (s["ci_high"] - s["ci_low"]).to_numpy() > UNINFORMATIVE_WIDTH
                for sel, style in ((ok & ~wide, "-"), (ok & wide, "--")):
                    if sel.any():
                        bars = ax.errorbar(s["rho"][sel], yy[sel], xerr=[(s["rho"] - s["ci_low"])[sel].clip(lower=0),
                                                                         (s["ci_high"] - s["rho"])[sel].clip(lower=0)],
                                           fmt="o", color=colours[stratum], ms=4, elinewidth=1.0, capsize=2)
                        bars[-1][0].set_linestyle(style)
            ax.set_xlim(-1.05, 1.05)
            name = f"{condition} @{regime}" if regime else condition
            pairs = "/".join(str(int(t.loc[t["stratum"] == st, "n_pairs"].max())) for st in strata
                             if (t["stratum"] == st).any())
            ax.set_title(f"{name}\n{OUTCOME_TITLES.get(shown, shown)}\n({pairs} pairs)", fontsize=9)
            ax.set_xlabel("Spearman rho (95% CI)", fontsize=9)
    axes[0, 0].set_yticks(y)
    axes[0, 0].set_yticklabels([LABELS.get(n, n) for n in names], fontsize=9)
    handles = [plt.Line2D([], [], color=colours[s], marker="o", ls="", label=s) for s in strata]
    handles += [plt.Line2D([], [], color="grey", ls="-", label="95% CI"),
                plt.Line2D([], [], color="grey", ls="--", label=f"95% CI wider than {UNINFORMATIVE_WIDTH:g}")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="rho over the pairs of",
               fontsize=8)
    fig.suptitle("Rank correlation of each base-model measure with each outcome, per task and within-task\n"
                 "95% CI: bootstrap over models (clusters), then seeds; dashed: CI wider than "
                 f"{UNINFORMATIVE_WIDTH:g} (uninformative)", fontsize=11)
    fig.tight_layout()
    return fig
