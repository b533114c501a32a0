"""Which alignment measure predicts a technique's gain: a study's predictors joined with its gains.

The alignment step writes ``<study>/alignment/predictors.parquet`` (one row per model x task x
dataset; ``mirage.evaluate.predictors``); ``correlations`` ranks each predictor against each
condition's outcome from the study's results (``gain_table``: a technique's pass@1 gain minus
ground truth's, ground truth's own gain over the base model), Spearman's rho over the model-task
pairs with a bootstrap CI over pairs and seeds (``mirage.evaluate.predictors.rank_correlation``).
With 6-10 pairs the CIs are wide: a rho is a ranking hint, not a law.

``outcomes`` asks it again the way a result should be read (``mirage.evaluate.predictors.predictor_outcomes``):
two outcomes (gain minus ground truth's gain; the fraction of ground truth's gain recovered, where ground truth
gained >= 0.02), per task and pooled from within-task ranks, with a bootstrap that resamples models as clusters
(a model appears in pairs of every task); ``predictor_outcomes.csv`` beside the figures. ``committed_outcomes``
recomputes it from a figures folder's committed results.csv and predictors.csv alone (no study directory).
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


def outcomes(study_dir: str | os.PathLike, results=None, n_boot: int = N_BOOT, seed: int = 0):
    """``predictor_outcomes`` of the study's predictors and gains, or None without a predictors table."""
    from mirage.evaluate.predictors import predictor_outcomes  # why: pandas, which importing mirage.study.predictors does not need

    predictors = load_predictors(study_dir)
    if predictors is None:
        return None
    results = load_results(study_dir)[0] if results is None else results
    return predictor_outcomes(predictors, gain_table(results), n_boot=n_boot, seed=seed)


def read_results_csv(path: str | os.PathLike):
    """A results.csv written by ``mirage.study.publish`` read back as the results table (``regime`` and
    ``eval_tag`` "" where empty, the base rows' seed NaN)."""
    import pandas as pd

    table = pd.read_csv(path)
    return table.assign(**{c: table[c].fillna("").astype(str) for c in ("regime", "eval_tag") if c in table})


def committed_outcomes(figures_dir: str | os.PathLike, n_boot: int = N_BOOT, seed: int = 0):
    """``predictor_outcomes`` from a figures folder's committed ``results.csv`` and ``predictors.csv`` (what
    ``predictor_outcomes.csv`` beside them holds); a missing file is a FileNotFoundError naming it."""
    import pandas as pd

    from mirage.evaluate.predictors import predictor_outcomes  # why: pandas, which importing mirage.study.predictors does not need

    folder = Path(figures_dir)
    missing = [n for n in ("results.csv", "predictors.csv") if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {missing}")
    return predictor_outcomes(pd.read_csv(folder / "predictors.csv"), gain_table(read_results_csv(
        folder / "results.csv")), n_boot=n_boot, seed=seed)


def write_csv(frame, path: str | os.PathLike) -> Path:
    """``frame`` as CSV at ``path`` (atomic; 4 decimals, as every table beside the figures)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4f")
    return path


def publish_predictors(study_dir: str | os.PathLike, figures_dir: str | os.PathLike, table=None,
                       outcome_table=None) -> list[Path]:
    """Write predictors.csv, predictor_correlations.csv (``table``, else computed) and predictor_outcomes.csv
    (``outcome_table``, else computed) beside the figures; nothing without a predictors table."""
    predictors = load_predictors(study_dir)
    if predictors is None:
        return []
    table = correlations(study_dir) if table is None else table
    outcome_table = outcomes(study_dir) if outcome_table is None else outcome_table
    return [write_csv(frame, Path(figures_dir) / name) for name, frame in (
        ("predictors.csv", predictors), ("predictor_correlations.csv", table),
        ("predictor_outcomes.csv", outcome_table))]


def draw(study_dir: str | os.PathLike, figures_dir: str | os.PathLike, results=None) -> list:
    """The analysis notebook's predictor section: [predictors table, rho per predictor x condition (the pooled
    ranking), the outcomes re-asked (``outcomes``: per task and within-task, models resampled), the pooled
    figure, the outcomes figure], the figures saved as ``predictor_correlations`` and ``predictor_outcomes``
    (PNG + PDF) and the three CSVs written beside them (``publish_predictors``); or [a line saying why there is
    nothing to draw]."""
    from mirage import plots  # why: matplotlib, pandas, seaborn, which importing mirage.study.predictors does not need

    table = correlations(study_dir, results)
    if table is None or table.empty:
        return [f"{study_dir}: no alignment/predictors.parquet (rerun the alignment stage), or no condition "
                "with a baseline to rank the gains against: no predictor section"]
    fig = plots.plot_predictor_correlations(table)
    plots.save(fig, "predictor_correlations", figures_dir)
    outcome_table = outcomes(study_dir, results)
    publish_predictors(study_dir, figures_dir, table, outcome_table)
    figs = [fig]
    if not outcome_table.empty:
        figs.append(plots.plot_predictor_outcomes(outcome_table))
        plots.save(figs[-1], "predictor_outcomes", figures_dir)
    rho = table.assign(label=[f"{c} @{r}" if r else c for c, r in zip(table["condition"], table["regime"])])
    rho = rho.pivot_table(index="predictor", columns="label", values="rho", sort=False)
    return [load_predictors(study_dir).round(3), rho.round(2), outcome_table.round(3), *figs]
