"""``mirage train --backend verl``: one (model, task, condition, seed) -> one verl 0.9.1 run.

The paper's 36 shell scripts differ only in model, reward and estimator; here one
function, ``build_command``, turns a ``mirage.conditions.Condition`` and a
``Recipe`` into ``python -m verl.trainer.main_ppo`` with Hydra overrides and the
environment it needs. Nothing of verl is forked:

* estimators: ``mirage.train.verl_plugin`` registers them, loaded in every Ray
  process through ``VERL_USE_EXTERNAL_MODULES``;
* rewards: ``reward.custom_reward_function`` -> ``mirage.rewards.compute_score`` with
  the condition's ``reward_kwargs``, scored by ``mirage.train.verl_reward`` (verl's
  process-based ``remote`` manager plus each response's step and group index);
* group / log-prob rewards, dynamic sampling with its cap, +-1 dropping:
  ``mirage.train.verl_sampler`` as the V1 trainer's custom sampler.

``main`` writes ``manifest.json``, ``command.sh``, ``resolved_config.yaml`` and
``env.json`` into the run directory, checks in a fresh interpreter that verl finds
every plugin, then launches and streams the output. Rerunning the same command
resumes from the latest checkpoint (``trainer.resume_mode=auto``) with a fresh
metrics file (verl truncates its file logger's file on start).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from mirage.conditions import PAPER_RECIPE, Condition, Recipe, get_condition
from mirage.objectives import get_estimator
from mirage.rewards import synlogic
from mirage.runs import next_metrics_path, read_manifest, update_manifest, write_json_atomic, write_text_atomic
from mirage.tasks import Task, dataset_path, get_task

ENTRY = ("-m", "verl.trainer.main_ppo")
PLUGIN = "mirage.train.verl_plugin"
REWARD_FN = ("pkg://mirage.rewards", "compute_score")
REWARD_MANAGER = ("pkg://mirage.train.verl_reward", "MirageRewardManager")
SAMPLER = ("pkg://mirage.train.verl_sampler", "MirageReplayBuffer")
# Estimator keyword -> the algorithm config key the mirage function reads (verl passes only config).
ESTIMATOR_CONFIG_KEYS = {("w_reinforce", "lam"): "w_reinforce_lambda"}
# Reward-scoring actors: reward.num_workers loop workers, each with as many 1-CPU scoring actors.
REWARD_WORKERS = 4


# --- names and paths ------------------------------------------------------------------
def model_slug(model: str) -> str:
    """A file-name-safe model name: 'Qwen/Qwen2.5-7B' -> 'Qwen2.5-7B', '/x/y/ckpt' -> 'ckpt'."""
    return re.sub(r"[^\w.+-]", "_", Path(str(model).rstrip("/")).name) or "model"


def default_run_dir(model: str, task: str, condition: str, seed: int) -> Path:
    return Path("runs") / "verl" / model_slug(model) / task / condition / f"seed{seed}"


def train_dataset_name(task: Task, condition: Condition) -> str:
    """Full-data conditions train on the task's set; one-shot ones on a one-example set duplicated to
    the batch (for math, the names ``mirage data prepare --all-local`` writes from DSR-sub)."""
    if condition.data == "full":
        return task.train
    stem = "" if task.name == "math" else f"{task.train}_"
    return stem + {"one_shot_selected": "one_shot_pi1", "one_shot_random": "one_shot_random_seed0"}[condition.data]


def data_files(task: Task, condition: Condition, data_root: str | os.PathLike | None = None,
               train_file: str | os.PathLike | None = None) -> tuple[Path, list[Path]]:
    """(train parquet, validation parquets), absolute."""
    train = Path(train_file) if train_file else dataset_path(train_dataset_name(task, condition), data_root)
    return train.resolve(), [dataset_path(name, data_root).resolve() for name in task.evals]


def missing_data_help(task: Task, condition: Condition, path: Path) -> str:
    if path.stem == train_dataset_name(task, condition) and condition.data != "full":
        pick = ("--history <per-example accuracy history JSON> --rank 1" if condition.data == "one_shot_selected"
                else "--random --seed 0")
        return (f"mirage data one-shot --source <{task.train} parquet> {pick} --batch-size 128 --out {path}"
                + (" (for math, `mirage data prepare --all-local --shared DIR` writes it from DSR-sub)"
                   if task.name == "math" else ""))
    return f"mirage data prepare --dataset {path.stem} --root {path.parent.parent}"


def model_path(model: str) -> str:
    """A local directory becomes absolute (verl needs absolute paths); anything else is an HF id."""
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


# --- Hydra overrides ---------------------------------------------------------------------
_PLAIN = re.compile(r"^[\w./:@+-]+$")


def hydra_value(value: Any) -> str:
    """Render a Python value in Hydra's override grammar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in ("true", "false", "null") and not re.match(r"^[-+]?[\d.]", text):
        return text
    return "'" + text.replace("'", "\\'") + "'"


