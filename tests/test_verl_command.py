"""mirage.train.verl builds verl 0.9.1 runs that compose with verl's real Hydra config.

verl's config is composed once for the module (Hydra's compose API, verl's own
config dir); each (condition, model, task) then applies its overrides with
Hydra's own override machinery and must pass verl's ``validate_config`` and carry
the recipe key by key. One combination is also composed from scratch to show the
two paths agree. verl is always installed by `make test`: never skipped.
"""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mirage.conditions import PAPER_CONDITIONS, get_condition

from mirage.recipes import PAPER_RECIPE
from mirage.objectives import get_estimator
from mirage.tasks import get_task
from mirage.train import verl as vb
from mirage.train.verl import launcher

pytestmark = pytest.mark.verl

MODELS = ("Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B-Instruct")
TASKS = ("math", "logic", "code")
PM1 = ("nsr_pm1", "psr_pm1", "w_reinforce")  # the +-1 extensions (Zhu et al.)
ALL_CONDITIONS = PAPER_CONDITIONS + PM1


@pytest.fixture(scope="module")
def base_cfg():
    return vb.compose_config([])


def apply(base, overrides):
    """Hydra's own override application on a copy of the composed config (what compose does last)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = copy.deepcopy(base)
    ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides(list(overrides)), cfg)
    return cfg


def command(model, task, condition, tmp_path, **kw):
    return vb.build_command(model, task, condition, 0, tmp_path / "run", data_root=tmp_path / "data", **kw)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("condition", ALL_CONDITIONS)
def test_every_run_composes_validates_and_carries_the_recipe(base_cfg, condition, model, task, tmp_path):
    env, argv = command(model, task, condition, tmp_path)
    assert argv[1:3] == ["-m", "verl.trainer.main_ppo"]
    cfg = apply(base_cfg, vb.overrides_of(argv))
    vb.validate(cfg)  # verl's own start-up check; raises on a bad config

    from verl.trainer.ppo.utils import need_critic, need_reference_policy

    c, r = get_condition(condition), PAPER_RECIPE
    actor, rollout, optim = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout, cfg.actor_rollout_ref.actor.optim
    assert cfg.algorithm.adv_estimator == get_estimator(c.estimator).verl_name
    assert (rollout.n, cfg.data.train_batch_size, actor.ppo_mini_batch_size) == (16, 128, 64)
    assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.clip_ratio_c) == (0.2, 0.28, 10.0)
    assert (optim.lr, optim.lr_warmup_steps, optim.weight_decay, optim.clip_grad) == (1e-6, 10, 0.1, 1.0)
    assert not actor.use_kl_loss and not cfg.algorithm.use_kl_in_reward and not need_reference_policy(cfg)
    assert not need_critic(cfg)
    assert (actor.loss_agg_mode, actor.entropy_coeff, actor.ppo_epochs) == ("token-mean", 0, 1)
    assert (cfg.data.max_prompt_length, cfg.data.max_response_length) == (2048, 8192)
    assert (rollout.name, rollout.temperature, rollout.top_p, rollout.tensor_model_parallel_size) == ("vllm", 1, 1, 4)
    assert (rollout.val_kwargs.n, rollout.val_kwargs.temperature, rollout.val_kwargs.top_p) == (1, 1.0, 0.7)
    assert rollout.calculate_log_probs
    assert (cfg.trainer.total_training_steps, cfg.trainer.test_freq, cfg.trainer.save_freq) == (300, 20, 50)
    assert (cfg.trainer.n_gpus_per_node, cfg.trainer.nnodes) == (8, 1)
    assert "hf_model" in actor.checkpoint.save_contents and cfg.trainer.resume_mode == "auto"
    assert list(cfg.trainer.logger) == ["console", "file"]
    run = (tmp_path / "run").resolve()
    assert cfg.trainer.default_local_dir == str(run / "checkpoints")
    assert cfg.trainer.validation_data_dir == str(run / "validation")
    assert cfg.trainer.rollout_data_dir == str(run / "rollouts")
    assert cfg.actor_rollout_ref.model.path == model
    # reward: mirage.rewards.compute_score with the condition's kwargs, through mirage's manager
    fn = cfg.reward.custom_reward_function
    assert (fn.path, fn.name) == ("pkg://mirage.rewards", "compute_score")
    assert OmegaConf.to_container(fn.reward_kwargs) == c.score_kwargs(release_faithful=False, seed=0)
    assert (cfg.reward.reward_manager.source, cfg.reward.reward_manager.name) == ("importlib", "MirageRewardManager")
    sampler = cfg.trainer.v1.sampler
    assert (sampler.custom_sampler.path, sampler.custom_sampler.name) == ("pkg://mirage.train.verl.sampler",
                                                                           "MirageReplayBuffer")
    assert (sampler.sampler_kwargs.reward, sampler.sampler_kwargs.estimator) == (c.reward, c.estimator)
    # dynamic sampling: on wherever an all-equal group carries no signal (every paper condition)
    assert cfg.algorithm.filter_groups.enable == (condition not in PM1) == sampler.sampler_kwargs.dynamic_sampling
    assert cfg.algorithm.filter_groups.max_num_gen_batches == r.max_num_gen_batches == 2
    if c.estimator == "w_reinforce":
        assert cfg.algorithm.w_reinforce_lambda == 0.1
    # data: the task's sets; one-shot conditions train on their duplicated one-example file
    t = get_task(task)
    train = Path(cfg.data.train_files)
    assert train.parent == (tmp_path / "data" / "verl").resolve()
    stem = "" if task == "math" else f"{t.train}_"
    assert train.stem == {"full": t.train, "one_shot_selected": f"{stem}one_shot_pi1",
                          "one_shot_random": f"{stem}one_shot_random_seed0"}[c.data]
    assert [Path(v).stem for v in cfg.data.val_files] == list(t.evals)
    # environment: the plugin for every process, a fresh metrics file, both also for remote Ray workers
    assert env["VERL_USE_EXTERNAL_MODULES"] == "mirage.train.verl.plugin"
    assert env["VERL_FILE_LOGGER_PATH"] == str(run / "logs" / "metrics-000.jsonl")
    assert dict(cfg.ray_kwargs.ray_init.runtime_env.env_vars) == env


def test_apply_path_equals_a_full_compose(base_cfg, tmp_path):
    _, argv = command(MODELS[1], "logic", "majority_vote", tmp_path, extra=["trainer.nnodes=2"])
    full = vb.compose_config(vb.overrides_of(argv))
    assert OmegaConf.to_container(full) == OmegaConf.to_container(apply(base_cfg, vb.overrides_of(argv)))
    assert full.trainer.nnodes == 2  # --extra comes last and wins


def test_recipe_overrides_and_validation_bites(base_cfg, tmp_path):
    recipe = PAPER_RECIPE.replace(max_response_length=4096, train_batch_size=32, ppo_mini_batch_size=32,
                                  n_gpus_per_node=4, nnodes=2, tensor_parallel_size=2)
    _, argv = command("/models/qwen", "math", "ground_truth", tmp_path, recipe=recipe)
    cfg = apply(base_cfg, vb.overrides_of(argv))
    vb.validate(cfg)
    assert (cfg.data.max_response_length, cfg.actor_rollout_ref.actor.ppo_max_token_len_per_gpu) == (4096, 6144)
    assert (cfg.data.train_batch_size, cfg.trainer.n_gpus_per_node, cfg.trainer.nnodes) == (32, 4, 2)
    assert cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 2
    bad = apply(base_cfg, vb.overrides_of(argv) + ["actor_rollout_ref.actor.use_dynamic_bsz=false",
                                                   "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
                                                   "actor_rollout_ref.actor.ppo_mini_batch_size=64"])
    with pytest.raises(ValueError, match="ppo_mini_batch_size"):
        vb.validate(bad)


def test_release_faithful_and_estimator_kwargs_reach_verl(base_cfg, tmp_path):
    _, argv = command(MODELS[0], "math", "incorrect", tmp_path, release_faithful=True)
    cfg = apply(base_cfg, vb.overrides_of(argv))
    assert cfg.reward.custom_reward_function.reward_kwargs.release_faithful is True
    assert cfg.trainer.v1.sampler.sampler_kwargs.release_faithful is True
    assert cfg.reward.custom_reward_function.reward_kwargs.variant == "incorrect"


def test_local_model_dir_becomes_absolute(tmp_path, monkeypatch):
    (tmp_path / "ckpt").mkdir()
    monkeypatch.chdir(tmp_path)
    _, argv = command("ckpt", "math", "ground_truth", tmp_path)
    assert f"actor_rollout_ref.model.path={tmp_path / 'ckpt'}" in argv


@pytest.mark.parametrize("value,text", [(True, "true"), (None, "null"), (1e-6, "1e-06"), (3, "3"),
                                        ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B"), ("1", "'1'"),
                                        ("true", "'true'"), ("a b,c", "'a b,c'"), (["x", 2], "[x,2]")])
def test_hydra_values(value, text):
    assert vb.hydra_value(value) == text


def test_hydra_parses_awkward_paths_back(base_cfg, tmp_path):
    odd = tmp_path / "data dir, v=2 [x]"
    _, argv = vb.build_command(MODELS[0], "math", "ground_truth", 0, tmp_path / "run's", data_root=odd)
    cfg = apply(base_cfg, vb.overrides_of(argv))
    assert cfg.data.train_files == str((odd / "verl" / "deepscaler.parquet").resolve())
    assert cfg.trainer.default_local_dir == str((tmp_path / "run's" / "checkpoints").resolve())


def test_merge_checkpoint_command_parses_with_verls_merger(tmp_path):
    actor = tmp_path / "checkpoints" / "global_step_50" / "actor"
    actor.mkdir(parents=True)
    argv = vb.merge_checkpoint(tmp_path, 50)
    assert argv[1:5] == ["-m", "verl.model_merger", "merge", "--backend"]
    # verl's own argument parser and config builder accept it
    from verl.model_merger.base_model_merger import generate_config_from_args, parse_args

    sys_argv = sys.argv
    try:
        sys.argv = ["verl.model_merger", *argv[3:]]
        config = generate_config_from_args(parse_args())
    finally:
        sys.argv = sys_argv
    assert (config.operation, config.backend) == ("merge", "fsdp")
    assert config.local_dir == str(actor.resolve())
    assert config.target_dir == str(actor.resolve() / "huggingface")
    assert config.hf_model_config_path == str(actor.resolve() / "huggingface")
    with pytest.raises(FileNotFoundError, match="global_step_7"):
        vb.merge_checkpoint(tmp_path, 7)


def _cli(argv):
    from mirage.cli import main

    return main(["--debug", *argv])  # errors raise, so the tests can look at them


def test_dry_run_cli_without_gpu_or_data(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = _cli(["train", "--backend", "verl", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--task", "math",
                 "--condition", "one_shot", "--seed", "3", "--run-dir", str(run_dir), "--data-root",
                 str(tmp_path / "data"), "--set", "total_steps=100", "--extra", "trainer.val_before_train=false",
                 "--dry-run"])
    assert code == 0
    out = capsys.readouterr().out
    assert not run_dir.exists() and not (tmp_path / "data").exists()  # a dry run writes nothing
    assert "one_shot_pi1.parquet  [MISSING: mirage data one-shot" in out
    assert "math500.parquet  [MISSING: mirage data prepare --dataset math500" in out
    line = out.strip().splitlines()[-1]
    assert line.startswith("VERL_USE_EXTERNAL_MODULES=mirage.train.verl.plugin VERL_FILE_LOGGER_PATH=")
    assert "trainer.total_training_steps=100" in line and line.endswith("trainer.val_before_train=false")
    assert "data.seed=3" in line


def test_dry_run_rejects_unknown_recipe_keys_and_bad_values(tmp_path):
    base = ["train", "--backend", "verl", "--model", "m", "--task", "math", "--condition", "random",
            "--dry-run", "--run-dir", str(tmp_path / "r")]
    with pytest.raises(KeyError, match="unknown recipe key 'learning_rate'"):
        _cli(base + ["--set", "learning_rate=1"])
    with pytest.raises(ValueError, match="'dynamic_sampling': expected a boolean, got 'maybe'"):
        _cli(base + ["--set", "dynamic_sampling=maybe"])


def _stub_data(root, task_name):
    """Empty parquet files for a task's train and eval sets: existence is all a launch checks."""
    task = get_task(task_name)
    (root / "verl").mkdir(parents=True, exist_ok=True)
    for name in (task.train, *task.evals):
        (root / "verl" / f"{name}.parquet").write_bytes(b"")
    return root


