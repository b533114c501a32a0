"""mirage's estimators inside verl 0.9.1: loaded from the environment, computed by verl's own code.

verl is always installed by `make test`: these tests run, never skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mirage.objectives import ESTIMATORS

pytestmark = pytest.mark.verl

CUSTOM = [e for e in ESTIMATORS.values() if e.verl_name.startswith("mirage_")]  # the others are verl's own


def test_plugin_loads_in_a_fresh_interpreter_through_the_environment():
    code = ("import sys, verl\n"
            "assert 'mirage.train.verl.plugin' in sys.modules, 'import verl did not load the plugin'\n"
            "from verl.trainer.ppo.core_algos import get_adv_estimator_fn\n"
            "from verl.trainer.ppo.core_algos import get_policy_loss_fn\n"
            "from mirage.objectives import ESTIMATORS, POLICY_LOSSES\n"
            "for e in ESTIMATORS.values():\n"
            "    fn = get_adv_estimator_fn(e.verl_name)\n"
            "    assert (fn is e.fn) == e.verl_name.startswith('mirage_'), e.name  # grpo, rloo: verl's own\n"
            "for loss in POLICY_LOSSES.values():\n"
            "    get_policy_loss_fn(loss.verl_name)\n"
            "print('resolved', sorted(e.verl_name for e in ESTIMATORS.values()),\n"
            "      sorted(loss.verl_name for loss in POLICY_LOSSES.values()))\n")
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "mirage.train.verl.plugin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mirage_masked_nsr" in done.stdout and "mirage_w_reinforce" in done.stdout and "mirage_no_clip" in done.stdout
    # The launcher's check fails loudly when the variable does not name the plugin.
    env.pop("VERL_USE_EXTERNAL_MODULES")
    done = subprocess.run([sys.executable, "-m", "mirage.train.verl.plugin", "--check", "mirage_nsr_pm1"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "did not load mirage.train.verl.plugin" in done.stderr


def test_registration_is_idempotent_even_when_loaded_by_path():
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn
    from verl.utils.import_utils import load_module

    from mirage.train.verl import plugin as verl_plugin

    for _ in range(2):  # a second module object from the same file re-registers the same functions
        load_module(str(Path(verl_plugin.__file__)))
    from mirage.objectives import POLICY_LOSSES

    assert verl_plugin.register() == [e.verl_name for e in CUSTOM] + [p.verl_name for p in POLICY_LOSSES.values()]
    for e in CUSTOM:
        assert get_adv_estimator_fn(e.verl_name) is e.fn
    verl_plugin.check_registered([e.verl_name for e in CUSTOM])
    with pytest.raises(RuntimeError, match="VERL_USE_EXTERNAL_MODULES"):
        verl_plugin.check_registered(["mirage_no_such_estimator"])


# Three groups: A mixed [1,0,0,1], B all wrong [0,0,0], C a single correct response [1].
SCORES = [1, 0, 0, 1, 0, 0, 0, 1]
UIDS = ["a"] * 4 + ["b"] * 3 + ["c"]
G = 0.5 / (np.sqrt(1 / 3) + 1e-6)  # GRPO: (1 - 0.5) / (unbiased std + eps)
C = 1 / (1 + 1e-6)  # a group of one: mean 0, std 1
EXPECTED = {
    "grpo":        [G, -G, -G, G, 0, 0, 0, C],
    "masked_nsr":  [0, -G, -G, 0, 0, 0, 0, 0],
    "masked_psr":  [G, 0, 0, G, 0, 0, 0, C],
    "nsr_pm1":     [0, -1, -1, 0, -1, -1, -1, 0],
    "psr_pm1":     [1, 0, 0, 1, 0, 0, 0, 1],
    "w_reinforce": [0.1, -1, -1, 0.1, -1, -1, -1, 0.1],
}


def _batch():
    import torch

    from verl import DataProto

    lengths = torch.tensor([3, 5, 2, 4, 1, 5, 3, 2])
    mask = (torch.arange(5)[None] < lengths[:, None]).float()
    rewards = torch.zeros(len(SCORES), 5)
    rewards[torch.arange(len(SCORES)), lengths - 1] = torch.tensor(SCORES, dtype=torch.float32)
    return DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                               non_tensors={"uid": np.array(UIDS, dtype=object)}), mask


@pytest.fixture(scope="module")
def algorithm_cfg():
    """The ``algorithm`` section verl's trainer passes to estimators, from a composed w_reinforce run."""
    from mirage.train import verl as vb

    _, argv = vb.build_command("m", "math", "w_reinforce", 0, "/tmp/run")
    return vb.compose_config(vb.overrides_of(argv)).algorithm


