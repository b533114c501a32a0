"""Run untrusted programs (a model's code) against test inputs, isolated; the harness side.

    from mirage.rewards.sandbox import Limits, run
    result = run("def f(x):\\n    return 2 * x\\n", [[1], [2]], mode="call", fn_name="f")
    result.isolation      # "namespaces" (root) / "user-namespaces" (any other user) / "rlimits (...)"
    [t.value for t in result.tests]   # [2, 4]: the return values; comparing is the caller's job

Each call starts one sandbox process (``_sandbox_runner.py``, run as ``python -I -S`` with an
empty environment, in a fresh temporary folder) and sends it the program and the test
INPUTS only; the expected outputs stay in this process, so nothing inside the sandbox can
read them. The sandbox isolates itself with Linux namespaces (mount, network, PID, IPC, UTS;
a user namespace when not root), a read-only minimal root and a private tmpfs, an
unprivileged user id without capabilities, and rlimits (CPU, address space, stack, file size,
processes, open files); each test runs in its own forked child, and everything the test
started is killed before the next one. See docs/rewards.md ("Code") for what this does and
does not guarantee.

Results come back on the sandbox's stdout, a pipe no process running model code holds
(each line carries a per-run nonce; lines without it are ignored). A run that does not finish
in time is killed with its whole process group; the PID namespace dies with its first
process. At most ``max_parallel()`` sandboxes run at once per calling process (threads wait
for a slot), so a batch uses the cores without oversubscribing them, and one slow program
holds one slot only.

``isolation``: ``"namespaces"`` (default) refuses to run a program where namespaces are
unavailable (the result's ``error`` says so); ``"any"`` runs it anyway with rlimits only,
and every result says which level it got; ``"rlimits"`` forces that weaker level (tests).
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

RUNNER_SOURCE = (Path(__file__).with_name("_sandbox_runner.py")).read_text()
ISOLATION = ("namespaces", "any", "rlimits")
STARTUP_S = 10.0  # the sandbox's own start, allowed on top of the tests' wall limits


@dataclass(frozen=True)
class Limits:
    """Per test (each test is its own process), except ``disk_bytes`` and ``processes`` (per run)."""

    cpu_s: float = 2.0  # CPU time of one test
    wall_s: float | None = None  # wall time of one test; None: 2 * cpu_s + 1
    memory_bytes: int = 512 << 20  # address space (RLIMIT_AS)
    stack_bytes: int = 64 << 20
    file_bytes: int = 16 << 20  # largest file it may write (RLIMIT_FSIZE)
    disk_bytes: int = 64 << 20  # its writable tmpfs (/sandbox, /tmp)
    output_bytes: int = 2 << 20  # stdout (and a return value) of one test
    processes: int = 16  # processes and threads at once (RLIMIT_NPROC of its own user id)

    def __post_init__(self):
        for name in ("cpu_s", "memory_bytes", "stack_bytes", "file_bytes", "disk_bytes", "output_bytes", "processes"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and value == value and value != float("inf")):
                raise ValueError(f"sandbox limit {name} must be a finite number > 0, got {value!r}")
        if self.wall_s is not None and not 0 < self.wall_s < float("inf"):
            raise ValueError(f"sandbox limit wall_s must be a finite number > 0, got {self.wall_s!r}")

    def resolved(self) -> dict:
        d = asdict(self)
        d["wall_s"] = self.wall_s if self.wall_s is not None else 2 * self.cpu_s + 1.0
        return d


@dataclass
class TestRun:
    """One test as the sandbox saw it (nothing here is a verdict)."""

    status: str  # "exited" (ran to its end, or exited), "timeout", "output_limit", "not_run"
    exit_code: int | None = None
    signal: int | None = None
    cpu_s: float = 0.0
    wall_s: float = 0.0
    report: dict = field(default_factory=dict)  # what the test process said of itself (model-controlled)
    stdout: str | None = None  # stdin/stdout tests: what it printed
    stderr: str = ""

    @property
    def value(self) -> Any:
        """The return value (function-call tests), as JSON data; None when there is none."""
        return self.report.get("return")

    @property
    def returned(self) -> bool:
        return self.status == "exited" and self.exit_code == 0 and "return" in self.report


@dataclass
class RunResult:
    isolation: str | None  # the level the sandbox reached; None if it never started
    tests: list[TestRun]
    error: str | None = None  # the sandbox itself failed (setup, killed): the program was not judged
    wall_s: float = 0.0
    seccomp: bool = False  # the syscall filter was in place


PROCS_ENV = "MIRAGE_SANDBOX_PROCS"


def max_parallel() -> int:
    """Sandboxes at once per process: ``$MIRAGE_SANDBOX_PROCS``, else the CPU count."""
    raw = os.environ.get(PROCS_ENV)
    if raw is None:
        return os.cpu_count() or 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"${PROCS_ENV} must be an integer >= 1, got {raw!r}")
    return value


_SLOTS: threading.BoundedSemaphore | None = None
_SLOTS_LOCK = threading.Lock()


def _slots() -> threading.BoundedSemaphore:
    global _SLOTS
    with _SLOTS_LOCK:
        if _SLOTS is None:
            _SLOTS = threading.BoundedSemaphore(max_parallel())
            sweep()
        return _SLOTS


PREFIX = "mirage-sandbox-"


def sweep() -> list[str]:
    """Remove the temporary folders of runs whose scoring process died (kill -9 leaves them); returns them.

    A folder is ``mirage-sandbox-<pid of the scoring process>-<random>``; it goes when that process is gone."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(PREFIX + "*-*"):
        try:
            pid = int(path.name[len(PREFIX):].split("-", 1)[0])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
        except PermissionError:  # alive, another user's
            continue
    return removed


