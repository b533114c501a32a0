"""The study's results tables, built from stored evaluation outputs only.

    results.parquet / .csv   one row per model x task x condition x seed x step x dataset x k
                             (step 0 = the base model, condition "base"), with the base model's alignment
    dynamics.parquet         every run's training metrics (``mirage.runs.load_metrics``)

``gain_table`` compares each condition with its own baseline (``Condition.baseline`` in the
registry: ground truth for every shipped technique); ``summary_table`` and ``claim_check``
name no condition, and order them as the registry does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

RESULT_COLUMNS = ["preset", "backend", "model", "task", "condition", "rq", "seed", "step", "dataset", "k",
                  "pass_at_k", "ci_low", "ci_high", "n_problems", "n", "temperature", "top_p", "eval_seed",
                  "align_k", "align_pass_at_1", "align_pass_at_k"]
DYNAMICS_COLUMNS = ["step", "metric", "value", "attempt", "backend", "model", "task", "condition", "seed", "run_dir"]
# A ratio "gain recovered relative to the baseline" needs the baseline to have gained something:
# below this pass@1 gain (about the noise of one testbed evaluation) the ratio is left undefined
# (NaN) rather than exploding.
MIN_GT_GAIN = 0.03
BASE = "base"  # the pseudo-condition of the untrained model (step 0)


def condition_order(conditions: Iterable[str]) -> list[str]:
    """Conditions in registry order ("base" first), names the registry does not know last."""
    from mirage.conditions import CONDITIONS

    names = list(dict.fromkeys(conditions))
    known = [c for c in (BASE, *CONDITIONS) if c in names]
    return known + sorted(c for c in names if c not in known)


def final_step_rows(results):
    """The last evaluated checkpoint of every run (model x task x condition x seed)."""
    trained = results[results["step"] > 0]
    last = trained.groupby(["model", "task", "condition", "seed"])["step"].transform("max")
    return trained[trained["step"] == last]


def collect(out: str | os.PathLike, steps: Sequence, preset):
    """Build ``results`` and ``dynamics`` from the stored outputs of finished steps; write them atomically."""
    import pandas as pd

    from mirage.conditions import get_condition
    from mirage.evaluate import load_eval
    from mirage.runs import atomic_path, load_metrics, write_parquet_atomic

    out = Path(out)
    align_path = out / "alignment" / "alignment.parquet"
    if not align_path.exists():
        raise FileNotFoundError(f"{align_path}: the alignment step has not written its table")
    alignment = pd.read_parquet(align_path)
    frames, dyn = [alignment.assign(condition=BASE, rq=BASE, seed=pd.NA, step=0)], []
    for s in steps:
        if s.kind != "cell" or not s.finished:
            continue
        c = s.cell
        ev = load_eval(s.dir / "eval")
        # identity from the plan, not from what a backend wrote (a model path vs its name)
        frames.append(ev[ev["step"] > 0].assign(model=c.model, task=c.task, condition=c.condition,
                                                 rq=get_condition(c.condition).rq, seed=c.seed))
        dyn.append(load_metrics(s.dir).assign(model=c.model, task=c.task, condition=c.condition, seed=c.seed))
    results = pd.concat(frames, ignore_index=True)
    results = results.join(alignment_columns(alignment, preset.eval.alignment_k), on=["model", "task", "dataset"])
    results = results.assign(preset=preset.name, backend=preset.backend)
    results["seed"] = results["seed"].astype("Int64")
    results = results[RESULT_COLUMNS].sort_values(["model", "task", "condition", "seed", "step", "dataset", "k"])
    results = results.reset_index(drop=True)
    dynamics = pd.concat(dyn, ignore_index=True) if dyn else pd.DataFrame(columns=DYNAMICS_COLUMNS)
    write_parquet_atomic(out / "results.parquet", results)
    with atomic_path(out / "results.csv") as tmp:
        results.to_csv(tmp, index=False)
    write_parquet_atomic(out / "dynamics.parquet", dynamics)
    return results, dynamics


def alignment_columns(alignment, k: int | None = None):
    """Per (model, task, dataset): align_k, align_pass_at_1, align_pass_at_k = base pass@k at ``k``
    (None: the largest k measured)."""
    import pandas as pd

    keys = ["model", "task", "dataset"]
    rows = []
    for key, g in alignment.groupby(keys):
        at = g[g["k"] == (k or g["k"].max())]
        if at.empty:
            raise KeyError(f"alignment table: no pass@{k} for {dict(zip(keys, key))} (k measured: {sorted(g['k'])})")
        rows.append((*key, int(at["k"].iloc[0]), float(g.loc[g["k"] == 1, "pass_at_k"].iloc[0]),
                     float(at["pass_at_k"].iloc[0])))
    return pd.DataFrame(rows, columns=keys + ["align_k", "align_pass_at_1", "align_pass_at_k"]).set_index(keys)


def load_results(study_dir: str | os.PathLike):
    """(results, dynamics, alignment) of a study directory, as stored."""
    import pandas as pd

    d = Path(study_dir)
    missing = [p for p in ("results.parquet", "dynamics.parquet", "alignment/alignment.parquet") if not (d / p).exists()]
    if missing:
        raise FileNotFoundError(f"{d}: missing {missing}; run `mirage study` on it first")
    return (pd.read_parquet(d / "results.parquet"), pd.read_parquet(d / "dynamics.parquet"),
            pd.read_parquet(d / "alignment" / "alignment.parquet"))


def gain_table(results, min_gt_gain: float = MIN_GT_GAIN):
    """One row per model x task x dataset x condition x seed: pass@1 gains over the base model.

    gain = pass@1(final checkpoint) - pass@1(base); ``baseline`` is the condition's own
    baseline (``Condition.baseline``) and baseline_gain its gain (same seed; the mean over the
    baseline's seeds where that seed is missing; NaN where the grid lacks the baseline);
    recovered = gain / baseline_gain, NaN where baseline_gain < ``min_gt_gain`` (the ratio of
    two noise-level numbers says nothing); alignment = the base model's pass@k at the preset's
    alignment k (``align_k``; the largest k measured when the preset names none).
    """
    import numpy as np
    import pandas as pd

    from mirage.conditions import get_condition

    r1 = results[results["k"] == 1]
    keys = ["model", "task", "dataset"]
    base = r1[r1["condition"] == BASE].drop_duplicates(keys).set_index(keys)["pass_at_k"].rename("base_pass_at_1")
    final = final_step_rows(r1[r1["condition"] != BASE])
    g = final[keys + ["condition", "rq", "seed", "step", "pass_at_k", "align_k", "align_pass_at_k"]]
    g = g.rename(columns={"pass_at_k": "pass_at_1", "align_pass_at_k": "alignment"}).join(base, on=keys)
    g["baseline"] = [get_condition(c).baseline for c in g["condition"]]
    ref = g[["condition", *keys, "seed", "pass_at_1"]].rename(columns={"condition": "baseline"})
    by_seed = ref.set_index(["baseline", *keys, "seed"])["pass_at_1"].rename("baseline_pass_at_1")
    by_mean = ref.groupby(["baseline", *keys])["pass_at_1"].mean().rename("baseline_mean")
    g = g.join(by_seed, on=["baseline", *keys, "seed"]).join(by_mean, on=["baseline", *keys])
    g["baseline_pass_at_1"] = g["baseline_pass_at_1"].fillna(g["baseline_mean"])
    g = g.drop(columns="baseline_mean")
    g["gain"] = g["pass_at_1"] - g["base_pass_at_1"]
    g["baseline_gain"] = g["baseline_pass_at_1"] - g["base_pass_at_1"]
    g["recovered"] = np.where(g["baseline_gain"] >= min_gt_gain, g["gain"] / g["baseline_gain"], np.nan)
    g["alignment_label"] = [f"pass@{int(k)} of the base model" if pd.notna(k) else "alignment" for k in g["align_k"]]
    order = {c: i for i, c in enumerate(condition_order(g["condition"]))}
    g = g.assign(_order=g["condition"].map(order))
    return g.sort_values(["_order", "alignment", "model", "task", "seed"]).drop(columns="_order").reset_index(drop=True)


def summary_table(results):
    """pass@1 of the final checkpoint (mean over seeds) per model x task x dataset, one column per condition."""
    r1 = results[results["k"] == 1]
    keys = ["model", "task", "dataset"]
    base = r1[r1["condition"] == BASE].drop_duplicates(keys).set_index(keys)
    final = final_step_rows(r1[r1["condition"] != BASE])
    table = final.pivot_table(index=keys, columns="condition", values="pass_at_k", aggfunc="mean")
    table = table[condition_order(table.columns)]
    table.insert(0, BASE, base["pass_at_k"])
    table.insert(0, "alignment", base["align_pass_at_k"])
    table.columns.name = None
    return table


def recovered_table(gains):
    """Gain recovered relative to each condition's baseline, per model x task x dataset (baselines left out)."""
    rec = gains[gains["condition"] != gains["baseline"]].pivot_table(
        index=["model", "task", "dataset"], columns="condition", values="recovered", aggfunc="mean")
    rec = rec[condition_order(rec.columns)]
    rec.columns.name = None
    return rec


def claim_check(gains):
    """Per condition: does the pass@1 gain grow with alignment? (Spearman rho over points; weak vs strong halves.)"""
    import pandas as pd

    rows = []
    median = gains["alignment"].median()
    for cond, g in gains.groupby("condition"):
        weak, strong = g[g["alignment"] < median], g[g["alignment"] >= median]
        rows.append({"condition": cond, "points": len(g),
                     # Spearman = Pearson on ranks (pandas' method="spearman" needs scipy)
                     "spearman_rho(alignment, gain)": g["alignment"].rank().corr(g["gain"].rank())
                     if len(g) > 2 else float("nan"),
                     "mean gain, weak half": weak["gain"].mean(), "mean gain, strong half": strong["gain"].mean(),
                     "mean recovered, weak half": weak["recovered"].mean(),
                     "mean recovered, strong half": strong["recovered"].mean()})
    out = pd.DataFrame(rows).set_index("condition")
    return out.loc[condition_order(out.index)]


def describe(results) -> str:
    """One line: how many result rows, from how many trained runs."""
    runs = results[results["condition"] != BASE].groupby(["model", "task", "condition", "seed"]).ngroups
    return f"{len(results)} result rows from {runs} trained runs"