def _group_normalised(estimator: str) -> bool:
    """True when an all-equal group gets zero advantage, i.e. dynamic sampling loses nothing."""
    import torch

    est = get_estimator(estimator)
    for value in (0.0, 1.0):
        adv, _ = est.fn(token_level_rewards=torch.full((2, 1), value), response_mask=torch.ones(2, 1), index=[0, 0])
        if adv.abs().sum() > 0:
            return False
    return True


def reward_kwargs(condition: Condition, seed: int, release_faithful: bool = False) -> dict[str, Any]:
    return condition.score_kwargs(release_faithful=release_faithful, seed=seed)


def build_overrides(model: str, task: Task, condition: Condition, seed: int, run_dir: Path, recipe: Recipe,
                    *, release_faithful: bool = False, data_root: str | os.PathLike | None = None,
                    train_file: str | os.PathLike | None = None) -> list[str]:
    """The Hydra overrides of one run, in a stable order (recipe values first, then mirage's hooks)."""
    r = recipe
    est = get_estimator(condition.estimator)
    train, vals = data_files(task, condition, data_root, train_file)
    max_len = r.max_prompt_length + r.max_response_length
    dynamic = r.dynamic_sampling and _group_normalised(est.name)
    a, ro, o = "actor_rollout_ref.actor", "actor_rollout_ref.rollout", "actor_rollout_ref.actor.optim"
    kv: list[tuple[str, Any]] = [
        # data
        ("data.train_files", str(train)),
        ("data.val_files", [str(v) for v in vals]),
        ("data.prompt_key", "prompt"),
        ("data.truncation", "left"),
        ("data.max_prompt_length", r.max_prompt_length),
        ("data.max_response_length", r.max_response_length),
        ("data.train_batch_size", r.train_batch_size),
        ("data.seed", seed),
        # model
        ("actor_rollout_ref.model.path", model_path(model)),
        ("actor_rollout_ref.model.use_remove_padding", True),
        ("actor_rollout_ref.model.enable_gradient_checkpointing", True),
        # algorithm: estimator, no KL, dynamic sampling
        ("algorithm.adv_estimator", est.verl_name),
        ("algorithm.norm_adv_by_std_in_grpo", r.norm_adv_by_std_in_grpo),
        ("algorithm.use_kl_in_reward", r.use_kl_in_reward),
        ("algorithm.kl_ctrl.kl_coef", 0.0),
        ("algorithm.filter_groups.enable", dynamic),
        ("algorithm.filter_groups.metric", "reward"),
        ("algorithm.filter_groups.max_num_gen_batches", r.max_num_gen_batches),
        ("critic.enable", False),
        # actor: PPO loss, optimiser
        (f"{a}.ppo_mini_batch_size", r.ppo_mini_batch_size),
        (f"{a}.ppo_epochs", r.ppo_epochs),
        (f"{a}.clip_ratio_low", r.clip_ratio_low),
        (f"{a}.clip_ratio_high", r.clip_ratio_high),
        (f"{a}.clip_ratio_c", r.clip_ratio_c),
        (f"{a}.loss_agg_mode", r.loss_agg_mode),
        (f"{a}.entropy_coeff", r.entropy_coeff),
        (f"{a}.use_kl_loss", r.use_kl_loss),
        (f"{a}.kl_loss_coef", 0.0),
        (f"{a}.data_loader_seed", seed),
        (f"{o}.lr", r.lr),
        (f"{o}.lr_warmup_steps", r.lr_warmup_steps),
        (f"{o}.weight_decay", r.weight_decay),
        (f"{o}.clip_grad", r.grad_clip),
        (f"{a}.use_dynamic_bsz", True),
        (f"{a}.ppo_max_token_len_per_gpu", max_len),
        (f"{a}.checkpoint.save_contents", ["model", "optimizer", "extra", "hf_model"]),
        # rollout (vLLM) and in-training validation
        (f"{ro}.name", "vllm"),
        (f"{ro}.n", r.rollout_n),
        (f"{ro}.temperature", r.temperature),
        (f"{ro}.top_p", r.top_p),
        (f"{ro}.top_k", -1),
        (f"{ro}.seed", seed),
        (f"{ro}.tensor_model_parallel_size", r.tensor_parallel_size),
        # vLLM reserves this fraction at start while the FSDP actor (fp32 params + Adam: ~16 bytes/param / GPUs)
        # stays resident; the release's 0.8 leaves no room for that on 80 GB GPUs with verl 0.9.1.
        (f"{ro}.gpu_memory_utilization", 0.6),
        (f"{ro}.enable_chunked_prefill", True),
        (f"{ro}.max_num_batched_tokens", max_len),
        (f"{ro}.log_prob_max_token_len_per_gpu", max_len),
        (f"{ro}.calculate_log_probs", True),
        (f"{ro}.val_kwargs.n", r.val_n),
        (f"{ro}.val_kwargs.temperature", r.val_temperature),  # do_sample is ignored in 0.9.1
        (f"{ro}.val_kwargs.top_p", r.val_top_p),
        (f"{ro}.val_kwargs.top_k", -1),
        (f"{ro}.val_kwargs.do_sample", True),
        # reward: mirage.rewards.compute_score through mirage's reward manager
        ("reward.custom_reward_function.path", REWARD_FN[0]),
        ("reward.custom_reward_function.name", REWARD_FN[1]),
        ("reward.reward_manager.source", "importlib"),
        ("reward.reward_manager.module.path", REWARD_MANAGER[0]),
        ("reward.reward_manager.name", REWARD_MANAGER[1]),
        ("reward.num_workers", REWARD_WORKERS),
        # trainer: schedule, logging, checkpoints, resume
        ("trainer.v1.trainer_mode", "sync"),
        ("trainer.v1.sampler.custom_sampler.path", SAMPLER[0]),
        ("trainer.v1.sampler.custom_sampler.name", SAMPLER[1]),
        ("trainer.total_training_steps", r.total_steps),
        ("trainer.total_epochs", r.total_steps),  # >= 1 step per epoch: the step limit always binds
        ("trainer.test_freq", r.val_freq),
        ("trainer.save_freq", r.save_freq),
        ("trainer.val_before_train", True),
        ("trainer.n_gpus_per_node", r.n_gpus_per_node),
        ("trainer.nnodes", r.nnodes),
        ("trainer.logger", ["console", "file"]),
        ("trainer.project_name", "mirage"),
        ("trainer.experiment_name", f"{model_slug(model)}-{task.name}-{condition.name}-seed{seed}"),
        ("trainer.default_local_dir", str(run_dir / "checkpoints")),
        ("trainer.resume_mode", "auto"),
        ("trainer.validation_data_dir", str(run_dir / "validation")),
        ("trainer.rollout_data_dir", str(run_dir / "rollouts")),
    ]
    overrides = [f"{k}={hydra_value(v)}" for k, v in kv]
    # keys absent from verl's config need Hydra's "+"
    for k, v in reward_kwargs(condition, seed, release_faithful).items():
        overrides.append(f"+reward.custom_reward_function.reward_kwargs.{k}={hydra_value(v)}")
    for k, v in condition.estimator_kwargs.items():
        if (est.name, k) not in ESTIMATOR_CONFIG_KEYS:
            raise KeyError(f"condition {condition.name!r}: estimator kwarg {k!r} has no verl config key")
        overrides.append(f"+algorithm.{ESTIMATOR_CONFIG_KEYS[est.name, k]}={hydra_value(v)}")
    scoring = reward_kwargs(condition, seed, release_faithful)
    sampler = {"reward": condition.reward, "estimator": est.name, "dynamic_sampling": dynamic,
               "max_num_gen_batches": r.max_num_gen_batches, "release_faithful": release_faithful}
    if "math_checker" in scoring:
        sampler["math_checker"] = scoring["math_checker"]
    overrides += [f"+trainer.v1.sampler.sampler_kwargs.{k}={hydra_value(v)}" for k, v in sampler.items()]
    return overrides


