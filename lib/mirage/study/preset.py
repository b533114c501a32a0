"""A study preset: a grid (models x tasks x conditions x regimes x seeds) plus its recipe, evaluation and backend.

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
    pairs: [[dial-90, toy-math]]   # optional, instead of models x tasks
    conditions: [ground_truth, nsr]
    seeds: [0]                     # default [0]
    recipe: testbed                # a key of mirage.recipes.RECIPES
    overrides: {total_steps: 20}   # recipe fields changed for this preset
    regimes: {u2: {}, u16: {ppo_mini_batch_size: 1, ppo_epochs: 2}}   # optional: named recipe variants
    grids: [{conditions: [random], regimes: [u16]}, ...]   # optional: the cells are the union (grid.py)
    eval: {n: 16, align_n: 32, greedy: false}   # StudyEval
    one_shot: {pool: 64, epochs: 4}
    analysis: [90_figures.ipynb]   # the notebooks the analysis stage runs; an entry may be
                                   # {notebook: {parameter: value}} to set its own parameters
    jobs: 2                        # steps run at once
    resources:                     # optional: per-step sbatch settings for --executor slurm (executors.py)
      cell: {nodes: 1, gpus_per_node: 8, cpus_per_task: 64, timeout_min: 2880, partition: gpu}

Keys added after the first presets (pairs, regimes, grids, analysis, eval.greedy) are left out
of ``to_dict`` at their defaults, so a study directory made before they existed still belongs
to its preset.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mirage.conditions import CONDITIONS
from mirage.ranges import SAMPLE_TEMPERATURE, SAMPLES, SEED, TOP_P, Range, check_fields
from mirage.recipes import RECIPES
from mirage.registry import load_plugins
from mirage.sample.base import SamplingParams
from mirage.study.grid import GridError, check_list, check_pairs, check_regimes, resolve_grids, unique_cells
from mirage.study.resources import check_resources
from mirage.tasks import load_tasks

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
DEFAULT_ANALYSIS = ("90_figures.ipynb",)
# keys that do not decide a study's results: a study directory keeps its preset when they change
NOT_IDENTITY = ("description", "jobs", "analysis", "resources")
# a preset's name is one path component (the default --out is study/<name>): mirage.runs.slug's characters
_FOLDER_NAME = re.compile(r"[A-Za-z0-9_=,@+-][A-Za-z0-9._=,@+-]*")


class PresetError(KeyError):
    """A preset that cannot be used; ``str()`` is the message (it names the key and the file)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


ALL_CONDITIONS = "all"  # `conditions: all` in a preset or a sub-grid: every registered condition


@dataclass(frozen=True)
class StudyEval:
    """How base models and checkpoints are evaluated (pass@k)."""

    n: int = 16  # samples per problem for trained checkpoints (k = 1, 2, 4, ..., n)
    align_n: int = 64  # samples per problem for the base models (alignment reads large k)
    temperature: float = SamplingParams.temperature
    top_p: float = SamplingParams.top_p
    max_tokens: int | None = None  # None: the recipe's max_response_length (what training sampled)
    seed: int = SamplingParams.seed
    checkpoints: str = "last"  # "last": the final checkpoint; "all": every saved checkpoint
    # the k at which the base model's pass@k is read as its alignment (None: the largest k measured)
    alignment_k: int | None = None
    # also evaluate each evaluated checkpoint (and each base model once) greedily: T = 0, n = 1, tag "greedy"
    greedy: bool = False

    def check(self, where: str) -> None:
        if not isinstance(self.greedy, bool):
            raise PresetError(f"{where}: eval.greedy must be true or false, got {self.greedy!r}")
        if self.checkpoints not in ("last", "all"):
            raise PresetError(f"{where}: eval.checkpoints must be 'last' or 'all', got {self.checkpoints!r}")
        _check_ranges(self, EVAL_RANGES, where, "eval.")
        if self.alignment_k is not None and not 1 <= self.alignment_k <= self.align_n:
            raise PresetError(f"{where}: eval.alignment_k ({self.alignment_k}) must be in 1..align_n ({self.align_n})")


