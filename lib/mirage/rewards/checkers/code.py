"""The code checker: run the answer's program against the problem's tests, in the sandbox.

A task registers its data sources to this checker (``sources={"my-code-set": "code"}``);
its rows carry the tests in ``ground_truth`` (a dict, or its JSON text), in either form real
code sets use:

* ``{"inputs": [...], "outputs": [...], "fn_name": "f"}`` (APPS / TACO style): with
  ``fn_name``, function-call tests (each input is the argument list, each output the return
  value); without it, stdin/stdout tests (each input the stdin text, each output the
  expected stdout);
* ``{"tests": [{"input": ..., "output": ..., "testtype": "stdin" | "functional"}, ...],
  "fn_name": ...}`` (LiveCodeBench style; a functional test's input may be the text of one
  JSON value per line, its output the JSON text of the value).

``fn_name`` may be ``"Solution.method"`` (LeetCode style: the class is instantiated without
arguments). The program is taken from the ``<answer>`` block: its last fenced block
(```` ```python ````, ```` ```py ````, ```` ```python3 ```` or a bare ```` ``` ````), or the
whole answer when it has no fence; ``code_extract="last_block"`` takes the last fenced block
of the whole response instead (for data sets whose prompts ask for no answer tags).

Comparison happens here, never in the sandbox: a return value (JSON data: tuples are lists)
equals the expected one exactly, floats within 1e-6 (relative or absolute); stdout equals the
expected text line by line with trailing whitespace and trailing empty lines ignored, or
token by token with the same float tolerance. ``acc`` is "every test passed"; the verdict's
``details`` hold the share of tests passed and the reason of the first failure.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import re
import signal
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

from mirage.rewards import sandbox
from mirage.rewards.checkers import Checker, Verdict, register_checker

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = ("", "python", "py", "python3", "py3")
FLOAT_TOLERANCE = 1e-6
FORBIDDEN_ERRNOS = {errno.EPERM, errno.EACCES, errno.EROFS, errno.ENETUNREACH, errno.EAFNOSUPPORT,
                    errno.ECONNREFUSED, errno.EAGAIN, errno.ENOSPC, errno.EFBIG}
FORBIDDEN_ERRORS = ("PermissionError", "BlockingIOError")
EXTRACT = ("answer", "last_block")
# compute_score's column holding the program's behaviour key (``vote_key``): majority vote clusters code by it
VOTE_COLUMN = "code_vote"


# --- the program -------------------------------------------------------------------------------
def last_block(text: str) -> str | None:
    """The last fenced Python (or untagged) block of ``text``, or None."""
    blocks = [body for tag, body in _FENCE.findall(text) if tag.lower() in _PYTHON_TAGS]
    return blocks[-1] if blocks else None


def extract_program(text: str, answer: str | None, mode: str = "answer") -> str | None:
    """The program to run: see the module docstring. None when there is none."""
    if mode == "last_block":
        program = last_block(text or "")
    elif answer is None:
        return None
    else:
        program = last_block(answer)
        if program is None and "```" not in answer:
            program = answer
    if program is None or not program.strip():
        return None
    return program


# --- the tests ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tests:
    mode: str  # "call" or "stdio"
    inputs: list
    outputs: list
    fn_name: str | None = None


def parse_tests(ground_truth: Any) -> Tests:
    """The tests of one row; a ValueError saying what is wrong with them."""
    gt = ground_truth
    if isinstance(gt, (bytes, str)):
        try:
            gt = json.loads(gt)
        except ValueError as e:
            raise ValueError(f"code ground_truth is not JSON: {e}") from None
    if not isinstance(gt, dict):
        raise ValueError(f"code ground_truth must be a dict with 'inputs'/'outputs' or 'tests', "
                         f"got {type(gt).__name__}")
    fn_name = gt.get("fn_name") or None
    if "tests" in gt:
        tests = gt["tests"]
        if not isinstance(tests, list) or not all(isinstance(t, dict) and "input" in t and "output" in t
                                                  for t in tests):
            raise ValueError("code ground_truth 'tests' must be a list of {'input', 'output'} objects")
        kinds = {t.get("testtype", "functional" if fn_name else "stdin") for t in tests}
        if len(kinds) > 1 or not kinds <= {"stdin", "functional"}:
            raise ValueError(f"code ground_truth mixes or misnames test types: {sorted(map(str, kinds))}")
        if kinds == {"functional"}:
            if not fn_name:
                raise ValueError("code ground_truth has functional tests but no fn_name")
            inputs = [_args(t["input"]) for t in tests]
            outputs = [json.loads(t["output"]) if isinstance(t["output"], str) else t["output"] for t in tests]
            return Tests("call", inputs, outputs, fn_name)
        return Tests("stdio", [str(t["input"]) for t in tests], [str(t["output"]) for t in tests])
    if "inputs" not in gt or "outputs" not in gt:
        raise ValueError(f"code ground_truth needs 'inputs' and 'outputs' (or 'tests'); it has {sorted(gt)}")
    inputs, outputs = gt["inputs"], gt["outputs"]
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        raise ValueError("code ground_truth 'inputs' and 'outputs' must be lists of the same length")
    if not inputs:
        raise ValueError("code ground_truth has no tests")
    if fn_name:
        if not all(isinstance(a, list) for a in inputs):
            raise ValueError("code ground_truth: with fn_name, every input must be the list of arguments")
        return Tests("call", inputs, outputs, fn_name)
    if not all(isinstance(x, str) for x in inputs + outputs):
        raise ValueError("code ground_truth: stdin/stdout tests need string inputs and outputs")
    return Tests("stdio", inputs, outputs)


def _args(raw: Any) -> list:
    if isinstance(raw, list):
        return raw
    return [json.loads(line) for line in str(raw).splitlines() if line.strip()]


# --- comparing (here, outside the sandbox) -------------------------------------------------------
def _normal(value: Any) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    return value


def same_value(got: Any, expected: Any) -> bool:
    got, expected = _normal(got), _normal(expected)
    if isinstance(got, bool) or isinstance(expected, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(got, (int, float)) and isinstance(expected, (int, float)):
        if isinstance(got, int) and isinstance(expected, int):
            return got == expected
        return math.isclose(got, expected, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(same_value(g, e) for g, e in zip(got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(same_value(got[k], expected[k]) for k in got)
    return type(got) is type(expected) and got == expected


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _number(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def same_output(got: str, expected: str) -> bool:
    a, b = _lines(got), _lines(expected)
    if a == b:
        return True
    ta, tb = " ".join(a).split(), " ".join(b).split()
    if len(ta) != len(tb):
        return False
    for x, y in zip(ta, tb):
        if x == y:
            continue
        fx, fy = _number(x), _number(y)
        if fx is None or fy is None or not math.isclose(fx, fy, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE):
            return False
    return True


# --- verdicts ------------------------------------------------------------------------------------
def _failure(test: sandbox.TestRun, i: int, mode: str) -> str:
    """Why test ``i`` did not produce a value to compare (or "" when it did)."""
    if test.status == "not_run":
        return f"not run (after a timeout) on test {i}"
    if test.status == "timeout":
        return f"timeout on test {i} ({test.cpu_s:.2f} s CPU, {test.wall_s:.2f} s wall)"
    if test.status == "output_limit":
        return f"output limit on test {i}"
    report = test.report
    name = str(report.get("error") or "")
    if name == "SystemExit" and mode == "stdio" and test.exit_code == 0 and test.signal is None:
        name = ""  # sys.exit(0) / exit() ends a stdin/stdout program normally: its output is judged
    detail = str(report.get("detail") or "")[:160]
    if name in ("SyntaxError", "IndentationError", "TabError"):
        return f"compile error: {name}: {detail}"
    if name == "MemoryError":
        return f"memory limit on test {i}"
    if name in FORBIDDEN_ERRORS or (name and report.get("errno") in FORBIDDEN_ERRNOS):
        return f"forbidden operation on test {i}: {name}: {detail}"
    if test.signal is not None:
        try:
            signame = signal.Signals(test.signal).name
        except ValueError:
            signame = str(test.signal)
        if test.signal == signal.SIGXFSZ:
            return f"forbidden operation on test {i}: file size limit ({signame})"
        return f"crash on test {i}: killed by {signame}"
    if name == "SystemExit" and mode == "call":
        return f"crash on test {i}: exited ({detail}) before returning"
    if name:
        return f"crash on test {i}: {name}: {detail}"
    if mode == "call" and not test.returned:
        return f"crash on test {i}: exited (code {test.exit_code}) before returning"
    if mode == "stdio" and test.exit_code != 0:
        return f"crash on test {i}: exit code {test.exit_code}"
    return ""


def observed(tests: Tests, i: int, test: sandbox.TestRun) -> list:
    """What test ``i`` produced, whatever was expected: ``["value", <JSON>]`` (a return value),
    ``["stdout", <text>]`` (stdout, trailing whitespace ignored) or ``["failed"]`` (nothing to compare)."""
    if _failure(test, i, tests.mode):
        return ["failed"]
    if tests.mode == "call":
        return ["value", json.dumps(_normal(test.value), sort_keys=True)]
    return ["stdout", "\n".join(_lines(test.stdout or ""))]


def vote_key(behaviour: list) -> str | None:
    """The program's behaviour on the test INPUTS (never the expected outputs) as a short key: two programs
    with the same key did the same on every input. None when no test produced anything (it does not vote)."""
    if not behaviour or all(b == ["failed"] for b in behaviour):
        return None
    return hashlib.sha256(json.dumps(behaviour).encode()).hexdigest()[:16]


def judge_test(tests: Tests, i: int, test: sandbox.TestRun) -> str:
    """"passed", or why test ``i`` failed."""
    why = _failure(test, i, tests.mode)
    if not why:
        ok = (same_value(test.value, tests.outputs[i]) if tests.mode == "call"
              else same_output(test.stdout or "", tests.outputs[i]))
        why = "" if ok else f"wrong answer on test {i}"
    return why or "passed"


def _details(tests: Tests, statuses: list[str], result: sandbox.RunResult) -> tuple[bool, dict]:
    passed = statuses.count("passed")
    total = len(tests.outputs)
    reason = next((s for s in statuses if s != "passed"), "passed")
    details = {"passed": passed, "total": total, "share": passed / total, "reason": reason,
               "tests": statuses, "isolation": result.isolation, "seccomp": result.seccomp}
    return passed == total, details


def judge(tests: Tests, result: sandbox.RunResult) -> tuple[bool, dict]:
    """(all passed, details) from the sandbox's raw results and the expected outputs."""
    return _details(tests, [judge_test(tests, i, t) for i, t in enumerate(result.tests)], result)


