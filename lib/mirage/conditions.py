"""The study's conditions, defined once: a registry entry of a few lines each.

Every backend (the CPU testbed's local GRPO loop and verl on GPUs) reads a
``Condition`` from ``CONDITIONS``; nothing else in mirage names a condition. A
condition names:

* ``reward``    how responses are scored (a ``mirage.rewards.REWARDS`` entry, with its scope),
* ``estimator`` how scores become advantages (a ``mirage.objectives.ESTIMATORS`` entry),
* ``data``      which training rows are used (the full set, or one example duplicated),
* ``baseline``  the condition its gains are compared with (ground truth for every technique),
* ``colour``    how it looks in every figure.

Paper index (like TRL's): the paper's conditions (``paper=True``) map one to one onto
its released scripts; the others are extensions offered for comparison. A plugin adds
a condition with ``register_condition(Condition(...))``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from mirage.objectives import ESTIMATORS
from mirage.registry import Registry, RegistryError, load_plugins
from mirage.rewards import REWARDS, get_reward
from mirage.rewards.routing import option_names

DATA_REGIMES = ("full", "one_shot_selected", "one_shot_random")
BASE = "base"  # the pseudo-condition of the untrained model (step 0) in every table and figure
BASE_COLOUR = "#7f7f7f"  # the base model in every figure: no condition may take it
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Condition:
    """One experimental condition of the study."""

    name: str
    rq: str  # "RQ1" | "RQ2" | "RQ3" (or a plugin's own label)
    reward: str
    estimator: str = "grpo"
    data: str = "full"
    reward_kwargs: Mapping[str, Any] = field(default_factory=dict)
    estimator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    baseline: str = "ground_truth"  # the condition every "surprising technique" is compared with
    colour: str = ""  # '#rrggbb', required: unique among the conditions and not the base model's BASE_COLOUR
    paper: bool = False  # one of the paper's own conditions
    summary: str = ""
    # its full-data runs are the history one-shot selection ranks examples by (the per-example accuracy of a
    # ground-truth run); exactly one condition says so (``history_condition``). Not in ``to_dict``: where a
    # history comes from is no property of a run.
    one_shot_history: bool = False

    def __post_init__(self):
        # Freeze the mappings so a backend cannot mutate the registry by accident.
        object.__setattr__(self, "reward_kwargs", MappingProxyType(dict(self.reward_kwargs)))
        object.__setattr__(self, "estimator_kwargs", MappingProxyType(dict(self.estimator_kwargs)))

    @property
    def reward_spec(self):
        return get_reward(self.reward)

    @property
    def reward_scope(self) -> str:
        """'response', 'group' or 'logprob': what the reward needs to be computed."""
        return self.reward_spec.scope

    @property
    def is_baseline(self) -> bool:
        return self.name == self.baseline

    def score_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """kwargs for ``mirage.rewards.compute_score`` (verl's ``reward_kwargs``).

        Group and log-prob rewards still score each response with their per-response
        reward (ground truth): that gives ``acc`` / ``pred`` for logging and for the
        pseudo-label; the engine then re-scores the group through the reward registry.
        """
        return {"variant": self.reward_spec.variant, **self.reward_kwargs, **overrides}

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: it deep-copies the read-only mappings, which cannot be pickled
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "one_shot_history"}
        d["reward_kwargs"] = dict(self.reward_kwargs)
        d["estimator_kwargs"] = dict(self.estimator_kwargs)
        d["reward_scope"] = self.reward_scope
        return d


def _validate(c: Condition) -> None:
    where = f"condition {c.name!r}"
    if c.reward not in REWARDS:
        raise RegistryError(f"{where}: unknown reward {c.reward!r}; known: {', '.join(REWARDS)}")
    if c.estimator not in ESTIMATORS:
        raise RegistryError(f"{where}: unknown estimator {c.estimator!r}; known: {', '.join(ESTIMATORS)}")
    if c.data not in DATA_REGIMES:
        raise RegistryError(f"{where}: unknown data regime {c.data!r}; known: {DATA_REGIMES}")
    # the checkers' options only when a kwarg is not the reward's own (they load every task: not at import)
    bad = set(c.reward_kwargs) - set(REWARDS[c.reward].options)
    bad = bad - set(option_names()) if bad else bad
    if bad:
        raise RegistryError(f"{where}: reward_kwargs {sorted(bad)} are neither options of reward {c.reward!r} "
                            f"({sorted(REWARDS[c.reward].options)}) nor checker options")
    if c.estimator_kwargs:
        try:
            ESTIMATORS[c.estimator].config(c.estimator_kwargs)
        except KeyError as e:
            raise RegistryError(f"{where}: estimator_kwargs: {e.args[0]}") from None
    if c.one_shot_history:
        if c.data != "full":
            raise RegistryError(f"{where}: one_shot_history needs full-data runs, but its data regime is {c.data!r}")
        other = next((o.name for o in CONDITIONS.values() if o.one_shot_history and o.name != c.name), None)
        if other:
            raise RegistryError(f"{where}: one_shot_history is already condition {other!r}'s; only one may rank")
    # every figure draws a condition in its registry colour: checked here, not by a test of the shipped list
    if not isinstance(c.colour, str) or not _HEX_COLOUR.match(c.colour):
        raise RegistryError(f"{where}: colour must be a '#rrggbb' hex string, got {c.colour!r}")
    if c.colour.lower() == BASE_COLOUR:
        raise RegistryError(f"{where}: colour {c.colour} is the base model's (BASE_COLOUR); pick another")
    taken = {o.colour.lower(): o.name for o in CONDITIONS.values() if o.name != c.name}
    if c.colour.lower() in taken:
        raise RegistryError(f"{where}: colour {c.colour} is already condition {taken[c.colour.lower()]!r}'s; "
                            "every condition needs its own")


CONDITIONS: Registry[Condition] = Registry("condition", validate=_validate)


def register_condition(condition: Condition, replace: bool = False) -> Condition:
    return CONDITIONS.register(condition, replace=replace)


def get_condition(name: str) -> Condition:
    if name not in CONDITIONS:
        load_plugins()
    return CONDITIONS[name]


def history_condition() -> Condition:
    """The condition whose full-data runs one-shot selection ranks (``one_shot_history=True``)."""
    load_plugins()
    for condition in CONDITIONS.values():
        if condition.one_shot_history:
            return condition
    raise KeyError("no condition has one_shot_history=True: one-shot selection has no history to rank")


def _c(*args, **kwargs) -> Condition:
    return register_condition(Condition(*args, **kwargs))


# --- the registry: one short entry per condition --------------------------------
# RQ1: how critical is the reward signal?
_c("ground_truth", "RQ1", "ground_truth", colour="#000000", paper=True, one_shot_history=True,
   summary="format ok AND answer correct (standard RLVR)")
_c("random", "RQ1", "random", reward_kwargs={"p": 0.5}, colour="#e69f00", paper=True,
   summary="format ok AND an independent coin with p=0.5 per response")
_c("random_ungated", "RQ1", "random_ungated", reward_kwargs={"p": 0.5}, colour="#f5c46b",
   summary="an independent coin with p=0.5 per response, no format gate (Spurious Rewards)")
_c("incorrect", "RQ1", "incorrect", colour="#d55e00", paper=True,
   summary="format ok AND answer NOT correct")
_c("format", "RQ1", "format", colour="#8c564b", paper=True,
   summary="format ok, answer ignored")
_c("entropy_min", "RQ1", "entropy_min", colour="#9467bd", paper=True,
   summary="mean token log-prob of the response, group-normalised (entropy minimisation)")
_c("majority_vote", "RQ1", "majority_vote", colour="#cc79a7", paper=True,
   summary="format ok AND answer equals the group's majority answer (TTRL)")
# RQ2: is one example enough?
_c("one_shot", "RQ2", "ground_truth", data="one_shot_selected", colour="#0072b2", paper=True,
   summary="ground truth on the top historical-variance example, duplicated to the batch")
_c("one_shot_random", "RQ2", "ground_truth", data="one_shot_random", colour="#56b4e9", paper=True,
   summary="ground truth on one random example (seeded), duplicated to the batch")
# RQ3: does RL work with only negative (or only positive) samples?
_c("nsr", "RQ3", "ground_truth", estimator="masked_nsr", colour="#009e73", paper=True,
   summary="paper: GRPO advantages kept only where reward < 1 (masked, tokens still in normaliser)")
_c("psr", "RQ3", "ground_truth", estimator="masked_psr", colour="#bcbd22", paper=True,
   summary="paper: GRPO advantages kept only where reward > 0 (masked)")
_c("nsr_pm1", "RQ3", "ground_truth", estimator="nsr_pm1", colour="#17becf",
   summary="Zhu et al.: advantage -1 on wrong responses, correct ones dropped from the batch")
_c("psr_pm1", "RQ3", "ground_truth", estimator="psr_pm1", colour="#f0e442",
   summary="Zhu et al.: advantage +1 on correct responses, wrong ones dropped from the batch")
_c("w_reinforce", "RQ3", "ground_truth", estimator="w_reinforce", estimator_kwargs={"lam": 0.1}, colour="#2ca02c",
   summary="Zhu et al.: +lambda on correct (lambda=0.1), -1 on wrong, no group normalisation")

# The conditions of the paper itself (the rest are extensions offered for comparison).
PAPER_CONDITIONS = tuple(name for name in CONDITIONS if CONDITIONS[name].paper)


def condition_order(conditions: Iterable[str]) -> list[str]:
    """Conditions in registry order ("base" first), names the registry does not know last."""
    names = list(dict.fromkeys(conditions))
    known = [c for c in (BASE, *CONDITIONS) if c in names]
    return known + sorted(c for c in names if c not in known)
