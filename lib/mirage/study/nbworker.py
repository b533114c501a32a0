"""``python -m mirage.study.nbworker``: one warm Jupyter kernel that papermill runs notebook after notebook in.

The study runner starts one worker per job slot for the cells' notebooks (``runner.run_steps``). A
fresh kernel per notebook pays, every time, for starting papermill and the kernel and for importing
torch, transformers, pandas, matplotlib and seaborn (~8 s of CPU of a testbed cell's ~25,
docs/timings.md); a worker pays for them once. Each notebook is still executed by papermill
(``papermill.execute_notebook``, given the worker's kernel manager) and written to its own output
file, as ``python -m mirage.study.nbexec`` writes it.

Before each notebook the kernel is reset (``reset_code``): the user namespace and output history are
cleared (execution counts start at 1 again), the working directory is the step's, warnings already
shown are shown again, open figures are closed. What stays is what was imported: modules and their
registries, and pure caches. A cell sets its own seeds and every draw uses an explicit generator
(``mirage.train.loop``, ``mirage.sample.hf``), so the results are the same bytes as from a fresh
kernel (``tests/test_nbworker.py`` runs two cells both ways and compares every output file).

A notebook that fails (an error in a cell, a kernel that died) fails its step only: its kernel is
shut down and the next notebook gets a new one. The worker dies with the runner (``PR_SET_PDEATHSIG``)
and the kernel with the worker, so a ``kill -9`` of the runner leaves no kernel behind.

Protocol: one JSON request a line on stdin ``{"input", "output", "parameters_file", "cwd", "log"}``;
the notebook's logs (papermill's ``--log-output``) and the kernel's own output go to ``log``; one JSON
line ``{"rc": N, "kernel_pid": P}`` on stdout when it is done (``rc`` as papermill's command line
exits: 0, 1 for a failed notebook, 138 for a dead kernel). End of stdin: the kernel is shut down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from typing import Any

from mirage.study.nbexec import block_unused

KERNEL = "python3"  # jupyter_client maps it onto this very interpreter, as `-k python3` does


def reset_code(cwd: str) -> str:
    """What runs (silently, not in the notebook) in the warm kernel before each notebook."""
    return (
        "get_ipython().reset(new_session=True)\n"  # namespace, Out; execution_count back to 1
        "def _mirage_reset(cwd):\n"
        "    import gc, os, sys, warnings\n"
        "    os.chdir(cwd)\n"
        "    for m in list(sys.modules.values()):\n"  # a warning shown by the last notebook shows again
        "        registry = getattr(m, '__dict__', {}).get('__warningregistry__')\n"
        "        if isinstance(registry, dict):\n"
        "            registry.clear()\n"
        "    warnings._filters_mutated()\n"
        "    if 'matplotlib.pyplot' in sys.modules:\n"
        "        sys.modules['matplotlib.pyplot'].close('all')\n"
        "    gc.collect()\n"
        f"_mirage_reset({cwd!r})\n"
        "del _mirage_reset\n"
    )


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Worker:
    """A kernel manager with at most one live kernel."""

    def __init__(self) -> None:
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        class Manager(AsyncKernelManager):
            def client(self, **kw: Any):  # nbclient makes one per notebook: remember it to close it after
                kc = super().client(**kw)
                self.made.append(kc)
                return kc

        self._run = run_sync
        self._manager_class = Manager
        self.km = None

    def kernel_pid(self) -> int | None:
        proc = getattr(getattr(self.km, "provisioner", None), "process", None)
        return proc.pid if proc is not None else None

    def ensure_kernel(self, cwd: str) -> None:
        if self.km is not None and self._run(self.km.is_alive)():
            return
        self.drop()
        km = self._manager_class(kernel_name=KERNEL)
        km.made = []
        kw: dict[str, Any] = {"cwd": cwd, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
        if sys.platform.startswith("linux"):
            kw["preexec_fn"] = _die_with_parent
        self._run(km.start_kernel)(**kw)
        self.km = km
        # the kernel's own output (outside what ipykernel captures) goes to the current step's log (fd 2)
        threading.Thread(target=_forward, args=(km.provisioner.process.stdout,), daemon=True).start()

    def reset(self, cwd: str) -> None:
        # a client of its own each time: nbclient runs each notebook in an event loop of its own, and a
        # client whose sockets belong to an earlier loop receives nothing
        kc = self.km.client()
        kc.start_channels()
        self._run(kc.wait_for_ready)(timeout=120)
        self._run(_execute)(kc, reset_code(cwd))

    def close_clients(self) -> None:
        for kc in self.km.made if self.km is not None else []:
            kc.stop_channels()
        if self.km is not None:
            self.km.made.clear()

    def drop(self) -> None:
        """Shut the kernel down (a failed notebook's kernel is not reused)."""
        if self.km is None:
            return
        km, self.km = self.km, None
        for kc in km.made:
            kc.stop_channels()
        try:
            self._run(km.shutdown_kernel)(now=True)
        except Exception as e:  # noqa: BLE001 - already gone
            print(f"[nbworker] shutting the kernel down: {e}", file=sys.stderr)
        self._run(km.cleanup_resources)()

    def run(self, req: dict[str, Any]) -> int:
        """Execute one notebook with papermill in the warm kernel -> papermill's command line's exit status."""
        import papermill
        from nbclient.exceptions import DeadKernelError
        from papermill.iorw import read_yaml_file

        try:
            self.ensure_kernel(req["cwd"])
            self.reset(req["cwd"])
            parameters = read_yaml_file(req["parameters_file"]) or {}  # what `papermill -f` reads
            papermill.execute_notebook(req["input"], req["output"], parameters=parameters, kernel_name=KERNEL,
                                       km=self.km, progress_bar=False, log_output=True, cwd=req["cwd"])
            return 0
        except DeadKernelError:
            traceback.print_exc()
            self.drop()
            return 138
        except BaseException:  # noqa: BLE001 - the step fails, the worker goes on with a new kernel
            traceback.print_exc()
            self.drop()
            return 1
        finally:
            self.close_clients()


async def _execute(kc, code: str, timeout: float = 120) -> None:
    msg_id = kc.execute(code, silent=True, store_history=False)
    while True:
        reply = await kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"resetting the warm kernel failed: {reply['content'].get('ename')}: "
                           f"{reply['content'].get('evalue')}")


def _forward(stream) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):
        try:
            os.write(2, chunk)
        except OSError:
            pass


def main() -> int:
    block_unused()
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # as papermill's command line sets it
    import logging

    reply = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    logging.basicConfig(level="INFO", format="%(message)s")  # papermill's command line: --log-output to stderr
    worker = Worker()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            fd = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            try:
                rc = worker.run(req)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
            reply.write(json.dumps({"rc": rc, "kernel_pid": worker.kernel_pid()}) + "\n")
    finally:
        worker.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
