"""Tasks: what RL trains on and is evaluated on. The registry is the only list of tasks.

A ``Task`` is one declarative unit (in the style of lm-evaluation-harness): its datasets
(prepared files, or a generator that writes them on first use), the data sources its
rows carry and the checker that scores them, the one-shot sets verl trains on, and how
it looks in figures. One file per task family registers its tasks:

    toy.py            toy-math, toy-logic: the CPU testbed's generated tasks
    math.py           math: DeepScaleR -> MATH500, AIME24, AMC23
    logic.py          logic: SynLogic-Easy -> SynLogic validation, KOR-Bench x5
    reasoning_gym.py  rg:<dataset>: any reasoning-gym generator
    code.py           code: DeepCoder-Preview -> HumanEval

Every dataset is a verl-format parquet (columns data_source, prompt, ability,
reward_model, extra_info) at ``<data_root>/verl/<dataset>.parquet``. The data root is
``$MIRAGE_DATA`` if set, else the ``data/`` folder of a mirage checkout, else
``~/.cache/mirage/data``.

Adding a task: one new file that calls ``register_task`` (and ``register_source`` for
its data sources); a plugin module named in ``$MIRAGE_PLUGINS`` works the same way.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from mirage.registry import Registry, RegistryError, load_all
from mirage.rewards.checkers import CHECKERS, register_source
# the shipped checkers register themselves on import (a task's sources name them)
import mirage.rewards.checkers.code  # noqa: F401,E402
import mirage.rewards.checkers.exact  # noqa: F401,E402
import mirage.rewards.checkers.korbench  # noqa: F401,E402
import mirage.rewards.checkers.math  # noqa: F401,E402
import mirage.rewards.checkers.synlogic  # noqa: F401,E402

KINDS = ("testbed", "paper")  # testbed: tiny models on CPU (testbed recipe); paper: real models (paper recipe)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+=,@-]*$")


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # a key of KINDS: picks the default recipe, samples per problem and response length
    train: str  # the training dataset
    evals: tuple[str, ...]  # the evaluation datasets
    # data_source of its rows -> the mirage.rewards.checkers family that scores them; a key may also be
    # a predicate (for open-ended families of names), whose docstring names the family in errors
    sources: Mapping[Any, str] = field(default_factory=dict)
    description: str = ""
    display_name: str = ""  # for figures (default: the name)
    colour: str = "#555555"
    marker: str = "o"
    # data regime -> the prepared train dataset verl uses for it (one-shot sets; the testbed selects its own)
    one_shot: Mapping[str, str] = field(default_factory=dict)
    # generated tasks: ensure(dataset_name, root) writes the dataset if absent or stale, returns its path
    ensure: Callable[[str, Any], Path] | None = None
    # how to make a prepared dataset that is missing: a command template ({dataset}, {root}) or a function
    prepare_help: str | Callable[[str, Path], str] = "mirage data prepare --dataset {dataset} --source <file>|hub"
    options: Mapping[str, Any] = field(default_factory=dict)  # for families built from a name (rg:<dataset>)
    # problems in its evaluation sets, for cost estimates where they are not prepared here (0: unknown)
    eval_problems: int = 0
    # the response length its answers need, when longer than its kind's recipe allows (toy-code's programs:
    # 80 tokens against the testbed's 48); training and evaluation default to the larger (0: the recipe's)
    response_tokens: int = 0

    def __post_init__(self):
        if not _NAME.match(self.name) or ".." in self.name or "/" in self.name:
            raise RegistryError(f"task name {self.name!r}: letters, digits and . _ : + - = , @ only, no '/' or '..'")
        if self.kind not in KINDS:
            raise RegistryError(f"task {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not self.evals:
            raise RegistryError(f"task {self.name!r}: needs at least one evaluation dataset")
        if not isinstance(self.response_tokens, int) or isinstance(self.response_tokens, bool) \
                or not 0 <= self.response_tokens <= 1_000_000:
            raise RegistryError(f"task {self.name!r}: response_tokens must be an integer in [0, 1000000], "
                                f"got {self.response_tokens!r}")
        object.__setattr__(self, "evals", tuple(self.evals))
        object.__setattr__(self, "sources", dict(self.sources))

    @property
    def checkers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.sources.values()))

    @property
    def label(self) -> str:
        return self.display_name or self.name

    @property
    def datasets(self) -> tuple[str, ...]:
        return (self.train, *self.evals)

    def dataset_file(self, name: str, root: str | os.PathLike | None = None) -> Path:
        """The dataset's parquet, generated first for generated tasks; an error saying how to make it."""
        path = dataset_path(name, root)
        if self.ensure is not None and name in self.datasets:
            return self.ensure(name, root)
        if not path.exists():
            raise FileNotFoundError(f"dataset {name!r} of task {self.name!r} not found at {path}; make it with: "
                                    + self.how_to_prepare(name, path))
        return path

    def how_to_prepare(self, name: str, path: Path) -> str:
        if callable(self.prepare_help):
            return self.prepare_help(name, path)
        return self.prepare_help.format(dataset=name, root=Path(path).parent.parent)

    def train_dataset(self, data: str) -> str:
        """The training dataset of a data regime ('full', or a one-shot regime verl reads prepared)."""
        if data == "full":
            return self.train
        if data not in self.one_shot:
            raise KeyError(f"task {self.name!r} has no prepared dataset for data regime {data!r}; "
                           f"it has: {['full', *self.one_shot]}")
        return self.one_shot[data]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "train": self.train, "evals": list(self.evals),
                "sources": {k if isinstance(k, str) else (k.__doc__ or k.__name__).strip(): v
                            for k, v in self.sources.items()}, "description": self.description,
                "options": dict(self.options)}


