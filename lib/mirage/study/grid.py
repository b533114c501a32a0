"""A preset's cells: one grid, or the union of several sub-grids, over model x task x condition x regime x seed.

A preset without ``grids`` is one grid made of its top-level keys. With ``grids``, each entry
is a sub-grid that sets any of ``models, tasks, pairs, conditions, regimes, seeds`` and
inherits the top-level value of every key it does not set; the cells are the union of the
sub-grids, in order, each cell once.

The (model, task) combinations of a grid are its ``pairs`` when it sets them; else the product
of its models and tasks (each inherited when not set); a grid that sets neither takes the
top level's combinations (the top level's pairs, else models x tasks). ``pairs`` and
``models``/``tasks`` exclude each other at one level. ``regimes`` in a sub-grid is a list of
names defined in the top-level ``regimes`` mapping; a preset without regimes has the one
regime "" (no regime: the run folder has no regime level, the cell id is unchanged).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from mirage.conditions import CONDITIONS, get_condition
from mirage.runs import run_dir

GRID_KEYS = ("models", "tasks", "pairs", "conditions", "regimes", "seeds")
NO_REGIME = ""  # the regime of every cell of a preset that defines none
# a regime name is one path component and one --only value: no separators, no "|" or ","
REGIME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# The notebook that runs a cell, by research question of its condition.
RQ_NOTEBOOKS = {"RQ1": "10_rq1_reward_signal.ipynb", "RQ2": "20_rq2_one_shot.ipynb",
                "RQ3": "30_rq3_sample_polarity.ipynb"}


@dataclass(frozen=True)
class Cell:
    model: str
    task: str
    condition: str
    seed: int
    regime: str = ""  # a named recipe variant of the preset; "" = none (no level in the id or the run folder)

    @property
    def id(self) -> str:
        regime = f"{self.regime}/" if self.regime else ""
        return f"{self.model}/{self.task}/{self.condition}/{regime}seed{self.seed}"

    def run_dir(self, out: str | os.PathLike) -> Path:
        return run_dir(self.model, self.task, self.condition, self.seed, Path(out) / "runs", regime=self.regime or None)

    @property
    def rq(self) -> str:
        return get_condition(self.condition).rq

    @property
    def notebook(self) -> str:
        if self.rq not in RQ_NOTEBOOKS:
            raise KeyError(f"condition {self.condition!r} has research question {self.rq!r}, which has no notebook; "
                           f"known: {RQ_NOTEBOOKS}")
        return RQ_NOTEBOOKS[self.rq]



class GridError(ValueError):
    """A grid that cannot be expanded; the preset turns it into a PresetError naming its file."""


@dataclass(frozen=True)
class Grid:
    """One resolved grid: every key set (inherited ones filled in)."""

    pairs: tuple[tuple[str, str], ...]
    conditions: tuple[str, ...]
    regimes: tuple[str, ...]
    seeds: tuple[int, ...]

    def cells(self) -> list:
        return [Cell(m, t, c, s, r) for m, t in self.pairs for c in self.conditions for r in self.regimes
                for s in self.seeds]


def check_list(value: Any, key: str, kind: type) -> tuple:
    """A list of distinct values of one type (seeds: ints; names: strings)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise GridError(f"{key} must be a list, got {value!r}")
    bad = [v for v in value if not isinstance(v, kind) or isinstance(v, bool)]
    if bad or len(set(value)) != len(value):
        raise GridError(f"{key} must be a list of distinct {kind.__name__}s, got {list(value)}")
    return tuple(value)


def check_pairs(value: Any, key: str = "pairs") -> tuple[tuple[str, str], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise GridError(f"{key} must be a list of [model, task] pairs, got {value!r}")
    pairs = []
    for p in value:
        if (isinstance(p, (str, bytes)) or not isinstance(p, (list, tuple)) or len(p) != 2
                or not all(isinstance(x, str) and x for x in p)):
            raise GridError(f"{key} must be a list of [model, task] pairs, got {p!r} in it")
        pairs.append((p[0], p[1]))
    if len(set(pairs)) != len(pairs):
        raise GridError(f"{key}: a pair is listed twice: {[list(p) for p in pairs]}")
    return tuple(pairs)


def check_regimes(regimes: Any) -> dict[str, dict[str, Any]]:
    """The top-level ``regimes`` mapping: {name: recipe overrides}; the recipe keys are checked by the preset."""
    if not isinstance(regimes, Mapping):
        raise GridError(f"regimes must be a mapping of name -> recipe overrides, got {regimes!r}")
    out = {}
    for name, overrides in regimes.items():
        if not isinstance(name, str) or not REGIME_NAME.match(name):
            raise GridError(f"regimes: bad regime name {name!r} (letters, digits, '_', '.', '-'; not empty)")
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, Mapping):
            raise GridError(f"regimes.{name} must be a mapping of recipe overrides, got {overrides!r}")
        out[name] = dict(overrides)
    return out