def run(program: str, inputs: Sequence[Any], mode: str, fn_name: str | None = None, limits: Limits = Limits(),
        isolation: str = "namespaces", stop_after_timeout: bool = True, simulate: str | None = None,
        on_test: Callable[[int, TestRun], None] | None = None) -> RunResult:
    """Run ``program`` once per test input, each in its own sandboxed process.

    ``mode="call"``: each input is the argument list of ``fn_name`` (``"f"`` or
    ``"Solution.method"``), and the test's value is what it returned (as JSON data).
    ``mode="stdio"``: each input is the program's stdin (a string), the test's ``stdout`` what it printed.
    ``stop_after_timeout``: after a test times out the rest are not run (``status="not_run"``).
    ``on_test(i, test)`` is called as each test's result arrives (and for each test not run), before
    it is stored: a caller that compares there can drop ``test.stdout`` / ``test.report`` to keep
    memory flat over many tests with large outputs.
    ``simulate`` (tests only): ``"userns"`` takes the unprivileged user's path as root,
    ``"no-namespaces"`` behaves as if the kernel refused every namespace.
    """
    if simulate not in (None, "userns", "no-namespaces"):
        raise ValueError(f"sandbox simulate must be None, 'userns' or 'no-namespaces', got {simulate!r}")
    if mode not in ("call", "stdio"):
        raise ValueError(f"sandbox mode must be 'call' or 'stdio', got {mode!r}")
    if mode == "call" and not fn_name:
        raise ValueError("sandbox mode 'call' needs fn_name")
    if isolation not in ISOLATION:
        raise ValueError(f"sandbox isolation must be one of {ISOLATION}, got {isolation!r}")
    with _slots():
        return _run(program, list(inputs), mode, fn_name, limits, isolation, stop_after_timeout, simulate, on_test)


def run_many(jobs: Sequence[dict], parallel: int | None = None) -> list[RunResult]:
    """``run(**job)`` for each job, ``parallel`` at a time (default ``max_parallel()``), in order."""
    with ThreadPoolExecutor(parallel or max_parallel()) as pool:
        return list(pool.map(lambda job: run(**job), jobs))