# Read by mirage.rewards inside verl's scoring actors, which on other nodes do not see our environment.
FORWARDED_ENV = (synlogic.ENV_VAR,)


def job_env(metrics_path: Path) -> dict[str, str]:
    env = {
        "VERL_USE_EXTERNAL_MODULES": PLUGIN,
        "VERL_FILE_LOGGER_PATH": str(metrics_path),
        "PYTHONUNBUFFERED": "1",
        "HYDRA_FULL_ERROR": "1",
    }
    env.update({k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)})
    return env


def needs_synlogic(task: Task) -> bool:
    """SynLogic rows are scored by SynLogic's own verifiers, from the user's checkout."""
    return any(name.startswith("synlogic") for name in (task.train, *task.evals))


def build_command(model: str, task: str | Task, condition: str | Condition, seed: int,
                  run_dir: str | os.PathLike, recipe: Recipe = PAPER_RECIPE, *, release_faithful: bool = False,
                  data_root: str | os.PathLike | None = None, train_file: str | os.PathLike | None = None,
                  extra: Sequence[str] = (), python: str = sys.executable) -> tuple[dict[str, str], list[str]]:
    """(env, argv) of the verl run; ``extra`` raw Hydra overrides go last (they win)."""
    task = get_task(task) if isinstance(task, str) else task
    condition = get_condition(condition) if isinstance(condition, str) else condition
    run_dir = Path(run_dir).resolve()
    env = job_env(next_metrics_path(run_dir, create=False).resolve())
    overrides = build_overrides(model, task, condition, seed, run_dir, recipe, release_faithful=release_faithful,
                                data_root=data_root, train_file=train_file)
    # Ray workers on other nodes do not inherit the driver's environment: pass ours explicitly.
    overrides += [f"+ray_kwargs.ray_init.runtime_env.env_vars.{k}={hydra_value(v)}" for k, v in env.items()]
    return env, [python, *ENTRY, *overrides, *extra]


