"""Response-scope rewards: a pure function of one response (scored by ``compute_score``).

Each ``score`` takes one ``ResponseRecord``: ``record.format_ok`` (the response has the
``<think>..</think> <answer>..</answer>`` format), ``record.correct`` (its answer is correct,
format ignored), ``record.coin()`` (its seeded, independent coin, P = ``p``), ``record.text``,
``record.answer``, ``record.verdict``, ``record.ground_truth``, ``record.extra_info``, ...
A new response reward is one more entry here (or a ``register_reward`` call in a plugin).
"""

from __future__ import annotations

from mirage.rewards.base import ResponseRecord, Reward, register_reward


def _incorrect(r: ResponseRecord) -> bool:
    # Release defect: for families whose released "incorrect" reward won the name clash,
    # it rewarded CORRECT answers (reproduced only with release_faithful).
    wrong = r.correct if r.release_faithful and r.checker.release_incorrect_is_ground_truth else not r.correct
    return r.format_ok and wrong


for _reward in [
    Reward("ground_truth", "response", score=lambda r: r.format_ok and r.correct,
           summary="format ok AND answer correct"),
    Reward("random", "response", score=lambda r: r.format_ok and r.coin(), options={"p": 0.5},
           summary="format ok AND an independent seeded coin (the seed repo's random_score_with_format)"),
    Reward("random_ungated", "response", score=lambda r: r.coin(), options={"p": 0.5},
           summary="an independent seeded coin, no format gate (Spurious Rewards' plain Bernoulli reward)"),
    Reward("incorrect", "response", score=_incorrect, summary="format ok AND answer NOT correct"),
    Reward("format", "response", score=lambda r: r.format_ok, summary="format ok"),
]:
    register_reward(_reward)