def test_no_launch_writes_a_runnable_run_dir(tmp_path, capsys, monkeypatch):
    data = _stub_data(tmp_path / "data", "logic")
    run_dir = tmp_path / "run"
    args = ["train", "--backend", "verl", "--model", "Qwen/Qwen2.5-7B", "--task", "logic", "--condition",
            "entropy_min", "--run-dir", str(run_dir), "--data-root", str(data), "--no-launch"]
    monkeypatch.delenv("MIRAGE_SYNLOGIC_PATH", raising=False)
    with pytest.raises(FileNotFoundError, match="MIRAGE_SYNLOGIC_PATH"):  # logic rows need SynLogic's verifiers
        _cli(args)
    monkeypatch.setenv("MIRAGE_SYNLOGIC_PATH", str(tmp_path / "SynLogic"))
    with pytest.raises(FileNotFoundError, match="is not a SynLogic checkout"):  # a folder that is not one
        _cli(args)
    for stub in ("task2verifier.py", "base/data.py"):  # what a checkout has (launching never imports it)
        (tmp_path / "SynLogic" / stub).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "SynLogic" / stub).write_text("")
    assert _cli(args) == 0  # includes the fresh-interpreter plugin check
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert (manifest["backend"], manifest["condition"], manifest["task"], manifest["seed"]) == \
        ("verl", "entropy_min", "logic", 0)
    assert manifest["recipe"] == PAPER_RECIPE.to_dict() and manifest["dynamic_sampling"] is True
    resolved = OmegaConf.load(run_dir / "resolved_config.yaml")
    assert resolved.trainer.v1.sampler.sampler_kwargs.reward == "entropy_min"
    assert resolved.actor_rollout_ref.rollout.n == 16
    env = json.loads((run_dir / "env.json").read_text())
    assert env["job_env"]["VERL_USE_EXTERNAL_MODULES"] == "mirage.train.verl.plugin"
    # forwarded to verl's scoring actors, wherever Ray places them
    assert env["job_env"]["MIRAGE_SYNLOGIC_PATH"] == str(tmp_path / "SynLogic")
    assert resolved.ray_kwargs.ray_init.runtime_env.env_vars.MIRAGE_SYNLOGIC_PATH == str(tmp_path / "SynLogic")
    script = (run_dir / "command.sh").read_text()
    assert script.startswith("#!/usr/bin/env bash") and "exec " in script
    # command.sh names a fresh metrics file on every run (verl truncates its log)
    line = next(l for l in script.splitlines() if l.startswith("export VERL_FILE_LOGGER_PATH="))

    def fresh():
        return subprocess.run(["bash", "-c", line + '; echo "$VERL_FILE_LOGGER_PATH"'], capture_output=True,
                              text=True, check=True).stdout.strip()

    assert fresh() == str(run_dir.resolve() / "logs" / "metrics-000.jsonl")
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "logs" / "metrics-000.jsonl").write_text("")
    assert fresh() == str(run_dir.resolve() / "logs" / "metrics-001.jsonl")
    assert subprocess.run(["bash", "-n", str(run_dir / "command.sh")]).returncode == 0
    assert "--no-launch" not in script and "mirage.train.verl.plugin" in script


