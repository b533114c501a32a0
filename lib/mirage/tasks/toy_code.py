"""The testbed's code task, toy-code: write a one-line Python function; scored by running it in the sandbox.

A problem asks for ``f(n)``, the sum of a small expression in ``i`` over an inclusive range::

    f(n)=sum 3*i+2, i=1..n

CORRECT procedure: Python's ``range`` excludes its stop, so an inclusive ``i=L..n`` is
``range(L,n+1)``. BUGGY procedure (the misconception, the classic off-by-one): reading ``range``'s
stop as inclusive, ``range(L,n)``. A response shows one procedure::

    <think>range(1,n+1)</think> <answer>def f(n):
     return sum(3*i+2 for i in range(1,n+1))</answer>

The answer is the program itself (the code checker takes the whole ``<answer>`` block as the
program when it holds no fenced block; a fenced ```python block is accepted too). The row's
ground truth is the tests (``f`` called on n = 2, 3, 5, function-call form) and is scored by the
real code checker (``mirage.rewards.checkers.code``: the sandbox) through ``compute_score``, on
both engines. Problems are kept only where the buggy program fails a test (the missing last term
is not 0 on every test), so the two procedures never both pass. Every row carries its correct
program in ``extra_info.reference_solution`` and the buggy program's outputs in
``extra_info.buggy_outputs`` (the checker then says which procedure an answer follows).

Prompts are ~50 tokens and responses <= 70 with the testbed tokenizer (one token per character), so
a toy-code run needs ``max_response_length`` 80: the task says so (``response_tokens``), so ``mirage
train`` / ``mirage eval`` default to 80 on it (the testbed's 48 elsewhere), and the presets set it. Train and
test are disjoint by the same hash as toy-math / toy-logic (``mirage.tasks.toy.split_of``).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Iterator

from mirage.rewards.checkers import code as _code_checker  # noqa: F401  (registers the "code" checker)
from mirage.runs import write_json_atomic, write_parquet_atomic
from mirage.tasks import Task, dataset_path, register_task
from mirage.tasks.toy import DEFAULT_SEEDS, DEFAULT_SIZES, SPLITS, Problem, take_distinct

TASK = "toy-code"
FN_NAME = "f"
TEST_NS = (2, 3, 5)  # every test calls f(n); n >= the largest lower bound, so no range is empty by design
LOWER_BOUNDS = (0, 1, 2)
DEFAULT_DIFFICULTY = (2, 3)  # operands in the summed expression
DIFFICULTY_RANGE = (2, 4)
MAX_RESPONSE_TOKENS = 80  # the longest response (difficulty 4) is 70 tokens with its </s>; prompts are <= 57
# Bump when the generator's output changes (ensure_dataset then regenerates instead of reusing).
GENERATOR_VERSION = 1


def _term(rng: random.Random, difficulty: int) -> str | None:
    """A chain of ``difficulty`` operands (``i`` or a digit 1-9) joined by + - *, with at least one ``i``."""
    operands = [rng.choice(("i",) + tuple("123456789")) for _ in range(difficulty)]
    if "i" not in operands:
        return None
    ops = [rng.choice("+-*") for _ in range(difficulty - 1)]
    return "".join(f"{a}{o}" for a, o in zip(operands, ops)) + operands[-1]


def program(term: str, lower: int, correct: bool) -> str:
    stop = "n+1" if correct else "n"
    return f"def {FN_NAME}(n):\n return sum({term} for i in range({lower},{stop}))"


def _value(term: str, lower: int, n: int, correct: bool) -> int:
    # the term is a chain of digits, i and + - * (made here), so eval sees nothing else
    return sum(eval(term, {"__builtins__": {}}, {"i": i}) for i in range(lower, n + 1 if correct else n))


def _candidate(rng: random.Random, difficulty: int) -> Problem | None:
    term = _term(rng, difficulty)
    if term is None:
        return None
    lower = rng.choice(LOWER_BOUNDS)
    outputs = [_value(term, lower, n, True) for n in TEST_NS]
    buggy = [_value(term, lower, n, False) for n in TEST_NS]
    if outputs == buggy:  # the last term is 0 on every test: the procedures would agree
        return None
    question = f"{FN_NAME}(n)=sum {term}, i={lower}..n"
    return Problem(TASK, question, program(term, lower, True), f"range({lower},n+1)", program(term, lower, False),
                   f"range({lower},n)", difficulty)


def tests_of(problem: Problem, correct: bool = True) -> dict[str, Any]:
    """The function-call tests of ``problem`` (the outputs of the correct, or the buggy, program)."""
    source = problem.answer if correct else problem.buggy_answer
    namespace: dict[str, Any] = {}
    exec(source, {"__builtins__": {"sum": sum, "range": range}}, namespace)  # our own generated program
    fn = namespace[FN_NAME]
    return {"inputs": [[n] for n in TEST_NS], "outputs": [fn(n) for n in TEST_NS], "fn_name": FN_NAME}


def check_difficulties(difficulties) -> tuple[int, ...]:
    difficulties = tuple(DEFAULT_DIFFICULTY if difficulties is None else difficulties)
    lo, hi = DIFFICULTY_RANGE
    if not difficulties or any(not lo <= int(d) <= hi for d in difficulties):
        raise ValueError(f"{TASK}: difficulties must be in [{lo}, {hi}], got {difficulties}")
    return tuple(int(d) for d in difficulties)


def iter_problems(split: str, seed: int, difficulties=None) -> Iterator[Problem]:
    """An endless, deterministic stream of problems of one split (may repeat)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {SPLITS}")
    difficulties = check_difficulties(difficulties)
    rng = random.Random(f"{TASK}/{split}/{seed}")
    while True:
        problem = _candidate(rng, rng.choice(difficulties))
        if problem is not None and problem.split == split:
            yield problem