def _validate(task: Task) -> None:
    for source, checker in task.sources.items():
        if checker not in CHECKERS:
            raise RegistryError(f"task {task.name!r}: data source {source!r} names unknown checker {checker!r}; "
                                f"known: {', '.join(CHECKERS)}")


TASKS: Registry[Task] = Registry("task", validate=_validate)


def register_task(task: Task, replace: bool = False) -> Task:
    """Register ``task`` and route its data sources to its checker."""
    TASKS.register(task, replace=replace)
    for source, checker in task.sources.items():
        register_source(source, checker)
    return task


def load_tasks() -> Registry[Task]:
    """Import the task files (and plugins) once; returns the registry."""
    load_all()
    return TASKS


def get_task(name: str) -> Task:
    return load_tasks()[name]


def task_of_dataset(name: str) -> Task | None:
    """The registered task one of whose datasets is ``name``, if any."""
    for task_name in load_tasks():
        task = TASKS[task_name]
        if name in task.datasets or name in task.one_shot.values():
            return task
    return None


def task_of_source(data_source: str) -> Task | None:
    """The registered task whose rows carry ``data_source``, if any."""
    source = data_source.removeprefix("val/")
    for task_name in load_tasks():
        for match in TASKS[task_name].sources:
            if match == source if isinstance(match, str) else match(source):
                return TASKS[task_name]
    return None


# --- where data lives ----------------------------------------------------------------------------
def data_root() -> Path:
    env = os.environ.get("MIRAGE_DATA")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").exists() and (checkout / "data").is_dir():
        return checkout / "data"
    return Path.home() / ".cache" / "mirage" / "data"


def dataset_path(name: str, root: str | os.PathLike | None = None) -> Path:
    if not name or "/" in name or os.sep in name or name.startswith("."):
        raise ValueError(f"dataset name {name!r}: must be a plain name (no path separators, no leading '.')")
    return Path(root or data_root()) / "verl" / f"{name}.parquet"


def dataset_file(name: str, root: str | os.PathLike | None = None) -> Path:
    """A dataset's parquet by name: generated if its task generates it, else it must have been prepared."""
    task = task_of_dataset(name)
    if task is not None:
        return task.dataset_file(name, root)
    path = dataset_path(name, root)
    if not path.exists():
        raise FileNotFoundError(f"dataset {name!r} not found at {path}; prepare it with `mirage data prepare` "
                                "or pass a parquet path")
    return path
