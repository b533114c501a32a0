"""Every figure of the study, each a function of tidy frames.

Inputs are the study's stored tables (see ``mirage.study``):

* ``results``   one row per model x task x condition x seed x step x dataset x k
                (pass_at_k, ci_low, ci_high, n_problems, align_* columns); step 0 is the base model.
* ``dynamics``  ``mirage.runs.load_metrics`` rows (step, metric, value, model, task, condition, seed).
* ``alignment`` the base models' pass@k table (model, task, dataset, k, pass_at_k, ci_low, ci_high).
* ``gains``     ``mirage.study.gain_table(results)``.

Nothing here trains, samples or reads files other than what it is handed; ``save``
writes PNG + PDF. Colours are keyed by condition name in ``PALETTE`` (defined once)
so a condition looks the same in every figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

# One colour per condition (and the base model), the same in every figure.
PALETTE: dict[str, str] = {
    "base": "#7f7f7f",
    "ground_truth": "#000000",
    "random": "#e69f00",
    "incorrect": "#d55e00",
    "format": "#8c564b",
    "entropy_min": "#9467bd",
    "majority_vote": "#cc79a7",
    "one_shot": "#0072b2",
    "one_shot_random": "#56b4e9",
    "nsr": "#009e73",
    "psr": "#bcbd22",
    "nsr_pm1": "#17becf",
    "psr_pm1": "#f0e442",
    "w_reinforce": "#2ca02c",
}
TASK_MARKERS = {"toy-math": "o", "toy-logic": "s", "math": "o", "logic": "s"}

# Training dynamics shown by default: (metric key, axis label).
DYNAMICS_METRICS: list[tuple[str, str]] = [
    ("critic/score/mean", "training reward\n(mean per response)"),
    ("train/acc/mean", "true accuracy of\ntraining samples"),
    ("actor/entropy", "policy entropy\n(nats / token)"),
    ("response_length/mean", "response length\n(tokens)"),
    ("actor/pg_clipfrac", "clip fraction\n(share of tokens)"),
]


def style() -> None:
    """The study's seaborn style: readable at paper size."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.15,
                  rc={"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold"})


def color(condition: str) -> str:
    if condition not in PALETTE:
        raise KeyError(f"no colour for condition {condition!r}; add it to mirage.plots.PALETTE")
    return PALETTE[condition]


def condition_order(conditions: Iterable[str]) -> list[str]:
    """Conditions in palette order (base and ground truth first), unknown names last."""
    names = list(dict.fromkeys(conditions))
    known = [c for c in PALETTE if c in names]
    return known + sorted(c for c in names if c not in PALETTE)