@pytest.mark.parametrize("name", list(EXPECTED))
def test_estimators_through_verls_compute_advantage(name, algorithm_cfg):
    import torch

    from verl.trainer.ppo.ray_trainer import compute_advantage
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    import mirage.train.verl.plugin  # noqa: F401  (what VERL_USE_EXTERNAL_MODULES does in verl's processes)

    verl_name = ESTIMATORS[name].verl_name
    want = torch.tensor(EXPECTED[name], dtype=torch.float32)[:, None]
    data, mask = _batch()
    out = compute_advantage(data, adv_estimator=verl_name, num_repeat=4, config=algorithm_cfg)
    torch.testing.assert_close(out.batch["advantages"], want * mask, rtol=1e-5, atol=1e-6)
    # the V1 trainer's entry point (one trajectory per session; keys are {uid}_{session}_{index})
    data, mask = _batch()
    keys = [f"{u}_{i}_0" for i, u in enumerate(UIDS)]
    out = compute_advantage_for_multi_trajectories(data, keys, verl_name, num_repeat=4, config=algorithm_cfg)
    torch.testing.assert_close(out.batch["advantages"], want * mask, rtol=1e-5, atol=1e-6)


def test_w_reinforce_lambda_comes_from_verls_algorithm_config(algorithm_cfg):
    import torch

    from omegaconf import OmegaConf
    from verl.trainer.ppo.ray_trainer import compute_advantage

    import mirage.train.verl.plugin  # noqa: F401

    assert algorithm_cfg.w_reinforce_lambda == 0.1
    cfg = OmegaConf.merge(algorithm_cfg, {"w_reinforce_lambda": 0.3})
    data, mask = _batch()
    adv = compute_advantage(data, adv_estimator="mirage_w_reinforce", config=cfg).batch["advantages"]
    assert torch.allclose(adv[:, 0], torch.tensor([0.3, -1, -1, 0.3, -1, -1, -1, 0.3]))


# --- the clipping-bias switchboard: the same numbers as verl ------------------------------------
def _actor_config(low=0.2, high=0.28, c=10.0, mode="vanilla"):
    from omegaconf import OmegaConf
    from verl.workers.config import ActorConfig  # noqa: F401  (the real dataclass, checked below)

    return OmegaConf.create({"clip_ratio": 0.2, "clip_ratio_low": low, "clip_ratio_high": high, "clip_ratio_c": c,
                             "global_batch_info": {}, "policy_loss": {"loss_mode": mode}})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_policy_losses_equal_verls_and_each_other(seed):
    """mirage_vanilla == verl's vanilla (loss and verl's metrics); mirage_no_clip == the unclipped surrogate;
    both through verl's own get_policy_loss_fn, equal to mirage.objectives.policy_loss (the local engine)."""
    import torch

    import mirage.train.verl.plugin  # noqa: F401
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    from mirage.objectives import policy_loss

    g = torch.Generator().manual_seed(seed)
    old = torch.randn(6, 9, generator=g) - 2
    new = old + 0.4 * torch.randn(6, 9, generator=g)
    adv = torch.randn(6, 9, generator=g)
    mask = (torch.rand(6, 9, generator=g) > 0.2).float()
    cfg = _actor_config()
    kw = dict(old_log_prob=old, log_prob=new, advantages=adv, response_mask=mask.bool(), loss_agg_mode="token-mean",
              config=cfg)
    theirs, their_metrics = get_policy_loss_fn("vanilla")(**kw)
    ours, our_metrics = get_policy_loss_fn("mirage_vanilla")(**kw)
    local, local_metrics = policy_loss(old, new, adv, mask, 0.2, 0.28, 10.0)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(local, theirs)
    for key, value in their_metrics.items():
        assert our_metrics[key] == pytest.approx(value, abs=1e-7) == local_metrics[key], key
    assert our_metrics["actor/pg_clipfrac"] > 0  # the draw does clip
    no_clip, metrics = get_policy_loss_fn("mirage_no_clip")(**kw)
    ratio = torch.exp(new - old)
    torch.testing.assert_close(no_clip, -(adv * ratio * mask).sum() / mask.sum())
    torch.testing.assert_close(policy_loss(old, new, adv, mask, mode="no_clip")[0], no_clip)
    assert metrics["actor/pg_clipfrac"] == metrics["actor/pg_clipfrac_high"] == 0.0


def test_rloo_equals_verls_rloo():
    import torch

    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    rewards = torch.zeros(9, 4)
    rewards[:, -1] = torch.tensor([1.0, 0, 1, 1, 0, 0, 1, 0.5, 0])
    mask = torch.ones(9, 4)
    index = np.array(["a", "a", "a", "a", "b", "b", "c", "d", "d"], dtype=object)
    theirs, _ = get_adv_estimator_fn("rloo")(token_level_rewards=rewards.clone(), response_mask=mask, index=index)
    ours, _ = ESTIMATORS["rloo"](rewards, mask, index)
    torch.testing.assert_close(ours, theirs)
    assert ours[0, 0] == pytest.approx(1 - 2 / 3) and ours[6, 0] == 1.0  # leave-one-out; a group of one keeps its score
