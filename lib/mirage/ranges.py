"""Numeric ranges (every number a user can set is finite and inside a range stated once) and the types of
notebook parameters (``check_parameters``).

Each settings dataclass keeps a table ``{field: Range}`` next to it (``mirage.recipes.RANGES``,
``mirage.runs.config.RANGES``, ``mirage.evaluate.core.EVAL_RANGES``, ``mirage.study.preset``'s
``EVAL_RANGES`` / ``ONE_SHOT_RANGES`` / ``PRESET_RANGES``); ``check_fields`` checks every field of
an object against its table, ``Range.check`` one value, and a CLI flag takes ``flag_type(range)``
so that argparse's one-line error names the flag. docs/engine.md, docs/evaluation.md and
docs/study.md list the ranges (tests keep them equal to the tables).

    Range(0, 1, low_open=True)            # 0 < x <= 1
    Range(1, 1024, integer=True)          # an integer 1..1024
    Range(1, 1024, integer=True, none_ok=True)   # or None (a default chosen later)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping

SEED_MAX = 2**32 - 1  # numpy's legacy seeding (RandomState, np.random.seed) takes 0..2**32-1: the narrowest library


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    integer: bool = False
    low_open: bool = False  # low itself is excluded
    high_open: bool = False  # high itself is excluded
    none_ok: bool = False  # None is allowed (a default chosen later)

    def interval(self) -> str:
        """'[1, 1024]', '(0, 1]': how the docs state it."""
        return (f"{'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"
                + (" (integer)" if self.integer else ""))

    def __str__(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        low = f"{'>' if self.low_open else '>='} {_num(self.low)}"
        high = f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return f"{kind} {low} and {high}"

    def ok(self, value: Any) -> bool:
        if value is None:
            return self.none_ok
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.integer and not isinstance(value, numbers.Integral):
            return False
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def check(self, key: str, value: Any, prefix: str = "") -> Any:
        """``value`` if it is in range, else a ValueError naming ``prefix + key``."""
        if not self.ok(value):
            raise ValueError(f"{prefix}{key}: must be {self}{' (or None)' if self.none_ok else ''}, got {value!r}")
        return value


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def check_fields(obj: Any, ranges: Mapping[str, Range], prefix: str = "", quote: bool = False) -> None:
    """Every field of ``obj`` (a dataclass, or a mapping) that has a range is inside it; else an error naming it
    (``prefix`` + the key, ``quote``: as 'key')."""
    values = obj if isinstance(obj, Mapping) else {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    for key, rng in ranges.items():
        if key in values:
            rng.check(repr(key) if quote else key, values[key], prefix)


def flag_type(rng: Range) -> Callable[[str], Any]:
    """An argparse ``type`` for a numeric flag: its error (``argument --x: ...``) names the flag and the range."""
    def parse(text: str) -> Any:
        try:
            value = int(text) if rng.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rng}, got {text!r}") from None
        if not rng.ok(value):
            raise argparse.ArgumentTypeError(f"must be {rng}, got {text}")
        return value

    parse.__name__ = "integer" if rng.integer else "number"
    return parse


def count_flag(high: int) -> Callable[[str], int]:
    """``flag_type`` of a count: an integer 1..high."""
    return flag_type(Range(1, high, integer=True))


def table_rows(ranges: Mapping[str, Range]) -> list[str]:
    """Markdown rows ``| key | range |`` of a table of ranges (what the docs hold)."""
    return [f"| `{key}` | {rng.interval()}{' or unset' if rng.none_ok else ''} |" for key, rng in ranges.items()]


# shared by evaluation, the study preset and the run settings (each table names them)
SEED = Range(0, SEED_MAX, integer=True)
SAMPLES = Range(1, 2**20, integer=True)  # samples per problem
SAMPLE_TEMPERATURE = Range(0, 10)  # 0: greedy
TOP_P = Range(0, 1, low_open=True)
TOKENS = Range(1, 2**20, integer=True)  # response tokens
THREADS = Range(1, 1024, integer=True, none_ok=True)


# --- notebook parameters: the types the notebooks' parameter cells promise -----------------------
_KIND_NAMES = {list: "a list", dict: "a mapping", int: "an integer", float: "a number", str: "a string",
               bool: "true or false"}


def check_parameters(values: Mapping[str, Any], kinds: Mapping[str, type], what: str = "notebook parameter") -> None:
    """Each of ``values`` named in ``kinds`` has that type (list, dict, int, float, str, bool); else a ValueError
    naming it that shows the YAML form. ``papermill -p models '["dial-90"]'`` passes the *string*
    '["dial-90"]'; lists and mappings go in as YAML: ``papermill -y 'models: [dial-90]'`` (or ``-f params.yaml``)."""
    for name, kind in kinds.items():
        if name not in values or _is(values[name], kind):
            continue
        value = values[name]
        example = f"{name}: {_yaml_example(value, kind)}"
        raise ValueError(f"{what} {name!r}: expected {_KIND_NAMES[kind]}, got {type(value).__name__} {value!r}; "
                         f"papermill's -p passes text as it is: give it as YAML, papermill -y '{example}' "
                         f"(or in a -f parameters file)")


def _is(value: Any, kind: type) -> bool:
    if kind is list:
        return isinstance(value, (list, tuple))
    if kind is dict:
        return isinstance(value, Mapping)
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, numbers.Real)
    return isinstance(value, kind)


def _yaml_example(value: Any, kind: type) -> str:
    """The value as a YAML flow literal when the string parses as one of the right kind, else a template."""
    import yaml

    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = None
        if _is(parsed, kind):
            return yaml.safe_dump(parsed, default_flow_style=True, width=1 << 16).strip().removesuffix("...").strip()
    return {list: "[a, b]", dict: "{key: value}"}.get(kind, "<value>")
