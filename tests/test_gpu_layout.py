"""The GPU layout verl 0.9.1 assumes, refused by the recipe before any work: the dry run, the doctor
(through RunConfig.resolved) and the preset loader all check the recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirage import study
from mirage.recipes import PAPER_RECIPE, TESTBED_RECIPE


def test_rollout_tp_larger_than_the_gpus_is_refused_naming_the_keys_and_a_fix():
    with pytest.raises(ValueError, match=r"'tensor_parallel_size' \(4\) must divide n_gpus_per_node \(2\), or verl "
                                         r"starts 0 vLLM rollout server.*one of \[1, 2\]"):
        PAPER_RECIPE.replace(n_gpus_per_node=2).check()
    with pytest.raises(ValueError, match=r"'tensor_parallel_size' \(4\) must divide n_gpus_per_node \(6\)"):
        PAPER_RECIPE.replace(n_gpus_per_node=6).check()
    PAPER_RECIPE.check()  # 8 GPUs, TP 4: two servers per node
    PAPER_RECIPE.replace(n_gpus_per_node=4, nnodes=2).check()
    TESTBED_RECIPE.check()  # the CPU testbed has no GPU layout


def test_batches_that_do_not_split_over_the_gpus_are_refused():
    with pytest.raises(ValueError, match=r"'ppo_mini_batch_size' x 'rollout_n' \(1 x 4 = 4 responses per update\) "
                                         r"must be a multiple of the 8 GPUs"):
        PAPER_RECIPE.replace(ppo_mini_batch_size=1, rollout_n=4).check()
    with pytest.raises(ValueError, match=r"'train_batch_size' x 'rollout_n' \(3 x 1 = 3 responses\) must be a "
                                         r"multiple of the 8 GPUs"):
        PAPER_RECIPE.replace(train_batch_size=3, ppo_mini_batch_size=1, rollout_n=1).check()


def test_verl_dry_run_refuses_the_layout(tmp_path):
    from mirage.cli import main

    with pytest.raises(ValueError, match="tensor_parallel_size"):
        main(["--debug", "train", "--backend", "verl", "--model", "m", "--task", "math", "--condition", "random",
              "--dry-run", "--run-dir", str(tmp_path / "r"), "--set", "n_gpus_per_node=2"])
    assert not (tmp_path / "r").exists()


def test_preset_loader_refuses_the_layout(tmp_path):
    text = (Path(study.__file__).parent / "presets" / "paper.yaml").read_text()
    path = tmp_path / "two_gpus.yaml"
    path.write_text(text + "overrides: {n_gpus_per_node: 2}\n")
    with pytest.raises(study.PresetError, match=r"two_gpus\.yaml.*overrides: recipe key 'tensor_parallel_size'"):
        study.load_preset(str(path))