def score_program(program: str | None, tests: Tests, limits: sandbox.Limits = sandbox.Limits(),
                  isolation: str = "namespaces", buggy_outputs: list | None = None) -> tuple[bool, dict, str | None]:
    """(all passed, details, error): run ``program`` in the sandbox and judge it, each test as its
    result arrives (its output is dropped once compared).

    ``buggy_outputs``: what a known misconception's program returns on the same tests; the details
    then say whether the program gave exactly those (``details["buggy"]``). Verdicts are cached in
    this process by (program, tests, buggy outputs, limits, isolation): a policy samples the same
    program many times, and the sandbox costs tens of milliseconds per program. A sandbox error is
    never cached.
    """
    if program is None:
        return False, {"passed": 0, "total": len(tests.outputs), "share": 0.0, "reason": "no program",
                       "tests": [], "isolation": None, "seccomp": False}, None
    key = _cache_key(program, tests, buggy_outputs, limits, isolation)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            CACHE_STATS["hits"] += 1
    if hit is not None:
        acc, details, error = hit
        return acc, {**details, "tests": list(details["tests"])}, error
    statuses: list[str] = []
    buggy = [buggy_outputs is not None]
    behaviour: list = []

    def on_test(i: int, test: sandbox.TestRun) -> None:
        behaviour.append(observed(tests, i, test))
        statuses.append(judge_test(tests, i, test))
        if buggy[0] and statuses[-1] != "passed":
            buggy[0] = bool(judge_test(Tests(tests.mode, tests.inputs, buggy_outputs, tests.fn_name), i, test)
                            == "passed")
        test.stdout, test.report = None, {k: v for k, v in test.report.items() if k != "return"}

    result = sandbox.run(program, tests.inputs, tests.mode, tests.fn_name, limits, isolation, on_test=on_test)
    CACHE_STATS["runs"] += 1
    if result.error is not None and all(t.status == "not_run" for t in result.tests):
        return False, {"passed": 0, "total": len(tests.outputs), "share": 0.0,
                       "reason": f"sandbox error: {result.error}", "tests": [], "isolation": result.isolation,
                       "seccomp": result.seccomp}, f"code sandbox: {result.error}"
    acc, details = _details(tests, statuses, result)
    details["vote"] = vote_key(behaviour)
    if buggy_outputs is not None:  # every test gave the misconception's output (and not the right one everywhere)
        details["buggy"] = buggy[0] and not acc
    error = f"code sandbox: {result.error}" if result.error else None
    if error is None:
        with _CACHE_LOCK:
            _CACHE[key] = (acc, details, error)
            if len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
    return acc and error is None, {**details, "tests": list(details["tests"])}, error


