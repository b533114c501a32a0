"""pass@k figures: the base models' alignment curves, and each condition against the base model."""

from __future__ import annotations

from typing import Iterable

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from mirage.plots.base import BASE, color, condition_order, curve, figure_legend, grid, log2_k_axis, require
from mirage.study.results import RUN_KEYS, eval_rows, final_step_rows


# --- alignment -------------------------------------------------------------------
def plot_alignment(alignment: pd.DataFrame) -> plt.Figure:
    """Base pass@k curves: one panel per task x dataset, one line per model."""
    require(alignment, ["model", "task", "dataset", "k", "pass_at_k", "ci_low", "ci_high"], "alignment table")
    panels = alignment[["task", "dataset"]].drop_duplicates().sort_values(["task", "dataset"]).values.tolist()
    models = sorted(alignment["model"].unique())
    colours = dict(zip(models, sns.color_palette("viridis", len(models))))
    fig, axes = grid(1, len(panels), sharey=True)
    for ax, (task, dataset) in zip(axes[0], panels):
        sub = alignment[(alignment.task == task) & (alignment.dataset == dataset)]
        for model in models:
            m = sub[sub.model == model]
            if not m.empty:
                curve(ax, m, model, colours[model])
        log2_k_axis(ax, sub["k"])
        ax.set_title(task if dataset == task or len(panels) == len({p[0] for p in panels}) else f"{task}: {dataset}")
    axes[0, 0].set_ylabel("base model pass@k")
    axes[0, -1].legend(title="base model", fontsize=8, loc="lower right")
    fig.suptitle("Model-task alignment: base-model pass@k (95% bootstrap CI)")
    fig.tight_layout()
    return fig


def alignment_matrix(alignment: pd.DataFrame, k: int | None = None) -> pd.DataFrame:
    """One row per model x task x dataset: base pass@1, pass@k at the alignment ``k`` and at the largest k."""
    require(alignment, ["model", "task", "dataset", "k", "pass_at_k"], "alignment table")
    table = alignment.pivot_table(index=["model", "task", "dataset"], columns="k", values="pass_at_k")
    ks = [1] + ([k] if k and k not in (1, table.columns.max()) else []) + [int(table.columns.max())]
    table = table[ks]
    table.columns = [f"pass@{c}" for c in ks]
    table.columns.name = None
    return table


# --- pass@k curves: base vs each condition ----------------------------------------
def base_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The base model's curve (step 0), one per model x task x dataset x k.

    Every run of a model evaluates the same base model with the same settings, so
    duplicates across conditions are identical; keep one.
    """
    results = eval_rows(results)  # the preset's sampling; greedy rows are drawn by their own figures
    base = results[results["step"] == 0]
    return base.drop_duplicates(["model", "task", "dataset", "k"]).assign(condition=BASE)


def plot_passk_curves(results: pd.DataFrame, conditions: Iterable[str] | None = None) -> plt.Figure:
    """pass@k of the base model vs the final checkpoint of each condition.

    Panels: rows = model, columns = task x dataset; CI bands are 95% bootstrap
    intervals over problems.
    """
    require(results, ["model", "task", "condition", "seed", "step", "dataset", "k",
                      "pass_at_k", "ci_low", "ci_high"], "results table")
    results = eval_rows(results)
    final = final_step_rows(results)
    if conditions is not None:
        final = final[final.condition.isin(list(conditions))]
    base = base_rows(results)
    models = sorted(results["model"].unique())
    panels = results[["task", "dataset"]].drop_duplicates().sort_values(["task", "dataset"]).values.tolist()
    fig, axes = grid(len(models), len(panels), sharey=True)
    for i, model in enumerate(models):
        for j, (task, dataset) in enumerate(panels):
            ax = axes[i, j]
            b = base[(base.model == model) & (base.task == task) & (base.dataset == dataset)]
            if not b.empty:
                curve(ax, b, BASE, color(BASE), ls="--")
            f = final[(final.model == model) & (final.task == task) & (final.dataset == dataset)]
            for cond in condition_order(f["condition"]):
                curve(ax, f[f.condition == cond], cond, color(cond))
            ks = pd.concat([b["k"], f["k"]])
            if ks.empty:
                ax.set_visible(False)
                continue
            log2_k_axis(ax, ks)
            ax.set_title(f"{model} | {task}" + ("" if dataset.startswith(task) else f" | {dataset}"))
            if j == 0:
                ax.set_ylabel("pass@k")
    figure_legend(fig, axes)
    fig.suptitle("pass@k after RL (final checkpoint) vs the base model, 95% CI")
    fig.tight_layout()
    return fig


def plot_passk_vs_step(results: pd.DataFrame, k: int = 1) -> plt.Figure:
    """pass@k at one k over checkpoints (step 0 = base), one line per condition."""
    require(results, ["model", "task", "condition", "seed", "step", "dataset", "k", "pass_at_k"], "results table")
    sub = eval_rows(results)
    sub = sub[sub["k"] == k]
    models = sorted(sub["model"].unique())
    panels = sub[["task", "dataset"]].drop_duplicates().sort_values(["task", "dataset"]).values.tolist()
    fig, axes = grid(len(models), len(panels), sharey=True)
    for i, model in enumerate(models):
        for j, (task, dataset) in enumerate(panels):
            ax = axes[i, j]
            s = sub[(sub.model == model) & (sub.task == task) & (sub.dataset == dataset)]
            for cond in condition_order(s["condition"]):
                g = s[s.condition == cond].groupby("step", as_index=False)[["pass_at_k", "ci_low", "ci_high"]].mean()
                ax.errorbar(g["step"], g["pass_at_k"], yerr=[g["pass_at_k"] - g["ci_low"], g["ci_high"] - g["pass_at_k"]],
                            marker="o", ms=3, capsize=2, color=color(cond), label=cond)
            ax.set_title(f"{model} | {task}")
            ax.set_xlabel("training step (0 = base model)")
            if j == 0:
                ax.set_ylabel(f"pass@{k}")
    axes[0, -1].legend(fontsize=7, loc="best", title="condition")
    fig.suptitle(f"pass@{k} over training checkpoints (95% CI)")
    fig.tight_layout()
    return fig


def step_figures(results: pd.DataFrame, k: int = 1) -> dict[str, plt.Figure]:
    """{"pass<k>_vs_step": figure} when some run has more than one evaluated checkpoint, else nothing."""
    trained = eval_rows(results)
    trained = trained[trained["step"] > 0]
    if trained.empty or trained.groupby(RUN_KEYS)["step"].nunique().max() < 2:
        return {}
    return {f"pass{k}_vs_step": plot_passk_vs_step(results, k=k)}
