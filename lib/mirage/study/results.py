"""The study's results tables, built from stored evaluation outputs only.

    results.parquet / .csv   one row per model x task x condition x regime x seed x step x dataset x
                             eval_tag x k (step 0 = the base model, condition "base"), with the base
                             model's alignment; eval_tag "" = the preset's sampling, "greedy" = T 0, n 1
    problems.parquet         per problem: n samples, c correct, f well-formatted, a correct whatever the
                             format (NaN where a sample has no format-free reading), for every
                             evaluation of those rows (what the seed intervals of ``mirage.study.seeds``
                             and the format split of ``mirage.study.format_split`` resample)
    dynamics.parquet         every run's training metrics (``mirage.runs.load_metrics``)

A preset without regimes has the regime "" everywhere (as ``eval_tag`` is "" for the default
evaluation); tables written before these columns existed are read with them set to "".

``gain_table`` compares each condition with its own baseline (``Condition.baseline`` in the
registry: ground truth for every shipped technique); ``summary_table`` and ``claim_check``
name no condition, and order them as the registry does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from mirage.conditions import get_condition
from mirage.conditions import BASE, condition_order  # noqa: F401  (the tables' names)
from mirage.runs import atomic_path, load_metrics, write_parquet_atomic
from mirage.study.cell import greedy_pair_dir

RESULT_COLUMNS = ["preset", "backend", "model", "task", "condition", "rq", "regime", "seed", "step", "dataset",
                  "eval_tag", "k", "pass_at_k", "ci_low", "ci_high", "n_problems", "n", "temperature", "top_p",
                  "eval_seed", "align_k", "align_pass_at_1", "align_pass_at_k"]
DYNAMICS_COLUMNS = ["step", "metric", "value", "attempt", "backend", "model", "task", "condition", "regime", "seed",
                    "run_dir"]
PROBLEM_COLUMNS = ["model", "task", "condition", "regime", "seed", "step", "dataset", "eval_tag", "problem_id", "n",
                   "c", "f", "a"]
RUN_KEYS = ["model", "task", "condition", "regime", "seed"]  # one training run
# A ratio "gain recovered relative to the baseline" needs the baseline to have gained something:
# below this pass@1 gain (about the noise of one testbed evaluation) the ratio is left undefined
# (NaN) rather than exploding.
MIN_GT_GAIN = 0.03
def natural_key(text: str) -> tuple:
    """Sort key that orders "u2" < "u8" < "u16" < "u16_hi" (numbers compared as numbers)."""
    parts = [p for p in re.split(r"(\d+)", str(text)) if p]
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def with_defaults(table):
    """A results, problems or dynamics table with ``regime`` and ``eval_tag`` ("" where absent: a table
    written before they existed, or made by hand)."""
    missing = {c: "" for c in ("regime", "eval_tag") if c not in table.columns}
    return table.assign(**missing) if missing else table


def eval_rows(results, eval_tag: str = ""):
    """The rows of one evaluation: "" = the preset's sampling (pass@k), "greedy" = T 0, n 1."""
    results = with_defaults(results)
    return results[results["eval_tag"].fillna("") == eval_tag]


def final_step_rows(results):
    """The last evaluated checkpoint of every run (model x task x condition x regime x seed)."""
    results = with_defaults(results)
    trained = results[results["step"] > 0]
    last = trained.groupby(RUN_KEYS + ["eval_tag"], dropna=False)["step"].transform("max")
    return trained[trained["step"] == last]


