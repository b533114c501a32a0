"""What every figure shares: the style, colours and markers from the registries, saving, small helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

# The untrained model is no condition of the registry; it keeps one grey in every figure (the registry
# owns the colour, so a condition registered with it is refused there).
from mirage.conditions import get_condition
from mirage.conditions import BASE_COLOUR  # noqa: F401 - part of plots' API
from mirage.conditions import BASE, condition_order  # noqa: F401 - condition_order is part of plots' API
from mirage.tasks import TASKS, load_tasks


def style() -> None:
    """The study's seaborn style: readable at paper size."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.15,
                  rc={"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold"})


def color(condition: str) -> str:
    """A condition's colour, from its registry entry (``Condition.colour``); the base model's grey."""
    if condition == BASE:
        return BASE_COLOUR
    try:
        return get_condition(condition).colour
    except KeyError:
        raise KeyError(f"no colour for condition {condition!r}: it is not in the condition registry "
                       "(mirage.conditions.CONDITIONS; a plugin registers its own with a colour)") from None


def task_marker(task: str) -> str:
    """A task's marker, from its registry entry (``Task.marker``); 'o' for a task the registry does not know."""
    load_tasks()
    return TASKS[task].marker if task in TASKS else "o"


def task_order(tasks: Iterable[str]) -> list[str]:
    """Tasks in registry order, names the registry does not know last."""
    names = list(dict.fromkeys(tasks))
    known = [t for t in load_tasks() if t in names]
    return known + sorted(t for t in names if t not in known)


def save(fig: plt.Figure, name: str, figures_dir: str | Path) -> list[Path]:
    """Write ``<figures_dir>/<name>.png`` and ``.pdf``; return both paths."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = [figures_dir / f"{name}.png", figures_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150)  # the PDF is the print version
    fig.savefig(paths[1], metadata={"CreationDate": None})  # reproducible bytes: a rerun leaves git clean
    plt.close(fig)
    return paths


def save_all(figures: Mapping[str, plt.Figure], figures_dir: str | Path) -> list[Path]:
    """``save`` each figure of {name: figure}; the PNG paths."""
    return [save(fig, name, figures_dir)[0] for name, fig in figures.items()]


def figure_legend(fig: plt.Figure, axes, title: str = "condition") -> None:
    """One legend for the whole figure, right of the panels: each label once, in first-seen order."""
    handles, labels = [], []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), title=title)


def require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: missing columns {missing}; has {list(df.columns)}")


def log2_k_axis(ax: plt.Axes, ks: Iterable[int]) -> None:
    ks = sorted({int(k) for k in ks})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylim(-0.02, 1.02)


def grid(n_rows: int, n_cols: int, w: float = 3.4, h: float = 2.8, **kw) -> tuple[plt.Figure, np.ndarray]:
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(w * n_cols, h * n_rows), squeeze=False, **kw)
    return fig, axes


def curve(ax: plt.Axes, df: pd.DataFrame, label: str, colour: str, **kw) -> None:
    """One pass@k curve with its CI band; several seeds are averaged (band = mean of the seeds' CIs)."""
    g = df.groupby("k", as_index=False)[["pass_at_k", "ci_low", "ci_high"]].mean().sort_values("k")
    ax.plot(g["k"], g["pass_at_k"], marker="o", ms=3, color=colour, label=label, **kw)
    ax.fill_between(g["k"], g["ci_low"], g["ci_high"], color=colour, alpha=0.15, lw=0)


def smooth_window(steps: pd.Series) -> int:
    """Moving-average window for per-step curves: ~1/12 of the run, at least 1 (no smoothing)."""
    return max(1, int(steps.nunique()) // 12)


def step_curve(ax: plt.Axes, g: pd.Series, colour: str, label: str | None, window: int, **kw) -> None:
    """A per-step series: faint raw values under a centred moving average."""
    if window > 1:
        ax.plot(g.index, g.values, color=colour, lw=0.5, alpha=0.25, **kw)
    smooth = g.rolling(window, center=True, min_periods=1).mean()
    ax.plot(smooth.index, smooth.values, color=colour, label=label, lw=1.4, **kw)
