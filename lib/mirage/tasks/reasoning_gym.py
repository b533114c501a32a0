"""reasoning-gym as a task family: ``rg:<dataset>`` for any of its procedural generators.

    mirage eval --backend hf --model dial-60 --task rg:basic_arithmetic --n 4
    mirage train --backend verl --model Qwen/Qwen2.5-7B --task rg:basic_arithmetic --condition ground_truth
    --task 'rg:basic_arithmetic@min_terms=3,max_terms=5,train_size=2000'

A task name is ``rg:<dataset>`` optionally followed by ``@key=value,...``: ``train_size``
(default 1000), ``test_size`` (200), ``seed`` (0), and any field of the generator's own
config dataclass (values read as JSON where they parse, else as strings; an unknown key
is an error naming the generator's fields). The train split is generated with ``seed``,
the test split with another seed, and test problems whose question also occurs in the
train split are skipped, so the two splits never share a question.

Rows are verl-format parquet (``rg-<dataset>[-<hash of the options>]_{train,test}``
under the data root, regenerated when the options or the reasoning-gym version change),
prompted in the study's answer format (the paper's instruction, a blank line, the
question), with ``data_source = "rg/<dataset>"``. Answers are scored by reasoning-gym's
own ``score_answer`` on the entry, rebuilt in a guarded worker process from the dataset,
config and index (so nothing of the entry has to survive a round trip through parquet),
behind the same timeout as every checker. An answer counts as correct when its score is
1 (some generators give partial credit below that; the score is kept in ``pred``'s row
as ``error`` only when the check fails).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirage.data.math_data import math_prompt
from mirage.registry import RegistryError
from mirage.rewards import worker
from mirage.rewards.checkers import Checker, Verdict, register_checker, register_source
from mirage.runs import write_json_atomic, write_parquet_atomic
from mirage.tasks import TASKS, Task, dataset_path

PREFIX = "rg:"
SOURCE_PREFIX = "rg/"
ROLE = "mirage.tasks.reasoning_gym:worker_handlers"
DEFAULTS = {"train_size": 1000, "test_size": 200, "seed": 0}
TEST_SEED_OFFSET = 1_000_003  # the test split's generator seed is seed + this
TIMEOUT_S = 5.0


def _rg():
    try:
        import reasoning_gym
    except ImportError as e:  # pragma: no cover - a dependency of mirage
        raise ImportError("rg:<dataset> tasks need the reasoning-gym package: pip install reasoning-gym") from e
    return reasoning_gym


@functools.lru_cache(maxsize=None)
def generators() -> tuple[str, ...]:
    """Every reasoning-gym dataset name."""
    from reasoning_gym.factory import DATASETS

    _rg()
    return tuple(sorted(DATASETS))


def _config_fields(dataset: str) -> tuple[str, ...]:
    import dataclasses

    from reasoning_gym.factory import DATASETS

    return tuple(f.name for f in dataclasses.fields(DATASETS[dataset][1]) if f.name not in ("seed", "size"))


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_name(name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``rg:<dataset>[@k=v,...]`` -> (dataset, split settings, generator config); errors name the bad part."""
    spec = name[len(PREFIX):]
    dataset, _, opts = spec.partition("@")
    if dataset not in generators():
        raise RegistryError(f"unknown reasoning-gym dataset {dataset!r} in task {name!r}; "
                            f"`mirage tasks --rg` lists the {len(generators())} generators")
    settings, config = dict(DEFAULTS), {}
    fields = _config_fields(dataset)
    for item in filter(None, opts.split(",")):
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RegistryError(f"task {name!r}: option {item!r} is not KEY=VALUE")
        if key in DEFAULTS:
            value = _value(raw)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "seed" else 1):
                raise RegistryError(f"task {name!r}: {key} must be a {'non-negative' if key == 'seed' else 'positive'}"
                                    f" integer, got {raw!r}")
            settings[key] = value
        elif key in fields:
            config[key] = _value(raw)
            hint = _config_hints(dataset).get(key)
            if hint is not None and not _fits(config[key], hint):
                raise RegistryError(f"task {name!r}: option {key}={raw} is not {_describe(hint)}")
        else:
            raise RegistryError(f"task {name!r}: unknown option {key!r}; options: {', '.join(DEFAULTS)}, and "
                                f"{dataset}'s config: {', '.join(fields)}")
    if config:
        _validate(name, dataset, config, settings)
    return dataset, settings, config


