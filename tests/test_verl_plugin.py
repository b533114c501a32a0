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
import torch

from mirage.objectives import ESTIMATORS

pytestmark = pytest.mark.verl

CUSTOM = [e for e in ESTIMATORS.values() if e.verl_name != "grpo"]


def test_plugin_loads_in_a_fresh_interpreter_through_the_environment():
    code = ("import sys, verl\n"
            "assert 'mirage.train.verl.plugin' in sys.modules, 'import verl did not load the plugin'\n"
            "from verl.trainer.ppo.core_algos import get_adv_estimator_fn\n"
            "from mirage.objectives import ESTIMATORS\n"
            "for e in ESTIMATORS.values():\n"
            "    assert get_adv_estimator_fn(e.verl_name) is (e.fn if e.verl_name != 'grpo' else\n"
            "        get_adv_estimator_fn('grpo')), e.name\n"
            "print('resolved', sorted(e.verl_name for e in ESTIMATORS.values()))\n")
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "mirage.train.verl.plugin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mirage_masked_nsr" in done.stdout and "mirage_w_reinforce" in done.stdout
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
    assert verl_plugin.register() == [e.verl_name for e in CUSTOM]
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
    from omegaconf import OmegaConf
    from verl.trainer.ppo.ray_trainer import compute_advantage

    import mirage.train.verl.plugin  # noqa: F401

    assert algorithm_cfg.w_reinforce_lambda == 0.1
    cfg = OmegaConf.merge(algorithm_cfg, {"w_reinforce_lambda": 0.3})
    data, mask = _batch()
    adv = compute_advantage(data, adv_estimator="mirage_w_reinforce", config=cfg).batch["advantages"]
    assert torch.allclose(adv[:, 0], torch.tensor([0.3, -1, -1, 0.3, -1, -1, -1, 0.3]))
