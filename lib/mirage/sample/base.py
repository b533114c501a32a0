"""One sampling interface; ``hf.py`` (CPU/GPU, transformers) and ``vllm.py`` implement it.

Seeds are per prompt, derived from the run's seed and the problem id, so a
problem's samples never depend on which other prompts share its batch, on the
batch size, or on how a run was split across processes and resumed.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

Messages = list[dict[str, str]]  # a chat: [{"role": "user", "content": "..."}]


@dataclass(frozen=True)
class RawText:
    """A prompt given as plain text, no chat template: what a base model continues
    (the contamination probe). Samplers accept it wherever they accept ``Messages``."""

    text: str


@dataclass(frozen=True)
class SamplingParams:
    """How responses are sampled; the one definition of the sampling defaults (temperature, top_p,
    max_tokens, seed), which ``mirage.evaluate.EvalSettings`` and the study's ``StudyEval`` take."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024  # always explicit: vLLM's default is 16
    seed: int = 0

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0 <= self.temperature < math.inf:  # NaN and inf fail too
            raise ValueError(f"temperature must be finite and >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" (EOS / stop string) or "length" (cut at max_tokens)
    num_tokens: int
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None  # sampled-token log-probs, when the backend gives them
    # their sum, when the backend returns only that (vLLM: per-token lists would travel back per sample)
    cumulative_logprob: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def prompt_seed(seed: int, problem_id: Any) -> int:
    """A stable 63-bit seed for one problem's samples (independent of batch composition)."""
    digest = hashlib.sha256(f"{int(seed)}\x00{problem_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def apply_chat_template(tokenizer: Any, messages: Messages) -> str:
    """The prompt text a chat model sees: the tokenizer's own template, generation prompt on."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def raw_token_ids(tokenizer: Any, text: str) -> list[int]:
    """Plain text as a document start: the tokenizer's own special tokens, and BOS first when the
    tokenizer has one but does not add it (Llama adds it itself, Qwen has none, the testbed's is added here)."""
    ids = [int(i) for i in tokenizer(text, add_special_tokens=True)["input_ids"]]
    bos = getattr(tokenizer, "bos_token_id", None)
    return [bos] + ids if bos is not None and (not ids or ids[0] != bos) else ids


def prompt_token_ids(tokenizer: Any, prompt: "Messages | RawText") -> list[int]:
    """A chat through the template (no second BOS, as verl tokenises it), or raw text as a document start."""
    if isinstance(prompt, RawText):
        return raw_token_ids(tokenizer, prompt.text)
    return list(tokenizer(apply_chat_template(tokenizer, prompt), add_special_tokens=False)["input_ids"])


def prompt_text(tokenizer: Any, prompt: "Messages | RawText") -> str:
    return prompt.text if isinstance(prompt, RawText) else apply_chat_template(tokenizer, prompt)


class Sampler(ABC):
    """Draw ``params.n`` completions for each chat prompt."""

    backend: str = "?"

    @abstractmethod
    def generate(self, prompts: Sequence[Messages], params: SamplingParams,
                 seeds: Sequence[int]) -> list[list[Completion]]:
        """One list of ``params.n`` completions per prompt, in prompt order.

        ``seeds[i]`` seeds prompt i (see ``prompt_seed``); the same prompt, seed and
        params give the same completions whatever else is in the batch.
        """

    def describe(self) -> dict[str, Any]:
        """What to record with every result: backend, model, library versions, hardware."""
        return {"backend": self.backend}
