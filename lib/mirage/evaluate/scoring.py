"""Samplers by backend name, and scoring that runs beside sampling.

``make_sampler`` builds the ``mirage.sample`` backend an evaluation asked for by name;
``ScorePool`` scores a chunk's samples with ``mirage.rewards.compute_score`` in worker
processes while the next chunk is sampled (inline for testbed tasks, whose checks take
microseconds).
"""

from __future__ import annotations

import functools
import math
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

from mirage.models import resolve_model
from mirage.rewards import compute_score
from mirage.rewards.format_free import format_free_acc
from mirage.sample import parallel
from mirage.sample.base import apply_chat_template
from mirage.sample.vllm import VLLMSampler


# --- samplers ----------------------------------------------------------------------
class CheckpointError(ValueError):
    """A model folder that cannot be loaded (damaged or incomplete weights); the message names it."""


def make_sampler(backend: str, model: str, *, seed: int = 0, tensor_parallel_size: int = 1,
                 gpus: int | Sequence[str] | None = None, use_ray: bool = False, **kwargs: Any):
    """Build a ``Sampler`` for ``backend`` ('hf' or 'vllm').

    vLLM engines always run in child processes (one per GPU group, or Ray actors), so
    a sweep over checkpoints frees each engine's GPU memory when it is closed.
    """
    if backend == "hf":
        from mirage.sample.hf import HFSampler  # why: torch, which importing mirage.evaluate.scoring does not need

        path = resolve_model(model)
        try:
            return HFSampler(path, **kwargs)
        except OSError:
            raise
        except Exception as e:  # noqa: BLE001 - safetensors / json errors name no file
            raise CheckpointError(f"{path}: the model cannot be loaded ({type(e).__name__}: {e})") from None
    if backend == "vllm":
        factory = functools.partial(VLLMSampler, resolve_model(model), tensor_parallel_size=tensor_parallel_size,
                                    seed=seed, **kwargs)
        if use_ray or gpus:
            # a count or list of GPUs, taken within CUDA_VISIBLE_DEVICES (the scheduler's assignment)
            gpus = parallel.assigned_gpus(gpus) if gpus else []
            return parallel.data_parallel(factory, gpus, tensor_parallel_size, use_ray=use_ray)
        return parallel.ShardedSampler([parallel.ProcessWorker(factory)])
    raise ValueError(f"unknown backend {backend!r}; known: hf, vllm")


def render_prompt(sampler, messages) -> str | None:
    """The exact prompt text the model sees (the chat template training used)."""
    if hasattr(sampler, "render_prompt"):
        return sampler.render_prompt(messages)
    if hasattr(sampler, "tokenizer"):
        return apply_chat_template(sampler.tokenizer, messages)
    return None


# --- scoring (runs in worker processes) --------------------------------------------
def score_samples(items: Sequence[tuple], format_gated: bool, score_kwargs: dict) -> list[dict]:
    """Score (data_source, text, ground_truth, extra_info) items with mirage.rewards.compute_score."""
    out = []
    for data_source, text, ground_truth, extra_info in items:
        r = compute_score(data_source, text, ground_truth, extra_info=extra_info,
                          **{"variant": "ground_truth", **score_kwargs})
        score, acc = float(r["score"]), float(r["acc"])
        out.append({"pred": None if r.get("pred") is None else str(r["pred"]), "acc": acc,
                    "format": float(r["format"]), "score": score,
                    "correct": (score if format_gated else acc) > 0,
                    # the answer scored whatever the format (mirage.rewards.lenient)
                    "acc_any_format": format_free_acc(data_source, text, ground_truth, extra_info, result=r,
                                                      **score_kwargs)})
    return out


class ScorePool:
    """Scores a chunk in a process pool (or inline with processes=0) while the next is sampled."""

    def __init__(self, processes: int, format_gated: bool, score_kwargs: dict):
        self.processes = processes
        self.args = (format_gated, dict(score_kwargs))
        # forkserver: the parent may hold torch/CUDA threads, which fork must not copy
        self.pool = (ProcessPoolExecutor(processes, mp_context=mp.get_context("forkserver"))
                     if processes > 0 else None)

    def submit(self, items: list[tuple]):
        if self.pool is None:
            return [score_samples(items, *self.args)]
        size = math.ceil(len(items) / self.processes) or 1
        return [self.pool.submit(score_samples, items[i:i + size], *self.args)
                for i in range(0, len(items), size)]

    @staticmethod
    def collect(job) -> list[dict]:
        return [r for part in job for r in (part if isinstance(part, list) else part.result())]

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


