"""mirage.objectives equals verl 0.9.1's own core_algos on random tensors.

verl is always installed by `make test`; these tests must run, never skip.
"""

import numpy as np
import pytest

from mirage.objectives import ESTIMATORS, get_estimator, kept_responses, policy_loss

pytestmark = pytest.mark.verl


def _verl():
    """verl's core_algos, imported by the tests that compare with it (not at collection: verl takes seconds)."""
    return pytest.importorskip("verl.trainer.ppo.core_algos", reason="verl 0.9.1 must be installed (make test)")


def _batch(seed, groups=(4, 4, 1, 3, 4), length=7, binary=True):
    """Random outcome rewards on the last valid token, verl's uid index, ragged masks."""
    import torch

    g = torch.Generator().manual_seed(seed)
    bsz = sum(groups)
    mask = torch.ones(bsz, length)
    lengths = torch.randint(1, length + 1, (bsz,), generator=g)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    scores = torch.randint(0, 2, (bsz,), generator=g).float() if binary else torch.randn(bsz, generator=g)
    rewards = torch.zeros(bsz, length)
    rewards[torch.arange(bsz), lengths - 1] = scores
    index = np.array([f"uid-{gi}" for gi, size in enumerate(groups) for _ in range(size)], dtype=object)
    return rewards, mask, index, scores


def _verl_grpo(rewards, mask, index, norm=True):
    return _verl().compute_grpo_outcome_advantage(rewards.clone(), mask, index, norm_adv_by_std_in_grpo=norm)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("binary", [True, False])
def test_grpo_equals_verl(seed, norm, binary):
    import torch

    rewards, mask, index, _ = _batch(seed, binary=binary)
    want, want_ret = _verl_grpo(rewards, mask, index, norm)
    got, got_ret = get_estimator("grpo")(rewards, mask, index, norm_adv_by_std_in_grpo=norm)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_ret, want_ret, rtol=1e-6, atol=1e-6)
    assert got.abs().sum() > 0 or binary  # a real, non-degenerate comparison for continuous scores


def test_grpo_reads_norm_flag_from_verl_config():
    import torch

    rewards, mask, index, _ = _batch(11, binary=False)
    want, _ = _verl_grpo(rewards, mask, index, norm=False)
    got, _ = get_estimator("grpo")(rewards, mask, index, config={"norm_adv_by_std_in_grpo": False})
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_group_of_one_gets_its_raw_score():
    import torch

    rewards, mask, index, scores = _batch(3, groups=(1, 1, 1, 1))
    got, _ = get_estimator("grpo")(rewards, mask, index)
    want, _ = _verl_grpo(rewards, mask, index)
    torch.testing.assert_close(got, want)
    # verl: a single-sample group has mean 0 and std 1, so the advantage is score / (1 + eps).
    torch.testing.assert_close(got[:, 0], scores / (1 + 1e-6))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name,keep", [("masked_nsr", lambda s: s < 1), ("masked_psr", lambda s: s > 0)])
def test_masked_nsr_psr_equal_verl_grpo_times_mask(seed, name, keep):
    import torch

    rewards, mask, index, scores = _batch(seed, groups=(8, 8, 8, 4))
    want, _ = _verl_grpo(rewards, mask, index)
    want = want * keep(scores).float()[:, None]
    got, _ = get_estimator(name)(rewards, mask, index)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    # Masked responses keep their tokens in the batch (and so in the token-mean normaliser).
    assert kept_responses(name, got).all()
    assert (got.abs().sum(-1) == 0).any() and (got.abs().sum(-1) > 0).any()


def test_pm1_estimators_and_dropping():
    import torch

    rewards, mask, index, scores = _batch(7, groups=(6, 6, 6))
    correct = scores > 0
    nsr, _ = get_estimator("nsr_pm1")(rewards, mask, index)
    psr, _ = get_estimator("psr_pm1")(rewards, mask, index)
    wr, _ = get_estimator("w_reinforce")(rewards, mask, index, lam=0.1)
    torch.testing.assert_close(nsr, -(~correct).float()[:, None] * mask)
    torch.testing.assert_close(psr, correct.float()[:, None] * mask)
    torch.testing.assert_close(wr, torch.where(correct, 0.1, -1.0)[:, None] * mask)
    # +-1 variants drop the unselected responses; W-REINFORCE keeps everything.
    assert torch.equal(kept_responses("nsr_pm1", nsr), ~correct)
    assert torch.equal(kept_responses("psr_pm1", psr), correct)
    assert kept_responses("w_reinforce", wr).all()
    assert {e for e, est in ESTIMATORS.items() if est.drops_unselected} == {"nsr_pm1", "psr_pm1"}