def collect(out: str | os.PathLike, steps: Sequence, preset):
    """Build ``results``, ``problems`` and ``dynamics`` from the stored outputs of finished steps; write them
    atomically. Returns (results, dynamics)."""
    import pandas as pd

    from mirage.evaluate import load_eval  # why: pandas, which importing mirage.study.results does not need

    out = Path(out)
    align_path = out / "alignment" / "alignment.parquet"
    if not align_path.exists():
        raise FileNotFoundError(f"{align_path}: the alignment step has not written its table")
    alignment = pd.read_parquet(align_path)
    base = base_tables(out, alignment)
    frames, dyn = [base.drop(columns="eval_dir")], []
    problems = [problem_counts(base, dict(condition=BASE, regime="", seed=pd.NA), out)]
    for s in steps:
        if s.kind != "cell" or not s.finished:
            continue
        c = s.cell
        # identity from the plan, not from what a backend wrote (a model path vs its name)
        ident = dict(model=c.model, task=c.task, condition=c.condition, regime=c.regime, seed=c.seed)
        ev = load_eval(s.dir / "eval")
        ev = ev[ev["step"] > 0].assign(**ident)
        frames.append(ev.drop(columns="eval_dir").assign(rq=get_condition(c.condition).rq))
        problems.append(problem_counts(ev, ident, out))
        dyn.append(load_metrics(s.dir).assign(**ident))
    results = pd.concat(frames, ignore_index=True)
    results = results.join(alignment_columns(alignment, preset.eval.alignment_k), on=["model", "task", "dataset"])
    results = results.assign(preset=preset.name, backend=preset.backend)
    results["seed"] = results["seed"].astype("Int64")
    results = results[RESULT_COLUMNS].sort_values(["model", "task", "condition", "regime", "seed", "step", "dataset",
                                                   "eval_tag", "k"]).reset_index(drop=True)
    problems = pd.concat(problems, ignore_index=True)
    problems["seed"] = problems["seed"].astype("Int64")
    problems = problems[PROBLEM_COLUMNS].sort_values(PROBLEM_COLUMNS[:-4]).reset_index(drop=True)
    dynamics = pd.concat(dyn, ignore_index=True) if dyn else pd.DataFrame(columns=DYNAMICS_COLUMNS)
    write_parquet_atomic(out / "results.parquet", results)
    with atomic_path(out / "results.csv") as tmp:
        results.to_csv(tmp, index=False)
    write_parquet_atomic(out / "problems.parquet", problems)
    write_parquet_atomic(out / "dynamics.parquet", dynamics)
    return results, dynamics


def base_tables(out: Path, alignment):
    """The base models' rows: the alignment table (the preset's sampling) and, where the alignment step
    measured it (eval greedy), each pair's greedy accuracy; condition "base", step 0."""
    import pandas as pd

    frames = [alignment.assign(eval_tag="")]
    for model, task in alignment[["model", "task"]].drop_duplicates().itertuples(index=False):
        path = greedy_pair_dir(out / "alignment", model, task) / "alignment.parquet"
        if path.exists():
            frames.append(pd.read_parquet(path).assign(eval_tag="greedy"))
    base = pd.concat(frames, ignore_index=True)
    return base.assign(condition=BASE, rq=BASE, regime="", seed=pd.NA, step=0)


def problem_counts(evals, identity: dict, out: Path):
    """Per problem n, c, f and a of every evaluation in ``evals`` (rows with model, task, eval_dir, step,
    eval_tag), read from its samples (``mirage.evaluate.read_samples``), labelled with ``identity``: n
    samples, c correct, f well-formatted (``format``), a correct whatever the format (``acc_any_format``;
    NaN when any of the problem's samples lacks it: a folder written before the column, or a family
    without a lenient reading)."""
    import pandas as pd

    from mirage.evaluate import read_samples  # why: pandas, which importing mirage.study.results does not need
    from mirage.passk import counts_from_samples  # why: pandas, which importing mirage.study.results does not need

    frames = []
    keys = ["model", "task", "eval_dir", "step", "eval_tag"]
    for (model, task, eval_dir, step, tag), _ in evals.groupby(keys, sort=True):
        samples = read_samples(local_dir(eval_dir, out))
        counts = counts_from_samples(samples, by=["dataset", "problem_id"], correct="correct")
        counts = counts.join(format_counts(samples), on=["dataset", "problem_id"])
        frames.append(counts.assign(**{**identity, "model": model, "task": task, "step": int(step), "eval_tag": tag}))
    return pd.concat(frames, ignore_index=True)