CACHE_SIZE = 50_000  # verdicts kept per process (least recently used go first)
_CACHE: "OrderedDict[tuple, tuple]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_STATS = {"hits": 0, "runs": 0}  # sandbox runs vs cached verdicts, in this process


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
        CACHE_STATS.update(hits=0, runs=0)


def _cache_key(program: str, tests: Tests, buggy_outputs, limits: sandbox.Limits, isolation: str) -> tuple:
    return (program, json.dumps([tests.mode, tests.inputs, tests.outputs, tests.fn_name, buggy_outputs],
                                sort_keys=True, default=repr), repr(limits), isolation)


def buggy_outputs_of(extra_info: Any) -> list | None:
    """``extra_info.buggy_outputs`` (a list, or its JSON text): a known misconception's outputs; None if absent."""
    raw = extra_info.get("buggy_outputs") if isinstance(extra_info, Mapping) else None
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return list(raw) if isinstance(raw, (list, tuple)) else None


# --- the checker ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodeOptions:
    code_timeout: float = field(default=2.0, metadata={  # wall: 2 * timeout + 1
        "help": "code: CPU seconds per test"})
    code_memory_mb: int = field(default=512, metadata={"help": "code: address space per test, MiB"})
    code_isolation: str = field(default="namespaces", metadata={  # "any": rlimits-only where no namespaces
        "choices": ("namespaces", "any"), "help": "code: sandbox isolation required"})
    code_extract: str = field(default="answer", metadata={
        "choices": EXTRACT, "help": "code: the program is the <answer> block or the last fenced block"})

    def __post_init__(self):
        if not (isinstance(self.code_timeout, (int, float)) and 0 < self.code_timeout <= 600):
            raise ValueError(f"code_timeout must be in (0, 600] seconds, got {self.code_timeout!r}")
        if not (isinstance(self.code_memory_mb, int) and 16 <= self.code_memory_mb <= 65536):
            raise ValueError(f"code_memory_mb must be an integer in [16, 65536], got {self.code_memory_mb!r}")
        if self.code_isolation not in ("namespaces", "any"):
            raise ValueError(f"code_isolation must be 'namespaces' or 'any', got {self.code_isolation!r}")
        if self.code_extract not in EXTRACT:
            raise ValueError(f"code_extract must be one of {EXTRACT}, got {self.code_extract!r}")

    @property
    def limits(self) -> sandbox.Limits:
        return sandbox.Limits(cpu_s=float(self.code_timeout), memory_bytes=self.code_memory_mb << 20)


