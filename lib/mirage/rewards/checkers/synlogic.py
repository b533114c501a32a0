"""SynLogic task verifiers, loaded from the user's SynLogic checkout.

The verifiers belong to SynLogic (github MiniMax-AI/SynLogic, MIT; not on PyPI),
so mirage ships none of them: point ``synlogic_path=`` (or ``$MIRAGE_SYNLOGIC_PATH``)
at a checkout whose root holds ``task2verifier.py`` (``verifier_classes``: task
name -> Verifier class) and ``base/data.py`` (``Data.from_json_str``).

Importing SynLogic prints, appends to ``sys.path`` and registers top-level
modules named ``base``, ``games`` and ``corpus``; some verifiers ``eval`` model
text and one accepts exponent towers. So the verifiers run only inside guarded
worker processes (``worker.py``) with a per-call timeout; the caller's
interpreter never imports them.

Game of 24 (task ``mathador``): SynLogic's verifier checks which numbers and
operators the expression uses but never its value (it compares the result with
itself). By default mirage also requires the value to equal the target,
computed exactly with ``safe_arith`` before the verifier (and its ``eval``) is
reached; ``release_faithful=True`` keeps the upstream behaviour.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from mirage.rewards import safe_arith, worker
from mirage.rewards.checkers import Checker, Verdict, register_checker

ENV_VAR = "MIRAGE_SYNLOGIC_PATH"
TIMEOUT_S = 5.0
ROLE = "mirage.rewards.checkers.synlogic:worker_handlers"  # the checkout's verifiers, in a guarded worker
HOW_TO_GET = (f"get one with `git clone https://github.com/MiniMax-AI/SynLogic` and pass "
              f"synlogic_path=<checkout> or set {ENV_VAR}=<checkout> (its requirements plus `markdown` "
              f"must be installed in this environment)")

# The SynLogic task names (keys of task2verifier.verifier_classes at commit 6794f97),
# so that a typo in data_source is an "unknown data_source" error, not a plugin error.
TASKS = frozenset("""
arrow_maze boolean_expressions buggy_tables calcudoko campsite cipher cryptarithm dyck_language
dyck_language_errors dyck_language_reasoning_errors futoshiki goods_exchange kukurasu math_path
mathador minesweeper norinori number_wall numbrix object_counting object_properties operation
skyscraper_puzzle space_reasoning space_reasoning_tree star_placement_puzzle sudoku survo
time_sequence web_of_lies word_sorting word_sorting_mistake wordscapes zebra_puzzle
gpqa_diamond arc_agi arc_agi_2
""".split())
EXTRA_PREFIXES = ("bbh_", "bbeh_")  # BIG-Bench (Extra) Hard keys in the same table


def task_name(data_source: str) -> str | None:
    """The verifier key for a data_source (``val/`` prefix stripped), or None if not SynLogic."""
    name = data_source[len("val/"):] if data_source.startswith("val/") else data_source
    return name if name in TASKS or name.startswith(EXTRA_PREFIXES) else None


def checkout(path: str | os.PathLike | None = None) -> Path:
    """The SynLogic checkout to use, validated."""
    raw = path if path is not None else os.environ.get(ENV_VAR)
    if not raw:
        raise FileNotFoundError(f"scoring a SynLogic task needs a SynLogic checkout; {HOW_TO_GET}")
    root = Path(raw).expanduser().resolve()
    for needed in ("task2verifier.py", "base/data.py"):
        if not (root / needed).is_file():
            raise FileNotFoundError(f"{root} is not a SynLogic checkout (no {needed}); {HOW_TO_GET}")
    return root


def _python_block(text: str) -> str:
    """The last ```python ...``` block, stripped (as SynLogic's game-of-24 verifier reads it), or ""."""
    last, pos = "", 0
    while True:
        start = text.find("```python", pos)
        end = -1 if start == -1 else text.find("```", start + len("```python"))
        if end == -1:
            return last
        last = text[start + len("```python"):end].strip()
        pos = end + 3


def mathador_value_ok(answer: str, metadata: dict) -> bool:
    """The corrected game-of-24 rule: the expression uses only + - * / and parentheses (no ``**``,
    ``//`` or ``%``, which the task's rules forbid) and its exact value equals the target."""
    value = safe_arith.evaluate(_python_block(answer), exact=True, operators=safe_arith.FOUR_OPERATIONS)
    return value is not None and value == Fraction(metadata["result"])


def is_correct(data_source: str, answer: str | None, extra_info: dict | None, *,
               release_faithful: bool = False, synlogic_path=None,
               timeout: float = TIMEOUT_S) -> tuple[bool, str | None]:
    """(correct, error) for the text inside ``<answer>`` of one SynLogic response."""
    task = task_name(data_source)
    if task is None:
        raise KeyError(f"{data_source!r} is not a SynLogic task")
    if not extra_info or "game_data_str" not in extra_info:
        raise KeyError(f"SynLogic row ({data_source}) has no extra_info['game_data_str']")
    game_data_str = extra_info["game_data_str"]
    try:
        game = json.loads(game_data_str)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"SynLogic row ({data_source}, index {extra_info.get('index')}): "
                         f"game_data_str is not JSON: {e}") from None
    root = str(checkout(synlogic_path))
    if task not in _tasks_in(root, timeout):
        raise KeyError(f"task {task!r} ({data_source}) is not in {root}/task2verifier.py verifier_classes")
    if answer is None:
        return False, None
    if task == "mathador" and not release_faithful:
        metadata = game.get("metadata") or {}
        if "result" not in metadata:
            raise KeyError(f"mathador row (index {extra_info.get('index')}) has no metadata['result'] (the target)")
        if not mathador_value_ok(answer, metadata):
            return False, None
    try:
        verdict = worker.call(ROLE, "verify",
                              {"task": task, "game_data_str": game_data_str, "answer": answer}, timeout, arg=root)
    except (worker.WorkerTimeout, worker.WorkerDied) as e:
        return False, f"synlogic: {e}"
    return bool(verdict), None