def _run(program, inputs, mode, fn_name, limits, isolation, stop_after_timeout, simulate, on_test) -> RunResult:
    lim = limits.resolved()
    nonce = secrets.token_hex(16)
    start = time.monotonic()
    root = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    job = {"program": program, "inputs": inputs, "mode": mode, "fn_name": fn_name, "limits": lim,
           "isolation": isolation, "nonce": nonce, "root": root, "parent": os.getpid(),
           "stop_after_timeout": stop_after_timeout, "simulate": simulate}
    try:
        payload = json.dumps(job).encode()
    except (TypeError, ValueError) as e:
        shutil.rmtree(root, ignore_errors=True)
        raise ValueError(f"sandbox test inputs must be JSON data: {e}") from None
    deadline = STARTUP_S + len(inputs) * (lim["wall_s"] + 1.0)
    reader = _Reader(nonce, len(inputs), mode, on_test)
    err = bytearray()
    killed = False
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-B", "-c", RUNNER_SOURCE], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={}, cwd=root,
                                start_new_session=True, close_fds=True)
        try:
            # the runner reads its whole job before it writes anything; a thread feeds it all the same,
            # so a runner that fails early (and writes to stderr) cannot deadlock against this write
            feeder = threading.Thread(target=_feed, args=(proc.stdin, payload), daemon=True)
            feeder.start()
            killed = _read(proc, reader, err, start + deadline)
            proc.wait()
            feeder.join()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            for pipe in (proc.stdout, proc.stderr):
                pipe.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = reader.result
    result.wall_s = time.monotonic() - start
    if result.error is None and killed:
        result.error = f"sandbox killed after {deadline:.0f} s"
    elif result.error is None and (proc.returncode != 0 or len(result.tests) < len(inputs)
                                   and result.tests[-1].status != "timeout"):
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        result.error = f"sandbox runner exited with code {proc.returncode}: {' | '.join(tail)}"[:500]
    while len(result.tests) < len(inputs):
        test = TestRun("not_run")
        if on_test is not None:
            on_test(len(result.tests), test)
        result.tests.append(test)
    return result


def _feed(pipe, payload: bytes) -> None:
    try:
        pipe.write(payload)
        pipe.close()
    except OSError:  # the runner died before reading it all: its exit status says why
        pass


def _read(proc: subprocess.Popen, reader: "_Reader", err: bytearray, end: float) -> bool:
    """Read the runner's stdout line by line (each test's result is handed on as it arrives, so a
    long run never holds every test's output at once) and the head of its stderr, until both end or
    ``end`` passes; returns True when the deadline killed it."""
    names = {proc.stdout.fileno(): "out", proc.stderr.fileno(): "err"}
    buf = bytearray()
    while names:
        remaining = end - time.monotonic()
        if remaining <= 0:
            _kill_group(proc)
            return True
        for fd in select.select(list(names), [], [], remaining)[0]:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                del names[fd]
            elif names[fd] == "err":
                err.extend(chunk[:max(0, (64 << 10) - len(err))])
            else:
                buf.extend(chunk)
                nl = buf.find(b"\n")
                while nl != -1:
                    reader.line(bytes(buf[:nl]))
                    del buf[:nl + 1]
                    nl = buf.find(b"\n")
    return False


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the namespace's PID 1 (its death kills the rest)
    except (ProcessLookupError, PermissionError):
        pass


class _Reader:
    """The runner's lines -> a RunResult (lines without this run's nonce are ignored)."""

    def __init__(self, nonce: str, n: int, mode: str, on_test):
        self.nonce, self.n, self.mode, self.on_test = nonce, n, mode, on_test
        self.result = RunResult(None, [])
        self.done = False

    def line(self, raw: bytes) -> None:
        result = self.result
        try:
            msg = json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            return
        if not isinstance(msg, dict) or msg.get("nonce") != self.nonce:
            return
        if "fatal" in msg:
            result.error = str(msg["fatal"])[:500]
        elif "isolation" in msg:
            result.isolation = str(msg["isolation"])
            result.seccomp = bool(msg.get("seccomp"))
        elif msg.get("done"):
            self.done = True
        elif msg.get("i") == len(result.tests) and len(result.tests) < self.n:
            try:
                # the first line: a program that forks may leave several (writes under 4 KiB do not interleave)
                report = json.loads((msg.get("child") or "{}").split("\n", 1)[0] or "{}")
            except ValueError:
                report = {"error": "unreadable report"}
            test = TestRun(msg["status"], msg.get("exit_code"), msg.get("signal"), float(msg.get("cpu_s", 0.0)),
                           float(msg.get("wall_s", 0.0)),
                           report if isinstance(report, dict) else {"error": "unreadable report"},
                           msg.get("stdout") if self.mode == "stdio" else None, msg.get("stderr", ""))
            if self.on_test is not None:
                self.on_test(len(result.tests), test)
            result.tests.append(test)


# --- what this machine allows ------------------------------------------------------------------
_PROBE: dict[str, RunResult] = {}


def probe(isolation: str = "namespaces") -> RunResult:
    """One trivial run (cached per process): its ``isolation`` and ``error`` say what works here."""
    if isolation not in _PROBE:
        _PROBE[isolation] = run("def f():\n    return 1\n", [[]], "call", "f", Limits(cpu_s=5.0), isolation)
    return _PROBE[isolation]
