"""Dynamic sampling and response dropping: the decisions both engines make the same way.

Dynamic sampling (DAPO, the paper's recipe): a prompt group whose scores are all equal
carries no signal for a group-normalised estimator, so it is dropped; while fewer than
``train_batch_size`` groups carry signal another whole generation batch is drawn, at
most ``max_num_gen_batches`` in all (<= 0: unbounded), then training falls back to the
groups it has. ``next_action`` is that rule; the local engine calls it after each
generation batch, verl's replay buffer (``mirage.train.verl.sampler``) after each refill.

Dropping (the +-1 estimators of Zhu et al.): responses whose advantage is exactly zero
leave the batch, so the token-mean normaliser counts kept tokens only; ``drop_mask``
computes the estimator's advantages and says which stay (``mirage.objectives``).
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

from mirage.objectives import get_estimator, kept_responses
from mirage.rewards.checkers import PROCEDURES

TRAIN, GENERATE, FALLBACK = "train", "generate", "fallback"


def is_uniform(scores: Sequence[float]) -> bool:
    """Two or more responses, all with the same score: no signal for a group-normalised estimator."""
    scores = np.asarray(scores)
    return len(scores) > 1 and bool(np.all(scores == scores[0]))


def informative(groups: Mapping[Hashable, Sequence[float]]) -> list[Hashable]:
    """The groups (in the mapping's order) whose scores are not all equal."""
    return [key for key, scores in groups.items() if not is_uniform(scores)]


def next_action(n_informative: int, gen_batches: int, batch_size: int, dynamic_sampling: bool,
                max_num_gen_batches: int) -> str:
    """After ``gen_batches`` generation batches: TRAIN (enough informative groups, or dynamic sampling
    off), GENERATE (draw another batch) or FALLBACK (the cap is reached: train on what there is)."""
    if not dynamic_sampling or n_informative >= batch_size:
        return TRAIN
    if max_num_gen_batches <= 0 or gen_batches < max_num_gen_batches:
        return GENERATE
    return FALLBACK


def group_normalised(estimator: str) -> bool:
    """True when an all-equal group gets zero advantage, i.e. dynamic sampling loses nothing."""
    import torch

    est = get_estimator(estimator)
    for value in (0.0, 1.0):
        adv, _ = est.fn(token_level_rewards=torch.full((2, 1), value), response_mask=torch.ones(2, 1), index=[0, 0])
        if adv.abs().sum() > 0:
            return False
    return True


def drop_mask(estimator: str, token_level_rewards: Any, response_mask: Any, index: Iterable[Hashable],
              **estimator_kwargs: Any):
    """(keep per response, advantages): which responses stay in the batch under ``estimator``."""
    advantages, _ = get_estimator(estimator)(token_level_rewards, response_mask, index, **estimator_kwargs)
    return kept_responses(estimator, advantages), advantages


def procedure_shares(procedures: Iterable[str | None]) -> dict[str, float]:
    """``train/procedure/<label>``: the share of responses whose answer follows each procedure, where the
    task knows its procedures (compute_score's ``procedure``; the testbed: correct / buggy / neither)."""
    labels = [p for p in procedures if p is not None]
    if not labels:
        return {}

    names = list(PROCEDURES) + sorted(set(labels) - set(PROCEDURES))
    return {f"train/procedure/{name}": labels.count(name) / len(labels) for name in names}
