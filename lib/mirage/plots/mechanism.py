"""The clipping-bias figures (notebooks/40_clipping_bias.ipynb): the bandit, and training regimes compared.

Inputs are ``mirage.study.regimes`` tables: ``bandit_runs`` (the coin-flip bandit per variant),
``run_table`` (one row per run: gains, clip fractions), ``step_gains`` (gain per checkpoint),
``procedure_table`` (the testbed's procedure shares per step). A condition keeps its registry
colour; regimes (a preset's names, not a registry) get a colour and a marker each, in natural
order (u2, u8, u16, u16_hi, ...), the same in every figure drawn from the same regimes.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.collections import LineCollection

from mirage.plots.base import color, condition_order, figure_legend, grid, require, smooth_window, step_curve
from mirage.study.seeds import natural_key

REGIME_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
GAIN_LABELS = {"gain": "pass@1 gain (T = 1)\ntrained - base",
               "greedy_gain": "greedy accuracy gain (T = 0)\ntrained - base"}


def regime_order(regimes: Iterable[str]) -> list[str]:
    """Regimes in natural order (u2 < u8 < u16 < u16_hi)."""
    return sorted(dict.fromkeys(regimes), key=natural_key)


def regime_styles(regimes: Iterable[str]) -> dict[str, tuple]:
    """{regime: (colour, marker)}, by natural order, so one regime looks the same in every figure."""
    order = regime_order(regimes)
    colours = sns.color_palette("tab10" if len(order) <= 10 else "husl", len(order))
    return {r: (colours[i], REGIME_MARKERS[i % len(REGIME_MARKERS)]) for i, r in enumerate(order)}


def regime_label(regime: str) -> str:
    return regime or "(no regime)"


def _gain_columns(runs: pd.DataFrame) -> list[str]:
    """The gain columns with data: T = 1 always, greedy where it was evaluated."""
    return ["gain"] + (["greedy_gain"] if "greedy_gain" in runs and runs["greedy_gain"].notna().any() else [])


def _pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    return [tuple(p) for p in df[["model", "task"]].drop_duplicates().sort_values(["task", "model"]).values]


# --- (a) the bandit ------------------------------------------------------------------------------
def plot_bandit(runs: Mapping[str, dict]) -> plt.Figure:
    """p(favoured arm) over rollouts, one panel per variant: every seed faint, the median (solid) and the
    mean (dashed); the start marked. A drift under coin-flip rewards comes from the objective alone."""
    if not runs:
        raise ValueError("plot_bandit: no bandit runs")
    fig, axes = grid(1, len(runs), w=3.0, h=2.8, sharey=True)
    for ax, (name, r) in zip(axes[0], runs.items()):
        steps, p = np.asarray(r["steps"]), np.asarray(r["p_favoured"])
        segments = [np.column_stack([steps, row]) for row in p]
        ax.add_collection(LineCollection(segments, colors="#1f77b4", alpha=max(0.02, min(0.3, 8 / len(p))), lw=0.5))
        ax.plot(steps, np.median(p, axis=0), color="black", lw=1.8, label="median over seeds")
        ax.plot(steps, p.mean(axis=0), color="#d62728", lw=1.4, ls="--", label="mean over seeds")
        ax.axhline(p[0, 0], color="grey", lw=0.8, ls=":", label="start")
        clip = float(np.mean(r.get("clipfrac", [np.nan])))
        shift = float(np.median(p[:, -1]) - p[0, 0])
        ax.set_title(f"{name}\nmedian shift {shift:+.3f}, clipped {100 * clip:.2f}%", fontsize=9)
        ax.set_xlim(steps[0], steps[-1])
        ax.set_ylim(0, 1)
        ax.set_xlabel("rollout")
    axes[0, 0].set_ylabel("p(favoured arm)")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    n = len(next(iter(runs.values()))["p_favoured"])
    fig.suptitle(f"Coin-flip bandit trained through mirage's objective ({n} seeds each)")
    fig.tight_layout()
    return fig


# --- (b) gain vs measured clip fraction -------------------------------------------------------------
def plot_gain_vs_clipfrac(runs: pd.DataFrame) -> plt.Figure:
    """Gain (T = 1; greedy where evaluated) against the run's mean clip fraction: a point per seed
    (colour = condition, marker = regime), the median of each condition x regime large and outlined.
    One row per model x task."""
    require(runs, ["model", "task", "condition", "regime", "seed", "gain", "clipfrac"], "run table")
    cols, pairs, styles = _gain_columns(runs), _pairs(runs), regime_styles(runs["regime"])
    fig, axes = grid(len(pairs), len(cols), w=4.4, h=3.2)
    for i, (model, task) in enumerate(pairs):
        sub = runs[(runs.model == model) & (runs.task == task)]
        for j, col in enumerate(cols):
            ax = axes[i, j]
            for (cond, regime), g in sub.groupby(["condition", "regime"], sort=False):
                colour, marker = color(cond), styles[regime][1]
                x = 100 * g["clipfrac"]
                ax.scatter(x, g[col], color=colour, marker=marker, s=18, alpha=0.45, lw=0)
                ax.scatter([x.median()], [g[col].median()], color=colour, marker=marker, s=90, edgecolor="black",
                           lw=1.0, zorder=4)
            ax.axhline(0, color="grey", lw=0.8)
            xmax = max(100 * float(sub["clipfrac"].max()), 0.1) if sub["clipfrac"].notna().any() else 1.0
            ax.set_xlim(-0.04 * xmax, 1.08 * xmax)  # a fraction is >= 0: no negative axis around all-zero runs
            ax.set_title(f"{model} | {task}")
            ax.set_xlabel("mean clip fraction over training (% of tokens)")
            ax.set_ylabel(GAIN_LABELS[col])
    _condition_regime_legend(fig, runs, styles)
    fig.suptitle("Gain vs how much the ratio clip acted: a point per seed, the median of each condition x regime "
                 "outlined")
    fig.tight_layout()
    return fig


def _condition_regime_legend(fig: plt.Figure, df: pd.DataFrame, styles: dict) -> None:
    handles = [plt.Line2D([], [], color=color(c), marker="o", ls="", label=c) for c in condition_order(df["condition"])]
    handles += [plt.Line2D([], [], color="grey", marker=styles[r][1], ls="", label=regime_label(r))
                for r in regime_order(df["regime"])]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="condition / regime", fontsize=8)


# --- (c) gain vs training step ------------------------------------------------------------------------
def plot_gain_vs_step(steps: pd.DataFrame, greedy: pd.DataFrame | None = None) -> plt.Figure:
    """The steps axis: gain over the base model at each evaluated checkpoint, one line per seed (faint)
    and the median over seeds (bold) per regime; one row per model x task x condition, a second column
    for the greedy gain where given."""
    require(steps, ["model", "task", "condition", "regime", "seed", "step", "gain"], "step gains")
    if steps.empty:
        raise ValueError("plot_gain_vs_step: no run has more than one evaluated checkpoint (no steps axis)")
    tables = [("gain", steps)] + ([("greedy_gain", greedy)] if greedy is not None and not greedy.empty else [])
    panels = steps[["model", "task", "condition"]].drop_duplicates().values.tolist()
    styles = regime_styles(steps["regime"])
    fig, axes = grid(len(panels), len(tables), w=4.4, h=3.0)
    for i, (model, task, cond) in enumerate(panels):
        for j, (col, table) in enumerate(tables):
            ax = axes[i, j]
            sub = table[(table.model == model) & (table.task == task) & (table.condition == cond)]
            for regime in regime_order(sub["regime"]):
                g = sub[sub.regime == regime]
                colour = styles[regime][0]
                for _, run in g.groupby("seed"):
                    ax.plot(run["step"], run["gain"], color=colour, lw=0.6, alpha=0.35)
                med = g.groupby("step")["gain"].median()
                ax.plot(med.index, med.values, color=colour, lw=2, marker=styles[regime][1], ms=4,
                        label=regime_label(regime))
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(f"{model} | {task} | {cond}")
            ax.set_xlabel("training step")
            ax.set_ylabel(GAIN_LABELS[col])
    figure_legend(fig, axes, title="regime (median; faint: seeds)")
    fig.suptitle("Gain over the base model at each evaluated step, per regime (faint: each seed; bold: the median "
                 "over seeds)")
    fig.tight_layout()
    return fig


# --- (d) procedure shares -------------------------------------------------------------------------
MAX_COLOURS = 6  # curves (regimes) per panel: more are split over several rows


def plot_procedure_shares(procedures: pd.DataFrame) -> plt.Figure:
    """Share of training responses following the correct / buggy procedure (or neither) over steps, one
    line per regime (the median over seeds, as docs/science.md quotes them; a moving average of ~1/12 of the
    run); one row per model x task x condition x run length, so a 300-step axis does not squeeze the 40-step
    runs, and a row with more than ``MAX_COLOURS`` regimes split over several rows (at most that many colours
    in a panel). The figure title sits above the column headers."""
    require(procedures, ["model", "task", "condition", "regime", "seed", "step", "procedure", "share"],
            "procedure table")
    if procedures.empty:
        raise ValueError("plot_procedure_shares: no procedure shares (train/procedure/*) in the dynamics")
    keys = ["model", "task", "condition"]
    length = procedures.groupby(keys + ["regime"])["step"].transform("max").rename("length")
    procedures = procedures.assign(length=length)
    rows = procedures[keys + ["length"]].drop_duplicates()
    rows = rows.assign(_c=rows["condition"].map({c: i for i, c in enumerate(condition_order(rows["condition"]))}))
    rows = rows.sort_values(["task", "model", "_c", "length"])[keys + ["length"]].values.tolist()
    panels = []  # (model, task, condition, length, regimes, part label)
    for model, task, cond, steps in rows:
        sub = procedures[(procedures.model == model) & (procedures.task == task) & (procedures.condition == cond)
                         & (procedures.length == steps)]
        regimes = regime_order(sub["regime"])
        chunks = [regimes[i:i + MAX_COLOURS] for i in range(0, len(regimes), MAX_COLOURS)]
        for k, chunk in enumerate(chunks):
            panels.append((model, task, cond, steps, chunk, f" ({k + 1}/{len(chunks)})" if len(chunks) > 1 else ""))
    kinds = [p for p in ("correct", "buggy", "neither") if p in set(procedures["procedure"])]
    styles = regime_styles(procedures["regime"])
    height = 2.3
    fig, axes = grid(len(panels), len(kinds), w=3.3, h=height, sharey=True)
    for i, (model, task, cond, steps, chunk, part) in enumerate(panels):
        sub = procedures[(procedures.model == model) & (procedures.task == task) & (procedures.condition == cond)
                         & (procedures.length == steps)]
        for j, kind in enumerate(kinds):
            ax = axes[i, j]
            for regime in chunk:
                g = sub[(sub.regime == regime) & (sub.procedure == kind)].groupby("step")["share"].median()
                if not g.empty:
                    step_curve(ax, g, styles[regime][0], regime_label(regime), smooth_window(pd.Series(g.index)))
            if i == 0:
                ax.set_title(f"{kind} procedure")
            if j == 0:
                ax.set_ylabel(f"{model} | {task}\n{cond}, {steps} steps{part}", fontsize=9)
            ax.set_xlabel("training step" if i == len(panels) - 1 else "", fontsize=9)
    figure_legend(fig, axes, title="regime")
    fig.suptitle("Share of training responses following each procedure, per regime\n(median over seeds; moving "
                 "average over ~1/12 of the run)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / (height * len(panels))))  # the title above the column headers
    return fig


# --- (e) per-seed distributions ---------------------------------------------------------------------
@contextlib.contextmanager
def _fixed_jitter(seed: int) -> Iterator[None]:
    """seaborn's stripplot jitters with numpy's global RNG: seed it for one panel (and restore it), so
    the same results draw the same figure whatever ran in the kernel before."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def plot_gain_distributions(runs: pd.DataFrame) -> plt.Figure:
    """Per-seed gains per regime (x) and condition (colour): every seed a point over a box of its
    quartiles (the line in the box is the median); one row per model x task."""
    require(runs, ["model", "task", "condition", "regime", "seed", "gain"], "run table")
    cols, pairs = _gain_columns(runs), _pairs(runs)
    order, hues = regime_order(runs["regime"]), condition_order(runs["condition"])
    palette = {c: color(c) for c in hues}
    fig, axes = grid(len(pairs), len(cols), w=max(4.4, 0.75 * len(order) * max(1, len(hues)) / 1.5), h=3.2)
    for i, (model, task) in enumerate(pairs):
        sub = runs[(runs.model == model) & (runs.task == task)].assign(regime=lambda d: d["regime"].map(regime_label))
        labels = [regime_label(r) for r in order if regime_label(r) in set(sub["regime"])]
        for j, col in enumerate(cols):
            ax = axes[i, j]
            kw = dict(data=sub, x="regime", y=col, hue="condition", order=labels, hue_order=hues, palette=palette,
                      ax=ax)
            sns.boxplot(**kw, showfliers=False, boxprops={"alpha": 0.35}, linewidth=0.8, dodge=True)
            with _fixed_jitter(i * len(cols) + j):
                sns.stripplot(**kw, dodge=True, size=3.5, alpha=0.9, edgecolor="white", linewidth=0.3, legend=False)
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(f"{model} | {task}")
            ax.set_xlabel("regime")
            ax.set_ylabel(GAIN_LABELS[col])
            ax.tick_params(axis="x", labelrotation=30)
            if ax.get_legend():
                ax.get_legend().remove()
    handles = [plt.Line2D([], [], color=palette[c], marker="s", ls="", label=c) for c in hues]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="condition")
    fig.suptitle("Per-seed gains by regime (points: seeds; boxes: quartiles and median)")
    fig.tight_layout()
    return fig


def mechanism_figures(bandit: Mapping[str, dict] | None, runs: pd.DataFrame, steps: pd.DataFrame,
                      greedy_steps: pd.DataFrame | None, procedures: pd.DataFrame) -> dict[str, plt.Figure]:
    """Every figure the data allows, by file name: a table without data (no steps axis, no procedure
    shares, no bandit) leaves its figure out instead of failing the notebook."""
    figs = {}
    if bandit:
        figs["mechanism_bandit"] = plot_bandit(bandit)
    if not runs.empty:
        figs["mechanism_gain_vs_clipfrac"] = plot_gain_vs_clipfrac(runs)
        figs["mechanism_gain_distributions"] = plot_gain_distributions(runs)
    if not steps.empty:
        figs["mechanism_gain_vs_step"] = plot_gain_vs_step(steps, greedy_steps)
    if not procedures.empty:
        figs["mechanism_procedure_shares"] = plot_procedure_shares(procedures)
    return figs
