"""Which alignment measure predicts a technique's gain: a study's predictors joined with its gains.

The alignment step writes ``<study>/alignment/predictors.parquet`` (one row per model x task x
dataset; ``mirage.evaluate.predictors``); ``correlations`` ranks each predictor against each
condition's outcome from the study's results (``gain_table``: a technique's pass@1 gain minus
ground truth's, ground truth's own gain over the base model), Spearman's rho over the model-task
pairs with a bootstrap CI over pairs and seeds (``mirage.evaluate.predictors.rank_correlation``).
With 6-10 pairs the CIs are wide: a rho is a ranking hint, not a law.
"""

from __future__ import annotations

import os
from pathlib import Path

from mirage.runs import atomic_path
from mirage.study.results import gain_table, load_results

PREDICTORS_FILE = Path("alignment") / "predictors.parquet"
N_BOOT = 2000


def load_predictors(study_dir: str | os.PathLike):
    """The study's predictors table, or None when its alignment step wrote none (a study measured before
    the predictors existed: rerun its alignment step, ``mirage study --preset P --stage alignment``)."""
    import pandas as pd

    path = Path(study_dir) / PREDICTORS_FILE
    return pd.read_parquet(path) if path.exists() else None


def correlations(study_dir: str | os.PathLike, results=None, n_boot: int = N_BOOT, seed: int = 0):
    """Spearman's rho of every predictor with every condition's outcome (``predictor_correlations``), or None
    without a predictors table. ``results``: the study's results table (read from ``study_dir`` when None)."""
    from mirage.evaluate.predictors import predictor_correlations  # why: pandas, which importing mirage.study.predictors does not need

    predictors = load_predictors(study_dir)
    if predictors is None:
        return None
    results = load_results(study_dir)[0] if results is None else results
    return predictor_correlations(predictors, gain_table(results), n_boot=n_boot, seed=seed)


def publish_predictors(study_dir: str | os.PathLike, figures_dir: str | os.PathLike, table=None) -> list[Path]:
    """Write predictors.csv and predictor_correlations.csv (``table``, else computed) beside the figures;
    nothing without a predictors table."""
    predictors = load_predictors(study_dir)
    if predictors is None:
        return []
    table = correlations(study_dir) if table is None else table
    paths = []
    for name, frame in (("predictors.csv", predictors), ("predictor_correlations.csv", table)):
        path = Path(figures_dir) / name
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.4f")
        paths.append(path)
    return paths


def draw(study_dir: str | os.PathLike, figures_dir: str | os.PathLike, results=None) -> list:
    """The analysis notebook's predictor section: [predictors table, rho per predictor x condition, the
    figure], the figure saved as ``predictor_correlations`` (PNG + PDF) and both CSVs written beside it
    (``publish_predictors``); or [a line saying why there is nothing to draw]."""
    from mirage import plots  # why: matplotlib, pandas, seaborn, which importing mirage.study.predictors does not need

    table = correlations(study_dir, results)
    if table is None or table.empty:
        return [f"{study_dir}: no alignment/predictors.parquet (rerun the alignment stage), or no condition "
                "with a baseline to rank the gains against: no predictor section"]
    fig = plots.plot_predictor_correlations(table)
    plots.save(fig, "predictor_correlations", figures_dir)
    publish_predictors(study_dir, figures_dir, table)
    rho = table.assign(label=[f"{c} @{r}" if r else c for c, r in zip(table["condition"], table["regime"])])
    rho = rho.pivot_table(index="predictor", columns="label", values="rho", sort=False)
    return [load_predictors(study_dir).round(3), rho.round(2), fig]
