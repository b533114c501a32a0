"""One typed configuration of a training run, for the local engine and for verl alike.

    cfg = RunConfig(model="dial-90", task="toy-math", condition="nsr", seed=0)
    cfg = cfg.resolved()          # recipe and run_dir filled in, every name checked
    mirage.train.dispatch.run(cfg)  # -> the local engine or verl, by cfg.backend

``resolved()`` checks everything a run needs before any work starts (the condition,
the task, the recipe and its overrides, the seed, the names that become folders) and
raises one error naming the field at fault. ``identity()`` and ``to_dict()`` are what
the run's manifest records.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mirage.conditions import get_condition
from mirage.ranges import SEED, THREADS, Range, check_fields
from mirage.recipes import PAPER_RECIPE, TESTBED_RECIPE, Recipe
from mirage.runs.files import resolve
from mirage.runs.layout import run_dir as default_run_dir
from mirage.tasks import get_task

BACKENDS = ("local", "verl")


def default_threads() -> int:
    """Torch threads for a testbed process: the study runner's share (MIRAGE_TORCH_THREADS), else 1."""
    return int(os.environ.get("MIRAGE_TORCH_THREADS") or 1)


@dataclass(frozen=True)
class RunConfig:
    model: str  # a testbed model name, a hub id or a local path
    task: str  # a mirage.tasks name
    condition: str  # a mirage.conditions name
    seed: int = 0
    backend: str = "local"  # "local" (the CPU testbed's engine) or "verl"
    recipe: Recipe | None = None  # None: the task's default (testbed tasks: TESTBED_RECIPE; else PAPER_RECIPE)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # recipe fields changed (KEY=VALUE strings parse)
    run_dir: str | None = None  # None: runs/<backend>/<model>/<task>/<condition>/seed<seed>
    release_faithful: bool = False  # reproduce the released reward code's defects
    data_root: str | None = None
    # local engine
    threads: int | None = None  # torch CPU threads (None: the run's recorded value, else $MIRAGE_TORCH_THREADS, else 1)
    micro_batch_size: int | None = None  # responses per forward inside a PPO mini-batch (None: all)
    validate_before: bool = True  # validate at step 0 (verl's val_before_train)
    dump_rollouts: bool = False  # every response, its scores, advantage and whether it was trained on
    history_run: str | None = None  # one_shot: the ground-truth run whose per-example accuracy is ranked
    one_shot_index: str | None = None  # one-shot: train on this extra_info.index instead of selecting
    stop_after: int | None = None  # stop after that many steps of this attempt (a rerun resumes)
    val_problems: int | None = None  # validate on the first N problems of each eval set
    progress: bool = True
    # verl
    train_file: str | None = None  # train on this parquet instead of the task's (e.g. a one-shot set)
    extra: tuple[str, ...] = ()  # raw Hydra overrides, passed last
    restart: bool = False  # a finished run with another config is started over instead of refused
    # where metrics also go, beside logs/metrics-*.jsonl: "tensorboard" (both engines: TensorBoard event files;
    # local: <run>/tensorboard), "wandb" (verl only); verl's trainer.logger
    loggers: tuple[str, ...] = ()
    resume_from: int | None = None  # verl: resume from this checkpoint step (trainer.resume_mode=resume_path)

    def resolved(self) -> "RunConfig":
        """This config with the recipe and run_dir filled in; an error naming the field at fault."""
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: must be one of {BACKENDS}, got {self.backend!r}")
        check_fields(self, RANGES)
        condition, task = get_condition(self.condition), get_task(self.task)
        base = self.recipe or (TESTBED_RECIPE if task.kind == "testbed" and self.backend == "local" else PAPER_RECIPE)
        if self.recipe is None and task.response_tokens > base.max_response_length:
            # a task whose answers are longer than its kind's default (toy-code): the default would cut every one
            base = dataclasses.replace(base, max_response_length=task.response_tokens)
        recipe = base.with_overrides(self.overrides)
        recipe.check()
        run = Path(self.run_dir) if self.run_dir else default_run_dir(
            self.model, task.name, condition.name, self.seed, Path("runs") / self.backend)

        bad = [name for name in self.loggers if name not in LOGGERS]
        if bad:
            raise ValueError(f"--logger: unknown logger {bad[0]!r}; known: {', '.join(LOGGERS)}")
        if self.backend == "local" and "wandb" in self.loggers:
            raise ValueError("--logger wandb: only --backend verl logs to Weights & Biases (the local engine: "
                             "--logger tensorboard)")
        if self.backend == "local" and self.resume_from is not None:
            raise ValueError("--resume-from only applies to --backend verl (the local engine resumes from its "
                             "latest checkpoint)")
        return dataclasses.replace(self, recipe=recipe, overrides={}, run_dir=str(resolve(run)),
                                   extra=tuple(self.extra), loggers=tuple(self.loggers))

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": str(self.model), "task": self.task, "condition": self.condition,
                "seed": int(self.seed)}

    def to_dict(self) -> dict[str, Any]:
        """What the manifest records (the recipe as a dict; only fields that change results are compared)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["recipe"] = self.recipe.to_dict() if self.recipe else None
        d["overrides"] = dict(self.overrides)
        d["extra"] = list(self.extra)
        d["loggers"] = list(self.loggers)
        return d

    # fields that do not change what a run computes: a rerun may differ in them
    VOLATILE = ("run_dir", "threads", "progress", "stop_after", "restart", "data_root", "loggers", "resume_from")


# The range of every numeric run setting (the recipe's are mirage.recipes.RANGES); resolved() checks them.
RANGES = {
    "seed": SEED,
    "threads": THREADS,
    "micro_batch_size": Range(1, 2**20, integer=True, none_ok=True),
    "stop_after": Range(1, 10**7, integer=True, none_ok=True),
    "val_problems": Range(1, 10**7, integer=True, none_ok=True),
    "resume_from": Range(1, 10**7, integer=True, none_ok=True),
}
LOGGERS = ("console", "file", "tensorboard", "wandb")  # verl's trainer.logger names mirage passes on


def result_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a recorded config that determines the run's numbers."""
    return {k: v for k, v in config.items() if k not in RunConfig.VOLATILE}