def format_counts(samples):
    """Per (dataset, problem_id): f, the well-formatted samples, and a, the samples correct whatever the
    format (NaN where any sample of the problem has no ``acc_any_format``; both NaN without the columns)."""
    import numpy as np
    import pandas as pd

    keys = ["dataset", "problem_id"]
    d = samples.assign(_f=pd.to_numeric(samples["format"], errors="coerce") if "format" in samples else np.nan,
                       _a=pd.to_numeric(samples["acc_any_format"], errors="coerce")
                       if "acc_any_format" in samples else np.nan)
    g = d.groupby(keys, sort=True)
    return pd.DataFrame({"f": g["_f"].sum(min_count=1), "a": g["_a"].sum(min_count=1)}).where(
        pd.DataFrame({"f": g["_f"].count() == g["_f"].size(), "a": g["_a"].count() == g["_a"].size()}))


def local_dir(recorded: str, out: Path) -> Path:
    """An evaluation folder recorded by the alignment step, found again in a study directory that has
    moved (a cluster's results copied to a laptop): the part from ``pairs/`` on, under this study."""
    path = Path(recorded)
    if path.exists() or "pairs" not in path.parts:
        return path
    parts = path.parts
    at = len(parts) - 1 - parts[::-1].index("pairs")
    return out / "alignment" / Path(*parts[at:])


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
    """(results, dynamics, alignment) of a study directory, as stored (``regime``/``eval_tag`` "" where absent)."""
    import pandas as pd

    d = Path(study_dir)
    missing = [p for p in ("results.parquet", "dynamics.parquet", "alignment/alignment.parquet") if not (d / p).exists()]
    if missing:
        raise FileNotFoundError(f"{d}: missing {missing}; run `mirage study` on it first")
    results, dynamics = (with_defaults(pd.read_parquet(d / f)) for f in ("results.parquet", "dynamics.parquet"))
    return results, dynamics, pd.read_parquet(d / "alignment" / "alignment.parquet")


def load_problems(study_dir: str | os.PathLike):
    """The per-problem table (``problems.parquet``) of a study directory: what the seed CIs resample."""
    import pandas as pd

    path = Path(study_dir) / "problems.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; rerun `mirage study ... --stage analysis` to rebuild the tables")
    return with_defaults(pd.read_parquet(path))


