"""The clipping-bias mechanism, through mirage's own objective: a bandit trained on coin flips.

A softmax policy over two arms favours arm 0 (p = 0.7); every sample's reward is a fair
coin, independent of the arm, so the true policy gradient is zero. With several PPO
updates per rollout the clipped loss drifts the median seed toward the favoured arm; the
same loss without clipping does not, on-policy RLOO (one update: the ratio is 1, nothing
to clip) stays where it was, and a smaller clip range, or a higher upper clip, drifts less.
(The regime where this shows is the module defaults'; docs/science.md has the scan.)
"""

import dataclasses

import pytest

from mirage.mechanism import BanditSettings, simulate_bandit, summarise

pytestmark = pytest.mark.slow  # ~25 s: 400 seeds x 100 rollouts x 64 updates, four times


@pytest.fixture(scope="module")
def outcomes():
    base = BanditSettings()
    variants = {"clip": {}, "no_clip": {"policy_loss": "no_clip"},
                "eps_0.1": {"clip_ratio_low": 0.1, "clip_ratio_high": 0.1},
                "clip_higher": {"clip_ratio_high": 0.28},
                "rloo_on_policy": {"estimator": "rloo", "mini_batches": 1, "epochs": 1}}
    return {name: summarise(simulate_bandit(dataclasses.replace(base, **kw))) for name, kw in variants.items()}


def test_clipping_moves_the_median_toward_the_favoured_arm(outcomes):
    clip = outcomes["clip"]
    assert clip["start"] == pytest.approx(0.7)
    assert clip["clipfrac"] > 0.01  # the regime where clipping acts at whole percents
    assert clip["median_shift"] > 0.08
    assert clip["median"] - clip["mean"] > 0.1  # a skew of the seeds, not a shift of the average policy


def test_without_clipping_or_off_policy_updates_there_is_no_drift_up(outcomes):
    assert outcomes["no_clip"]["clipfrac"] == 0
    assert outcomes["no_clip"]["median_shift"] < 0.0
    assert outcomes["clip"]["median"] - outcomes["no_clip"]["median"] > 0.15
    rloo = outcomes["rloo_on_policy"]
    assert abs(rloo["median_shift"]) < 0.02 and abs(rloo["mean"] - rloo["start"]) < 0.02


def test_a_narrower_or_higher_clip_drifts_less(outcomes):
    assert 0 < outcomes["eps_0.1"]["median_shift"] < outcomes["clip"]["median_shift"]
    assert outcomes["clip_higher"]["median_shift"] < outcomes["clip"]["median_shift"] - 0.1


def test_settings_are_checked():
    with pytest.raises(ValueError, match="optimizer"):
        BanditSettings(optimizer="rmsprop")
    with pytest.raises(ValueError, match="bad bandit settings"):
        BanditSettings(p_favoured=1.5)
