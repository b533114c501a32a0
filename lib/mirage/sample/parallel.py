"""Data parallelism for any sampler: shards of prompts over several workers (one per GPU or TP group).

``LLM(data_parallel_size > 1)`` does not work inside one process, so several GPUs are used by
``ShardedSampler``: it cuts every batch of prompts into contiguous shards, runs one per worker (a
subprocess pinned with CUDA_VISIBLE_DEVICES, or a Ray actor on any node), and merges the results
back in prompt order. Sharding knows nothing about vLLM; any ``Sampler`` factory works. Workers are
started together (engines load in parallel) and return only what an evaluation stores (text, finish
reason, token count: no token ids); closing a worker shuts its engine down and ends its process,
which frees its GPU memory.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

from mirage.sample.base import Completion, Messages, Sampler, SamplingParams  # noqa: F401  (annotations)


def shard_bounds(n_items: int, n_shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges covering ``n_items``; sizes differ by at most one."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    base, extra = divmod(n_items, n_shards)
    bounds, start = [], 0
    for s in range(n_shards):
        end = start + base + (s < extra)
        bounds.append((start, end))
        start = end
    return bounds


class ShardedSampler(Sampler):
    """Run each batch on several workers (contiguous shards) and merge in prompt order.

    A worker has ``submit(prompts, params, seeds) -> future`` (anything with
    ``.result()``), ``describe()`` and ``close()``. Because every prompt carries its
    own seed, the merged result does not depend on the number of workers.
    """

    def __init__(self, workers: Sequence[Any]):
        if not workers:
            raise ValueError("ShardedSampler needs at least one worker")
        self.workers = list(workers)
        self._describe: dict[str, Any] | None = None

    @property
    def backend(self) -> str:  # type: ignore[override]
        return self.describe()["backend"]

    def render_prompt(self, messages: Messages) -> str:
        return self.workers[0].render_prompt(messages)

    def generate(self, prompts, params, seeds):
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        jobs = [(a, b, w.submit(list(prompts[a:b]), params, list(seeds[a:b])))
                for w, (a, b) in zip(self.workers, shard_bounds(len(prompts), len(self.workers))) if b > a]
        merged: list[list[Completion]] = []
        for a, b, job in jobs:  # wait for every shard, in prompt order
            shard = job.result()
            if len(shard) != b - a:
                raise RuntimeError(f"worker for prompts [{a}, {b}) returned {len(shard)} results")
            merged.extend(shard)
        return merged

    def describe(self) -> dict[str, Any]:
        if self._describe is None:
            workers = [w.describe() for w in self.workers]
            self._describe = {**workers[0], "data_parallel_size": len(workers), "workers": workers}
        return self._describe

    def close(self) -> None:
        for w in self.workers:
            w.close()


class ThreadWorker:
    """An in-process worker (one sampler, one thread); for tests and single-engine runs."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self._pool = ThreadPoolExecutor(max_workers=1)

    def submit(self, prompts, params, seeds) -> Future:
        return self._pool.submit(self.sampler.generate, prompts, params, seeds)

    def render_prompt(self, messages):
        return self.sampler.render_prompt(messages)

    def describe(self):
        return self.sampler.describe()

    def close(self):
        self._pool.shutdown()


def _serve(conn, factory: Callable[[], Sampler], env: dict[str, str]) -> None:
    """Subprocess main loop: build the sampler, then answer requests until 'close'."""
    os.environ.update(env)
    try:
        sampler = factory()
        conn.send(("ok", None))
    except BaseException:  # report the failure to the parent instead of dying silently
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            op, args = conn.recv()
        except EOFError:  # the parent went away
            return
        if op == "close":
            if hasattr(sampler, "close"):
                sampler.close()
            conn.send(("closed", None))
            return
        try:
            conn.send(("ok", getattr(sampler, op)(*args)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))


class _Reply:
    def __init__(self, worker: "ProcessWorker"):
        self.worker = worker

    def result(self):
        return self.worker._receive()


class ProcessWorker:
    """A sampler in its own (spawned) process, e.g. one vLLM engine pinned to some GPUs.

    ``factory`` must be picklable (a class or ``functools.partial``); ``env`` is set
    before the child imports anything, so ``CUDA_VISIBLE_DEVICES`` takes effect.
    ``wait=False`` returns once the process is started; ``ready()`` then waits for its
    sampler, so several engines load at the same time.
    """

    def __init__(self, factory: Callable[[], Sampler], env: dict[str, str] | None = None, wait: bool = True):
        self.env = dict(env or {})
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)  # inherited by the spawned child from its first instruction
        try:
            # not a daemon: vLLM starts its own engine processes, which daemons may not do
            self.process = ctx.Process(target=_serve, args=(child, factory, self.env))
            self.process.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        child.close()
        atexit.register(self.close)  # runs before multiprocessing joins its children at exit
        self._busy = True
        if wait:
            self.ready()

    def ready(self) -> "ProcessWorker":
        """Wait until the sampler is built (or raise its error)."""
        if self._busy:
            self._receive()
        return self

    def _receive(self):
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"sampler process {self.process.pid} died "
                               f"(exit code {self.process.exitcode}, env {self.env})") from None
        self._busy = False
        if status == "error":
            raise RuntimeError(f"sampler process (env {self.env}) failed:\n{value}")
        return value

    def _call(self, op: str, *args):
        if self._busy:
            raise RuntimeError("ProcessWorker: previous request not collected yet")
        self._busy = True
        self._conn.send((op, args))
        return _Reply(self)

    def submit(self, prompts, params, seeds) -> _Reply:
        return self._call("generate", prompts, params, seeds)

    def render_prompt(self, messages):
        return self._call("render_prompt", messages).result()

    def describe(self):
        return self._call("describe").result()

    def close(self):
        """Shut the sampler down and end the process (its exit frees the GPU memory it held)."""
        atexit.unregister(self.close)
        if self._conn.closed:
            return
        if self.process.is_alive():
            try:  # answers still in flight (a start, a request) are skipped until the engine says it shut down
                self._conn.send(("close", ()))
                deadline = time.monotonic() + 120
                while self._conn.poll(max(0.0, deadline - time.monotonic())):
                    if self._conn.recv()[0] == "closed":
                        break
            except (OSError, EOFError):
                pass
            self.process.join(timeout=60)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()


