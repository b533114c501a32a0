"""Model-task alignment: each base model's pass@k on each task, the table the study reads.

(The paper's central variable: a model that solves a problem in some of many samples
already "knows" it.) Beside it, the other candidate measures of the same samples
(``mirage.evaluate.predictors``: majority share, maj@n, token entropy, format rate,
saturation, procedure shares) in ``predictors.parquet``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from mirage.evaluate.core import evaluate, read_samples
from mirage.evaluate.datasets import default_max_tokens, default_n, eval_datasets, load_problems, task_kind
from mirage.evaluate.predictors import PREDICTOR_COLUMNS, predictor_table
from mirage.evaluate.sweep import load_eval
from mirage.runs import atomic_path, eval_dir, write_parquet_atomic


def align(models: Sequence[str], tasks: Sequence[str], n: int | None = None, out: str | os.PathLike = "runs/alignment",
          *, backend: str = "hf", temperature: float = 1.0, top_p: float = 1.0, max_tokens: int | None = None,
          seed: int = 0, **eval_kwargs: Any) -> pd.DataFrame:
    """Each base model's pass@k on each task: the alignment table the notebooks read.

    Evaluations are cached in ``<out>/evals/<model>/<task>/<settings>/`` per (model,
    task, n, seed, temperature, top_p, max_tokens): a rerun only reads them. Writes
    ``<out>/alignment.parquet`` and ``.csv`` (model, task, dataset, k, pass_at_k,
    ci_low, ci_high, n_problems, n, pass_at_1, alignment = pass@k at the largest k) and
    ``<out>/predictors.parquet`` and ``.csv`` (model, task, then ``predictor_table``'s columns,
    recomputed from the stored samples on every call).
    """
    out = Path(out)
    tables, predictors = [], []
    for model in models:
        for task in tasks:
            task_n = default_n(task) if n is None else n  # n=0 is an error (evaluate says so), not the default
            task_max = default_max_tokens(task) if max_tokens is None else max_tokens
            key = f"n{task_n}_T{temperature:g}_p{top_p:g}_len{task_max}_seed{seed}"
            folder = eval_dir(model, task, out / "evals") / key
            evaluate(model, task, task_n, sampler=backend, temperature=temperature, top_p=top_p,
                     max_tokens=task_max, seed=seed, out_dir=folder, **eval_kwargs)
            tables.append(load_eval(folder).assign(model=str(model), task=str(task)))
            predictors.append(eval_predictors(folder, task).assign(model=str(model), task=str(task)))
    write_predictors(out, pd.concat(predictors, ignore_index=True))
    table = pd.concat(tables, ignore_index=True)
    keys = ["model", "task", "dataset"]
    table["k_max"] = table.groupby(keys)["k"].transform("max")
    pass_at_1 = table[table["k"] == 1].set_index(keys)["pass_at_k"].rename("pass_at_1")
    at_k_max = table[table["k"] == table["k_max"]].set_index(keys)["pass_at_k"].rename("alignment")
    table = table.join(pass_at_1, on=keys).join(at_k_max, on=keys)
    cols = ["model", "task", "dataset", "k", "pass_at_k", "ci_low", "ci_high", "n_problems", "n",
            "pass_at_1", "alignment", "k_max", "temperature", "top_p", "eval_seed", "eval_dir"]
    table = table[cols]
    write_parquet_atomic(out / "alignment.parquet", table)
    with atomic_path(out / "alignment.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table




def eval_predictors(folder: str | os.PathLike, task: str) -> pd.DataFrame:
    """``predictor_table`` of one evaluation folder (with the testbed's problems, for its procedure shares)."""
    problems = None
    if task_kind(task) == "testbed":
        problems = {name: load_problems(name, path) for name, path in eval_datasets(task)}
    return predictor_table(read_samples(folder), problems)


def write_predictors(out: str | os.PathLike, table: pd.DataFrame) -> pd.DataFrame:
    """``<out>/predictors.parquet`` and ``.csv``: model, task, then the predictor columns."""
    table = table[["model", "task", *PREDICTOR_COLUMNS]]
    write_parquet_atomic(Path(out) / "predictors.parquet", table)
    with atomic_path(Path(out) / "predictors.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table


def read_predictors(out: str | os.PathLike) -> pd.DataFrame:
    """The predictors table ``align`` (or the study's alignment step) wrote into ``out``."""
    path = Path(out) / "predictors.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; rerun the alignment (mirage align, or the study's alignment stage)")
    return pd.read_parquet(path)