_TASKS_IN: dict[str, frozenset] = {}


def _tasks_in(root: str, timeout: float) -> frozenset:
    """The task names the checkout's verifier table holds (asked once per checkout)."""
    if root not in _TASKS_IN:
        _TASKS_IN[root] = frozenset(worker.call(ROLE, "tasks", {}, max(timeout, 30.0), arg=root))
    return _TASKS_IN[root]


# --- the checker ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SynlogicOptions:
    synlogic_path: str | None = field(default=None, metadata={  # a SynLogic checkout; None: $MIRAGE_SYNLOGIC_PATH
        "path": True, "help": "SynLogic checkout for logic verifiers (default: $MIRAGE_SYNLOGIC_PATH)"})
    synlogic_timeout: float = TIMEOUT_S

    def __post_init__(self):
        if not self.synlogic_timeout > 0:
            raise ValueError(f"synlogic_timeout must be > 0, got {self.synlogic_timeout}")


def check(data_source, text, answer, ground_truth, extra_info, options: SynlogicOptions,
          release_faithful: bool) -> Verdict:
    acc, error = is_correct(data_source, answer, extra_info, release_faithful=release_faithful,
                            synlogic_path=options.synlogic_path, timeout=options.synlogic_timeout)
    return Verdict(acc, answer, error)


def setup_problem(options: SynlogicOptions) -> str | None:
    try:
        checkout(options.synlogic_path)
    except FileNotFoundError as e:
        return str(e)
    return None


register_checker(Checker("synlogic", check, SynlogicOptions, setup_problem=setup_problem, env_vars=(ENV_VAR,),
                         summary="SynLogic's own task verifiers, from the user's checkout, in a guarded worker"))


# --- inside the worker process -----------------------------------------------------------
def worker_handlers(root: str) -> dict:
    import importlib
    import sys

    os.chdir(root)  # some verifiers open files relative to the checkout
    sys.path.insert(0, root)
    verifier_classes = importlib.import_module("task2verifier").verifier_classes
    Data = importlib.import_module("base.data").Data

    def verify(task: str, game_data_str: str, answer: str) -> float:
        # float(): verifiers return bool, 1.0 or 0 (and numpy bools, which JSON cannot carry).
        return float(verifier_classes[task]().verify(Data.from_json_str(game_data_str), answer))

    return {"verify": verify, "tasks": lambda: sorted(verifier_classes)}