def _actor_config(clip_low=0.2, clip_high=0.28, clip_c=10.0, batch_num_tokens=None):
    from verl.workers.config.actor import FSDPActorConfig

    cfg = FSDPActorConfig(strategy="fsdp", rollout_n=4, clip_ratio_low=clip_low, clip_ratio_high=clip_high,
                          clip_ratio_c=clip_c, ppo_mini_batch_size=4, ppo_micro_batch_size_per_gpu=2)
    if batch_num_tokens is not None:
        cfg.global_batch_info["batch_num_tokens"] = batch_num_tokens
    return cfg


def _loss_inputs(seed, bsz=12, length=9, spread=2.5):
    import torch

    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(bsz, length, generator=g) * 3
    new = old + spread * torch.randn(bsz, length, generator=g)  # wide ratios: both clips fire
    adv = torch.randn(bsz, length, generator=g)
    mask = (torch.rand(bsz, length, generator=g) > 0.25).float()
    return old, new, adv, mask


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("clips", [(0.2, 0.28, 10.0), (0.2, 0.2, 3.0), (0.1, 0.5, 1.5)])
def test_policy_loss_equals_verl_vanilla(seed, clips):
    import torch

    low, high, c = clips
    old, new, adv, mask = _loss_inputs(seed)
    want, want_m = _verl().compute_policy_loss_vanilla(old, new, adv, mask, "token-mean", _actor_config(low, high, c))
    got, got_m = policy_loss(old, new, adv, mask, clip_ratio_low=low, clip_ratio_high=high, clip_ratio_c=c)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    for key in ("actor/pg_clipfrac", "actor/ppo_kl", "actor/pg_clipfrac_lower"):
        assert got_m[key] == pytest.approx(want_m[key], rel=1e-6, abs=1e-7), key
    # Both clips really fired in this comparison.
    assert got_m["actor/pg_clipfrac"] > 0.05 and got_m["actor/pg_clipfrac_lower"] > 0.01


def test_asymmetric_clip_is_active():
    # Ratio 1.25 with positive advantage: clipped under symmetric 0.2, not under high=0.28.
    import torch

    old = torch.zeros(1, 4)
    new = torch.full((1, 4), float(np.log(1.25)))
    adv, mask = torch.ones(1, 4), torch.ones(1, 4)
    for low, high in [(0.2, 0.28), (0.2, 0.2)]:
        want, want_m = _verl().compute_policy_loss_vanilla(old, new, adv, mask, "token-mean", _actor_config(low, high))
        got, got_m = policy_loss(old, new, adv, mask, clip_ratio_low=low, clip_ratio_high=high)
        torch.testing.assert_close(got, want)
        assert got_m["actor/pg_clipfrac"] == want_m["actor/pg_clipfrac"]
    assert policy_loss(old, new, adv, mask, 0.2, 0.28)[1]["actor/pg_clipfrac"] == 0.0
    assert policy_loss(old, new, adv, mask, 0.2, 0.2)[1]["actor/pg_clipfrac"] == 1.0


def test_dual_clip_bounds_negative_advantage_loss():
    import torch

    old = torch.zeros(1, 3)
    new = torch.full((1, 3), float(np.log(50.0)))  # ratio 50 > c = 10
    adv, mask = -torch.ones(1, 3), torch.ones(1, 3)
    got, m = policy_loss(old, new, adv, mask, clip_ratio_c=10.0)
    want, wm = _verl().compute_policy_loss_vanilla(old, new, adv, mask, "token-mean", _actor_config())
    torch.testing.assert_close(got, want)
    assert float(got) == pytest.approx(10.0) and m["actor/pg_clipfrac_lower"] == 1.0 == wm["actor/pg_clipfrac_lower"]