class _RayFuture:
    def __init__(self, ref):
        self.ref = ref

    def result(self):
        import ray

        return ray.get(self.ref)


class RayWorker:
    """A sampler inside a Ray actor holding ``num_gpus`` GPUs (Ray pins the devices).

    Works across nodes: connect first (``ray.init(address="auto")``, or set RAY_ADDRESS).
    """

    def __init__(self, factory: Callable[[], Sampler], num_gpus: float = 1, num_cpus: float = 1):
        import ray

        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)
        actor_cls = ray.remote(num_gpus=num_gpus, num_cpus=num_cpus)(_SamplerActor)
        self.actor = actor_cls.remote(factory)
        self.ray = ray

    def submit(self, prompts, params, seeds) -> _RayFuture:
        return _RayFuture(self.actor.call.remote("generate", prompts, params, seeds))

    def render_prompt(self, messages):
        return self.ray.get(self.actor.call.remote("render_prompt", messages))

    def describe(self):
        return self.ray.get(self.actor.call.remote("describe"))

    def close(self):
        try:  # shut the engine down in the actor, then end the actor (its process held the GPU)
            self.ray.get(self.actor.call.remote("close"), timeout=120)
        except Exception:  # noqa: BLE001 - the actor may be gone already; killing it is what matters
            pass
        self.ray.kill(self.actor)


class _SamplerActor:
    def __init__(self, factory):
        self.sampler = factory()

    def call(self, op, *args):
        if op == "close" and not hasattr(self.sampler, "close"):
            return None
        return getattr(self.sampler, op)(*args)


def assigned_gpus(spec: int | Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs to use for ``--gpus spec``, within what the scheduler assigned.

    A count takes the first N of ``CUDA_VISIBLE_DEVICES`` when it is set (SLURM and Ray set it to the
    job's devices, which need not be 0..N-1); a list must name assigned devices. Without the variable a
    count means devices 0..N-1. More GPUs than assigned is an error naming both.
    """
    env = os.environ if environ is None else environ
    raw = env.get("CUDA_VISIBLE_DEVICES")
    assigned = None if raw is None else [g.strip() for g in raw.split(",") if g.strip()]
    if isinstance(spec, int):
        if spec < 1:
            raise ValueError(f"--gpus: at least 1 GPU, got {spec}")
        if assigned is None:
            return [str(i) for i in range(spec)]
        if spec > len(assigned):
            raise ValueError(f"--gpus {spec}: only {len(assigned)} GPU(s) assigned to this job "
                             f"(CUDA_VISIBLE_DEVICES={raw!r}); ask the scheduler for more or pass --gpus {len(assigned)}")
        return assigned[:spec]
    wanted = [str(g) for g in spec]
    if assigned is not None:
        outside = [g for g in wanted if g not in assigned]
        if outside:
            raise ValueError(f"--gpus {','.join(wanted)}: {','.join(outside)} not assigned to this job "
                             f"(CUDA_VISIBLE_DEVICES={raw!r}); name assigned devices or pass a count")
    return wanted


def gpu_groups(gpus: Sequence[str], tensor_parallel_size: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES for each engine: consecutive groups of ``tensor_parallel_size`` GPUs."""
    gpus = [str(g) for g in gpus]
    if tensor_parallel_size < 1 or len(gpus) % tensor_parallel_size:
        raise ValueError(f"{len(gpus)} GPUs ({','.join(gpus)}) do not split into engines of "
                         f"tensor_parallel_size={tensor_parallel_size}")
    return [",".join(gpus[i:i + tensor_parallel_size]) for i in range(0, len(gpus), tensor_parallel_size)]


def data_parallel(factory: Callable[[], Sampler], gpus: Sequence[str], tensor_parallel_size: int = 1,
                  use_ray: bool = False) -> ShardedSampler:
    """One engine per group of ``tensor_parallel_size`` GPUs, as processes or Ray actors.

    With Ray, ``gpus`` only counts the GPUs to use (Ray places the actors, on any node).
    """
    groups = gpu_groups(gpus, tensor_parallel_size)
    if use_ray:  # actors are created asynchronously: their engines load in parallel
        return ShardedSampler([RayWorker(factory, num_gpus=tensor_parallel_size) for _ in groups])
    return ShardedSampler(start_workers(factory, [{"CUDA_VISIBLE_DEVICES": g} for g in groups]))


def start_workers(factory: Callable[[], Sampler], envs: Sequence[dict[str, str]]) -> list[ProcessWorker]:
    """One ProcessWorker per environment, all started before any is waited for (engines load in parallel);
    if one fails, the others are closed and its error raised."""
    workers = [ProcessWorker(factory, env, wait=False) for env in envs]
    try:
        for w in workers:
            w.ready()
    except BaseException:
        for w in workers:
            w.close()
        raise
    return workers