def gain_table(results, min_gt_gain: float = MIN_GT_GAIN, eval_tag: str = ""):
    """One row per model x task x dataset x condition x regime x seed: pass@1 gains over the base model.

    gain = pass@1(final checkpoint) - pass@1(base); ``baseline`` is the condition's own
    baseline (``Condition.baseline``) and baseline_gain its gain (same regime and seed; the mean
    over the baseline's seeds in that regime where that seed is missing; NaN where the grid lacks
    the baseline); recovered = gain / baseline_gain, NaN where baseline_gain < ``min_gt_gain``
    (the ratio of two noise-level numbers says nothing); alignment = the base model's pass@k at
    the preset's alignment k (``align_k``; the largest k measured when the preset names none).
    ``eval_tag`` "greedy": the same from the greedy evaluations (accuracy at T = 0).
    """
    import numpy as np
    import pandas as pd

    r1 = eval_rows(results, eval_tag)
    r1 = r1[r1["k"] == 1]
    keys = ["model", "task", "dataset"]
    base = r1[r1["condition"] == BASE].drop_duplicates(keys).set_index(keys)["pass_at_k"].rename("base_pass_at_1")
    final = final_step_rows(r1[r1["condition"] != BASE])
    g = final[keys + ["condition", "rq", "regime", "seed", "step", "pass_at_k", "align_k", "align_pass_at_k"]]
    g = g.rename(columns={"pass_at_k": "pass_at_1", "align_pass_at_k": "alignment"}).join(base, on=keys)
    g["baseline"] = [get_condition(c).baseline for c in g["condition"]]
    ref = g[["condition", *keys, "regime", "seed", "pass_at_1"]].rename(columns={"condition": "baseline"})
    by_seed = ref.set_index(["baseline", *keys, "regime", "seed"])["pass_at_1"].rename("baseline_pass_at_1")
    by_mean = ref.groupby(["baseline", *keys, "regime"])["pass_at_1"].mean().rename("baseline_mean")
    g = g.join(by_seed, on=["baseline", *keys, "regime", "seed"]).join(by_mean, on=["baseline", *keys, "regime"])
    g["baseline_pass_at_1"] = g["baseline_pass_at_1"].fillna(g["baseline_mean"])
    g = g.drop(columns="baseline_mean")
    g["gain"] = g["pass_at_1"] - g["base_pass_at_1"]
    g["baseline_gain"] = g["baseline_pass_at_1"] - g["base_pass_at_1"]
    g["recovered"] = np.where(g["baseline_gain"] >= min_gt_gain, g["gain"] / g["baseline_gain"], np.nan)
    g["alignment_label"] = [f"pass@{int(k)} of the base model" if pd.notna(k) else "alignment" for k in g["align_k"]]
    order = {c: i for i, c in enumerate(condition_order(g["condition"]))}
    g = g.assign(_order=g["condition"].map(order))
    g = g.sort_values(["_order", "alignment", "model", "task", "regime", "seed"])
    return g.drop(columns="_order").reset_index(drop=True)


def column_label(condition: str, regime: str) -> str:
    """A table column: the condition, and its regime where the preset has regimes ("random @u16")."""
    return f"{condition} @{regime}" if regime else condition


def summary_table(results):
    """pass@1 of the final checkpoint (median over seeds) per model x task x dataset, one column per
    condition (per condition x regime where the preset has regimes)."""
    r1 = eval_rows(results)
    r1 = r1[r1["k"] == 1]
    keys = ["model", "task", "dataset"]
    base = r1[r1["condition"] == BASE].drop_duplicates(keys).set_index(keys)
    final = final_step_rows(r1[r1["condition"] != BASE])
    final = final.assign(column=[column_label(c, r) for c, r in zip(final["condition"], final["regime"])])
    table = final.pivot_table(index=keys, columns="column", values="pass_at_k", aggfunc="median")
    order = {c: i for i, c in enumerate(condition_order(final["condition"]))}
    columns = final[["column", "condition", "regime"]].drop_duplicates()
    table = table[sorted(table.columns, key=lambda col: _column_key(columns, col, order))]
    table.insert(0, BASE, base["pass_at_k"])
    table.insert(0, "alignment", base["align_pass_at_k"])
    table.columns.name = None
    return table


def _column_key(columns, column: str, order: dict) -> tuple:
    row = columns[columns["column"] == column].iloc[0]
    return order[row["condition"]], natural_key(row["regime"])


def recovered_table(gains):
    """Gain recovered relative to each condition's baseline, per model x task x dataset (baselines left out)."""
    techniques = with_defaults(gains[gains["condition"] != gains["baseline"]])
    techniques = techniques.assign(column=[column_label(c, r) for c, r in zip(techniques["condition"],
                                                                            techniques["regime"])])
    rec = techniques.pivot_table(index=["model", "task", "dataset"], columns="column", values="recovered",
                                 aggfunc="median")
    order = {c: i for i, c in enumerate(condition_order(techniques["condition"]))}
    columns = techniques[["column", "condition", "regime"]].drop_duplicates()
    rec = rec[sorted(rec.columns, key=lambda col: _column_key(columns, col, order))]
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
    runs = with_defaults(results)
    runs = runs[runs["condition"] != BASE].groupby(RUN_KEYS, dropna=False).ngroups
    return f"{len(results)} result rows from {runs} trained runs"
