"""Rewards that need more than one response: majority vote (TTRL) and entropy minimisation.

Pure functions, registered as the ``majority_vote`` (group scope) and ``entropy_min``
(log-prob scope) rewards, so the verl backend (a sampler hook that sees finished
groups) and the local testbed loop compute them the same way, through the registry.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from mirage.rewards.base import Responses, Reward, register_reward
from mirage.rewards.checkers import default_cluster
from mirage.rewards.routing import parse_options, route

# keywords of a condition's score_kwargs that concern the response reward, not answer comparison
_REWARD_KEYS = ("variant", "p", "seed", "step", "sample_index", "release_faithful")


def cluster_answers(preds: Sequence[str | None], data_source: str, release_faithful: bool = False,
                    **options: Any) -> list[int | None]:
    """Per response, the index of the first response with an equivalent answer (None: no answer).

    ``preds`` entries that are not non-empty strings (None, NaN from a table) do not vote.
    Equivalence is the row's checker's (``Checker.cluster``: math compares with
    math-verify, so ``0.5``, ``\\frac12`` and ``1/2`` share a label); by default,
    stripped strings. ``options`` are checker options (``math_checker``, ...).
    """
    checker = route(data_source)
    opts = parse_options({k: v for k, v in options.items() if k not in _REWARD_KEYS})[checker.name]
    valid = [i for i, p in enumerate(preds) if isinstance(p, str) and p.strip()]  # None / NaN: no vote
    answers = [preds[i] for i in valid]
    local = (checker.cluster or default_cluster)(answers, data_source, opts, release_faithful)
    labels: list[int | None] = [None] * len(preds)
    for j, i in enumerate(valid):
        labels[i] = valid[local[j]]
    return labels


def vote_values(results: Sequence[Mapping[str, Any]], data_sources: Sequence[str]) -> list[Any]:
    """Per response, its checker's vote column in its ``compute_score`` result (``Checker.vote_column``;
    None where the row's checker declares none): what both engines hand majority vote as ``Responses.vote``."""
    out = []
    for result, data_source in zip(results, data_sources):
        column = route(str(data_source)).vote_column
        out.append(result.get(column) if column else None)
    return out


def behaviour_labels(votes: Sequence[Any]) -> list[int | None]:
    """Per response, the index of the first response with the same vote value (None / empty: no vote)."""
    first: dict[str, int] = {}
    return [first.setdefault(v, i) if isinstance(v, str) and v else None for i, v in enumerate(votes)]


def majority_vote_rewards(preds: Sequence[str | None], formats: Sequence[float | bool], data_source: str,
                          release_faithful: bool = False, votes: Sequence[Any] | None = None,
                          **options: Any) -> list[float]:
    """TTRL reward: 1.0 where the format is ok AND the answer equals the group's majority answer.

    Every response with a non-empty answer votes. The majority is the largest
    cluster; a tie goes to the cluster whose first member comes first. No answer
    in the group -> all 0. Where the row's checker declares a vote column (code), answers are
    clustered by ``votes`` (that column of each response's compute_score result: what the program
    does on the test inputs), not by their text; without ``votes`` that is an error, never a silent
    fallback to comparing program texts.
    """
    if len(preds) != len(formats):
        raise ValueError(f"preds ({len(preds)}) and formats ({len(formats)}) differ in length")
    checker = route(data_source)
    if checker.vote_column is not None:
        if votes is None or len(votes) != len(preds):
            lack = "these responses lack" if votes is None else f"given for {len(votes)} of {len(preds)} responses"
            raise ValueError(f"majority vote on {data_source!r}: checker {checker.name!r} clusters answers by "
                             f"compute_score's {checker.vote_column!r}, which {lack}")
        labels = behaviour_labels(votes)
    else:
        labels = cluster_answers(preds, data_source, release_faithful, **options)
    counts: dict[int, int] = {}
    for label in labels:
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        return [0.0] * len(preds)
    majority = min(counts, key=lambda label: (-counts[label], label))
    return [float(bool(ok) and label == majority) for ok, label in zip(formats, labels)]


def _majority_vote(responses: Responses, score_kwargs: Mapping[str, Any]) -> list[float]:
    scores = [0.0] * len(responses.group)
    for rows in responses.groups().values():
        votes = majority_vote_rewards([responses.pred[i] for i in rows], [responses.format[i] for i in rows],
                                      str(responses.data_source[rows[0]]),
                                      votes=None if responses.vote is None else [responses.vote[i] for i in rows],
                                      **score_kwargs)
        for i, v in zip(rows, votes):
            scores[i] = float(v)
    return scores


def _entropy_min(responses: Responses, score_kwargs: Mapping[str, Any]):
    return mean_token_logprob(responses.logprobs, responses.mask)


def mean_token_logprob(logprobs, mask=None):
    """Mean log-prob over each response's tokens: the entropy-minimisation reward (<= 0).

    ``logprobs`` is a (batch, length) torch tensor or a list of per-response
    lists; ``mask`` (same shape, 1 = response token) defaults to all tokens.
    Returns a (batch,) tensor for tensor input, else a list of floats. A
    response with no tokens gets 0.0.
    """
    if hasattr(logprobs, "dim"):  # torch tensor, without importing torch here
        if logprobs.dim() != 2:
            raise ValueError(f"logprobs must be (batch, length), got shape {tuple(logprobs.shape)}")
        m = (logprobs.new_ones(logprobs.shape) if mask is None else mask.to(logprobs.dtype))
        if m.shape != logprobs.shape:
            raise ValueError(f"mask shape {tuple(m.shape)} != logprobs shape {tuple(logprobs.shape)}")
        # masked_fill, not a product: padding may hold -inf, and -inf * 0 is nan.
        return logprobs.masked_fill(m == 0, 0.0).sum(-1) / m.sum(-1).clamp(min=1)
    if mask is None:
        mask = [[1] * len(row) for row in logprobs]
    if len(mask) != len(logprobs):
        raise ValueError(f"mask has {len(mask)} rows, logprobs {len(logprobs)}")
    out = []
    for i, (row, row_mask) in enumerate(zip(logprobs, mask)):
        if len(row) != len(row_mask):
            raise ValueError(f"row {i}: {len(row)} log-probs but {len(row_mask)} mask entries")
        n = sum(1 for m in row_mask if m)
        out.append(sum(float(lp) for lp, m in zip(row, row_mask) if m) / n if n else 0.0)
    return out


register_reward(Reward("majority_vote", "group", rescore=_majority_vote, needs=("group", "data_source", "pred", "format", "vote"),
                       summary="format ok AND answer equals the group's majority answer (TTRL)"))
register_reward(Reward("entropy_min", "logprob", rescore=_entropy_min, needs=("logprobs", "mask"),
                       summary="mean token log-prob of the response (entropy minimisation)"))
