"""Response-scope rewards: a pure function of one response's verdict (scored by ``compute_score``).

``fmt``: the response has the ``<think>..</think> <answer>..</answer>`` format; ``acc``: its
answer is correct (format ignored); ``coin()``: its seeded, independent coin (P = ``p``).
"""

from __future__ import annotations

from mirage.rewards.base import Reward, register_reward


def _incorrect(fmt, acc, coin, checker, release_faithful):
    # Release defect: for families whose released "incorrect" reward won the name clash,
    # it rewarded CORRECT answers (reproduced only with release_faithful).
    wrong = acc if release_faithful and checker.release_incorrect_is_ground_truth else not acc
    return fmt and wrong


for _reward in [
    Reward("ground_truth", "response", score=lambda fmt, acc, coin, checker, rf: fmt and acc,
           summary="format ok AND answer correct"),
    Reward("random", "response", score=lambda fmt, acc, coin, checker, rf: fmt and coin(), options={"p": 0.5},
           summary="format ok AND an independent seeded coin (the seed repo's random_score_with_format)"),
    Reward("random_ungated", "response", score=lambda fmt, acc, coin, checker, rf: coin(), options={"p": 0.5},
           summary="an independent seeded coin, no format gate (Spurious Rewards' plain Bernoulli reward)"),
    Reward("incorrect", "response", score=_incorrect, summary="format ok AND answer NOT correct"),
    Reward("format", "response", score=lambda fmt, acc, coin, checker, rf: fmt, summary="format ok"),
]:
    register_reward(_reward)