def check(data_source, text, answer, ground_truth, extra_info, options: CodeOptions,
          release_faithful: bool) -> Verdict:
    tests = parse_tests(ground_truth)
    program = extract_program(text, answer, options.code_extract)
    buggy = buggy_outputs_of(extra_info)
    if buggy is not None and len(buggy) != len(tests.outputs):
        buggy = None
    acc, details, error = score_program(program, tests, options.limits, options.code_isolation, buggy)
    # a row that names a misconception's outputs (the testbed's toy-code) gets the testbed's procedures
    procedure = None if buggy is None else "correct" if acc else "buggy" if details.get("buggy") else "neither"
    return Verdict(acc, program, error, procedure, details)


def setup_problem(options: CodeOptions) -> str | None:
    result = sandbox.probe(options.code_isolation)
    if result.error is not None:
        return f"the code sandbox cannot run here: {result.error}"
    return None


register_checker(Checker("code", check, CodeOptions, setup_problem=setup_problem, env_vars=(sandbox.PROCS_ENV,),
                         result_columns={VOTE_COLUMN: lambda options, verdict: (verdict.details or {}).get("vote")},
                         vote_column=VOTE_COLUMN,
                         summary="runs the answer's program against the row's tests in a sandbox "
                                 "(namespaces, rlimits); acc = every test passed"))
