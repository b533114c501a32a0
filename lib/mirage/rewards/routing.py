"""Which checker scores a data source, and the checkers' options: questions about every loaded task.

The task files declare the routes (``mirage.tasks``), so these load every registry entry first (once per
process: ``mirage.registry.load_all``, the shipped task modules and the plugins, imported by name).

    route(data_source)       -> Checker (a ``val/`` prefix is ignored)
    option_names()           -> {option: the checker it belongs to}
    parse_options(options)   -> {checker name: options dataclass}, validated once
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

from mirage.registry import load_all
from mirage.rewards.checkers import CHECKERS, Checker, option_owners, routed, routes


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
def _parse(items: tuple) -> Mapping[str, Any]:
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
    try:
        items = tuple(sorted(options.items()))
        hash(items)
    except TypeError:  # an unhashable value (a list): parse without the cache
        return _parse.__wrapped__(tuple(sorted(options.items())))
    return _parse(items)
