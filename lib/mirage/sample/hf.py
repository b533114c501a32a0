"""Batched sampling from Hugging Face causal LMs with a KV cache (CPU or GPU).

``sample_tokens`` is the low-level decode loop the local GRPO engine uses for its
rollouts; ``HFSampler`` wraps it in the ``Sampler`` interface for evaluation.

How it works: the prompts are left-padded and prefilled once each; the cache is
then repeated ``n`` times, and every decode step feeds one token per row with
the attention mask and position ids that left padding needs. Rows that finished
are dropped from the batch (and from the cache) as they stop.

Randomness is per prompt: prompt i draws a (n, max_tokens) block of uniforms from
its own ``torch.Generator(seed_i)`` up front, and sample j at step t is the
inverse-CDF draw for u[j, t]. A prompt's samples therefore do not depend on
which other prompts share the batch, nor on ``n`` (sample j is the same for every
n > j), only on its seed, ``max_tokens`` and the sampling settings.

Log-probs are those of the sampled tokens under softmax(logits / temperature),
untruncated by top-p, which is what verl's actor computes for the same tokens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from mirage.sample.base import Completion, Messages, RawText, Sampler, SamplingParams, prompt_token_ids


@dataclass
class SampleBatch:
    """Samples of a batch of prompts, prompt-major: row i * n + j is sample j of prompt i."""

    prompt_index: torch.Tensor  # (rows,) long: which prompt each row belongs to
    responses: torch.Tensor  # (rows, L) long, right-padded with pad_token_id; includes the stop token
    logprobs: torch.Tensor  # (rows, L) float32, 0 on padding
    lengths: torch.Tensor  # (rows,) long: response tokens, the stop token included
    finish_reasons: list[str]  # "stop" (a stop token was sampled) or "length" (max_tokens reached)

    @property
    def response_mask(self) -> torch.Tensor:
        return (torch.arange(self.responses.shape[1])[None, :] < self.lengths[:, None]).float()


def preallocated_cache(capacity: int):
    """A ``DynamicCache`` whose layers write into buffers that grow by doubling, up to ``capacity`` positions.

    The stock cache grows by ``torch.cat`` at every step: a fresh multi-MB allocation
    per layer per token, which on CPU costs page faults and dominated decode time.
    Allocating the whole ``capacity`` at once instead costs gigabytes when a long
    ``max_tokens`` (8192) meets short answers; doubling copies each position about once.
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.dtype, self.device = key_states.dtype, key_states.device
                self.length, self.is_initialized = 0, True
                self._k = self._v = None
            end = self.length + key_states.shape[-2]
            if end > capacity:
                raise RuntimeError(f"KV cache full: {end} positions > capacity {capacity}")
            if self._k is None or end > self._k.shape[-2]:
                self._grow(key_states, value_states, min(capacity, max(end + 64, 2 * end)))
            self._k[:, :, self.length:end] = key_states
            self._v[:, :, self.length:end] = value_states
            self.length = end
            self._views()
            return self.keys, self.values

        def _grow(self, key_states, value_states, size: int):
            k = key_states.new_empty((*key_states.shape[:2], size, key_states.shape[-1]))
            v = value_states.new_empty((*value_states.shape[:2], size, value_states.shape[-1]))
            if self._k is not None and self.length:
                k[:, :, :self.length] = self._k[:, :, :self.length]
                v[:, :, :self.length] = self._v[:, :, :self.length]
            self._k, self._v = k, v

        def _views(self):
            self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._k, self._v = self._k.repeat_interleave(repeats, 0), self._v.repeat_interleave(repeats, 0)
            self._views()

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self._k, self._v = self._k[indices], self._v[indices]
            self._views()

    cache = DynamicCache()
    cache.layer_class_to_replicate = PreallocatedLayer
    return cache


def _as_list(ids: Any) -> list[int]:
    if ids is None:
        return []
    return [int(i) for i in ids] if isinstance(ids, (list, tuple, set)) else [int(ids)]