def format_command(env: dict[str, str], argv: Sequence[str]) -> str:
    """One shell line: KEY=VALUE prefixes, then the command, every word quoted as needed."""
    return " ".join([f"{k}={shlex.quote(v)}" for k, v in env.items()] + [shlex.quote(a) for a in argv])


# --- verl's own config composition and validation ---------------------------------------
def verl_config_dir() -> Path:
    import verl

    return Path(verl.__file__).parent / "trainer" / "config"


def overrides_of(argv: Sequence[str]) -> list[str]:
    """The Hydra overrides in a ``build_command`` argv."""
    return list(argv[1 + len(ENTRY):])


def compose_config(overrides: Sequence[str]):
    """verl's ``ppo_trainer`` config with ``overrides`` applied, composed by Hydra as main_ppo does."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
        return compose(config_name="ppo_trainer", overrides=list(overrides))


def validate(cfg) -> None:
    """verl's own start-up validation (what main_ppo runs before starting Ray)."""
    import contextlib
    import io

    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a success line
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


# --- checkpoints --------------------------------------------------------------------------
def merge_checkpoint(run_dir: str | os.PathLike, step: int, backend: str = "fsdp",
                     python: str = sys.executable) -> list[str]:
    """argv of verl's model merger turning ``global_step_<step>`` into HF weights in place.

    Needed only when a checkpoint was saved without ``hf_model`` (mirage always adds it):
    the merged model goes to ``actor/huggingface``, where ``mirage.runs.list_checkpoints``
    and evaluation look for it.
    """
    actor = Path(run_dir).resolve() / "checkpoints" / f"global_step_{int(step)}" / "actor"
    if not actor.is_dir():
        raise FileNotFoundError(f"no checkpoint of step {step}: {actor} does not exist")
    return [python, "-m", "verl.model_merger", "merge", "--backend", backend,
            "--local_dir", str(actor), "--target_dir", str(actor / "huggingface")]