def save(fig: plt.Figure, name: str, figures_dir: str | Path) -> list[Path]:
    """Write ``<figures_dir>/<name>.png`` and ``.pdf``; return both paths."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = [figures_dir / f"{name}.png", figures_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150)  # the PDF is the print version
    fig.savefig(paths[1], metadata={"CreationDate": None})  # reproducible bytes: a rerun leaves git clean
    plt.close(fig)
    return paths


def _figure_legend(fig: plt.Figure, axes, title: str = "condition") -> None:
    """One legend for the whole figure, right of the panels: each label once, in first-seen order."""
    handles, labels = [], []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), title=title)


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: missing columns {missing}; has {list(df.columns)}")


def _log2_k_axis(ax: plt.Axes, ks: Iterable[int]) -> None:
    ks = sorted({int(k) for k in ks})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylim(-0.02, 1.02)


def _grid(n_rows: int, n_cols: int, w: float = 3.4, h: float = 2.8, **kw) -> tuple[plt.Figure, np.ndarray]:
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(w * n_cols, h * n_rows), squeeze=False, **kw)
    return fig, axes


def _curve(ax: plt.Axes, df: pd.DataFrame, label: str, colour: str, **kw) -> None:
    """One pass@k curve with its CI band; several seeds are averaged (band = mean of the seeds' CIs)."""
    g = df.groupby("k", as_index=False)[["pass_at_k", "ci_low", "ci_high"]].mean().sort_values("k")
    ax.plot(g["k"], g["pass_at_k"], marker="o", ms=3, color=colour, label=label, **kw)
    ax.fill_between(g["k"], g["ci_low"], g["ci_high"], color=colour, alpha=0.15, lw=0)


# --- alignment -------------------------------------------------------------------
def plot_alignment(alignment: pd.DataFrame) -> plt.Figure:
    """Base pass@k curves: one panel per task x dataset, one line per model."""
    _require(alignment, ["model", "task", "dataset", "k", "pass_at_k", "ci_low", "ci_high"], "alignment table")
    panels = alignment[["task", "dataset"]].drop_duplicates().sort_values(["task", "dataset"]).values.tolist()
    models = sorted(alignment["model"].unique())
    colours = dict(zip(models, sns.color_palette("viridis", len(models))))
    fig, axes = _grid(1, len(panels), sharey=True)
    for ax, (task, dataset) in zip(axes[0], panels):
        sub = alignment[(alignment.task == task) & (alignment.dataset == dataset)]
        for model in models:
            m = sub[sub.model == model]
            if not m.empty:
                _curve(ax, m, model, colours[model])
        _log2_k_axis(ax, sub["k"])
        ax.set_title(task if dataset == task or len(panels) == len({p[0] for p in panels}) else f"{task}: {dataset}")
    axes[0, 0].set_ylabel("base model pass@k")
    axes[0, -1].legend(title="base model", fontsize=8, loc="lower right")
    fig.suptitle("Model-task alignment: base-model pass@k (95% bootstrap CI)")
    fig.tight_layout()
    return fig


def alignment_matrix(alignment: pd.DataFrame, k: int | None = None) -> pd.DataFrame:
    """One row per model x task x dataset: base pass@1, pass@k at the alignment ``k`` and at the largest k."""
    _require(alignment, ["model", "task", "dataset", "k", "pass_at_k"], "alignment table")
    table = alignment.pivot_table(index=["model", "task", "dataset"], columns="k", values="pass_at_k")
    ks = [1] + ([k] if k and k not in (1, table.columns.max()) else []) + [int(table.columns.max())]
    table = table[ks]
    table.columns = [f"pass@{c}" for c in ks]
    table.columns.name = None
    return table


# --- pass@k curves: base vs each condition ----------------------------------------
def final_step_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The last evaluated checkpoint of every run (model x task x condition x seed)."""
    trained = results[results["step"] > 0]
    last = trained.groupby(["model", "task", "condition", "seed"])["step"].transform("max")
    return trained[trained["step"] == last]


def base_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The base model's curve (step 0), one per model x task x dataset x k.

    Every run of a model evaluates the same base model with the same settings, so
    duplicates across conditions are identical; keep one.
    """
    base = results[results["step"] == 0]
    return base.drop_duplicates(["model", "task", "dataset", "k"]).assign(condition="base")


def plot_passk_curves(results: pd.DataFrame, conditions: Iterable[str] | None = None) -> plt.Figure:
    """pass@k of the base model vs the final checkpoint of each condition.

    Panels: rows = model, columns = task x dataset; CI bands are 95% bootstrap
    intervals over problems.
    """
    _require(results, ["model", "task", "condition", "seed", "step", "dataset", "k",
                       "pass_at_k", "ci_low", "ci_high"], "results table")
    final = final_step_rows(results)
    if conditions is not None:
        final = final[final.condition.isin(list(conditions))]
    base = base_rows(results)
    models = sorted(results["model"].unique())
    panels = results[["task", "dataset"]].drop_duplicates().sort_values(["task", "dataset"]).values.tolist()
    fig, axes = _grid(len(models), len(panels), sharey=True)
    for i, model in enumerate(models):
        for j, (task, dataset) in enumerate(panels):
            ax = axes[i, j]
            sel = dict(model=model, task=task, dataset=dataset)
            b = base[(base.model == model) & (base.task == task) & (base.dataset == dataset)]
            if not b.empty:
                _curve(ax, b, "base", color("base"), ls="--")
            f = final[(final.model == model) & (final.task == task) & (final.dataset == dataset)]
            for cond in condition_order(f["condition"]):
                _curve(ax, f[f.condition == cond], cond, color(cond))
            ks = pd.concat([b["k"], f["k"]])
            if ks.empty:
                ax.set_visible(False)
                continue
            _log2_k_axis(ax, ks)
            ax.set_title(f"{sel['model']} | {task}" + ("" if dataset.startswith(task) else f" | {dataset}"))
            if j == 0:
                ax.set_ylabel("pass@k")
    _figure_legend(fig, axes)
    fig.suptitle("pass@k after RL (final checkpoint) vs the base model, 95% CI")
    fig.tight_layout()
    return fig


def plot_passk_vs_step(results: pd.DataFrame, k: int = 1) -> plt.Figure:
    """pass@k at one k over checkpoints (step 0 = base), one line per condition."""
    _require(results, ["model", "task", "condition", "seed", "step", "dataset", "k", "pass_at_k"], "results table")
    sub = results[results["k"] == k]
    models = sorted(sub["model"].unique())
    panels = sub[["task", "dataset"]].drop_duplicates().sort_values(["task", "dataset"]).values.tolist()
    fig, axes = _grid(len(models), len(panels), sharey=True)
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


# --- training dynamics ----------------------------------------------------------------
def _smooth_window(steps: pd.Series) -> int:
    """Moving-average window for per-step curves: ~1/12 of the run, at least 1 (no smoothing)."""
    return max(1, int(steps.nunique()) // 12)


def _step_curve(ax: plt.Axes, g: pd.Series, colour: str, label: str | None, window: int, **kw) -> None:
    """A per-step series: faint raw values under a centred moving average."""
    if window > 1:
        ax.plot(g.index, g.values, color=colour, lw=0.5, alpha=0.25, **kw)
    smooth = g.rolling(window, center=True, min_periods=1).mean()
    ax.plot(smooth.index, smooth.values, color=colour, label=label, lw=1.4, **kw)


def plot_dynamics(dynamics: pd.DataFrame, task: str,
                  metrics: list[tuple[str, str]] | None = None) -> plt.Figure:
    """Training curves for one task: rows = metric, columns = model, one line per condition.

    Seeds are averaged; per-step values are noisy, so each curve is a centred moving
    average (window in the title) over the raw values drawn faintly.
    """
    _require(dynamics, ["step", "metric", "value", "model", "task", "condition", "seed"], "dynamics table")
    metrics = metrics or DYNAMICS_METRICS
    d = dynamics[dynamics["task"] == task]
    if d.empty:
        raise ValueError(f"no training dynamics for task {task!r}; tasks present: {sorted(dynamics.task.unique())}")
    models = sorted(d["model"].unique())
    window = _smooth_window(d["step"])
    fig, axes = _grid(len(metrics), len(models), w=3.2, h=2.0, sharex="col")
    for j, model in enumerate(models):
        for i, (key, label) in enumerate(metrics):
            ax = axes[i, j]
            s = d[(d.model == model) & (d.metric == key)]
            for cond in condition_order(s["condition"]):
                g = s[s.condition == cond].groupby("step")["value"].mean()
                _step_curve(ax, g, color(cond), cond, window)
            if i == 0:
                ax.set_title(model)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
            if i == len(metrics) - 1:
                ax.set_xlabel("training step")
    _figure_legend(fig, axes)
    fig.suptitle(f"Training dynamics on {task} (mean over seeds; {window}-step moving average)")
    fig.tight_layout()
    return fig


def plot_reward_vs_accuracy(dynamics: pd.DataFrame) -> plt.Figure:
    """RQ1: the reward the policy was trained on vs the true accuracy of the same samples."""
    _require(dynamics, ["step", "metric", "value", "condition", "seed"], "dynamics table")
    window = _smooth_window(dynamics["step"])
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for cond in condition_order(dynamics["condition"]):
        s = dynamics[dynamics.condition == cond]
        for key, ls, what in (("critic/score/mean", "-", "reward seen"), ("train/acc/mean", "--", "true accuracy")):
            g = s[s.metric == key].groupby("step")["value"].mean()
            if not g.empty:
                _step_curve(ax, g, color(cond), f"{cond}: {what}", window, ls=ls)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean over training samples")
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"Reward seen (solid) vs true accuracy (dashed)\n{window}-step moving average", fontsize=10)
    fig.tight_layout()
    return fig


def plot_example_history(history: dict, chosen: int | str | None = None, top: int = 12) -> plt.Figure:
    """RQ2: per-example training accuracy per epoch; the ``top`` highest-variance examples, ``chosen`` highlighted."""
    if not history:
        raise ValueError("empty accuracy history: no example was seen during the history run")
    frame = pd.DataFrame([(str(i), e, a) for i, accs in history.items() for e, a in enumerate(accs)],
                         columns=["example", "epoch", "acc"])
    std = frame.groupby("example")["acc"].std(ddof=0).sort_values(ascending=False)
    keep = list(std.index[:top])
    if chosen is not None and str(chosen) not in keep:
        keep.append(str(chosen))
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for ex in keep:
        g = frame[frame.example == ex]
        is_chosen = chosen is not None and ex == str(chosen)
        ax.plot(g["epoch"], g["acc"], marker="o", ms=3, lw=2.5 if is_chosen else 0.8,
                color=color("one_shot") if is_chosen else "#bbbbbb", zorder=3 if is_chosen else 1,
                label=f"chosen: example {ex} (std {std[ex]:.2f})" if is_chosen else None)
    ax.set_xlabel("epoch of the full-data ground-truth run")
    ax.set_ylabel("training accuracy of the example")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"Accuracy history, top {top} examples by std")
    if chosen is not None:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_metric_panels(dynamics: pd.DataFrame, metrics: list[tuple[str, str]], title: str) -> plt.Figure:
    """Any few metrics over steps side by side, one line per condition (RQ3: kept / masked share, entropy)."""
    _require(dynamics, ["step", "metric", "value", "condition"], "dynamics table")
    metrics = [(k, lab) for k, lab in metrics if (dynamics.metric == k).any()]
    if not metrics:
        raise ValueError(f"none of the requested metrics are in the dynamics table: {sorted(dynamics.metric.unique())}")
    window = _smooth_window(dynamics["step"])
    fig, axes = _grid(1, len(metrics), w=3.6, h=2.8)
    for ax, (key, label) in zip(axes[0], metrics):
        s = dynamics[dynamics.metric == key]
        for cond in condition_order(s["condition"]):
            g = s[s.condition == cond].groupby("step")["value"].mean()
            _step_curve(ax, g, color(cond), cond, window)
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
    axes[0, -1].legend(fontsize=8, title="condition")
    fig.suptitle(f"{title} ({window}-step moving average)")
    fig.tight_layout()
    return fig


