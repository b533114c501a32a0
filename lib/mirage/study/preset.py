"""A study preset: a grid (models x tasks x conditions x seeds) plus its recipe, evaluation and backend.

Presets are YAML files: the shipped ones in ``mirage/study/presets/`` (``load_preset("testbed-quick")``),
or any file of the same shape (``load_preset("my.yaml")``). One schema validates both on load:
an unknown key, condition, task or recipe key is an error naming it and the file. A preset
read from a file keeps its path (``source``), so the commands a study prints (dry run,
summary) name that file.

    name: mine                     # default: the file's stem
    description: ...               # optional
    backend: local                 # local (CPU testbed) | verl (GPUs)
    plugins: [my_lab.tasks]        # optional: modules that register tasks / rewards / conditions
    models: [dial-90]
    tasks: [toy-math]
    conditions: [ground_truth, nsr]
    seeds: [0]                     # default [0]
    recipe: testbed                # a key of mirage.recipes.RECIPES
    overrides: {total_steps: 20}   # recipe fields changed for this preset
    eval: {n: 16, align_n: 32}     # StudyEval
    one_shot: {pool: 64, epochs: 4}
    jobs: 2                        # steps run at once
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


class PresetError(KeyError):
    """A preset that cannot be used; ``str()`` is the message (it names the key and the file)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class StudyEval:
    """How base models and checkpoints are evaluated (pass@k)."""

    n: int = 16  # samples per problem for trained checkpoints (k = 1, 2, 4, ..., n)
    align_n: int = 64  # samples per problem for the base models (alignment reads large k)
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None  # None: the recipe's max_response_length (what training sampled)
    seed: int = 0
    checkpoints: str = "last"  # "last": the final checkpoint; "all": every saved checkpoint
    # the k at which the base model's pass@k is read as its alignment (None: the largest k measured)
    alignment_k: int | None = None

    def check(self, where: str) -> None:
        if self.checkpoints not in ("last", "all"):
            raise PresetError(f"{where}: eval.checkpoints must be 'last' or 'all', got {self.checkpoints!r}")
        for key in ("n", "align_n"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise PresetError(f"{where}: eval.{key} must be an integer >= 1, got {getattr(self, key)!r}")
        if self.alignment_k is not None and not 1 <= self.alignment_k <= self.align_n:
            raise PresetError(f"{where}: eval.alignment_k ({self.alignment_k}) must be in 1..align_n ({self.align_n})")


@dataclass(frozen=True)
class OneShotSettings:
    """The history run that one-shot selection ranks (Wang et al.: std of per-epoch accuracy)."""

    pool: int = 64  # examples of the training set in the pool
    epochs: int = 4  # passes over the pool (pool x epochs / train_batch_size steps)


@dataclass(frozen=True)
class Preset:
    name: str
    backend: str  # "local" (CPU testbed) or "verl" (GPUs)
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    conditions: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    recipe: str = "testbed"  # a key of mirage.recipes.RECIPES
    overrides: Mapping[str, Any] = field(default_factory=dict)  # recipe fields changed for this preset
    eval: StudyEval = StudyEval()
    one_shot: OneShotSettings = OneShotSettings()
    jobs: int = 1  # steps run at once (each with one torch thread)
    description: str = ""
    plugins: tuple[str, ...] = ()  # modules imported before the names are checked, and in every step
    source: str | None = None  # the file it was read from (None: a shipped preset, named by its name)

    def __post_init__(self):
        for key in ("models", "tasks", "conditions", "seeds", "plugins"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        object.__setattr__(self, "overrides", dict(self.overrides))
        self.check()

    @property
    def where(self) -> str:
        return f"preset {self.name!r}" + (f" ({self.source})" if self.source else "")

    @property
    def cli_name(self) -> str:
        """What ``--preset`` takes to load this preset again: the file it came from, else its name."""
        return self.source or self.name

    def check(self) -> None:
        from mirage.conditions import CONDITIONS
        from mirage.recipes import RECIPES
        from mirage.tasks import load_tasks

        where = self.where
        if self.backend not in ("local", "verl"):
            raise PresetError(f"{where}: backend must be 'local' or 'verl', got {self.backend!r}")
        for key in ("models", "tasks", "conditions", "seeds"):
            values = getattr(self, key)
            if not values:
                raise PresetError(f"{where}: {key} is empty")
            kind = int if key == "seeds" else str
            bad = [v for v in values if not isinstance(v, kind) or isinstance(v, bool)]
            if bad or len(set(values)) != len(values):
                raise PresetError(f"{where}: {key} must be a list of distinct {kind.__name__}s, got {list(values)}")
        load_plugin_modules(self.plugins, where)
        tasks = load_tasks()
        for c in self.conditions:
            if c not in CONDITIONS:
                raise PresetError(f"{where}: unknown condition {c!r}; known: {', '.join(CONDITIONS)}")
        for t in self.tasks:
            if t not in tasks:
                raise PresetError(f"{where}: unknown task {t!r}; known: {', '.join(tasks.known())}")
        if self.recipe not in RECIPES:
            raise PresetError(f"{where}: unknown recipe {self.recipe!r}; known: {', '.join(RECIPES)}")
        try:
            RECIPES[self.recipe].with_overrides(self.overrides).check()
        except (KeyError, ValueError) as e:
            raise PresetError(f"{where}: overrides: {e.args[0] if e.args else e}") from None
        self.eval.check(where)
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise PresetError(f"{where}: jobs must be an integer >= 1, got {self.jobs!r}")

    def cells(self) -> list:
        from mirage.study.plan import Cell

        return [Cell(m, t, c, s) for m in self.models for t in self.tasks for c in self.conditions for s in self.seeds]

    def recipe_obj(self):
        from mirage.recipes import RECIPES

        return RECIPES[self.recipe].with_overrides(self.overrides)

    def recipe_dict(self) -> dict[str, Any]:
        return self.recipe_obj().to_dict()

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}
        d.update(eval=dataclasses.asdict(self.eval), one_shot=dataclasses.asdict(self.one_shot),
                 overrides=dict(self.overrides))
        return json.loads(json.dumps(d))  # tuples -> lists: what a study.json holds

    def identity(self) -> dict[str, Any]:
        """What decides a study's results (a study directory belongs to one): not its wording or parallelism."""
        return {k: v for k, v in self.to_dict().items() if k not in ("description", "jobs")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None, default_name: str | None = None,
                  where: str | None = None) -> "Preset":
        where = where or source or "preset"
        if not isinstance(data, Mapping):
            raise PresetError(f"{where}: a preset is a mapping of keys, got {type(data).__name__}")
        d = dict(data)
        known = {f.name for f in dataclasses.fields(cls)} - {"source"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PresetError(f"{where}: unknown preset key(s) {unknown}; known: {sorted(known)}")
        for key, sub in (("eval", StudyEval), ("one_shot", OneShotSettings)):
            if key in d:
                if not isinstance(d[key], Mapping):
                    raise PresetError(f"{where}: {key} must be a mapping, got {d[key]!r}")
                bad = sorted(set(d[key]) - {f.name for f in dataclasses.fields(sub)})
                if bad:
                    raise PresetError(f"{where}: unknown {key} key(s) {bad}; known: "
                                      f"{[f.name for f in dataclasses.fields(sub)]}")
                d[key] = sub(**d[key])
        for key in ("models", "tasks", "conditions", "seeds", "plugins"):
            if key in d and (isinstance(d[key], (str, bytes)) or not isinstance(d[key], (list, tuple))):
                raise PresetError(f"{where}: {key} must be a list, got {d[key]!r}")
        if "overrides" in d and not isinstance(d["overrides"], Mapping):
            raise PresetError(f"{where}: overrides must be a mapping, got {d['overrides']!r}")
        d.setdefault("name", default_name)
        missing = [k for k in ("name", "backend", "models", "tasks", "conditions") if not d.get(k)]
        if missing:
            raise PresetError(f"{where}: missing preset key(s) {missing}")
        return cls(**d, source=source)


def load_plugin_modules(modules: tuple[str, ...], where: str) -> None:
    """Import a preset's plugin modules (what ``$MIRAGE_PLUGINS`` does for a process) before its names are checked."""
    from mirage.registry import load_plugins

    load_plugins()
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"{where}: plugin {module!r} cannot be imported: {e}") from e


def list_presets() -> list[str]:
    """The names of the shipped presets."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def read_preset_file(path: str | Path, source: str | None) -> Preset:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.suffix != ".json" else json.loads(
            path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError) as e:
        raise PresetError(f"{path}: not a readable preset file ({e})") from None
    return Preset.from_dict(data or {}, source=source, default_name=path.stem, where=str(path))


def load_preset(name_or_path: str | Path) -> Preset:
    """A shipped preset by name, or a preset file (.yaml/.yml/.json) by path."""
    text = str(name_or_path)
    if text in list_presets():
        preset = read_preset_file(PRESETS_DIR / f"{text}.yaml", source=None)
        if preset.name != text:
            raise PresetError(f"{PRESETS_DIR / text}.yaml: its name is {preset.name!r}, not {text!r}")
        return preset
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml", ".json"):
        if not path.is_file():
            raise FileNotFoundError(f"preset file {path} does not exist (shipped presets: {list_presets()})")
        return read_preset_file(path, source=str(path.resolve()))
    raise PresetError(f"unknown preset {text!r}: not one of {list_presets()} and not a .yaml/.yml/.json file")
