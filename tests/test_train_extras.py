"""Issue 21, "Also": experiment loggers (verl's trainer.logger; TensorBoard files from the local engine with
verl's metric names), max_actor_ckpt_to_keep in the recipe, resuming verl from a chosen checkpoint."""

from __future__ import annotations

import sys

import pytest

from mirage.recipes import PAPER_RECIPE
from mirage.runs import RunConfig

MODEL = "dial-60"
TINY = dict(total_steps=3, train_batch_size=4, rollout_n=4, ppo_mini_batch_size=4, max_response_length=24,
            val_freq=3, save_freq=1, lr=1e-4, max_num_gen_batches=2)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from mirage.tasks.toy import ensure_dataset

    root = tmp_path_factory.mktemp("data")
    ensure_dataset("toy-math_train", root, n=32)
    ensure_dataset("toy-math_test", root, n=8)
    return root


def test_max_actor_ckpt_to_keep_is_a_checked_recipe_key():
    with pytest.raises(ValueError, match="recipe key 'max_actor_ckpt_to_keep'"):
        PAPER_RECIPE.replace(max_actor_ckpt_to_keep=-1).check()
    assert "max_actor_ckpt_to_keep" not in PAPER_RECIPE.to_dict()  # recorded runs keep their recipe
    assert PAPER_RECIPE.with_overrides({"max_actor_ckpt_to_keep": "2"}).max_actor_ckpt_to_keep == 2


@pytest.mark.verl
def test_verl_gets_loggers_checkpoints_to_keep_and_the_resume_path(tmp_path):
    from mirage.train import verl as vb

    recipe = PAPER_RECIPE.replace(max_actor_ckpt_to_keep=2)
    _, argv = vb.build_command("Qwen/Qwen2.5-7B", "math", "ground_truth", 0, tmp_path / "r", recipe,
                               loggers=("console", "tensorboard", "wandb"), resume_from=100)
    cfg = vb.compose_config(vb.overrides_of(argv))  # verl's own config: every key exists there
    assert list(cfg.trainer.logger) == ["console", "file", "tensorboard", "wandb"]
    assert cfg.trainer.max_actor_ckpt_to_keep == 2
    assert cfg.trainer.resume_mode == "resume_path"
    assert cfg.trainer.resume_from_path == str((tmp_path / "r").resolve() / "checkpoints" / "global_step_100")
    _, plain = vb.build_command("Qwen/Qwen2.5-7B", "math", "ground_truth", 0, tmp_path / "r")
    base = vb.compose_config(vb.overrides_of(plain))
    assert list(base.trainer.logger) == ["console", "file"] and base.trainer.resume_mode == "auto"
    assert base.trainer.max_actor_ckpt_to_keep is None


def test_train_flags_are_checked_before_any_work(tmp_path):
    from mirage.cli import main

    run = tmp_path / "r"
    base = ["--debug", "train", "--model", "m", "--task", "math", "--condition", "random", "--run-dir", str(run)]
    with pytest.raises(ValueError, match=r"--resume-from 100: no checkpoint .*global_step_100/actor; saved steps: none"):
        main(base + ["--backend", "verl", "--dry-run", "--resume-from", "100"])
    with pytest.raises(ValueError, match="--resume-from only applies to --backend verl"):
        main(base + ["--backend", "local", "--resume-from", "100"])
    with pytest.raises(ValueError, match="--logger wandb: only --backend verl"):
        main(base + ["--backend", "local", "--logger", "console,wandb"])
    with pytest.raises(SystemExit):
        main(base + ["--backend", "local", "--logger", "console,mlflow"])
    assert not run.exists()


def test_tensorboard_absent_is_one_line_naming_the_flag(monkeypatch):
    from mirage.train import loop

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as without the package
    with pytest.raises(ValueError, match=r"--logger tensorboard: the tensorboard package is not installed; install"):
        loop.tensorboard_writer()


def test_local_engine_writes_tensorboard_with_verl_names_and_keeps_n_checkpoints(tmp_path, data_root):
    from mirage.train import loop

    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mirage import runs

    cfg = RunConfig(MODEL, "toy-math", "ground_truth", run_dir=str(tmp_path / "r"),
                    overrides={**TINY, "max_actor_ckpt_to_keep": 2}, data_root=str(data_root), progress=False,
                    val_problems=4, loggers=("console", "tensorboard"))
    run_dir = loop.train(cfg)
    assert [s for s, _ in runs.list_checkpoints(run_dir)] == [2, 3]  # step 1 deleted, as verl does
    assert not (run_dir / "checkpoints" / "global_step_1").exists()
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"critic/score/mean", "train/acc/mean", "actor/pg_loss"} <= tags
    assert any(t.startswith("val-core/") for t in tags)
    assert [e.step for e in events.Scalars("critic/score/mean")] == [1, 2, 3]


def test_the_gpu_environment_file_installs_the_gpu_extra_only():
    import tomllib
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    env = yaml.safe_load((root / "environment-gpu.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ['-e ".[gpu]"'] or pip == ["-e .[gpu]"]  # the package with its gpu extra, no CPU torch index
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert "gpu" in project["optional-dependencies"]
    low = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, low.split(".")))
