"""Answer checkers, one per dataset family, and which data_source each one scores.

A ``Checker`` decides whether one response's answer is correct. It has a typed
options dataclass whose fields are ``compute_score`` keywords (``math_checker``,
``synlogic_path``, ...): an option no checker knows is an error naming it, never
silently ignored; ``mirage eval``'s checker flags are generated from these dataclasses
(``add_option_flags``; a field's ``metadata`` may give ``help``, ``choices`` and
``path=True``). A checker also declares the columns it adds to every ``compute_score``
result (``result_columns``) and the options an evaluation records even at their
default (``recorded_options``); no code outside the checker's own file names them.
Checks that may hang or run foreign code go through ``mirage.rewards.worker`` (roles
are import strings, ``module:function``).

Data sources are routed to checkers by ``register_source``: task files declare the
data sources their rows carry (``mirage.tasks``), so adding a task adds its routes.

    CHECKERS                 the registry (name -> Checker)
    register_source(match, checker)   match: a data_source string, or a predicate
    routed(data_source)      -> the checker name routed so far (``mirage.rewards.routing.route``
                                loads the tasks first and returns the Checker)
    result_values(checker, options, verdict) -> every registered checker's result columns

``mirage.rewards.routing`` answers the questions about every loaded task: ``route``,
``parse_options``, ``result_keys``, ``recorded_options``, ``add_option_flags`` /
``options_from_args`` (the CLI flags of every checker option).

The shipped checkers (code, exact, korbench, math, synlogic) register themselves when their
modules are imported, which ``mirage.tasks`` does.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Sequence

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
    ``result_columns``: column name -> ``fn(options, verdict)``, added to every ``compute_score``
    result (None on rows of other checkers: verl stacks results across a batch).
    ``recorded_options``: options an evaluation records in its settings even at their default
    (KOR-Bench's scoring mode: two modes, so every evaluation says which it used).
    ``procedure(pred, ground_truth, extra_info) -> str``: which procedure an answer follows, where
    the family knows several (the testbed: one of ``PROCEDURES``); None elsewhere.
    ``vote_column``: one of its ``result_columns`` whose value stands for the answer in majority vote
    (responses with equal values vote together; None: no vote), where answers are to be compared by what
    they do rather than what they say: code, whose column is the program's outputs on the row's test
    inputs. None: the answer (``pred``) votes, grouped by ``cluster``.
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
    result_columns: Mapping[str, Callable[[Any, Verdict], Any]] = field(default_factory=dict)
    recorded_options: tuple[str, ...] = ()
    procedure: Callable[[Any, Any, Any], str] | None = None
    vote_column: str | None = None


# the keys every compute_score result has, whatever the checker; checkers' own columns go between them
BASE_RESULT_KEYS = ("score", "acc", "format", "pred")
TAIL_RESULT_KEYS = ("error", "procedure")


def _validate(checker: Checker) -> None:
    if not dataclasses.is_dataclass(checker.options):
        raise RegistryError(f"checker {checker.name!r}: options must be a dataclass, got {checker.options!r}")
    own = {f.name for f in dataclasses.fields(checker.options)}
    bad = [o for o in checker.recorded_options if o not in own]
    if bad:
        raise RegistryError(f"checker {checker.name!r}: recorded_options {bad} are not fields of "
                            f"{checker.options.__name__}")
    if checker.vote_column is not None and checker.vote_column not in checker.result_columns:
        raise RegistryError(f"checker {checker.name!r}: vote_column {checker.vote_column!r} is not one of its "
                            f"result_columns {sorted(checker.result_columns)}")
    for column in checker.result_columns:
        if column in BASE_RESULT_KEYS + TAIL_RESULT_KEYS:
            raise RegistryError(f"checker {checker.name!r}: result column {column!r} is one of compute_score's "
                                "own keys")
        other = next((c.name for c in CHECKERS.values() if c.name != checker.name and column in c.result_columns), None)
        if other:
            raise RegistryError(f"checker {checker.name!r}: result column {column!r} is already checker {other!r}'s")
    owners = option_owners()
    for f in dataclasses.fields(checker.options):
        owner = owners.get(f.name)
        if owner not in (None, checker.name):
            raise RegistryError(f"checker {checker.name!r}: option {f.name!r} is already an option of checker {owner!r}")
    for hook in _ON_REGISTER:  # caches above this module hold every checker's dataclass or columns
        hook()
    _columns.cache_clear()


_ON_REGISTER: list[Callable[[], None]] = []  # cache_clear of caches built from the registered checkers


def on_register(hook: Callable[[], None]) -> None:
    """Call ``hook`` whenever a checker is registered (``mirage.rewards.routing`` clears its caches)."""
    _ON_REGISTER.append(hook)


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
    return {f.name: c.name for c in CHECKERS.values() for f in dataclasses.fields(c.options)}


@functools.lru_cache(maxsize=8)
def _columns(names: tuple[str, ...]) -> tuple[tuple[str, str, Callable[[Any, Verdict], Any]], ...]:
    return tuple((column, name, fn) for name in names for column, fn in CHECKERS[name].result_columns.items())


def result_values(checker: Checker, options: Any, verdict: Verdict) -> dict[str, Any]:
    """Every registered checker's result columns for one response of ``checker`` (None for the others')."""
    return {column: fn(options, verdict) if owner == checker.name else None
            for column, owner, fn in _columns(tuple(CHECKERS))}


def default_cluster(answers: Sequence[str], data_source: str, options: Any, release_faithful: bool) -> list[int]:
    """Equal after stripping: each answer's label is the index of its first equal."""
    first: dict[str, int] = {}
    return [first.setdefault(a.strip(), i) for i, a in enumerate(answers)]
