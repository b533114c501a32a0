"""The testbed's two tasks, toy-math and toy-logic: generated problems with exact verifiers.

* ``toy-math``: a chain of 3-5 single-digit operands joined by + - * ("5+3*4-2");
  every product (in either procedure) is of two single digits, every value in 0..99.
  CORRECT procedure: products first, then left to right. BUGGY procedure (the
  misconception): strictly left to right, ignoring precedence.
* ``toy-logic``: a Caesar shift of a random lowercase word ("Caesar +3: cab").
  CORRECT: shift every letter forward by k ("c+3=f a+3=d b+3=e"). BUGGY: shift it
  backward ("c-3=z ..."), misreading the direction. The answer
  space is 26**length, so guessing gives pass@k ~ 0.

Every problem is generated so that the two procedures give different answers
(``agreement_rate`` measures how often they would agree without that filter). A
response shows one procedure's steps: ``<think>STEPS</think> <answer>ANSWER</answer>``.
Pretraining on a mixture of correct and buggy solutions is the alignment dial
(see pretrain.py).

Train and test problems are disjoint by construction: a problem belongs to the
test split iff a hash of its canonical key falls in the test bucket.

``<task>_fresh`` is a second test set: test-bucket problems of another seed with every
problem of ``<task>_test`` removed. The contaminated testbed model (testbed/pretrain.py,
``LEAKED``) saw ``<task>_test`` in pretraining and never these; the task
``toy-math+fresh`` trains as toy-math and evaluates on both.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mirage.rewards.checkers import Checker, Verdict, register_checker
from mirage.rewards.checkers.exact import same
from mirage.rewards.lenient import after_think, last_number
from mirage.rewards.response import extract_answer
from mirage.runs import write_json_atomic, write_parquet_atomic
from mirage.tasks import Task, dataset_path, register_task



TASK_NAMES = ("toy-math", "toy-logic")
INSTRUCTION = "Think in <think> </think>, answer in <answer> </answer>."
SPLITS = ("train", "test")
TEST_BUCKETS = 10  # a problem is in "test" iff hash(key) % 100 < TEST_BUCKETS (10% of the space)
MATH_MAX_VALUE = 99  # every intermediate value of both procedures stays within 0..99
# ... and every product in either procedure is of two single digits: the times table
# and unsigned two-digit sums are all a tiny model must know (learnable in minutes)
LOGIC_MAX_SHIFT = 3  # toy-logic shifts k in 1..3 (26 x 3 x 2 letter facts: learnable by a tiny model)
_STEP_RE = re.compile(r"(-?\d+)([-+*])(\d+)=(-?\d+)")
DEFAULT_DIFFICULTY = {"toy-math": (3, 4), "toy-logic": (3, 4, 5)}
DIFFICULTY_RANGE = {"toy-math": (3, 5), "toy-logic": (2, 6)}  # operands / word length
DEFAULT_SIZES = {"train": 4000, "test": 200}
DEFAULT_SEEDS = {"train": 0, "test": 1}
FRESH = "fresh"  # <task>_fresh: never-leaked test-bucket problems (see the module docstring)
FRESH_SEED = 2
# Bump when a generator's output changes: datasets written by another version are
# regenerated instead of silently reused (ensure_dataset compares the sidecar).
GENERATOR_VERSION = 3


@dataclass(frozen=True)
class Problem:
    data_source: str  # "toy-math" | "toy-logic"
    question: str  # the problem text shown after the instruction
    answer: str  # the CORRECT procedure's answer (the ground truth)
    steps: str  # the CORRECT procedure's scratchpad
    buggy_answer: str  # the BUGGY procedure's answer
    buggy_steps: str
    difficulty: int

    @property
    def key(self) -> str:
        return f"{self.data_source}|{self.question}"

    @property
    def split(self) -> str:
        return split_of(self.key)

    def prompt(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{INSTRUCTION}\n\n{self.question}"}]

    def response(self, correct: bool = True) -> str:
        steps, answer = (self.steps, self.answer) if correct else (self.buggy_steps, self.buggy_answer)
        return format_response(steps, answer)


def format_response(steps: str, answer: str) -> str:
    return f"<think>{steps}</think> <answer>{answer}</answer>"


def split_of(key: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") % 100
    return "test" if bucket < TEST_BUCKETS else "train"


# --- toy-math ---------------------------------------------------------------------
def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _reduce(nums: list[int], ops: list[str], which) -> tuple[int, list[str]]:
    """Reduce the expression one operator at a time; ``which`` picks the next operator index."""
    nums, ops, steps = list(nums), list(ops), []
    while ops:
        i = which(ops)
        value = _apply(nums[i], ops[i], nums[i + 1])
        steps.append(f"{nums[i]}{ops[i]}{nums[i + 1]}={value}")
        nums[i:i + 2], ops[i:i + 1] = [value], []
    return nums[0], steps


def math_procedures(nums: list[int], ops: list[str]):
    """(correct value, correct steps, buggy value, buggy steps) of one expression."""
    correct = _reduce(nums, ops, lambda o: o.index("*") if "*" in o else 0)
    buggy = _reduce(nums, ops, lambda o: 0)
    return correct[0], correct[1], buggy[0], buggy[1]


def _math_candidate(rng: random.Random, difficulty: int) -> Problem | None:
    nums = [rng.randint(1, 9) for _ in range(difficulty)]
    ops = [rng.choice("+-*") for _ in range(difficulty - 1)]
    value, steps, bvalue, bsteps = math_procedures(nums, ops)
    if value == bvalue:
        return None
    for step in steps + bsteps:
        left, op, _, result = _STEP_RE.fullmatch(step).groups()
        if not 0 <= int(result) <= MATH_MAX_VALUE or (op == "*" and int(left) > 9):
            return None
    question = "".join(f"{n}{o}" for n, o in zip(nums, ops)) + str(nums[-1])
    return Problem("toy-math", question, str(value), " ".join(steps), str(bvalue), " ".join(bsteps),
                   difficulty)


# --- toy-logic --------------------------------------------------------------------
def _shift(word: str, k: int) -> tuple[str, str]:
    """(shifted word, steps); each step names its own shift ("c+3=f"), so it is local to compute."""
    out = "".join(chr((ord(c) - 97 + k) % 26 + 97) for c in word)
    return out, " ".join(f"{c}{k:+d}={d}" for c, d in zip(word, out))


def _logic_candidate(rng: random.Random, difficulty: int) -> Problem:
    # distinct letters: step i copies letter i of the word, which is unambiguous only
    # when no letter repeats (what the model's copying circuit keys on)
    word = "".join(rng.sample(string.ascii_lowercase, difficulty))
    k = rng.randint(1, LOGIC_MAX_SHIFT)  # k < 13, so forward and backward always differ
    answer, steps = _shift(word, k)
    banswer, bsteps = _shift(word, -k)
    return Problem("toy-logic", f"Caesar +{k}: {word}", answer, steps, banswer, bsteps, difficulty)


_CANDIDATES = {"toy-math": _math_candidate, "toy-logic": _logic_candidate}


def _check_task(task: str) -> str:
    if task not in _CANDIDATES:
        raise ValueError(f"unknown testbed task {task!r}; known: {', '.join(TASK_NAMES)}")
    return task


def _check_difficulties(task: str, difficulties) -> tuple[int, ...]:
    difficulties = tuple(DEFAULT_DIFFICULTY[task] if difficulties is None else difficulties)
    lo, hi = DIFFICULTY_RANGE[task]
    bad = [d for d in difficulties if not lo <= int(d) <= hi]
    if not difficulties or bad:
        raise ValueError(f"{task}: difficulties must be in [{lo}, {hi}], got {difficulties}")
    return tuple(int(d) for d in difficulties)


def iter_problems(task: str, split: str, seed: int, difficulties=None) -> Iterator[Problem]:
    """An endless, deterministic stream of problems of one split (may repeat)."""
    _check_task(task)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {SPLITS}")
    difficulties = _check_difficulties(task, difficulties)
    rng = random.Random(f"{task}/{split}/{seed}")
    make = _CANDIDATES[task]
    while True:
        problem = make(rng, rng.choice(difficulties))
        if problem is not None and problem.split == split:
            yield problem


def take_distinct(stream: Iterator[Problem], n: int, error: str) -> list:
    """The first ``n`` distinct problems (by key) of an endless ``stream``, in order; ValueError(``error``)
    once 50 n + 10,000 draws have not found them (the space is too small). Shared by every generated task."""
    seen: dict[str, Any] = {}
    for attempts, problem in enumerate(stream):
        seen.setdefault(problem.key, problem)
        if len(seen) >= n:
            return list(seen.values())
        if attempts > 50 * n + 10_000:
            break
    raise ValueError(error)


def generate(task: str, split: str, n: int, seed: int = 0, difficulties=None) -> list[Problem]:
    """``n`` distinct problems of one split, deterministic in (task, split, seed, difficulties)."""
    return take_distinct(iter_problems(task, split, seed, difficulties), n,
                         f"{task}/{split}: could not find {n} distinct problems (difficulties {difficulties}); "
                         f"the space is too small")


def fresh_problems(task: str, n: int, seed: int = FRESH_SEED, difficulties=None) -> list[Problem]:
    """``n`` test-bucket problems of ``seed`` that are not in ``<task>_test`` (its default size and seed)."""
    seen = {p.key for p in generate(task, "test", DEFAULT_SIZES["test"], DEFAULT_SEEDS["test"], difficulties)}
    fresh: dict[str, Problem] = {}
    for attempts, problem in enumerate(iter_problems(task, "test", seed, difficulties)):
        if problem.key not in seen:
            fresh.setdefault(problem.key, problem)
        if len(fresh) >= n:
            return list(fresh.values())
        if attempts > 50 * n + 10_000:
            break
    raise ValueError(f"{task}/{FRESH}: could not find {n} distinct problems outside {task}_test")


def agreement_rate(task: str, n: int = 20_000, seed: int = 0, difficulties=None) -> float:
    """How often the correct and buggy procedures agree on UNFILTERED random problems."""
    _check_task(task)
    difficulties = _check_difficulties(task, difficulties)
    rng, agree = random.Random(f"agreement/{task}/{seed}"), 0
    for _ in range(n):
        d = rng.choice(difficulties)
        if task == "toy-math":
            nums = [rng.randint(1, 9) for _ in range(d)]
            ops = [rng.choice("+-*") for _ in range(d - 1)]
            value, _, bvalue, _ = math_procedures(nums, ops)
            agree += value == bvalue
        else:
            p = _logic_candidate(rng, d)
            agree += p.answer == p.buggy_answer
    return agree / n


# --- rows and datasets ------------------------------------------------------------
def to_row(problem: Problem, index: int, split: str) -> dict[str, Any]:
    """One verl-schema row."""
    return {
        "data_source": problem.data_source,
        "prompt": problem.prompt(),
        "ability": "math" if problem.data_source == "toy-math" else "logic",
        "reward_model": {"style": "rule", "ground_truth": problem.answer},
        "extra_info": {"index": index, "split": split, "difficulty": problem.difficulty,
                       "question": problem.question, "buggy_answer": problem.buggy_answer,
                       "steps": problem.steps, "buggy_steps": problem.buggy_steps},
    }


def problems_frame(task: str, split: str, n: int, seed: int = 0, difficulties=None):
    import pandas as pd

    problems = (fresh_problems(task, n, seed, difficulties) if split == FRESH
                else generate(task, split, n, seed, difficulties))
    return pd.DataFrame([to_row(p, i, split) for i, p in enumerate(problems)])


def parse_dataset_name(name: str) -> tuple[str, str]:
    task, _, split = name.rpartition("_")
    if task not in TASK_NAMES or split not in SPLITS + (FRESH,):
        raise ValueError(f"not a testbed dataset: {name!r}; expected <task>_<split> with task in "
                         f"{TASK_NAMES} and split in {SPLITS + (FRESH,)}")
    return task, split


def ensure_dataset(name: str, root: str | os.PathLike | None = None, n: int | None = None,
                   seed: int | None = None, difficulties=None, overwrite: bool = False) -> Path:
    """Write (atomically, once) and return ``mirage.tasks.dataset_path(name)``.

    ``name`` is "toy-math_train", "toy-math_test", "toy-logic_train" or "toy-logic_test".
    An existing file is reused when its sidecar ``.meta.json`` records the same
    generator version and arguments, else it is regenerated; generation is
    deterministic, so a rewrite with the same arguments gives the same rows.
    Arguments left as None keep what the sidecar records (else the defaults), so the
    trainer and the evaluator, which call this on every use, keep a custom size but
    never reuse rows of an older generator. A file without a sidecar was not written
    here: it is only replaced when arguments are given (or ``overwrite``).
    """
    import json

    task, split = parse_dataset_name(name)
    path = dataset_path(name, root)
    meta = path.with_suffix(".meta.json")
    implicit = n is None and seed is None and difficulties is None
    try:
        recorded = json.loads(meta.read_text()) if meta.exists() else {}
    except (OSError, ValueError) as e:
        raise ValueError(f"{meta}: unreadable ({e}); delete it (and {path.name}) to regenerate the dataset") from None
    if path.exists() and implicit and not recorded and not overwrite:
        return path
    n = int(recorded.get("n", DEFAULT_SIZES.get(split, DEFAULT_SIZES["test"]))) if n is None else int(n)
    seed = int(recorded.get("seed", DEFAULT_SEEDS.get(split, FRESH_SEED))) if seed is None else int(seed)
    if difficulties is None and recorded.get("difficulties"):
        difficulties = recorded["difficulties"]
    spec = {"generator_version": GENERATOR_VERSION, "task": task, "split": split, "n": n, "seed": seed,
            "difficulties": list(_check_difficulties(task, difficulties))}
    if path.exists() and not overwrite and recorded == spec:
        return path
    write_parquet_atomic(path, problems_frame(task, split, n, seed, difficulties))
    write_json_atomic(meta, spec)
    return path


# --- verification -----------------------------------------------------------------
def check_answer(data_source: str, pred: Any, ground_truth: Any, extra_info: Any = None) -> bool:
    """Exact verifier: the predicted answer equals the ground truth up to whitespace.

    ``pred`` is model text (the inside of ``<answer>``); any value, however odd,
    gives True or False and never raises.
    """
    task = data_source[4:] if isinstance(data_source, str) and data_source.startswith("val/") else data_source
    _check_task(task)
    return same(pred, ground_truth)


# --- the checker and the registry entries ------------------------------------------------
def procedure_of(pred: Any, ground_truth: Any, extra_info: Any) -> str:
    """Which procedure an answer follows: the problems are built so that the two give different answers."""
    if same(pred, ground_truth):
        return "correct"
    buggy = (extra_info or {}).get("buggy_answer")
    return "buggy" if buggy is not None and same(pred, buggy) else "neither"


def _check(data_source, text, answer, ground_truth, extra_info, options, release_faithful):
    procedure = procedure_of(answer, ground_truth, extra_info)
    return Verdict(procedure == "correct", answer, None, procedure)


def lenient_answer(text: str, data_source: str, options: Any = None) -> str | None:
    """The answer read whatever the format (format-free accuracy, ``mirage.rewards.lenient``): the
    ``<answer>`` block, else the last number (toy-math) or the last lowercase word (toy-logic) after the
    last ``</think>`` (the whole text without one)."""
    answer = extract_answer(text)
    if answer is not None:
        return answer
    tail = after_think(text)
    if str(data_source).removeprefix("val/") == "toy-math":
        return last_number(tail)
    words = re.findall(r"[a-z]+", tail)
    return words[-1] if words else None


def _register() -> None:
    register_checker(Checker("toy", _check, lenient_answer=lenient_answer, procedure=procedure_of,
                             summary="the testbed: exact answer (up to whitespace), and which "
                                     "procedure it follows (correct / buggy / neither)"))

    looks = {"toy-math": ("#1b6ca8", "o", "arithmetic with a precedence trap"),
             "toy-logic": ("#a8431b", "s", "a Caesar shift with a direction trap")}
    for name in TASK_NAMES:
        colour, marker, what = looks[name]
        register_task(Task(name, "testbed", train=f"{name}_train", evals=(f"{name}_test",), sources={name: "toy"},
                           description=f"testbed: {what} (generated; {_DESCRIPTIONS[name]})",
                           colour=colour, marker=marker, ensure=lambda dataset, root: ensure_dataset(dataset, root)))
    # the contamination study: toy-math's training, evaluated on the (leaked) test set and on a fresh one
    register_task(Task("toy-math+fresh", "testbed", train="toy-math_train", evals=("toy-math_test", "toy-math_fresh"),
                       sources={"toy-math": "toy"}, display_name="toy-math (+fresh)",
                       description="testbed: toy-math, evaluated on toy-math_test and on toy-math_fresh (test-bucket "
                                   "problems of another seed, none of toy-math_test: never leaked)",
                       colour="#4f8fc0", marker="D", ensure=lambda dataset, root: ensure_dataset(dataset, root)))


_DESCRIPTIONS = {"toy-math": "products first vs strictly left to right",
                 "toy-logic": "shift forward vs backward"}
_register()