def left_pad(prompts: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (len(prompts), longest prompt), padded on the left."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if len(p):
            ids[i, width - len(p):] = torch.as_tensor(list(p), dtype=torch.long)
            mask[i, width - len(p):] = 1
    return ids, mask


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch (0 at each row's first real token)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _pick(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row by inverse CDF on uniforms ``u``; return (tokens, their log-probs)."""
    logits = logits.float()
    if temperature == 0:
        tokens = logits.argmax(-1)
        logp = torch.log_softmax(logits, -1)
    else:
        logp = torch.log_softmax(logits / temperature, -1)
        probs = logp.exp()
        if top_p < 1.0:
            sorted_p, order = probs.sort(-1, descending=True)
            # keep the smallest prefix whose mass reaches top_p (the top token is always kept)
            drop_sorted = (sorted_p.cumsum(-1) - sorted_p) >= top_p
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            probs = probs.masked_fill(drop, 0.0)
        cdf = probs.double().cumsum(-1)
        target = u.double() * cdf[:, -1]
        tokens = torch.searchsorted(cdf, target[:, None], right=True).squeeze(-1)
        tokens = tokens.clamp(max=probs.shape[-1] - 1)
        # never land on a zero-probability token (cdf plateaus at the top end)
        bad = probs.gather(-1, tokens[:, None]).squeeze(-1) <= 0
        if bad.any():
            tokens[bad] = probs[bad].argmax(-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


@torch.no_grad()
def sample_tokens(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    n: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_tokens: int = 64,
    stop_token_ids: Any = None,
    pad_token_id: int = 0,
    batch_size: int | None = None,
) -> SampleBatch:
    """Draw ``n`` responses for each tokenised prompt; see the module docstring.

    ``batch_size`` caps the prompts decoded together (None: all at once); the result
    does not depend on it beyond float rounding.
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds")
    if not prompts:
        raise ValueError("no prompts to sample from")
    if any(len(p) == 0 for p in prompts):
        raise ValueError(f"prompt {[len(p) for p in prompts].index(0)} is empty")
    SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens)  # validates
    stop = torch.as_tensor(_as_list(stop_token_ids), dtype=torch.long)
    chunk = batch_size or len(prompts)
    parts = [_sample_chunk(model, prompts[i:i + chunk], seeds[i:i + chunk], n, temperature, top_p, max_tokens,
                           stop, pad_token_id) for i in range(0, len(prompts), chunk)]
    width = max(p[0].shape[1] for p in parts)
    responses = torch.cat([torch.nn.functional.pad(p[0], (0, width - p[0].shape[1]), value=pad_token_id)
                           for p in parts])
    logprobs = torch.cat([torch.nn.functional.pad(p[1], (0, width - p[1].shape[1])) for p in parts])
    lengths = torch.cat([p[2] for p in parts])
    stopped = torch.cat([p[3] for p in parts])
    return SampleBatch(
        prompt_index=torch.arange(len(prompts)).repeat_interleave(n),
        responses=responses, logprobs=logprobs, lengths=lengths,
        finish_reasons=["stop" if s else "length" for s in stopped.tolist()],
    )


def _sample_chunk(model, prompts, seeds, n, temperature, top_p, max_tokens, stop, pad_token_id):
    device = next(model.parameters()).device
    rows = len(prompts) * n
    # Each prompt's randomness comes from its own generator (batch-composition independent).
    uniforms = torch.stack([torch.rand(n, max_tokens, generator=torch.Generator().manual_seed(int(s)))
                            for s in seeds]).reshape(rows, max_tokens)
    ids, mask = left_pad(prompts, pad_token_id)
    ids, mask = ids.to(device), mask.to(device)
    cache = preallocated_cache(ids.shape[1] + max_tokens)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask), past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    if n > 1:
        cache.batch_repeat_interleave(n)
    logits = out.logits[:, -1].repeat_interleave(n, dim=0)
    width = ids.shape[1]
    mask = torch.cat([mask, mask.new_zeros(mask.shape[0], max_tokens)], dim=1).repeat_interleave(n, dim=0)
    next_pos = mask.sum(-1)  # position id of the first response token

    responses = torch.full((rows, max_tokens), pad_token_id, dtype=torch.long)
    logprobs = torch.zeros((rows, max_tokens))
    lengths = torch.full((rows,), max_tokens, dtype=torch.long)
    stopped = torch.zeros(rows, dtype=torch.bool)
    alive = torch.arange(rows)  # original row of each row still in the batch
    live = torch.ones(rows, dtype=torch.bool)  # rows of the batch still generating
    for t in range(max_tokens):
        tokens, lp = _pick(logits, uniforms[alive, t].to(device), temperature, top_p)
        tokens, lp = tokens.cpu(), lp.cpu()
        responses[alive[live], t] = tokens[live]
        logprobs[alive[live], t] = lp[live]
        done = live & torch.isin(tokens, stop)
        lengths[alive[done]] = t + 1
        stopped[alive[done]] = True
        live &= ~done
        if t == max_tokens - 1 or not bool(live.any()):
            break
        if int((~live).sum()) >= max(1, len(live) // 4):  # drop finished rows (batching the copies)
            keep = live.nonzero().squeeze(-1)
            keep_dev = keep.to(device)
            cache.batch_select_indices(keep_dev)
            alive, live, tokens = alive[keep], live[keep], tokens[keep]
            mask, next_pos = mask[keep_dev], next_pos[keep_dev]
        mask[:, width + t] = 1
        out = model(input_ids=tokens[:, None].to(device), attention_mask=mask[:, :width + t + 1],
                    position_ids=next_pos[:, None], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[:, -1]
        next_pos = next_pos + 1
    longest = int(lengths.max())
    return responses[:, :longest], logprobs[:, :longest], lengths, stopped


class HFSampler(Sampler):
    """``Sampler`` over a transformers causal LM (a path, an HF id, or a loaded model + tokenizer)."""

    backend = "hf"

    def __init__(self, model: Any, tokenizer: Any = None, device: str | None = None, dtype: Any = None,
                 batch_size: int | None = 64, threads: int | None = None):
        import transformers

        if threads is not None:
            torch.set_num_threads(int(threads))
        self.model_path = None
        if isinstance(model, (str, os.PathLike)):
            self.model_path = str(model)
            model = transformers.AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype or torch.float32)
            tokenizer = tokenizer or transformers.AutoTokenizer.from_pretrained(self.model_path)
        if tokenizer is None:
            raise ValueError("a loaded model needs its tokenizer: HFSampler(model, tokenizer)")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_token_ids = stop_token_ids(model, tokenizer)
        if not self.stop_token_ids:
            raise ValueError(f"model {self.model_path or type(model).__name__}: no EOS token in tokenizer or config")

    def encode(self, messages: Messages | RawText) -> list[int]:
        return prompt_token_ids(self.tokenizer, messages)

    def decode(self, token_ids: Sequence[int]) -> str:
        ids = [int(t) for t in token_ids if int(t) not in self.stop_token_ids]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def generate(self, prompts: Sequence[Messages], params: SamplingParams,
                 seeds: Sequence[int]) -> list[list[Completion]]:
        batch = sample_tokens(self.model, [self.encode(m) for m in prompts], seeds, n=params.n,
                              temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens,
                              stop_token_ids=self.stop_token_ids, pad_token_id=self.pad_token_id,
                              batch_size=self.batch_size)
        out: list[list[Completion]] = [[] for _ in prompts]
        for row in range(batch.responses.shape[0]):
            length = int(batch.lengths[row])
            ids = batch.responses[row, :length].tolist()
            out[int(batch.prompt_index[row])].append(Completion(
                text=self.decode(ids), finish_reason=batch.finish_reasons[row], num_tokens=length,
                token_ids=ids, logprobs=batch.logprobs[row, :length].tolist()))
        return out

    def describe(self) -> dict[str, Any]:
        import transformers

        return {"backend": self.backend, "model": self.model_path or type(self.model).__name__,
                "torch": torch.__version__, "transformers": transformers.__version__, "device": self.device,
                "threads": torch.get_num_threads(), "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
                "dtype": str(next(self.model.parameters()).dtype), "batch_size": self.batch_size}


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids from the generation config, the model config and the tokenizer (all of them stop)."""
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        ids += _as_list(getattr(source, "eos_token_id", None))
    return sorted(set(ids))
