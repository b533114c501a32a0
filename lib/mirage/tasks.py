"""Training tasks and their evaluation sets, for the paper and for the testbed.

A task names the dataset RL trains on and the datasets it is evaluated on. Every
dataset is a verl-format parquet (columns data_source, prompt, ability,
reward_model, extra_info) under the data root:

    <data_root>/verl/<dataset>.parquet

``mirage data prepare`` writes the paper's datasets there from local files (or the
hub, where a network exists); the testbed's datasets are generated, never
downloaded. The data root is ``$MIRAGE_DATA`` if set, else the ``data/`` folder of
a mirage checkout, else ``~/.cache/mirage/data``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "paper" (verl + vLLM on real models) or "testbed" (CPU, tiny models)
    train: str  # dataset name
    evals: tuple[str, ...]
    description: str = ""


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("math", "paper", "deepscaler", ("math500", "aime24", "amc23"),
             "DeepScaleR-Preview -> MATH500, AIME24, AMC23"),
        Task("logic", "paper", "synlogic_easy_train",
             ("synlogic_easy_val", "korbench_operation", "korbench_logic", "korbench_cipher",
              "korbench_puzzle", "korbench_counterfactual"),
             "SynLogic-Easy -> SynLogic validation and KOR-Bench"),
        Task("toy-math", "testbed", "toy-math_train", ("toy-math_test",),
             "testbed: multi-step arithmetic with one final answer"),
        Task("toy-logic", "testbed", "toy-logic_train", ("toy-logic_test",),
             "testbed: a small logic puzzle checked by an exact verifier"),
    ]
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def data_root() -> Path:
    env = os.environ.get("MIRAGE_DATA")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists() and (checkout / "data").is_dir():
        return checkout / "data"
    return Path.home() / ".cache" / "mirage" / "data"


def dataset_path(name: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root or data_root()) / "verl" / f"{name}.parquet"