def _combos(spec: Mapping[str, Any], key: str) -> tuple[tuple[str, str], ...] | None:
    """(model, task) combinations a level sets itself, or None when it sets neither pairs nor models/tasks."""
    if spec.get("pairs") and (spec.get("models") or spec.get("tasks")):
        raise GridError(f"{key}: set pairs or models/tasks, not both")
    if spec.get("pairs"):
        return tuple(spec["pairs"])
    return None


def resolve_grids(top: Mapping[str, Any], grids: Sequence[Mapping[str, Any]]) -> list[Grid]:
    """Every sub-grid with its inherited keys filled in (``grids`` empty: the top level is the one grid).

    ``top`` holds the preset's checked top-level values (``regimes``: the mapping). Errors
    name the key and, for a sub-grid, its index (``grids[1].regimes``).
    """
    regime_names = tuple(top.get("regimes") or ())
    top_combos = _combos(top, "the top level")
    if top_combos is None and top.get("models") and top.get("tasks"):
        top_combos = tuple((m, t) for m in top["models"] for t in top["tasks"])
    resolved = []
    for i, spec in enumerate(grids or [{}]):
        where = f"grids[{i}]" if grids else ""
        if grids:
            if not isinstance(spec, Mapping):
                raise GridError(f"{where} must be a mapping with keys from {list(GRID_KEYS)}, got {spec!r}")
            unknown = sorted(set(spec) - set(GRID_KEYS))
            if unknown:
                raise GridError(f"{where}: unknown key(s) {unknown}; known: {list(GRID_KEYS)}")
            spec = _checked(spec, where)
        combos = _combos(spec, where)
        if combos is None and (spec.get("models") or spec.get("tasks")):
            models, tasks = spec.get("models") or top.get("models"), spec.get("tasks") or top.get("tasks")
            missing = [k for k, v in (("models", models), ("tasks", tasks)) if not v]
            if missing:
                raise GridError(f"{where}: missing key(s) {missing} (set neither there nor at the top level)")
            combos = tuple((m, t) for m in models for t in tasks)
        combos = combos or top_combos
        conditions = spec.get("conditions") or top.get("conditions")
        if conditions == "all":  # every registered condition (mirage.study.preset.ALL_CONDITIONS)

            conditions = tuple(CONDITIONS)
        missing = [k for k, v in (("models/tasks or pairs", combos), ("conditions", conditions)) if not v]
        if missing:
            raise GridError(f"{where}: missing key(s) {missing} (set neither there nor at the top level)"
                            if grids else f"missing preset key(s) {missing}")
        regimes = spec.get("regimes") or regime_names or (NO_REGIME,)
        unknown = [r for r in regimes if r != NO_REGIME and r not in regime_names]
        if unknown:
            raise GridError(f"{where}.regimes: unknown regime(s) {unknown}; defined in regimes: {list(regime_names)}")
        seeds = spec.get("seeds") or top["seeds"]
        resolved.append(Grid(tuple(combos), tuple(conditions), tuple(regimes), tuple(seeds)))
    return resolved


def _checked(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A sub-grid's values, each checked for its type."""
    out = {}
    for key, value in spec.items():
        if key == "pairs":
            out[key] = check_pairs(value, f"{where}.pairs")
        elif key == "conditions" and value == "all":
            out[key] = value  # every registered condition, expanded in resolve_grids
        elif value is not None:
            out[key] = check_list(value, f"{where}.{key}", int if key == "seeds" else str)
            if not out[key]:
                raise GridError(f"{where}.{key} is empty")
    return out


def unique_cells(grids: Sequence[Grid]) -> list:
    """The union of the grids' cells, in order, each once."""
    return list(dict.fromkeys(c for g in grids for c in g.cells()))