# --- the paper's claim ---------------------------------------------------------------
def plot_summary(gains: pd.DataFrame, min_gt_gain: float) -> plt.Figure:
    """Gain recovered by each technique, and the absolute gain, vs the base model's alignment.

    Columns: (pass@1_cond - pass@1_base) / (pass@1_gt - pass@1_base), where points whose
    ground-truth gain is below ``min_gt_gain`` have no ratio (NaN in ``gains``) and are
    left out (counted in the panel); and pass@1_cond - pass@1_base for every point.
    Rows: two readings of alignment, the paper's (base pass@k at the alignment k) and the
    base pass@1 (what a majority of samples does), since the techniques need different
    things (a correct sample at all vs a correct majority). Lines join a condition's
    points (mean over seeds) across the dial.
    """
    _require(gains, ["model", "task", "dataset", "condition", "seed", "alignment", "base_pass_at_1", "gain",
                     "recovered"], "gain table")
    align_label = gains["alignment_label"].iloc[0] if "alignment_label" in gains and len(gains) else "pass@k"
    rows = [("alignment", f"base-model alignment: {align_label}"), ("base_pass_at_1", "base-model pass@1")]
    cols = [("recovered", "gain recovered relative to\nground-truth RL (1 = same gain)"),
            ("gain", "absolute gain in pass@1\n(trained - base)")]
    fig, axes = _grid(len(rows), len(cols), w=5.2, h=3.8)
    for i, (xcol, xlabel) in enumerate(rows):
        for j, (col, ylabel) in enumerate(cols):
            ax = axes[i, j]
            data = gains if col == "gain" else gains[gains.condition != "ground_truth"]
            for cond in condition_order(data["condition"]):
                s = data[(data.condition == cond) & data[col].notna()]
                for task, t in s.groupby("task"):
                    ax.scatter(t[xcol], t[col], color=color(cond), marker=TASK_MARKERS.get(task, "o"),
                               s=28, alpha=0.8, edgecolor="white", lw=0.5, zorder=3)
                line = s.groupby(["model", "task", "dataset"], as_index=False)[[xcol, col]].mean()
                line = line.sort_values(xcol)
                ax.plot(line[xcol], line[col], color=color(cond), lw=1, alpha=0.7, label=cond)
            ax.axhline(0, color="grey", lw=0.8)
            if col == "recovered":
                ax.axhline(1, color=color("ground_truth"), lw=0.8, ls=":")
                dropped = gains[(gains.condition != "ground_truth") & gains["recovered"].isna()]
                ax.text(0.02, 0.02, f"{len(dropped)} point(s) left out: ground-truth gain < {min_gt_gain:g}",
                        transform=ax.transAxes, va="bottom", fontsize=8, color="dimgrey")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_xlim(-0.02, 1.02)
    legend_ax = axes[0, -1]
    for task, marker in TASK_MARKERS.items():
        if (gains["task"] == task).any():
            legend_ax.scatter([], [], marker=marker, color="grey", label=task)
    legend_ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="condition / task")
    fig.suptitle("Do the surprising techniques only work under strong model-task alignment?\n"
                 "one point per model x task x condition x seed")
    fig.tight_layout()
    return fig
