"""Guarded helper processes for checks that may hang, crash or pollute the caller.

math-verify's own timeout uses SIGALRM (main thread only) and it is not
thread-safe; SynLogic's verifiers print, mutate ``sys.path``, register top-level
modules and sometimes ``eval`` model text. So both run in small persistent
child processes (``serve(role, arg)`` in a fresh interpreter), one pool per
calling process, started lazily:

* each request gets a soft timeout inside the child, counted in the child's CPU
  time (``ITIMER_PROF``: on a busy machine a legitimate check is not cut short,
  so verdicts do not depend on load; and SIGALRM stays free for math-verify),
  raising an exception that ``except Exception`` in library code cannot swallow;
  and a hard wall-clock deadline in the caller (``2 * timeout + 1`` s; the child
  is killed and restarted on next use) for anything that hangs without computing.
  A pathological input costs about ``timeout`` seconds from any thread of any process;
* the child's stdout is the protocol channel (one JSON object per line); anything
  the library prints goes to /dev/null;
* the child's address space is capped (``MEMORY_LIMIT_BYTES``) so a huge
  intermediate result fails inside the child instead of swapping the machine.

Callers see ``WorkerTimeout`` / ``WorkerDied`` for a request that failed (score
it 0 and record why) and ``WorkerStartError`` when the child cannot start (a
setup problem: missing package, bad checkout), which must surface.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

def hard_deadline(timeout: float) -> float:
    return 2 * timeout + 1.0
START_TIMEOUT_S = 120.0  # a cold start imports sympy / SynLogic on a busy machine
MEMORY_LIMIT_BYTES = 4 << 30


class WorkerTimeout(RuntimeError):
    pass


class WorkerDied(RuntimeError):
    pass


class WorkerStartError(RuntimeError):
    pass


def max_workers() -> int:
    return int(os.environ.get("MIRAGE_REWARD_WORKERS", min(4, os.cpu_count() or 1)))


class Worker:
    """One child process; used by one thread at a time (the pool ensures it)."""

    def __init__(self, role: str, arg: str | None):
        self.role, self.arg = role, arg
        lib_dir = str(Path(__file__).resolve().parents[2])  # makes mirage importable uninstalled too
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join(p for p in (lib_dir, os.environ.get("PYTHONPATH")) if p))
        entry = "import sys; from mirage.rewards.worker import serve; serve(*sys.argv[1:])"
        argv = [sys.executable, "-c", entry, role] + ([arg] if arg is not None else [])
        # A new session keeps Ctrl-C in the caller's terminal from killing the child mid-request;
        # the child exits on its own when the caller closes its stdin (or dies).
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     start_new_session=True)
        self._buf = b""
        reply = self._read_line(time.monotonic() + START_TIMEOUT_S, starting=True)
        if "fatal" in reply:
            self.close()
            raise WorkerStartError(f"reward worker {role!r} failed to start: {reply['fatal']}")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, method: str, params: dict, timeout: float):
        request = json.dumps({"method": method, "params": params, "timeout": timeout}) + "\n"
        try:
            self.proc.stdin.write(request.encode())
            self.proc.stdin.flush()
            reply = self._read_line(time.monotonic() + hard_deadline(timeout))
        except BrokenPipeError:
            self.kill()
            raise WorkerDied(f"reward worker {self.role!r} exited (code {self.proc.returncode})") from None
        except (WorkerTimeout, WorkerDied):
            raise
        except BaseException:  # e.g. KeyboardInterrupt mid-request: a late reply must not reach the next caller
            self.kill()
            raise
        if "error" in reply:
            cls = WorkerTimeout if reply.get("timeout") else WorkerDied
            raise cls(reply["error"])
        return reply["ok"]

    def _read_line(self, deadline: float, starting: bool = False) -> dict:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(remaining, 0))[0] if remaining > 0 else []
            if not ready:
                self.kill()
                if starting:
                    raise WorkerStartError(f"reward worker {self.role!r} did not start in {START_TIMEOUT_S:.0f} s")
                raise WorkerTimeout("hard deadline exceeded; worker killed")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                self.kill()
                err = WorkerStartError if starting else WorkerDied
                raise err(f"reward worker {self.role!r} exited (code {self.proc.returncode})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def kill(self):
        if self.alive:
            self.proc.kill()
        self.proc.wait()

    def close(self):
        if self.alive:
            self.proc.stdin.close()  # the child's read loop ends on EOF
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.kill()


class Pool:
    """Up to ``size`` workers of one role, shared by the threads of one process."""

    def __init__(self, role: str, arg: str | None, size: int):
        self.role, self.arg, self.size = role, arg, size
        self.idle: list[Worker] = []
        self.count = 0
        self.cond = threading.Condition()

    def call(self, method: str, params: dict, timeout: float):
        worker = self._acquire()
        try:
            return worker.call(method, params, timeout)
        finally:
            self._release(worker)

    def _acquire(self) -> Worker:
        with self.cond:
            while not self.idle and self.count >= self.size:
                self.cond.wait()
            if self.idle:
                return self.idle.pop()
            self.count += 1  # reserve the slot, start outside the lock (slow)
        try:
            return Worker(self.role, self.arg)
        except BaseException:
            with self.cond:
                self.count -= 1
                self.cond.notify()
            raise

    def _release(self, worker: Worker):
        with self.cond:
            if worker.alive:
                self.idle.append(worker)
            else:
                self.count -= 1  # killed after a timeout: a fresh one starts on demand
            self.cond.notify()

    def close(self):
        with self.cond:
            for w in self.idle:
                w.close()
            self.count -= len(self.idle)
            self.idle.clear()


_POOLS: dict[tuple, Pool] = {}
_POOLS_PID = os.getpid()
_POOLS_LOCK = threading.Lock()


def get_pool(role: str, arg: str | None = None) -> Pool:
    global _POOLS, _POOLS_PID
    with _POOLS_LOCK:
        if os.getpid() != _POOLS_PID:  # forked: the parent's pipes are not ours to use
            _POOLS, _POOLS_PID = {}, os.getpid()
        key = (role, arg)
        if key not in _POOLS:
            _POOLS[key] = Pool(role, arg, max_workers())
        return _POOLS[key]


def call(role: str, method: str, params: dict, timeout: float, arg: str | None = None):
    return get_pool(role, arg).call(method, params, timeout)


@atexit.register
def shutdown():
    """Close this process's workers (also useful in tests)."""
    with _POOLS_LOCK:
        if os.getpid() != _POOLS_PID:
            return
        for pool in _POOLS.values():
            pool.close()


