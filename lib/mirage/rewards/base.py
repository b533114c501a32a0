"""The reward registry: what a condition's reward computes, and what it needs to compute it.

A ``Reward`` has a scope:

* ``response``: a pure function of one response's verdict (format ok, answer correct,
  a seeded coin); ``compute_score(variant=<name>)`` computes it, in either engine.
* ``group``:    needs the whole group of responses to one prompt (majority vote).
* ``logprob``:  needs the response's own token log-probs (entropy minimisation).

Group and log-prob rewards first score every response with their ``per_response``
reward (which also gives ``acc``, ``pred`` and ``format`` for logging), then the
engine calls ``reward.rescore(responses, score_kwargs)`` on the finished groups:
the local engine after sampling, verl in mirage's replay buffer. Neither engine
knows which reward it is; ``needs`` says which fields of ``Responses`` to fill.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from mirage.registry import Registry, RegistryError

SCOPES = ("response", "group", "logprob")
FIELDS = ("group", "data_source", "pred", "format", "logprobs", "mask")


@dataclass
class Responses:
    """The finished responses a group / log-prob reward re-scores; row r is one response."""

    group: Sequence[Any]  # the prompt group of each response (any hashable ids)
    data_source: Sequence[str]
    pred: Sequence[str | None] | None = None  # the extracted answer (compute_score's ``pred``)
    format: Sequence[float] | None = None  # format ok (compute_score's ``format``)
    logprobs: Any = None  # (R, L) tensor of the sampled tokens' log-probs
    mask: Any = None  # (R, L) tensor, 1 on response tokens

    def groups(self) -> dict[Any, list[int]]:
        """group id -> its rows, in first-seen order."""
        out: dict[Any, list[int]] = {}
        for i, g in enumerate(self.group):
            out.setdefault(g if isinstance(g, (int, str)) else str(g), []).append(i)
        return out


@dataclass(frozen=True)
class Reward:
    name: str
    scope: str
    # response scope: (fmt, acc, coin, checker, release_faithful) -> score; ``coin()`` draws the
    # response's seeded coin with the reward's ``p``, ``checker`` is the row's mirage Checker
    score: Callable[..., float] | None = None
    # group / log-prob scope: (responses, score_kwargs) -> one training score per response
    rescore: Callable[[Responses, Mapping[str, Any]], Sequence[float]] | None = None
    needs: tuple[str, ...] = ()  # the Responses fields ``rescore`` reads
    per_response: str = "ground_truth"  # group / log-prob scope: the response reward scored first
    summary: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)  # its own keywords and defaults (random: p)

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise RegistryError(f"reward {self.name!r}: scope must be one of {SCOPES}, got {self.scope!r}")
        if self.scope == "response" and self.score is None:
            raise RegistryError(f"reward {self.name!r}: a response reward needs score=")
        if self.scope != "response" and self.rescore is None:
            raise RegistryError(f"reward {self.name!r}: a {self.scope} reward needs rescore=")
        bad = set(self.needs) - set(FIELDS)
        if bad:
            raise RegistryError(f"reward {self.name!r}: needs unknown fields {sorted(bad)}; known: {FIELDS}")

    @property
    def variant(self) -> str:
        """The ``compute_score`` variant that scores each response."""
        return self.name if self.scope == "response" else self.per_response


def _check_per_response(reward: Reward) -> None:
    if reward.scope != "response":
        target = REWARDS.get(reward.per_response)
        if target is None or target.scope != "response":
            raise RegistryError(f"reward {reward.name!r}: per_response={reward.per_response!r} "
                                "must name a registered response reward")


REWARDS: Registry[Reward] = Registry("reward", validate=_check_per_response)


def register_reward(reward: Reward) -> Reward:
    return REWARDS.register(reward)


def get_reward(name: str) -> Reward:
    return REWARDS[name]
