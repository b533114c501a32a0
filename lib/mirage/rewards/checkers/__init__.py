"""Answer checkers, one per dataset family, and which data_source each one scores.

A ``Checker`` decides whether one response's answer is correct. It has a typed
options dataclass whose fields are ``compute_score`` keywords (``math_checker``,
``korbench_mode``, ``synlogic_path``, ...): an option no checker knows is an error
naming it, never silently ignored. Checks that may hang or run foreign code go
through ``mirage.rewards.worker`` (roles are import strings, ``module:function``).

Data sources are routed to checkers by ``register_source``: task files declare the
data sources their rows carry (``mirage.tasks``), so adding a task adds its routes.

    CHECKERS                 the registry (name -> Checker)
    register_source(match, checker)   match: a data_source string, or a predicate
    routed(data_source)      -> the checker name routed so far (``mirage.rewards.routing.route``
                                loads the tasks first and returns the Checker)

The shipped checkers (code, exact, korbench, math, synlogic) register themselves when their
modules are imported, which ``mirage.tasks`` does.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

from mirage.registry import Registry, RegistryError


# What a task with a known misconception can say of an answer (Verdict.procedure): it follows the
# correct procedure, the buggy one, or neither.
PROCEDURES = ("correct", "buggy", "neither")


class Verdict(NamedTuple):
    acc: bool
    pred: str | None  # the answer as the checker read it (None: no answer)
    error: str | None = None  # why the check itself failed (timeout, crash); the response scores 0
    # which procedure the answer follows, where the task knows more than one (the testbed:
    # "correct" / "buggy" / "neither"); None elsewhere
    procedure: str | None = None
    # what a checker can say beyond acc (the code checker: share of tests passed, the first
    # failure's reason, the sandbox's isolation level); None elsewhere
    details: dict | None = None


@dataclass(frozen=True)
class NoOptions:
    """A checker without options."""


@dataclass(frozen=True)
class Checker:
    """How one family of data sources is scored.

    ``check(data_source, text, answer, ground_truth, extra_info, options, release_faithful) -> Verdict``:
    ``text`` is the whole response, ``answer`` the inside of its ``<answer>`` block (None if absent).
    ``cluster(answers, data_source, options, release_faithful) -> labels`` groups equivalent answers
    for majority vote (default: equal after stripping). ``setup_problem(options)`` says why the
    checker cannot run in this environment (a missing checkout), or None. ``env_vars``: settings
    the checker reads, forwarded to verl's remote scoring processes.
    ``release_incorrect_is_ground_truth``: the released "incorrect" reward of this family
    rewarded correct answers (a release defect, reproduced only with ``release_faithful``).
    ``lenient_answer(text, data_source, options) -> str | None``: the answer read from the whole
    response whatever its format (e.g. the last number), passed to ``check`` as ``answer`` to score
    format-free accuracy (``mirage.rewards.lenient``); None: this family defines no lenient reading
    (its format-free accuracy is NaN on a response that breaks the format).
    """

    name: str
    check: Callable[..., Verdict]
    options: type = NoOptions
    cluster: Callable[..., list[int]] | None = None
    setup_problem: Callable[[Any], str | None] | None = None
    env_vars: tuple[str, ...] = ()
    release_incorrect_is_ground_truth: bool = False
    summary: str = ""
    lenient_answer: Callable[[str, str, Any], str | None] | None = None


def _validate(checker: Checker) -> None:
    if not dataclasses.is_dataclass(checker.options):
        raise RegistryError(f"checker {checker.name!r}: options must be a dataclass, got {checker.options!r}")
    for f in dataclasses.fields(checker.options):
        owner = _OPTION_OWNER.get(f.name)
        if owner not in (None, checker.name):
            raise RegistryError(f"checker {checker.name!r}: option {f.name!r} is already an option of checker {owner!r}")
    for f in dataclasses.fields(checker.options):
        _OPTION_OWNER[f.name] = checker.name


_OPTION_OWNER: dict[str, str] = {}  # option name -> the checker it belongs to
CHECKERS: Registry[Checker] = Registry("checker", validate=_validate)
_ROUTES: list[tuple[Any, str]] = []  # (data_source or predicate, checker name), in registration order


def register_checker(checker: Checker) -> Checker:
    return CHECKERS.register(checker)


def register_source(match: str | Callable[[str], bool], checker: str) -> None:
    """Rows whose data_source equals ``match`` (or satisfies it) are scored by ``checker``."""
    if (match, checker) not in _ROUTES:
        _ROUTES.append((match, checker))
    _route_cached.cache_clear()


def _matches(match: Any, data_source: str) -> bool:
    return match == data_source if isinstance(match, str) else bool(match(data_source))


@functools.lru_cache(maxsize=4096)
def _route_cached(data_source: str) -> str | None:
    for candidate in (data_source, data_source.removeprefix("val/")):
        for match, checker in _ROUTES:
            if _matches(match, candidate):
                return checker
    return None


def routed(data_source: str) -> str | None:
    """The name of the checker routed to ``data_source`` among the routes registered so far (no task
    is loaded: ``mirage.rewards.routing.route`` loads them and names the known sources when none)."""
    return _route_cached(str(data_source))


def routes() -> list[Any]:
    """Every registered route's match (a data_source string or a predicate), in registration order."""
    return [m for m, _ in _ROUTES]


def option_owners() -> dict[str, str]:
    """Every option of the checkers registered so far -> the checker it belongs to."""
    return dict(_OPTION_OWNER)


def default_cluster(answers: Sequence[str], data_source: str, options: Any, release_faithful: bool) -> list[int]:
    """Equal after stripping: each answer's label is the index of its first equal."""
    first: dict[str, int] = {}
    return [first.setdefault(a.strip(), i) for i, a in enumerate(answers)]
