"""Rewards of the study: one entry point with verl's custom-reward signature.

    from mirage.rewards import compute_score
    compute_score("math500", "<think>...</think> <answer>\\frac12</answer>", "0.5")
    # {'score': 1.0, 'acc': 1.0, 'format': 1.0, 'pred': '\\frac12', 'korbench_mode': None, 'error': None}

In verl 0.9.1: ``reward.custom_reward_function.path=pkg://mirage.rewards``,
``.name=compute_score``, variant etc. under ``.reward_kwargs``. See docs/rewards.md.

Files: response.py (format, answer extraction), score.py (compute_score, the
data_source table, the random coin, compute_scores), mathcheck.py (math
answers), korbench.py, synlogic.py, group.py (majority vote, mean log-prob),
safe_arith.py (arithmetic without eval), worker.py (guarded child processes).
"""

from mirage.rewards.group import cluster_answers, majority_vote_rewards, mean_token_logprob
from mirage.rewards.response import extract_answer, format_ok
from mirage.rewards.score import (MATH_CHECKERS, RESULT_KEYS, VARIANTS, compute_score, compute_scores,
                                  random_coin, source_family)

__all__ = ["compute_score", "compute_scores", "majority_vote_rewards", "mean_token_logprob", "cluster_answers",
           "format_ok", "extract_answer", "random_coin", "source_family", "VARIANTS", "MATH_CHECKERS",
           "RESULT_KEYS"]
