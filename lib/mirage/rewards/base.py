"""The reward registry: what a condition's reward computes, and what it needs to compute it.

A ``Reward`` has a scope:

* ``response``: a pure function of one response, given as a ``ResponseRecord`` (its text,
  extracted answer, format flag, the checker's verdict, the row's ground truth and
  extra_info, a seeded coin); ``compute_score(variant=<name>)`` computes it, in either engine.
* ``group``:    needs the whole group of responses to one prompt (majority vote).
* ``logprob``:  needs the response's own token log-probs (entropy minimisation).

Group and log-prob rewards first score every response with their ``per_response``
reward (which also gives ``acc``, ``pred`` and ``format`` for logging), then the
engine calls ``reward.rescore(responses, score_kwargs)`` on the finished groups:
the local engine after sampling, verl in mirage's replay buffer. Neither engine
knows which reward it is; ``needs`` says which fields of ``Responses`` to fill.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from mirage.registry import Registry, RegistryError

SCOPES = ("response", "group", "logprob")
FIELDS = ("group", "data_source", "pred", "format", "logprobs", "mask", "vote")


def _no_coin() -> bool:
    raise ValueError("this ResponseRecord was built without a coin (compute_score gives every record one)")


@dataclass(frozen=True)
class ResponseRecord:
    """Everything a response reward may read about one response (``Reward.score(record) -> float``).

    Built once per response by ``compute_score`` (both engines score through it), in the spirit of TRL's
    reward functions, which receive the completions and the dataset's columns.
    """

    text: str  # the whole response
    answer: str | None  # the inside of its first ``<answer>`` block (``extract_answer``), None if absent
    format_ok: bool  # ``<think>..</think> <answer>..</answer>`` (``format_ok``)
    correct: bool  # the checker's verdict on the answer, format ignored (``acc``)
    verdict: Any  # the checker's full ``Verdict`` (acc, pred, error, procedure, details)
    checker: Any  # the row's ``Checker`` entry
    data_source: str
    ground_truth: Any
    extra_info: Mapping | None
    release_faithful: bool = False
    # the response's seeded, independent coin with the reward's ``p`` (called only when a reward needs it)
    coin: Callable[[], bool] = field(default=lambda: _no_coin(), repr=False, compare=False)

    @property
    def pred(self) -> str | None:
        """The answer as the checker read it (``compute_score``'s ``pred``)."""
        return self.verdict.pred


@dataclass
class Responses:
    """The finished responses a group / log-prob reward re-scores; row r is one response."""

    group: Sequence[Any]  # the prompt group of each response (any hashable ids)
    data_source: Sequence[str]
    pred: Sequence[str | None] | None = None  # the extracted answer (compute_score's ``pred``)
    format: Sequence[float] | None = None  # format ok (compute_score's ``format``)
    logprobs: Any = None  # (R, L) tensor of the sampled tokens' log-probs
    mask: Any = None  # (R, L) tensor, 1 on response tokens
    # what votes in majority vote where the row's checker declares a vote column (``Checker.vote_column``: code's
    # behaviour on the test inputs): that column of compute_score's result; None for rows of other checkers
    vote: Sequence[Any] | None = None

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
    # response scope: (ResponseRecord) -> score
    score: Callable[[ResponseRecord], float] | None = None
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
        if self.scope == "response" and not _takes_one_argument(self.score):
            raise RegistryError(f"reward {self.name!r}: score= must take one argument, the ResponseRecord")
        if self.scope != "response" and self.rescore is None:
            raise RegistryError(f"reward {self.name!r}: a {self.scope} reward needs rescore=")
        bad = set(self.needs) - set(FIELDS)
        if bad:
            raise RegistryError(f"reward {self.name!r}: needs unknown fields {sorted(bad)}; known: {FIELDS}")

    @property
    def variant(self) -> str:
        """The ``compute_score`` variant that scores each response."""
        return self.name if self.scope == "response" else self.per_response


def _takes_one_argument(fn: Callable) -> bool:
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): trust it
        return True
    return True


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