# --- the child side ----------------------------------------------------------------
class SoftTimeout(BaseException):
    """Raised by the child's timer; a BaseException so library `except Exception` cannot eat it."""


# Set by the timer itself: a verdict returned after the request's timer fired (library code with a
# bare `except:` swallowed it) is a timeout. A flag, not a CPU-clock comparison: the itimer and
# process_time() sample CPU time differently, and under load the clock can read just under the limit.
_TIMER_FIRED = False


@contextmanager
def time_limit(seconds: float):
    """Inside a worker handler: a tighter soft limit for one step of a request."""
    global _TIMER_FIRED
    outer, _ = signal.setitimer(signal.ITIMER_PROF, 0)
    fired_before = _TIMER_FIRED
    start = time.process_time()
    signal.setitimer(signal.ITIMER_PROF, min(seconds, outer) if outer else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        _TIMER_FIRED = fired_before  # this step's own limit is its caller's to handle
        if outer:  # give the request's own limit back (what is left of it)
            signal.setitimer(signal.ITIMER_PROF, max(outer - (time.process_time() - start), 1e-3))


def _handlers(role: str, arg: str | None) -> dict:
    """A role is an import string, ``package.module:function``; the function returns {method: callable}."""
    import importlib

    module, _, func = role.partition(":")
    if not module or not func:
        raise ValueError(f"worker role must be 'module:function', got {role!r}")
    make = getattr(importlib.import_module(module), func)
    return make(arg) if arg is not None else make()


def serve(role: str, arg: str | None = None):
    """The child's main loop: one JSON request per stdin line, one JSON reply per line."""
    global _TIMER_FIRED
    import resource
    import traceback

    # The protocol owns the real stdout; library prints go to /dev/null.
    proto = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")

    def send(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > MEMORY_LIMIT_BYTES:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, hard))
    try:
        handlers = _handlers(role, arg)
    except BaseException as e:  # reported to the caller, which raises WorkerStartError
        send({"fatal": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"})
        return

    def on_timer(signum, frame):
        global _TIMER_FIRED
        _TIMER_FIRED = True
        raise SoftTimeout()

    signal.signal(signal.SIGPROF, on_timer)
    send({"ready": True})
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            _TIMER_FIRED = False
            signal.setitimer(signal.ITIMER_PROF, request["timeout"])
            try:
                result = handlers[request["method"]](**request["params"])
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
            if _TIMER_FIRED:
                # the timer fired, but library code with a bare `except:` (some SynLogic verifiers)
                # swallowed it and returned a verdict: still a timeout, not an answer
                raise SoftTimeout()
            send({"ok": result})
        except SoftTimeout:
            send({"error": f"timed out after {request['timeout']} s of CPU", "timeout": True})
        except Exception as e:  # a failure on this input: the caller scores 0 and records it
            send({"error": f"{type(e).__name__}: {e}"[:500]})

