"""The noise axis (testbed-noise; docs/science.md section 6): one condition's gain per recipe regime, and
the differences between regimes that the pre-registration reads.

``noise_table`` (noise.csv beside the figures), from a finished study's per-problem table:

* ``kind`` "regime": per condition x model x task x dataset x regime, the mean pass@1 gain over seeds of
  the last checkpoint over the base model with the interval of section 2 (``seed_interval``) and its p;
  ``holm_survives`` over the family of every regime row of the study (6 in testbed-noise).
* ``kind`` "contrast": per named contrast [regime_a, regime_b] and condition x pair, mean gain(a) - mean
  gain(b) with ``mirage.study.axis.difference_interval``: the regimes' seeds are independent training runs
  (a seed term each, S - 1 df) evaluated on the same test problems, so the problem term is the variance of
  the per-problem difference of the two regimes' seed means (m - 1 df), each term with its own t quantile
  as in section 2. The base model cancels in the difference. ``holm_survives`` over the contrast rows.

``publish_noise`` also writes noise_runs.csv: per run (seed) its gain and the mean over training steps
of its clip fractions (``mirage.study.regimes.run_table``), so a clip fraction quoted in a text comes
from a committed table.

``DEFAULT_CONTRASTS`` are the three the pre-registration reads: the 128-prompt gain minus the 8-prompt
gain, clipped and unclipped (the noise reading: damage shrinks with the batch, CI above 0), and at 128
prompts clipped minus unclipped (the clipping-gain reading compares the two regime rows' signs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import pandas as pd

from mirage.study.axis import aligned, difference_interval, gain_matrices, holm_by, seed_notes, write_csv
from mirage.study.regimes import CLIP_METRICS, run_table
from mirage.study.results import condition_order, load_problems, load_results, natural_key
from mirage.study.seeds import seed_interval

DEFAULT_CONTRASTS = {"b128 - b8, clipped": ["b128_clip", "b8_clip"],
                     "b128 - b8, unclipped": ["b128_noclip", "b8_noclip"],
                     "clipped - unclipped at b128": ["b128_clip", "b128_noclip"]}
NOISE_COLUMNS = ["kind", "label", "condition", "model", "task", "dataset", "regime_a", "regime_b", "seeds_a",
                 "seeds_b", "mean_a", "mean_b", "mean", "ci_low", "ci_high", "se", "p", "holm_survives",
                 "family_size", "values", "n_problems"]


def noise_table(problems, contrasts: Mapping[str, list] | None = None) -> pd.DataFrame:
    """``NOISE_COLUMNS``: the regime rows, then the contrast rows (module docstring). ``contrasts``: {label:
    [regime_a, regime_b]} (None: ``DEFAULT_CONTRASTS``); a regime the study lacks is a KeyError naming it."""
    contrasts = DEFAULT_CONTRASTS if contrasts is None else dict(contrasts)
    gains = gain_matrices(problems, "pass@1")
    regimes = {key[4] for key in gains}
    for label, spec in contrasts.items():
        if not isinstance(spec, (list, tuple)) or len(spec) != 2:
            raise ValueError(f"noise contrasts: {label!r} must be [regime_a, regime_b], got {spec!r}")
        unknown = [r for r in spec if r not in regimes]
        if unknown:
            raise KeyError(f"noise contrasts: {label!r} names regime(s) {unknown} the study does not have "
                           f"(it has {sorted(regimes, key=natural_key)})")
    rows = []
    for key, matrix in gains.items():
        ci = seed_interval(matrix.to_numpy())
        rows.append(dict(kind="regime", label=key[4], condition=key[0], model=key[1], task=key[2], dataset=key[3],
                         regime_a=key[4], regime_b="", seeds_a=matrix.shape[0], mean_a=ci["mean"], mean=ci["mean"],
                         ci_low=ci["ci_low"], ci_high=ci["ci_high"], se=ci["se"], p=ci["p"],
                         values=" ".join(f"{v:.4f}" for v in matrix.mean(axis=1)), n_problems=matrix.shape[1]))
    cells = sorted({key[:4] for key in gains})
    for label, (regime_a, regime_b) in contrasts.items():
        for cell in cells:
            a, b = gains.get((*cell, regime_a)), gains.get((*cell, regime_b))
            if a is None or b is None:
                continue
            x, y = aligned(a, b, f"noise contrast {label} on {cell}")
            ci = difference_interval(x, y)
            rows.append(dict(kind="contrast", label=label, condition=cell[0], model=cell[1], task=cell[2],
                             dataset=cell[3], regime_a=regime_a, regime_b=regime_b, seeds_a=x.shape[0],
                             seeds_b=y.shape[0], mean_a=ci["mean_a"], mean_b=ci["mean_b"], mean=ci["difference"],
                             ci_low=ci["ci_low"], ci_high=ci["ci_high"], se=ci["se"], p=ci["p"], values="",
                             n_problems=x.shape[1]))
    out = pd.DataFrame(rows, columns=[c for c in NOISE_COLUMNS if c not in ("holm_survives", "family_size")])
    if out.empty:
        return pd.DataFrame(columns=NOISE_COLUMNS)
    out["holm_survives"], out["family_size"] = holm_by(out, "p", ["kind"])
    order = {c: i for i, c in enumerate(condition_order(out["condition"]))}
    position = {r: i for i, r in enumerate(sorted(regimes, key=natural_key))}  # regimes in natural order,
    position.update({("contrast", lab): i for i, lab in enumerate(contrasts)})  # contrasts as given
    out = out.assign(_k=(out["kind"] == "contrast").astype(int), _c=out["condition"].map(order),
                     _r=[position[r] if k == "regime" else position["contrast", lab]
                         for k, r, lab in zip(out["kind"], out["regime_a"], out["label"])])
    out = out.sort_values(["_k", "_c", "model", "task", "dataset", "_r"]).drop(columns=["_k", "_c", "_r"])
    out["seeds_b"] = out["seeds_b"].astype("Int64")
    return out[NOISE_COLUMNS].reset_index(drop=True)


def publish_noise(study_dir: str | os.PathLike, figures_dir: str | os.PathLike,
                  contrasts: Mapping[str, list] | None = None) -> dict:
    """Write noise.csv (``noise_table``) and noise_runs.csv (``mirage.study.regimes.run_table``: per run its
    gain and the mean over training of its clip fractions, the numbers a text may quote about how much the
    clip acted) beside the figures; return {"noise", "runs", "notes" (cells short of seeds), "paths"}."""
    table = noise_table(load_problems(study_dir), contrasts)
    results, dynamics, _ = load_results(study_dir)
    runs = run_table(results, dynamics)
    figures_dir = Path(figures_dir)
    notes = seed_notes(regime_rows(table).rename(columns={"regime_a": "regime", "seeds_a": "seeds"}))
    return dict(noise=table, runs=runs, notes=notes, paths=[write_csv(table, figures_dir / "noise.csv"),
                                                            write_csv(runs, figures_dir / "noise_runs.csv",
                                                                      significant=tuple(CLIP_METRICS))])


def clip_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per condition x model x task x regime of a ``run_table``: the seeds, the mean gain and, for each clip
    metric the runs logged, its mean and maximum over the seeds (each run's value a mean over its training)."""
    keys = ["condition", "model", "task", "regime"]
    metrics = [c for c in CLIP_METRICS if c in runs and runs[c].notna().any()]
    g = runs.groupby(keys, sort=False)
    out = pd.concat([g["seed"].nunique().rename("seeds"), g["gain"].mean().rename("mean gain")]
                    + [g[c].agg(["mean", "max"]).add_prefix(f"{c} ") for c in metrics], axis=1).reset_index()
    order = {c: i for i, c in enumerate(condition_order(out["condition"]))}
    position = {r: i for i, r in enumerate(sorted(set(out["regime"]), key=natural_key))}
    out = out.assign(_c=out["condition"].map(order), _r=out["regime"].map(position))
    return out.sort_values(["_c", "model", "task", "_r"]).drop(columns=["_c", "_r"]).reset_index(drop=True)


def contrast_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The contrast rows of a noise table, for display."""
    return table[table["kind"] == "contrast"].drop(columns=["kind", "values"]).reset_index(drop=True)


def regime_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The regime rows of a noise table, for display."""
    return table[table["kind"] == "regime"].drop(
        columns=["kind", "regime_b", "seeds_b", "mean_a", "mean_b"]).reset_index(drop=True)


__all__ = ["DEFAULT_CONTRASTS", "NOISE_COLUMNS", "noise_table", "publish_noise", "contrast_rows", "regime_rows", "clip_summary"]
