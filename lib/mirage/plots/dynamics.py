"""Training-dynamics figures: metrics over steps, reward seen vs true accuracy, one-shot history."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from mirage.plots.base import color, condition_order, figure_legend, grid, require, smooth_window, step_curve

# Training dynamics shown by default: (metric key, axis label).
DYNAMICS_METRICS: list[tuple[str, str]] = [
    ("critic/score/mean", "training reward\n(mean per response)"),
    ("train/acc/mean", "true accuracy of\ntraining samples"),
    ("actor/entropy", "policy entropy\n(nats / token)"),
    ("response_length/mean", "response length\n(tokens)"),
    ("actor/pg_clipfrac", "clip fraction\n(share of tokens)"),
]
# RQ3: which samples carried a gradient, and the entropy.
POLARITY_METRICS: list[tuple[str, str]] = [
    ("train/kept_groups", "prompt groups with\nmixed rewards (kept)"),
    ("train/kept_responses", "share of responses\nkept in the batch"),
    ("train/acc/mean", "true accuracy of\ntraining samples"),
    ("actor/entropy", "policy entropy\n(nats / token)"),
]


def plot_dynamics(dynamics: pd.DataFrame, task: str, metrics: list[tuple[str, str]] | None = None) -> plt.Figure:
    """Training curves for one task: rows = metric, columns = model, one line per condition.

    Seeds are averaged; per-step values are noisy, so each curve is a centred moving
    average (window in the title) over the raw values drawn faintly.
    """
    require(dynamics, ["step", "metric", "value", "model", "task", "condition", "seed"], "dynamics table")
    metrics = metrics or DYNAMICS_METRICS
    d = dynamics[dynamics["task"] == task]
    if d.empty:
        raise ValueError(f"no training dynamics for task {task!r}; tasks present: {sorted(dynamics.task.unique())}")
    models = sorted(d["model"].unique())
    window = smooth_window(d["step"])
    fig, axes = grid(len(metrics), len(models), w=3.2, h=2.0, sharex="col")
    for j, model in enumerate(models):
        for i, (key, label) in enumerate(metrics):
            ax = axes[i, j]
            s = d[(d.model == model) & (d.metric == key)]
            for cond in condition_order(s["condition"]):
                g = s[s.condition == cond].groupby("step")["value"].mean()
                step_curve(ax, g, color(cond), cond, window)
            if i == 0:
                ax.set_title(model)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
            if i == len(metrics) - 1:
                ax.set_xlabel("training step")
    figure_legend(fig, axes)
    fig.suptitle(f"Training dynamics on {task} (mean over seeds; {window}-step moving average)")
    fig.tight_layout()
    return fig


def dynamics_figures(dynamics: pd.DataFrame) -> dict[str, plt.Figure]:
    """{"dynamics_<task>": plot_dynamics(dynamics, task)} for every task in the table."""
    return {f"dynamics_{task}": plot_dynamics(dynamics, task) for task in sorted(dynamics["task"].unique())}


def plot_reward_vs_accuracy(dynamics: pd.DataFrame) -> plt.Figure:
    """RQ1: the reward the policy was trained on vs the true accuracy of the same samples."""
    require(dynamics, ["step", "metric", "value", "condition", "seed"], "dynamics table")
    window = smooth_window(dynamics["step"])
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for cond in condition_order(dynamics["condition"]):
        s = dynamics[dynamics.condition == cond]
        for key, ls, what in (("critic/score/mean", "-", "reward seen"), ("train/acc/mean", "--", "true accuracy")):
            g = s[s.metric == key].groupby("step")["value"].mean()
            if not g.empty:
                step_curve(ax, g, color(cond), f"{cond}: {what}", window, ls=ls)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean over training samples")
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"Reward seen (solid) vs true accuracy (dashed)\n{window}-step moving average", fontsize=10)
    fig.tight_layout()
    return fig


def plot_example_history(history: dict | None, chosen: int | str | None = None, top: int = 12,
                         colour: str = "#0072b2") -> plt.Figure:
    """RQ2: per-example training accuracy per epoch; the ``top`` highest-variance examples, ``chosen``
    highlighted in ``colour`` (a notebook passes its condition's).

    Without a history (an example chosen at random, or given) the figure says so instead.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.set_xlabel("epoch of the full-data ground-truth run")
    ax.set_ylabel("training accuracy of the example")
    ax.set_ylim(-0.05, 1.05)
    if not history:
        ax.text(0.5, 0.5, f"no accuracy history: example {chosen} was not chosen by historical variance",
                transform=ax.transAxes, ha="center", va="center", fontsize=9, color="dimgrey", wrap=True)
        ax.set_title("Accuracy history (none)")
        fig.tight_layout()
        return fig
    frame = pd.DataFrame([(str(i), e, a) for i, accs in history.items() for e, a in enumerate(accs)],
                         columns=["example", "epoch", "acc"])
    std = frame.groupby("example")["acc"].std(ddof=0).sort_values(ascending=False)
    keep = list(std.index[:top])
    if chosen is not None and str(chosen) not in keep:
        keep.append(str(chosen))
    for ex in keep:
        g = frame[frame.example == ex]
        is_chosen = chosen is not None and ex == str(chosen)
        ax.plot(g["epoch"], g["acc"], marker="o", ms=3, lw=2.5 if is_chosen else 0.8,
                color=colour if is_chosen else "#bbbbbb", zorder=3 if is_chosen else 1,
                label=f"chosen: example {ex} (std {std[ex]:.2f})" if is_chosen else None)
    ax.set_title(f"Accuracy history, top {top} examples by std")
    if chosen is not None:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_metric_panels(dynamics: pd.DataFrame, metrics: list[tuple[str, str]], title: str) -> plt.Figure:
    """Any few metrics over steps side by side, one line per condition (RQ3: kept / masked share, entropy)."""
    require(dynamics, ["step", "metric", "value", "condition"], "dynamics table")
    metrics = [(k, lab) for k, lab in metrics if (dynamics.metric == k).any()]
    if not metrics:
        raise ValueError(f"none of the requested metrics are in the dynamics table: {sorted(dynamics.metric.unique())}")
    window = smooth_window(dynamics["step"])
    fig, axes = grid(1, len(metrics), w=3.6, h=2.8)
    for ax, (key, label) in zip(axes[0], metrics):
        s = dynamics[dynamics.metric == key]
        for cond in condition_order(s["condition"]):
            g = s[s.condition == cond].groupby("step")["value"].mean()
            step_curve(ax, g, color(cond), cond, window)
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
    axes[0, -1].legend(fontsize=8, title="condition")
    fig.suptitle(f"{title} ({window}-step moving average)")
    fig.tight_layout()
    return fig
