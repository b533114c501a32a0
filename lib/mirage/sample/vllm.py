"""The vLLM sampler (several engines, one per GPU or TP group: ``mirage.sample.parallel``).

``VLLMSampler`` turns chat prompts into token ids exactly as verl's dataset does
(the tokenizer's chat template with the generation prompt, then tokenised without
adding special tokens again) and sends one request per prompt, seeded with the
prompt's own seed. vLLM seeds child i of an ``n > 1`` request with ``seed + i``,
so when a prompt's samples are split over several requests each request starts
at ``seed + <samples already requested>``: the offsets are disjoint and the
samples are the ones a single request would have drawn.

``seeding="batched"`` sends a chunk's requests without seeds instead: vLLM V1 samples
seeded requests one by one with their own generators at every decoding step, unseeded
ones in one batched call, which matters at n = 256. The samples then depend on the
engine's random state (seeded once, at start), so they are reproducible only by the
same evaluation run from scratch with the same engines and chunking, not per problem
(docs/evaluation.md).

``LLM(data_parallel_size > 1)`` does not work inside one process: ``mirage.sample.parallel``
runs one engine per worker process (or Ray actor) and merges their shards.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any, Sequence

from mirage.runs.manifest import hardware, library_versions
from mirage.sample.base import Completion, Messages, RawText, Sampler, SamplingParams, prompt_text, raw_token_ids


def _import_vllm():
    try:
        return importlib.import_module("vllm")
    except ImportError as e:
        raise ImportError(
            "the vllm backend needs vLLM, which is not installed in this environment "
            "(it is CUDA-only: install the gpu extra, `pip install -e '.[gpu]'`, on a GPU machine, "
            "or use --backend hf)") from e


SEEDING = ("per-request", "batched")
# What results may differ by, recorded with every vLLM evaluation (docs/evaluation.md).
BATCH_INVARIANCE = ("vLLM's outputs for a seed are identical only up to batch-dependent GPU numerics: the same "
                    "request can sample other tokens when it shares the engine with other requests (vLLM's "
                    "batch-invariant mode, VLLM_BATCH_INVARIANT=1, is off)")


def split_n(n: int, max_per_call: int | None) -> list[tuple[int, int]]:
    """(seed offset, samples) for each request that draws a prompt's ``n`` samples."""
    step = n if not max_per_call else max_per_call
    return [(start, min(step, n - start)) for start in range(0, n, step)]


class VLLMSampler(Sampler):
    """``vllm.LLM`` behind the ``Sampler`` interface (one engine, tensor parallel inside it)."""

    backend = "vllm"

    def __init__(self, model: str, *, tensor_parallel_size: int = 1, dtype: str = "auto",
                 max_model_len: int | None = None, seed: int = 0, gpu_memory_utilization: float = 0.9,
                 max_samples_per_call: int | None = None, seeding: str = "per-request", **engine_kwargs: Any):
        if seeding not in SEEDING:
            raise ValueError(f"--vllm-seeding: one of {', '.join(SEEDING)}, got {seeding!r}")
        vllm = _import_vllm()
        self.model = str(model)
        self.seeding = seeding
        self.engine_args = dict(tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                                max_model_len=max_model_len, seed=seed,
                                gpu_memory_utilization=gpu_memory_utilization, **engine_kwargs)
        self.max_samples_per_call = max_samples_per_call
        self.vllm_version = getattr(vllm, "__version__", None)
        self._sampling_params = vllm.SamplingParams
        self.llm = vllm.LLM(model=self.model, **self.engine_args)
        self.tokenizer = self.llm.get_tokenizer()

    def render_prompt(self, messages: Messages | RawText) -> str:
        return prompt_text(self.tokenizer, messages)

    def prompt_token_ids(self, messages: Messages | RawText) -> list[int]:
        # verl tokenises the rendered template without adding a second BOS; raw text starts a document
        if isinstance(messages, RawText):
            return raw_token_ids(self.tokenizer, messages.text)
        return list(self.tokenizer.encode(self.render_prompt(messages), add_special_tokens=False))

    def generate(self, prompts: Sequence[Messages], params: SamplingParams,
                 seeds: Sequence[int]) -> list[list[Completion]]:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        owners, inputs, requests = [], [], []
        for i, (messages, seed) in enumerate(zip(prompts, seeds)):
            ids = self.prompt_token_ids(messages)
            for offset, n in split_n(params.n, self.max_samples_per_call):
                owners.append(i)
                inputs.append({"prompt_token_ids": ids})
                # logprobs=0: only the sampled token's log-prob, so each sample carries its cumulative_logprob
                # (the token-entropy predictor); vLLM's default logprobs_mode gives them before temperature
                # and top-p, i.e. the sampling distribution's at T = 1, top_p = 1 (docs/evaluation.md).
                # flat_logprobs: without it vLLM builds a {token: Logprob} dict per sampled token (tens of
                # millions of Python objects per chunk at n = 256) that is never read here
                requests.append(self._sampling_params(
                    n=n, temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens,
                    seed=int(seed) + offset if self.seeding == "per-request" else None, logprobs=0,
                    flat_logprobs=True))
        outputs = self.llm.generate(inputs, requests, use_tqdm=False) if inputs else []
        if len(outputs) != len(inputs):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(inputs)} requests")
        results: list[list[Completion]] = [[] for _ in prompts]
        for i, out in zip(owners, outputs):
            for c in sorted(out.outputs, key=lambda c: c.index):  # child index = seed offset
                # no token ids or per-token log-probs: only what is stored travels back (at n = 256 the ids
                # were tens of GB a sweep)
                cumulative = getattr(c, "cumulative_logprob", None)
                results[i].append(Completion(text=c.text, finish_reason=str(c.finish_reason),
                                             num_tokens=len(c.token_ids),
                                             cumulative_logprob=None if cumulative is None else float(cumulative)))
        for i, r in enumerate(results):
            if len(r) != params.n:
                raise RuntimeError(f"prompt {i}: vLLM returned {len(r)} samples, expected {params.n}")
        return results

    def describe(self) -> dict[str, Any]:
        versions = library_versions("vllm", "torch", "transformers")
        return {"backend": self.backend, "model": self.model, **self.engine_args,
                "max_samples_per_call": self.max_samples_per_call, "seeding": self.seeding,
                "vllm_version": versions["vllm"] or self.vllm_version, "batch_invariance": BATCH_INVARIANCE,
                "versions": versions, "hardware": hardware()}

    def close(self) -> None:
        """Shut the engine down (its engine-core processes too) so its GPU memory is released."""
        llm, self.llm = getattr(self, "llm", None), None
        engine = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine is not None and hasattr(engine, "shutdown"):
            engine.shutdown()
        del llm
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