def test_launch_refuses_missing_data_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"deepscaler\.parquet[\s\S]*mirage data prepare"):
        _cli(["train", "--backend", "verl", "--model", "m", "--task", "math", "--condition", "random",
              "--run-dir", str(tmp_path / "r"), "--data-root", str(tmp_path / "none")])


def test_stream_copies_output_to_the_log_and_returns_the_exit_code(tmp_path, capsys):
    code = launcher._stream([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
                      {"X": "1"}, tmp_path / "console.log")
    assert code == 3
    assert sorted((tmp_path / "console.log").read_text().split()) == ["err", "out"]
    assert "out" in capsys.readouterr().out


def test_launch_through_verls_own_entry_point(tmp_path, monkeypatch):
    """The launch path end to end, with verl's real main_ppo parsing the exact argv.

    verl cannot train on a CPU, so the launched command gets Hydra's ``--cfg job``
    appended: main_ppo composes the config from our command line, prints it and exits.
    """
    data = _stub_data(tmp_path / "data", "math")
    real_stream = launcher._stream
    launched = {}

    def stream_config_only(argv, env, log_path):
        launched.update(argv=argv, env=env, log=log_path)
        return real_stream(argv + ["--cfg", "job"], {**env, "PYTHONWARNINGS": "ignore"}, log_path)

    monkeypatch.setattr(launcher, "_stream", stream_config_only)
    monkeypatch.setattr(launcher, "preflight", lambda env, condition, recipe: None)  # tested in test_no_launch_...
    run_dir = tmp_path / "run"
    assert _cli(["train", "--backend", "verl", "--model", "Qwen/Qwen2.5-7B", "--task", "math", "--condition",
                 "w_reinforce", "--run-dir", str(run_dir), "--data-root", str(data)]) == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["attempts"][-1]["returncode"] == 0
    assert [Path(a["metrics"]).name for a in manifest["attempts"]] == ["metrics-000.jsonl"]
    assert launched["log"] == run_dir.resolve() / "logs" / "console-000.log"
    # what verl's entry point composed from the command line equals what mirage composed and saved
    printed = launched["log"].read_text()
    verl_cfg = OmegaConf.create(printed[printed.index("model_engine:"):])  # after verl's start-up warnings
    ours = vb.compose_config(vb.overrides_of(launched["argv"]))
    assert OmegaConf.to_container(verl_cfg) == OmegaConf.to_container(ours)
    assert verl_cfg.algorithm.adv_estimator == "mirage_w_reinforce" and verl_cfg.algorithm.w_reinforce_lambda == 0.1
    # a finished run is not launched again; one with other settings is refused, naming the key
    launched.clear()
    args = ["train", "--backend", "verl", "--model", "Qwen/Qwen2.5-7B", "--task", "math", "--condition",
            "w_reinforce", "--run-dir", str(run_dir), "--data-root", str(data)]
    assert _cli(args) == 0 and not launched
    with pytest.raises(ValueError, match=r"other settings.*'lr'"):
        _cli(args + ["--set", "lr=2e-6"])


def test_reasoning_gym_task_composes_and_generates_its_data_only_on_launch(tmp_path, capsys, monkeypatch):
    """Proof by extension: rg:<dataset> needs no verl-specific code; its rows carry their own scorer."""
    import pandas as pd

    from mirage.rewards import compute_score

    run_dir, data = tmp_path / "run", tmp_path / "data"
    base = ["train", "--backend", "verl", "--model", "Qwen/Qwen2.5-7B", "--task", "rg:basic_arithmetic@train_size=64",
            "--condition", "ground_truth", "--run-dir", str(run_dir), "--data-root", str(data)]
    assert _cli(base + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[generated on launch]" in out and not data.exists() and not run_dir.exists()
    words = shlex.split(out.strip().splitlines()[-1])
    cfg = vb.compose_config(words[words.index("verl.trainer.main_ppo") + 1:])
    vb.validate(cfg)
    assert cfg.data.train_files.endswith("_train.parquet") and cfg.algorithm.adv_estimator == "grpo"
    monkeypatch.setattr(launcher, "preflight", lambda env, condition, recipe: None)
    monkeypatch.setattr(launcher, "_stream", lambda argv, env, log: 0)  # verl cannot run here; the rest does
    assert _cli(base) == 0
    rows = pd.read_parquet(cfg.data.train_files)
    assert len(rows) == 64 and set(rows["data_source"]) == {"rg/basic_arithmetic"}
    row = rows.iloc[0]
    answer = row["reward_model"]["ground_truth"]
    right = compute_score(row["data_source"], f"<think>.</think> <answer>{answer}</answer>", answer, row["extra_info"])
    wrong = compute_score(row["data_source"], "<think>.</think> <answer>-1.5</answer>", answer, row["extra_info"])
    assert (right["score"], wrong["score"]) == (1.0, 0.0)


def test_clipping_bias_switchboard_composes_with_verl(tmp_path, capsys):
    """The recipe's no-clip loss and RLOO control become verl keys that compose and validate; a recipe
    with one update per rollout is flagged (the ratio is exactly 1: clipping cannot act)."""
    recipe = PAPER_RECIPE.replace(policy_loss="no_clip", estimator_override="rloo", ppo_mini_batch_size=16,
                                  ppo_epochs=2)
    assert recipe.updates_per_rollout == 16
    _, argv = vb.build_command("Qwen/Qwen2.5-7B", "math", "random", 0, tmp_path / "r", recipe, data_root=tmp_path)
    cfg = vb.compose_config(vb.overrides_of(argv))
    vb.validate(cfg)
    assert cfg.actor_rollout_ref.actor.policy_loss.loss_mode == "mirage_no_clip"
    assert cfg.algorithm.adv_estimator == "rloo" and cfg.trainer.v1.sampler.sampler_kwargs.estimator == "rloo"
    assert cfg.actor_rollout_ref.actor.ppo_epochs == 2
    _, argv = vb.build_command("m", "math", "random", 0, tmp_path / "r", PAPER_RECIPE, data_root=tmp_path)
    assert vb.compose_config(vb.overrides_of(argv)).actor_rollout_ref.actor.policy_loss.loss_mode == "mirage_vanilla"
    base = ["train", "--backend", "verl", "--model", "m", "--task", "math", "--condition", "random", "--dry-run",
            "--run-dir", str(tmp_path / "r"), "--data-root", str(tmp_path)]
    assert _cli(base + ["--set", "ppo_mini_batch_size=128"]) == 0
    assert "one optimizer update per rollout" in capsys.readouterr().out
    assert _cli(base) == 0
    assert "one optimizer update per rollout" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="recipe key 'policy_loss'"):
        _cli(base + ["--set", "policy_loss=clipless"])


def test_code_task_scoring_processes_reach_the_sandbox(base_cfg, tmp_path, monkeypatch):
    """The code checker's setting ($MIRAGE_SANDBOX_PROCS) travels to verl's processes (also Ray's remote
    workers), and a process started with only that environment scores a program in the sandbox."""
    from mirage.tasks import get_task
    from mirage.train.verl.command import setup_problems

    monkeypatch.setenv("MIRAGE_SANDBOX_PROCS", "3")
    env, argv = command(MODELS[0], "code", "ground_truth", tmp_path)
    cfg = apply(base_cfg, vb.overrides_of(argv))
    vb.validate(cfg)
    assert env["MIRAGE_SANDBOX_PROCS"] == "3" == cfg.ray_kwargs.ray_init.runtime_env.env_vars["MIRAGE_SANDBOX_PROCS"]
    assert "MIRAGE_SANDBOX_PROCS" not in command(MODELS[0], "math", "ground_truth", tmp_path)[0]
    assert setup_problems(get_task("code"), get_condition("ground_truth")) == []  # the sandbox can run here
    fn = cfg.reward.custom_reward_function
    kwargs = OmegaConf.to_container(fn.reward_kwargs)
    tests = json.dumps({"inputs": [[2, 3], [0, 0]], "outputs": [5, 0], "fn_name": "add"})
    script = ("import json, sys\nfrom mirage.rewards import compute_score\n"
              "kw, tests = json.loads(sys.argv[1]), sys.argv[2]\n"
              "good = '<think>x</think> <answer>```python\\ndef add(a, b):\\n    return a + b\\n```</answer>'\n"
              "bad = good.replace('a + b', 'a - b')\n"
              "print(json.dumps([compute_score('humaneval', r, tests, {}, **kw)['acc'] for r in (good, bad)]))\n")
    child_env = {**env, "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(kwargs), tests], env=child_env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [1.0, 0.0]
