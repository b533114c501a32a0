"""Which checker scores a data source, and the checkers' options: questions about every loaded task.

The task files declare the routes (``mirage.tasks``), so these load every registry entry first (once per
process: ``mirage.registry.load_all``, the shipped task modules and the plugins, imported by name).

    route(data_source)       -> Checker (a ``val/`` prefix is ignored)
    option_names()           -> {option: the checker it belongs to}
    parse_options(options)   -> {checker name: options dataclass}, validated once
    result_columns() / result_keys() -> the columns of a compute_score result
    recorded_options()       -> {option: default} an evaluation records in its settings
    add_option_flags(parser) / options_from_args(args): the CLI flags of every checker option
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

from mirage.registry import load_all
from mirage.rewards.checkers import (BASE_RESULT_KEYS, CHECKERS, TAIL_RESULT_KEYS, Checker, on_register,
                                     option_owners, routed, routes)


def route(data_source: str) -> Checker:
    """The checker that scores ``data_source``; an error naming the known sources otherwise."""
    load_all()  # the task files declare the routes
    name = routed(str(data_source))
    if name is None:
        known = sorted({m for m in routes() if isinstance(m, str)})
        patterns = sorted({getattr(m, "__doc__", None) or getattr(m, "__name__", "?") for m in routes()
                           if not isinstance(m, str)})
        raise KeyError(f"unknown data_source {data_source!r}: no task declares it; known: {known}"
                       + (f", and {'; '.join(p.strip().splitlines()[0] for p in patterns)}" if patterns else ""))
    return CHECKERS[name]


def option_names() -> dict[str, str]:
    """Every checker option -> the checker it belongs to."""
    load_all()
    return option_owners()


@functools.lru_cache(maxsize=256)
def _parse(items: tuple, checkers: tuple[str, ...]) -> Mapping[str, Any]:
    owners = option_names()
    per: dict[str, dict[str, Any]] = {}
    for key, value in items:
        if key not in owners:
            raise ValueError(f"unknown reward option {key!r}; checker options: "
                            + "; ".join(f"{c}: {', '.join(sorted(k for k, o in owners.items() if o == c))}"
                                        for c in sorted(set(owners.values()))))
        per.setdefault(owners[key], {})[key] = value
    out = {}
    for name in CHECKERS:
        checker = CHECKERS[name]
        try:
            out[name] = checker.options(**per.get(name, {}))
        except (TypeError, ValueError) as e:
            raise ValueError(f"checker {name!r} options {per.get(name, {})}: {e}") from None
    return out


def parse_options(options: Mapping[str, Any]) -> Mapping[str, Any]:
    """{checker name: its options dataclass}; an unknown option is a ValueError naming it."""
    load_all()
    items = tuple(sorted(options.items()))
    try:
        hash(items)
    except TypeError:  # an unhashable value (a list): parse without the cache
        return _parse.__wrapped__(items, tuple(CHECKERS))
    return _parse(items, tuple(CHECKERS))  # keyed by the registered checkers: one removed or added is a miss


on_register(_parse.cache_clear)  # a checker registered again under its name may change its options


def result_columns() -> tuple[str, ...]:
    """The columns the registered checkers add to ``compute_score``'s result, in registration order."""
    load_all()
    return tuple(dict.fromkeys(c for checker in CHECKERS.values() for c in checker.result_columns))


def result_keys() -> tuple[str, ...]:
    """Every key of a ``compute_score`` result: its own, with the checkers' columns before error / procedure."""
    return BASE_RESULT_KEYS + result_columns() + TAIL_RESULT_KEYS


def recorded_options() -> dict[str, Any]:
    """{option: its default} of every option a checker asks an evaluation to record even when not given."""
    load_all()
    out = {}
    for checker in CHECKERS.values():
        defaults = {f.name: f.default for f in dataclasses.fields(checker.options)}
        out.update({name: defaults[name] for name in checker.recorded_options})
    return out


# --- the command line: one flag per checker option, generated from the options dataclasses ------
def _flag_type(name: str, hint: Any, meta: Mapping[str, Any]) -> Callable[[str], Any]:
    args = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
    base = args[0] if len(args) == 1 else str
    if meta.get("path"):
        def parse(text: str) -> str:
            return str(Path(text).expanduser().resolve())
    elif base is bool:
        def parse(text: str) -> bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
    elif base in (int, float):
        def parse(text: str) -> Any:
            return base(text)
    else:
        def parse(text: str) -> str:
            return text
    parse.__name__ = name  # argparse names the option in its error
    return parse


def option_fields() -> list[tuple[Checker, Any, Any]]:
    """(checker, dataclass field, type hint) of every checker option, checkers in registration order."""
    load_all()
    out = []
    for checker in CHECKERS.values():
        hints = typing.get_type_hints(checker.options)
        out += [(checker, f, hints.get(f.name, str)) for f in dataclasses.fields(checker.options)]
    return out


def add_option_flags(parser: Any) -> None:
    """Add ``--<option>`` for every checker option (underscores as dashes), in an argument group."""
    group = parser.add_argument_group("checker options (passed to compute_score; default: the checker's own)")
    for checker, f, hint in option_fields():
        meta = dict(f.metadata)
        default = f.default if f.default is not dataclasses.MISSING else None
        helptext = meta.get("help") or f"{checker.name} checker option {f.name}"
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                           type=_flag_type(f.name, hint, meta), choices=meta.get("choices"),
                           help=f"{helptext} (checker {checker.name!r}; default {default!r})")


def options_from_args(args: Any) -> dict[str, Any]:
    """The checker options given on the command line (``add_option_flags``), by option name."""
    return {f.name: getattr(args, f.name) for _, f, _ in option_fields() if getattr(args, f.name, None) is not None}