@dataclass(frozen=True)
class OneShotSettings:
    """The history run that one-shot selection ranks (Wang et al.: std of per-epoch accuracy)."""

    pool: int = 64  # examples of the training set in the pool
    epochs: int = 4  # passes over the pool (pool x epochs / train_batch_size steps)

    def check(self, where: str) -> None:
        _check_ranges(self, ONE_SHOT_RANGES, where, "one_shot.")


# The range of every numeric preset key, stated once (docs/study.md lists them; Preset.check applies them,
# `mirage study --jobs` parses with PRESET_RANGES["jobs"]). Recipe keys: mirage.recipes.RANGES.
EVAL_RANGES = {"n": SAMPLES, "align_n": SAMPLES, "temperature": SAMPLE_TEMPERATURE, "top_p": TOP_P,
               "max_tokens": Range(1, 2**20, integer=True, none_ok=True), "seed": SEED,
               "alignment_k": Range(1, 2**20, integer=True, none_ok=True)}  # and <= align_n
ONE_SHOT_RANGES = {"pool": Range(1, 10**6, integer=True), "epochs": Range(1, 10**4, integer=True)}
PRESET_RANGES = {"jobs": Range(1, 1024, integer=True), "seeds": SEED}  # seeds: each of them


def _check_ranges(obj: Any, ranges: Mapping[str, Range], where: str, prefix: str = "") -> None:
    try:
        check_fields(obj, ranges, prefix)
    except ValueError as e:
        raise PresetError(f"{where}: {e}") from None


