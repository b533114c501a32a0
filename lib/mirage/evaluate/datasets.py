"""What an evaluation reads: the datasets of a task (or one dataset), one row per problem, defaults.

A task name means its evaluation datasets (``mirage.tasks``); a dataset name or a
parquet path means that one file. Generated datasets are (re)written on use. The
task's kind picks the defaults: the recipe's response length, and enough samples per
problem for the k the curves report.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mirage.data.rows import load_rows, resolve_dataset
from mirage.recipes import RECIPES
from mirage.tasks import Task, get_task, load_tasks, task_of_dataset, task_of_source

DEFAULT_N = {"testbed": 64, "paper": 256}  # n large enough for the k the curves report


def known_task(task_or_dataset: str) -> Task | None:
    """The registered task named, or owning the dataset named (by file stem); None for anything else."""
    tasks = load_tasks()
    return tasks[task_or_dataset] if task_or_dataset in tasks else task_of_dataset(Path(task_or_dataset).stem)


def task_kind(task_or_dataset: str) -> str:
    """'testbed' or 'paper': picks the default n and max_tokens.

    A task or a known dataset name says it; a parquet file is 'testbed' when all its
    rows come from testbed tasks (by data_source).
    """
    task = known_task(task_or_dataset)
    if task is not None:
        return task.kind
    path = Path(task_or_dataset)
    if path.suffix == ".parquet" and path.exists():
        sources = set(pd.read_parquet(path, columns=["data_source"])["data_source"])
        owners = [task_of_source(str(s)) for s in sources]
        if owners and all(t is not None and t.kind == "testbed" for t in owners):
            return "testbed"
    return "paper"


def default_n(task_or_dataset: str) -> int:
    return DEFAULT_N[task_kind(task_or_dataset)]


def default_max_tokens(task_or_dataset: str, kind: str | None = None) -> int:
    """The response length training allowed by default: the recipe of the task's kind, or the
    task's own ``response_tokens`` where its answers need more (toy-code). ``kind``: task_kind's
    answer where the caller has it (for a parquet it reads the file)."""
    recipe_tokens = RECIPES[kind or task_kind(task_or_dataset)].max_response_length
    task = known_task(task_or_dataset)
    return max(recipe_tokens, task.response_tokens if task is not None else 0)


def eval_datasets(task_or_dataset: str, root: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """(dataset name, parquet path) for a task's eval sets, a dataset name, or a parquet path."""
    names = list(get_task(task_or_dataset).evals) if task_or_dataset in load_tasks() else [task_or_dataset]
    return [resolve_dataset(name, root) for name in names]


def load_problems(name: str, path: str | os.PathLike) -> pd.DataFrame:
    """A verl-format parquet as one row per problem: problem_id, data_source, prompt, ground_truth, extra_info.

    ``problem_id`` is ``extra_info.index`` when every row has one, else the row position
    (``mirage.data.rows.load_rows``, which names the file, row and field of a bad row).
    """
    rows = load_rows(path, unique_ids=True)
    out = pd.DataFrame([{"problem_id": r["problem_id"], "data_source": r["data_source"], "prompt": r["prompt"],
                         "ground_truth": str(r["reward_model"]["ground_truth"]), "extra_info": r["extra_info"]}
                        for r in rows], columns=["problem_id", "data_source", "prompt", "ground_truth", "extra_info"])
    out.attrs["dataset"] = name
    return out