def generate(split: str, n: int, seed: int = 0, difficulties=None) -> list[Problem]:
    """``n`` distinct problems of one split, deterministic in (split, seed, difficulties)."""
    return take_distinct(iter_problems(split, seed, difficulties), n,
                         f"{TASK}/{split}: could not find {n} distinct problems (difficulties {difficulties})")


def to_row(problem: Problem, index: int, split: str) -> dict[str, Any]:
    """One verl-schema row; the ground truth is the JSON text of the tests (the code checker's form)."""
    return {
        "data_source": TASK,
        "prompt": problem.prompt(),
        "ability": "code",
        "reward_model": {"style": "rule", "ground_truth": json.dumps(tests_of(problem))},
        "extra_info": {"index": index, "split": split, "difficulty": problem.difficulty, "question": problem.question,
                       "reference_solution": problem.answer, "buggy_solution": problem.buggy_answer,
                       "buggy_outputs": json.dumps(tests_of(problem, correct=False)["outputs"]),
                       "steps": problem.steps, "buggy_steps": problem.buggy_steps},
    }


def ensure_dataset(name: str, root: str | os.PathLike | None = None, n: int | None = None, seed: int | None = None,
                   difficulties=None, overwrite: bool = False) -> Path:
    """Write (atomically, once) and return ``toy-code_train`` / ``toy-code_test`` (as ``toy.ensure_dataset``:
    a file whose sidecar records another generator version or other arguments is regenerated)."""
    import pandas as pd  # why: pandas is heavy and only writing a dataset needs it

    task, _, split = name.rpartition("_")
    if task != TASK or split not in SPLITS:
        raise ValueError(f"not a {TASK} dataset: {name!r}; expected {TASK}_<split> with split in {SPLITS}")
    path = dataset_path(name, root)
    meta = path.with_suffix(".meta.json")
    try:
        recorded = json.loads(meta.read_text()) if meta.exists() else {}
    except (OSError, ValueError) as e:
        raise ValueError(f"{meta}: unreadable ({e}); delete it (and {path.name}) to regenerate the dataset") from None
    implicit = n is None and seed is None and difficulties is None
    if path.exists() and implicit and not recorded and not overwrite:
        return path
    n = int(recorded.get("n", DEFAULT_SIZES[split])) if n is None else int(n)
    seed = int(recorded.get("seed", DEFAULT_SEEDS[split])) if seed is None else int(seed)
    if difficulties is None and recorded.get("difficulties"):
        difficulties = recorded["difficulties"]
    spec = {"generator_version": GENERATOR_VERSION, "task": TASK, "split": split, "n": n, "seed": seed,
            "difficulties": list(check_difficulties(difficulties))}
    if path.exists() and not overwrite and recorded == spec:
        return path
    rows = [to_row(p, i, split) for i, p in enumerate(generate(split, n, seed, difficulties))]
    write_parquet_atomic(path, pd.DataFrame(rows))
    write_json_atomic(meta, spec)
    return path


register_task(Task(TASK, "testbed", train=f"{TASK}_train", evals=(f"{TASK}_test",), sources={TASK: "code"},
                   description="testbed: a one-line Python sum over an inclusive range, run in the sandbox "
                               "(generated; range(L,n+1) vs the off-by-one range(L,n))",
                   colour="#6b8e23", marker="^", ensure=lambda dataset, root: ensure_dataset(dataset, root),
                   response_tokens=MAX_RESPONSE_TOKENS))