@dataclass(frozen=True)
class Preset:
    name: str
    backend: str  # "local" (CPU testbed) or "verl" (GPUs)
    models: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    recipe: str = "testbed"  # a key of mirage.recipes.RECIPES
    overrides: Mapping[str, Any] = field(default_factory=dict)  # recipe fields changed for this preset
    eval: StudyEval = StudyEval()
    one_shot: OneShotSettings = OneShotSettings()
    jobs: int = 1  # steps run at once (each with one torch thread)
    description: str = ""
    plugins: tuple[str, ...] = ()  # modules imported before the names are checked, and in every step
    pairs: tuple[tuple[str, str], ...] = ()  # (model, task) combinations instead of models x tasks
    regimes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> recipe overrides (over overrides)
    grids: tuple[Mapping[str, Any], ...] = ()  # sub-grids whose union is the cells (mirage.study.grid)
    analysis: tuple = DEFAULT_ANALYSIS  # notebooks the analysis stage runs, in order: names or {name: parameters}
    # sbatch settings per step kind (alignment | cell | analysis) for `--executor slurm` (mirage.study.executors)
    resources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str | None = None  # the file it was read from (None: a shipped preset, named by its name)

    def __post_init__(self):
        if self.conditions == ALL_CONDITIONS:  # every registered condition, a plugin's included

            load_plugin_modules(tuple(self.plugins), self.where)
            object.__setattr__(self, "conditions", tuple(CONDITIONS))
        for key in ("models", "tasks", "conditions", "seeds", "plugins", "grids", "analysis"):
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
        where = self.where
        if not isinstance(self.name, str) or not _FOLDER_NAME.fullmatch(self.name):
            raise PresetError(f"{where}: name must be one folder name (letters, digits and . _ = , @ + -, not "
                              f"starting with '.'): it names the default study folder study/<name>; got {self.name!r}")
        if self.backend not in ("local", "verl"):
            raise PresetError(f"{where}: backend must be 'local' or 'verl', got {self.backend!r}")
        try:
            for key in ("models", "tasks", "conditions", "seeds"):
                check_list(getattr(self, key), key, int if key == "seeds" else str)
            if not self.seeds:
                raise GridError("seeds is empty")
            object.__setattr__(self, "pairs", check_pairs(self.pairs))
            object.__setattr__(self, "regimes", check_regimes(self.regimes))
            if isinstance(self.grids, (str, bytes)):
                raise GridError(f"grids must be a list of sub-grids, got {self.grids!r}")
            top = {"models": self.models, "tasks": self.tasks, "pairs": self.pairs, "conditions": self.conditions,
                   "regimes": self.regimes, "seeds": self.seeds}
            grids = resolve_grids(top, self.grids)
        except GridError as e:
            raise PresetError(f"{where}: {e}") from None
        names = [name for name, _ in self.analysis_notebooks()]
        if len(set(names)) != len(names):
            raise PresetError(f"{where}: analysis lists a notebook twice: {names}")
        load_plugin_modules(self.plugins, where)
        tasks = load_tasks()
        for c in dict.fromkeys(c for g in grids for c in g.conditions):
            if c not in CONDITIONS:
                raise PresetError(f"{where}: unknown condition {c!r}; known: {', '.join(CONDITIONS)}")
        for t in dict.fromkeys([*self.tasks, *(t for g in grids for _, t in g.pairs)]):
            if t not in tasks:
                raise PresetError(f"{where}: unknown task {t!r}; known: {', '.join(tasks.known())}")
            try:
                tasks[t]  # a name a factory builds (rg:<dataset>@...) is checked by building it
            except (KeyError, ValueError) as e:
                raise PresetError(f"{where}: task {t!r}: {e.args[0] if e.args else e}") from None
        if self.recipe not in RECIPES:
            raise PresetError(f"{where}: unknown recipe {self.recipe!r}; known: {', '.join(RECIPES)}")
        for regime in ("", *self.regimes):
            try:
                self.recipe_obj(regime).check()
            except (KeyError, ValueError) as e:
                key = f"regimes.{regime}" if regime else "overrides"
                raise PresetError(f"{where}: {key}: {e.args[0] if e.args else e}") from None
        self.eval.check(where)
        self.one_shot.check(where)
        for seed in dict.fromkeys([*self.seeds, *(s for g in grids for s in g.seeds)]):
            _check_ranges({"seeds": seed}, PRESET_RANGES, where)
        try:
            object.__setattr__(self, "resources", check_resources(self.resources, where))
        except ValueError as e:
            raise PresetError(str(e)) from None
        _check_ranges({"jobs": self.jobs}, PRESET_RANGES, where)

    def analysis_notebooks(self) -> list[tuple[str, dict[str, Any]]]:
        """[(notebook file name, its own parameters)] of ``analysis``, checked: each entry is a name
        (``*.ipynb``) or a one-key mapping {name: {parameter: value}}."""
        out = []
        if not self.analysis:
            raise PresetError(f"{self.where}: analysis is empty (default: {list(DEFAULT_ANALYSIS)})")
        for entry in self.analysis:
            name, params = (next(iter(entry.items())) if isinstance(entry, Mapping) and len(entry) == 1
                            else (entry, {}))
            if not isinstance(name, str) or not name.endswith(".ipynb") or not isinstance(params, Mapping):
                raise PresetError(f"{self.where}: analysis entries are notebook files (*.ipynb) or "
                                  f"{{notebook: {{parameter: value}}}}, got {entry!r}")
            out.append((name, dict(params)))
        return out

    def grid(self) -> list:
        """The resolved sub-grids (``mirage.study.grid.Grid``; one when the preset has no ``grids``)."""
        return resolve_grids({"models": self.models, "tasks": self.tasks, "pairs": self.pairs,
                              "conditions": self.conditions, "regimes": self.regimes, "seeds": self.seeds}, self.grids)

    def cells(self) -> list:
        """Every cell (model x task x condition x regime x seed) once, in grid order."""
        return unique_cells(self.grid())

    def describe_grid(self) -> str:
        """What the cells are made of, for the console: "3 models x 2 tasks x ..." or the sub-grids' count."""
        grids = self.grid()
        if len(grids) > 1:
            return f"the union of {len(grids)} sub-grids"
        g = grids[0]
        combos = (f"{len(self.models)} models x {len(self.tasks)} tasks" if not self.pairs
                  else f"{len(g.pairs)} model-task pairs")
        regimes = f" x {len(g.regimes)} regimes" if self.regimes else ""
        return f"{combos} x {len(g.conditions)} conditions{regimes} x {len(g.seeds)} seeds"

    def cell_overrides(self, regime: str = "") -> dict[str, Any]:
        """The recipe overrides of a cell of ``regime``: the preset's, then the regime's on top."""
        if regime and regime not in self.regimes:
            raise KeyError(f"{self.where}: no regime {regime!r}; defined: {list(self.regimes)}")
        return {**self.overrides, **(self.regimes.get(regime) or {})}

    def recipe_obj(self, regime: str = ""):
        return RECIPES[self.recipe].with_overrides(self.cell_overrides(regime))

    def recipe_dict(self, regime: str = "") -> dict[str, Any]:
        return self.recipe_obj(regime).to_dict()

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}
        d.update(eval=dataclasses.asdict(self.eval), one_shot=dataclasses.asdict(self.one_shot),
                 overrides=dict(self.overrides), regimes={k: dict(v) for k, v in self.regimes.items()},
                 grids=[dict(g) for g in self.grids], resources={k: dict(v) for k, v in self.resources.items()},
                 analysis=[a if isinstance(a, str) else dict(a) for a in self.analysis])
        # keys added later are written only when set, so an older study.json still matches its preset
        for key, default in (("pairs", ()), ("regimes", {}), ("grids", []), ("analysis", list(DEFAULT_ANALYSIS)),
                             ("resources", {})):
            if d[key] == default or not d[key]:
                del d[key]
        if not d["eval"]["greedy"]:
            del d["eval"]["greedy"]
        return json.loads(json.dumps(d))  # tuples -> lists: what a study.json holds

    def identity(self) -> dict[str, Any]:
        """What decides a study's results (a study directory belongs to one): not its wording, parallelism
        or the analysis notebooks it runs."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_IDENTITY}

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
        for key in ("models", "tasks", "conditions", "seeds", "plugins", "pairs", "grids", "analysis"):
            if key == "conditions" and d.get(key) == ALL_CONDITIONS:
                continue
            if key in d and (isinstance(d[key], (str, bytes)) or not isinstance(d[key], (list, tuple))):
                raise PresetError(f"{where}: {key} must be a list" + (" (or 'all')" if key == "conditions" else "")
                                  + f", got {d[key]!r}")
        for key in ("overrides", "regimes", "resources"):
            if key in d and not isinstance(d[key], Mapping):
                raise PresetError(f"{where}: {key} must be a mapping, got {d[key]!r}")
        d.setdefault("name", default_name)
        missing = [k for k in ("name", "backend") if not d.get(k)]
        if missing:
            raise PresetError(f"{where}: missing preset key(s) {missing}")
        # a preset file may say `pairs: null` or leave a list empty: the key's default (grid.py resolves it)
        d = {k: v for k, v in d.items() if v is not None}
        return cls(**d, source=source)


def load_plugin_modules(modules: tuple[str, ...], where: str) -> None:
    """Import a preset's plugin modules (what ``$MIRAGE_PLUGINS`` does for a process) before its names are checked."""
    load_plugins()
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"{where}: plugin {module!r} cannot be imported: {e}") from e


def list_presets() -> list[str]:
    """The names of the shipped presets."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


MAX_PRESET_BYTES = 1 << 20  # the shipped presets are 0.5-2.5 KB


def _yaml_loader():
    """yaml's SafeLoader without aliases (``*name``): an alias bomb ("billion laughs") expands a small file
    into gigabytes; a preset never needs one (anchors alone are harmless and still read)."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"line {mark.line + 1}: YAML aliases (*name) are not allowed in a preset; "
                                     "write the values out")
            return super().compose_node(parent, index)

    return NoAliasLoader


def read_preset_file(path: str | Path, source: str | None) -> Preset:
    import yaml

    path = Path(path)
    size = path.stat().st_size
    if size > MAX_PRESET_BYTES:
        raise PresetError(f"{path}: {size} bytes, more than a preset may hold ({MAX_PRESET_BYTES})")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_yaml_loader()) if path.suffix != ".json" else json.loads(text)
    except (yaml.YAMLError, ValueError) as e:
        message = " ".join(str(e).split())  # yaml's messages span lines: one line, naming the file
        raise PresetError(f"{path}: not a readable preset file ({message})") from None
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