@functools.lru_cache(maxsize=None)
def _config_hints(dataset: str) -> dict[str, Any]:
    """The generator config's field types, where they hold for the field's own default (a few configs annotate
    loosely: rearc's ``diff_ub: int = 0.2``); the rest is left to the config's own ``validate()``."""
    import dataclasses
    import typing

    from reasoning_gym.factory import DATASETS

    cls = DATASETS[dataset][1]
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a config annotated with names this Python cannot resolve
        return {}
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        try:
            default = json.loads(json.dumps(default))  # as an option value would arrive (tuples -> lists)
        except (TypeError, ValueError):
            continue
        if f.name in hints and _fits(default, hints[f.name]):
            out[f.name] = hints[f.name]
    return out


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON-parsed option value has the config field's type (unknown kinds of hint: True)."""
    import math
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return True
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        item = args[0] if args else None
        return isinstance(value, list) and (item is None or all(_fits(v, item) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str:
    import typing

    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    return names.get(hint, f"of type {getattr(hint, '__name__', None) or str(hint).replace('typing.', '')}")


def _validate(name: str, dataset: str, config: dict[str, Any], settings: dict[str, Any]) -> None:
    """The generator's own config check (min <= max and the like), run now: an error naming the task and options."""
    from reasoning_gym.factory import DATASETS

    try:
        cfg = DATASETS[dataset][1](**config, seed=settings["seed"], size=settings["train_size"])
        if hasattr(cfg, "validate"):
            cfg.validate()
    except (AssertionError, ValueError, TypeError) as e:
        options = ",".join(f"{k}={json.dumps(v)}" for k, v in config.items())
        raise RegistryError(f"task {name!r}: options {options} rejected by {dataset}: "
                            f"{e or type(e).__name__}") from None


def dataset_names(name: str) -> tuple[str, str]:
    """(train, test) dataset names of a task name; options other than the defaults add a hash."""
    dataset, settings, config = parse_name(name)
    tag = "" if (settings == DEFAULTS and not config) else "-" + hashlib.sha256(
        json.dumps([settings, config], sort_keys=True).encode()).hexdigest()[:8]
    return f"rg-{dataset}{tag}_train", f"rg-{dataset}{tag}_test"


def _colour(dataset: str) -> str:
    h = int(hashlib.sha256(dataset.encode()).hexdigest()[:6], 16)
    return f"#{(h >> 16) % 160 + 40:02x}{(h >> 8) % 160 + 40:02x}{h % 160 + 40:02x}"


def make_task(name: str) -> Task:
    """The registry's factory for ``rg:`` names."""
    dataset, settings, config = parse_name(name)
    train, test = dataset_names(name)
    return Task(name, "paper", train=train, evals=(test,), sources={f"{SOURCE_PREFIX}{dataset}": "reasoning_gym"},
                description=f"reasoning-gym {dataset} (generated: {settings['train_size']} train, "
                            f"{settings['test_size']} test, seed {settings['seed']}"
                            + (f", config {config}" if config else "") + ")",
                colour=_colour(dataset), marker="^", options={"dataset": dataset, **settings, "config": config},
                ensure=functools.partial(ensure_dataset, name))


# --- datasets -----------------------------------------------------------------------------
def _entries(dataset: str, config: dict, seed: int, size: int) -> list[dict]:
    rg = _rg()
    return list(rg.create_dataset(dataset, seed=seed, size=size, **config))


def _prompt(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": math_prompt(question)}]


def build_rows(name: str, split: str) -> list[dict]:
    """The verl rows of one split of ``rg:<dataset>[@...]``."""
    dataset, settings, config = parse_name(name)
    seed, train_size = settings["seed"], settings["train_size"]
    train = _entries(dataset, config, seed, train_size)
    if split == "train":
        picked = [(i, e) for i, e in enumerate(train)]
        split_seed = seed
    else:
        seen = {e["question"] for e in train}
        split_seed, size = seed + TEST_SEED_OFFSET, settings["test_size"]
        pool = _entries(dataset, config, split_seed, 4 * size)
        picked = [(i, e) for i, e in enumerate(pool) if e["question"] not in seen][:size]
        if len(picked) < size:
            raise ValueError(f"{name}: only {len(picked)} test questions of {4 * size} generated are not in the "
                             f"train split; lower test_size or train_size")
    return [{"data_source": f"{SOURCE_PREFIX}{dataset}", "prompt": _prompt(e["question"]),
             "ability": "reasoning_gym", "reward_model": {"style": "rule", "ground_truth": str(e["answer"])},
             "extra_info": {"index": pos, "split": split, "rg_dataset": dataset, "rg_seed": split_seed,
                            "rg_size": train_size if split == "train" else 4 * settings["test_size"],
                            "rg_index": i, "rg_config": json.dumps(config, sort_keys=True),
                            "question": e["question"]}}
            for pos, (i, e) in enumerate(picked)]


def ensure_dataset(name: str, dataset_name: str, root: Any = None) -> Path:
    """Write (atomically) and return the parquet of one split, unless it is there with the same spec."""
    from importlib.metadata import version

    import pandas as pd

    train, test = dataset_names(name)
    if dataset_name not in (train, test):
        raise KeyError(f"{dataset_name!r} is not a dataset of task {name!r} ({train}, {test})")
    split = "train" if dataset_name == train else "test"
    path = dataset_path(dataset_name, root)
    meta = path.with_suffix(".meta.json")
    spec = {"task": name, "split": split, "reasoning_gym": version("reasoning-gym")}
    try:
        recorded = json.loads(meta.read_text()) if meta.exists() else None
    except (OSError, ValueError) as e:
        raise ValueError(f"{meta}: unreadable ({e}); delete it (and {path.name}) to regenerate the dataset") from None
    if path.exists() and recorded == spec:
        return path
    write_parquet_atomic(path, pd.DataFrame(build_rows(name, split)))
    write_json_atomic(meta, spec)
    return path


# --- the checker ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReasoningGymOptions:
    rg_timeout: float = TIMEOUT_S

    def __post_init__(self):
        if not self.rg_timeout > 0:
            raise ValueError(f"rg_timeout must be > 0, got {self.rg_timeout}")


def check(data_source, text, answer, ground_truth, extra_info, options: ReasoningGymOptions,
          release_faithful: bool) -> Verdict:
    info = extra_info or {}
    missing = [k for k in ("rg_dataset", "rg_seed", "rg_size", "rg_index", "rg_config", "question") if k not in info]
    if missing:
        raise KeyError(f"reasoning-gym row ({data_source}) lacks extra_info {missing}")
    if answer is None:
        return Verdict(False, None, None)
    params = {k: info[k] for k in ("rg_dataset", "rg_seed", "rg_size", "rg_index", "rg_config", "question")}
    try:
        score = worker.call(ROLE, "score", {**params, "answer": answer}, options.rg_timeout)
    except (worker.WorkerTimeout, worker.WorkerDied) as e:
        return Verdict(False, answer, f"reasoning-gym: {e}")
    return Verdict(float(score) >= 1.0, answer, None)


def worker_handlers() -> dict:
    """Run inside the guarded worker: rebuild the entry, score with reasoning-gym's own function."""
    rg = _rg()

    @functools.lru_cache(maxsize=64)
    def data(name: str, seed: int, size: int, config: str):
        return rg.create_dataset(name, seed=seed, size=size, **json.loads(config))

    def score(rg_dataset, rg_seed, rg_size, rg_index, rg_config, question, answer) -> float:
        ds = data(rg_dataset, int(rg_seed), int(rg_size), rg_config)
        entry = ds[int(rg_index)]
        if entry["question"] != question:
            raise ValueError(f"reasoning-gym {rg_dataset} entry {rg_index} differs from the dataset row "
                             "(another reasoning-gym version?); regenerate the dataset")
        return float(ds.score_answer(answer, entry))

    return {"score": score}


def is_rg_source(data_source: str) -> bool:
    """rg/<reasoning-gym dataset>"""
    return data_source.startswith(SOURCE_PREFIX)


register_checker(Checker("reasoning_gym", check, ReasoningGymOptions,
                         summary="reasoning-gym's own score_answer (score 1 = correct), in a guarded worker"))
register_source(is_rg_source, "reasoning_gym")  # rows score without their task being built first
TASKS.register_factory(PREFIX, make_task)
