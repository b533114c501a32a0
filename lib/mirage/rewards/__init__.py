"""Rewards of the study: one entry point with verl's custom-reward signature.

    from mirage.rewards import compute_score
    compute_score("math500", "<think>...</think> <answer>\\frac12</answer>", "0.5")
    # {'score': 1.0, 'acc': 1.0, 'format': 1.0, 'pred': '\\frac12', ..., 'error': None, 'procedure': None}
    # (``result_keys()``: the checkers' own columns, e.g. KOR-Bench's scoring mode, stand at the ...)

In verl 0.9.1: ``reward.custom_reward_function.path=pkg://mirage.rewards``,
``.name=compute_score``, variant etc. under ``.reward_kwargs``. See docs/rewards.md.

Files: base.py (the Reward registry and its scopes), variants.py (response rewards),
group.py (majority vote, entropy minimisation), score.py (compute_score, the random
coin, compute_scores), response.py (format, answer extraction), checkers/ (one per
answer family, with typed options, and the data_source routes), safe_arith.py
(arithmetic without eval), worker.py (guarded child processes), sandbox.py (isolated
processes for model-written programs, used by checkers/code.py).
"""

from mirage.rewards import variants  # noqa: F401  (registers the response rewards)
from mirage.rewards.base import REWARDS, ResponseRecord, Responses, Reward, get_reward, register_reward
from mirage.rewards.group import cluster_answers, majority_vote_rewards, mean_token_logprob
from mirage.rewards.response import extract_answer, format_ok
from mirage.rewards.routing import result_keys
from mirage.rewards.score import compute_score, compute_scores, random_coin, source_family

VARIANTS = tuple(name for name in REWARDS if REWARDS[name].scope == "response")  # as registered at import

__all__ = ["compute_score", "compute_scores", "majority_vote_rewards", "mean_token_logprob", "cluster_answers",
           "format_ok", "extract_answer", "random_coin", "source_family", "REWARDS", "Reward", "Responses",
           "get_reward", "register_reward", "VARIANTS", "RESULT_KEYS", "result_keys", "ResponseRecord"]


def __getattr__(name: str):
    if name == "RESULT_KEYS":  # compute_score's keys as registered now (a plugin's checker may add columns)
        return result_keys()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