@pytest.mark.parametrize("seed", range(3))
def test_token_mean_over_micro_batches_uses_global_token_count(seed):
    import torch

    old, new, adv, mask = _loss_inputs(seed, bsz=10)
    total_tokens = mask.sum()
    whole, _ = policy_loss(old, new, adv, mask)
    parts = []
    for sl in (slice(0, 3), slice(3, 10)):
        cfg = _actor_config(batch_num_tokens=total_tokens)
        want, _ = _verl().compute_policy_loss_vanilla(old[sl], new[sl], adv[sl], mask[sl], "token-mean", cfg)
        got, _ = policy_loss(old[sl], new[sl], adv[sl], mask[sl], batch_num_tokens=total_tokens)
        torch.testing.assert_close(got, want)
        parts.append(got)
    # Micro-batch losses normalised by the mini-batch's tokens add up to the whole mini-batch loss.
    torch.testing.assert_close(parts[0] + parts[1], whole)
    # Normalising each micro-batch by its own tokens would not.
    own = sum(policy_loss(old[sl], new[sl], adv[sl], mask[sl])[0] for sl in (slice(0, 3), slice(3, 10)))
    assert not torch.allclose(own, whole)


@pytest.mark.parametrize("mode", ["seq-mean-token-mean", "seq-mean-token-sum"])
def test_other_aggregations_equal_verl_agg_loss(mode):
    import torch

    old, new, adv, mask = _loss_inputs(5)
    mask[2] = 0  # a fully masked sequence is excluded from the sequence mean
    want, _ = _verl().compute_policy_loss_vanilla(old, new, adv, mask, mode, _actor_config())
    got, _ = policy_loss(old, new, adv, mask, loss_agg_mode=mode)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# --- the clipping metrics on hand-made ratios ------------------------------------------------------
def _terms(ratios, advantages, low=0.2, high=0.28, clip=True):
    import torch

    from mirage.objectives import loss_terms

    old = torch.zeros(1, len(ratios), dtype=torch.float64)
    new = torch.log(torch.tensor([ratios], dtype=torch.float64))
    adv = torch.tensor([advantages], dtype=torch.float64)
    return loss_terms(old, new, adv, torch.ones_like(adv), low, high, 10.0, clip=clip)


def test_clip_fractions_by_side_and_at_the_bounds():
    # A > 0: clipped only strictly above 1 + high; A < 0: only strictly below 1 - low
    _, m = _terms([1.5, 1.28, 1.2800001, 0.5, 0.8, 0.7999999, 0.5, 1.5],
                  [1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -2.0, -1.0])
    assert m["actor/pg_clipfrac_high"] == pytest.approx(2 / 8)  # 1.5 and 1.2800001 with A > 0
    assert m["actor/pg_clipfrac_low"] == pytest.approx(2 / 8)  # 0.7999999 and 0.5 with A < 0
    assert m["actor/pg_clipfrac"] == pytest.approx(m["actor/pg_clipfrac_high"] + m["actor/pg_clipfrac_low"])
    # a ratio exactly at either bound is not clipped; ratios moving the "safe" way are never clipped
    _, m = _terms([1.28, 0.8, 0.1, 3.0], [1.0, -1.0, 1.0, -1.0])
    assert m["actor/pg_clipfrac"] == 0.0
    # the dual clip acts on A < 0 with a ratio above c = 10
    _, m = _terms([12.0, 12.0], [-1.0, 1.0])
    assert m["actor/pg_clipfrac_lower"] == pytest.approx(0.5) and m["actor/pg_clipfrac_high"] == pytest.approx(0.5)
    # mean |log ratio|, and the no-clip loss clips nothing and keeps the raw surrogate
    losses, m = _terms([2.0, 0.5], [1.0, -1.0], clip=False)
    assert m["actor/abs_log_ratio"] == pytest.approx(np.log(2))
    assert m["actor/pg_clipfrac"] == m["actor/pg_clipfrac_low"] == 0.0
    assert losses[0].tolist() == pytest.approx([-2.0, 0.5])
    losses, _ = _terms([2.0, 0.5], [1.0, -1.0])
    assert losses[0].tolist() == pytest.approx([-1.28, 0.8])  # clipped: min(ratio, 1.28) * A, max(ratio, 0.8) * A