# --- the CLI --------------------------------------------------------------------------------
def recipe_from_args(args: argparse.Namespace, base: Recipe = PAPER_RECIPE) -> Recipe:
    changes = dict(args.overrides)  # KEY=VALUE strings, parsed by the recipe
    if args.n_gpus_per_node is not None:
        changes["n_gpus_per_node"] = args.n_gpus_per_node
    if args.nnodes is not None:
        changes["nnodes"] = args.nnodes
    return base.with_overrides(changes)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("mirage", "verl", "vllm", "torch", "transformers", "ray", "math-verify"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def write_run_dir(run_dir: Path, env: dict[str, str], argv: list[str], cfg, manifest: dict) -> None:
    from omegaconf import OmegaConf

    update_manifest(run_dir, **manifest)
    write_text_atomic(run_dir / "resolved_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    keep = re.compile(r"^(CUDA_|NCCL_|RAY_|VLLM_|HF_|VERL_|PYTORCH_|SLURM_)")
    write_json_atomic(run_dir / "env.json", {
        "job_env": env, "inherited": {k: v for k, v in sorted(os.environ.items()) if keep.match(k)},
        "host": platform.node(), "python": sys.version, "cwd": os.getcwd(), "versions": _versions()})
    # Rerunnable as is: each attempt gets a fresh metrics file, as `mirage train` gives it.
    fresh = ("$(" + shlex.quote(sys.executable) + " -c " + shlex.quote(
        f"from mirage.runs import next_metrics_path; print(next_metrics_path({str(run_dir)!r}))") + ")")
    exports = [f"export {k}={shlex.quote(v)}" for k, v in env.items() if k != "VERL_FILE_LOGGER_PATH"]
    body = " \\\n    ".join(shlex.quote(a) for a in argv)
    body = body.replace(shlex.quote(f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH="
                                    f"{env['VERL_FILE_LOGGER_PATH']}"),
                        '"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH=$VERL_FILE_LOGGER_PATH"')
    script = "\n".join([
        "#!/usr/bin/env bash",
        f"# {manifest['condition']} | {manifest['model']} | {manifest['task']} | seed {manifest['seed']}"
        " (written by `mirage train --backend verl`; rerunning resumes from the latest checkpoint)",
        "set -euo pipefail",
        f"cd {shlex.quote(os.getcwd())}",
        *exports,
        f"# first attempt: VERL_FILE_LOGGER_PATH={env['VERL_FILE_LOGGER_PATH']}",
        f"export VERL_FILE_LOGGER_PATH={fresh}",
        f"exec {body}", ""])
    write_text_atomic(run_dir / "command.sh", script)
    os.chmod(run_dir / "command.sh", 0o755)


def preflight(env: dict[str, str], condition: Condition) -> None:
    """In a fresh interpreter with the job's environment, as verl's processes will start:
    the estimator resolves and every object verl loads by path loads."""
    verl_name = get_estimator(condition.estimator).verl_name
    cmd = [sys.executable, "-m", PLUGIN, "--check", verl_name,
           *[f"--load={p}:{n}" for p, n in (REWARD_FN, REWARD_MANAGER, SAMPLER)]]
    done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"verl plugin check failed ({' '.join(cmd)}):\n{done.stdout}{done.stderr}")


def _stream(argv: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run, copying the output line by line to the terminal and to ``log_path``."""
    with open(log_path, "a", encoding="utf-8") as log, subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1) as proc:
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        return proc.wait()


def main(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    condition = get_condition(args.condition)
    recipe = recipe_from_args(args)
    run_dir = Path(args.run_dir or default_run_dir(args.model, task.name, condition.name, args.seed)).resolve()
    train_file = getattr(args, "train_file", None)
    env, argv = build_command(args.model, task, condition, args.seed, run_dir, recipe,
                              release_faithful=args.release_faithful, data_root=args.data_root,
                              train_file=train_file, extra=args.extra)
    train, vals = data_files(task, condition, args.data_root, train_file)
    missing = [p for p in [train, *vals] if not p.exists()]
    cfg = compose_config(overrides_of(argv))
    validate(cfg)
    no_synlogic = needs_synlogic(task) and synlogic.ENV_VAR not in env

    if args.dry_run:
        print(f"# {condition.name} ({condition.rq}: {condition.summary}) | {args.model} | {task.name} | "
              f"seed {args.seed} | run dir {run_dir}")
        for p in [train, *vals]:
            print(f"# reads {p}" + ("" if p.exists() else "  [MISSING: " + missing_data_help(task, condition, p) + "]"))
        if no_synlogic:
            print(f"# needs {synlogic.ENV_VAR}=<SynLogic checkout> (its verifiers score the logic rows)")
        print(format_command(env, argv))
        return 0

    if no_synlogic:
        raise RuntimeError(f"task {task.name!r} is scored by SynLogic's verifiers: {synlogic.HOW_TO_GET}")
    if missing:
        raise FileNotFoundError("verl run needs these datasets, missing:\n" + "\n".join(
            f"  {p}\n    make it with: {missing_data_help(task, condition, p)}" for p in missing))
    preflight(env, condition)
    previous = read_manifest(run_dir)
    manifest = {
        "backend": "verl", "model": args.model, "model_path": model_path(args.model), "task": task.name,
        "condition": condition.name,
        "seed": args.seed, "release_faithful": bool(args.release_faithful),
        "condition_info": condition.to_dict(), "recipe": recipe.to_dict(),
        "dynamic_sampling": bool(cfg.algorithm.filter_groups.enable),
        "data": {"train": str(train), "val": [str(v) for v in vals]},
        "command": format_command(env, argv), "versions": _versions(),
    }
    if getattr(args, "no_launch", False):
        write_run_dir(run_dir, env, argv, cfg, {**manifest, "status": previous.get("status", "prepared")})
        print(f"wrote {run_dir}; launch with {run_dir / 'command.sh'} or by rerunning this without --no-launch")
        return 0
    attempts = [*previous.get("attempts", []), {"metrics": env["VERL_FILE_LOGGER_PATH"]}]
    write_run_dir(run_dir, env, argv, cfg, {**manifest, "status": "running", "attempts": attempts})
    metrics_name = Path(env["VERL_FILE_LOGGER_PATH"]).name
    log_path = Path(env["VERL_FILE_LOGGER_PATH"]).with_name(metrics_name.replace("metrics-", "console-")
                                                            .replace(".jsonl", ".log"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        code = _stream(argv, env, log_path)
    except KeyboardInterrupt:
        update_manifest(run_dir, status="interrupted")
        raise
    update_manifest(run_dir, status="finished" if code == 0 else "failed", returncode=code)
    if code != 0:
        print(f"verl exited with {code}; see {log_path}", file=sys.stderr)
    return code
