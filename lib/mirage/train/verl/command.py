"""One (model, task, condition, seed) -> the exact verl 0.9.1 command: Hydra overrides and environment.

The paper's 36 shell scripts differ only in model, reward and estimator; here one
function, ``build_command``, turns a ``mirage.conditions.Condition``, a task and a
``Recipe`` into ``python -m verl.trainer.main_ppo`` with Hydra overrides and the
environment it needs. Nothing of verl is forked:

* estimators: ``mirage.train.verl.plugin`` registers them, loaded in every Ray
  process through ``VERL_USE_EXTERNAL_MODULES``;
* rewards: ``reward.custom_reward_function`` -> ``mirage.rewards.compute_score`` with
  the condition's ``reward_kwargs``, scored by ``mirage.train.verl.reward`` (verl's
  process-based ``remote`` manager plus each response's step and group index);
* group / log-prob rewards, dynamic sampling with its cap, +-1 dropping:
  ``mirage.train.verl.sampler`` as the V1 trainer's custom sampler.

``compose_config`` / ``validate`` run verl's own Hydra composition and start-up checks
(on CPU too). Launching is ``mirage.train.verl.launcher.launch``.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from mirage.conditions import Condition, get_condition
from mirage.objectives import POLICY_LOSSES, get_estimator
from mirage.recipes import PAPER_RECIPE, Recipe
from mirage.registry import PLUGINS_ENV
from mirage.runs import next_metrics_path, slug
from mirage.tasks import Task, dataset_path, get_task
from mirage.train.sampling import group_normalised
# attention_implementation: re-exported for the doctor (the attention is decided in attention.py)
from mirage.train.verl.attention import attention_implementation, attention_overrides  # noqa: F401
from mirage.models import resolve_model
from mirage.rewards.checkers import CHECKERS
from mirage.rewards.routing import parse_options

ENTRY = ("-m", "verl.trainer.main_ppo")
PLUGIN = "mirage.train.verl.plugin"
REWARD_FN = ("pkg://mirage.rewards", "compute_score")
REWARD_MANAGER = ("pkg://mirage.train.verl.reward", "MirageRewardManager")
SAMPLER = ("pkg://mirage.train.verl.sampler", "MirageReplayBuffer")
# Reward-scoring actors: reward.num_workers loop workers, each with as many 1-CPU scoring actors.
REWARD_WORKERS = 4


# --- data and model ------------------------------------------------------------------
def data_files(task: Task, condition: Condition, data_root: str | os.PathLike | None = None,
               train_file: str | os.PathLike | None = None, generate: bool = False) -> tuple[Path, list[Path]]:
    """(train parquet, validation parquets), absolute. ``generate``: write a generated task's datasets
    first (a launch does; building or printing a command writes nothing)."""
    paths = []
    for name in [task.train_dataset(condition.data), *task.evals]:
        if generate and task.ensure is not None and name in task.datasets:
            paths.append(task.ensure(name, data_root).resolve())
        else:
            paths.append(dataset_path(name, data_root).resolve())
    return (Path(train_file).resolve() if train_file else paths[0]), paths[1:]


def model_path(model: str) -> str:
    """A shipped model name or a local directory becomes absolute (verl needs absolute paths); a hub id, or a
    path of the machine the job will run on, stays as it is."""
    return resolve_model(model, strict=False)


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


def reward_kwargs(condition: Condition, seed: int, release_faithful: bool = False) -> dict[str, Any]:
    return condition.score_kwargs(release_faithful=release_faithful, seed=seed)


def build_overrides(model: str, task: Task, condition: Condition, seed: int, run_dir: Path, recipe: Recipe,
                    *, release_faithful: bool = False, data_root: str | os.PathLike | None = None,
                    train_file: str | os.PathLike | None = None, attention: str | None = None,
                    loggers: Sequence[str] = (), resume_from: int | None = None) -> list[str]:
    """The Hydra overrides of one run, in a stable order (recipe values first, then mirage's hooks).

    ``attention``: the actor's attention implementation (None: ``attention_implementation()``).
    ``loggers``: verl loggers besides console and file (which mirage reads): tensorboard, wandb.
    ``resume_from``: a checkpoint step to resume from (else verl's resume_mode auto: the latest).
    """
    r = recipe
    attention = attention or attention_implementation()
    est = get_estimator(r.estimator_for(condition))
    train, vals = data_files(task, condition, data_root, train_file)
    max_len = r.max_prompt_length + r.max_response_length
    dynamic = r.dynamic_sampling and group_normalised(est.name)
    a, ro, o = "actor_rollout_ref.actor", "actor_rollout_ref.rollout", "actor_rollout_ref.actor.optim"
    kv: list[tuple[str, Any]] = [
        # data
        ("data.train_files", str(train)),
        ("data.val_files", [str(v) for v in vals]),
        ("data.prompt_key", "prompt"),
        # Over-long prompts are dropped (verl counts the chat-templated tokens, as `mirage doctor` does), never cut:
        # verl 0.9.1's agent loop left-truncates a prompt over max_prompt_length whatever data.truncation says,
        # which would cut the rules off the start of long SynLogic / KOR-Bench prompts.
        ("data.filter_overlong_prompts", True),
        ("data.truncation", "error"),
        ("data.max_prompt_length", r.max_prompt_length),
        ("data.max_response_length", r.max_response_length),
        ("data.train_batch_size", r.train_batch_size),
        ("data.seed", seed),
        # model
        ("actor_rollout_ref.model.path", model_path(model)),
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
        (f"{a}.policy_loss.loss_mode", POLICY_LOSSES[r.policy_loss].verl_name),
        (f"{a}.entropy_coeff", r.entropy_coeff),
        (f"{a}.use_kl_loss", r.use_kl_loss),
        (f"{a}.kl_loss_coef", 0.0),
        (f"{a}.data_loader_seed", seed),
        (f"{o}.lr", r.lr),
        (f"{o}.lr_warmup_steps", r.lr_warmup_steps),
        (f"{o}.weight_decay", r.weight_decay),
        (f"{o}.clip_grad", r.grad_clip),
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
        # the recipe's context, stated: unset, verl gives vLLM the model's max_position_embeddings and silently
        # caps responses at it minus the prompt; set, verl refuses a model too short for it
        (f"{ro}.max_model_len", r.context_length),
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
        ("trainer.logger", list(dict.fromkeys(["console", "file", *loggers]))),
        ("trainer.project_name", "mirage"),
        ("trainer.experiment_name", f"{slug(model)}-{slug(task.name)}-{condition.name}-seed{seed}"),
        ("trainer.default_local_dir", str(run_dir / "checkpoints")),
        ("trainer.resume_mode", "auto" if resume_from is None else "resume_path"),
        ("trainer.validation_data_dir", str(run_dir / "validation")),
        ("trainer.rollout_data_dir", str(run_dir / "rollouts")),
    ]
    if resume_from is not None:
        kv.append(("trainer.resume_from_path", str(run_dir / "checkpoints" / f"global_step_{int(resume_from)}")))
    if r.max_actor_ckpt_to_keep:  # verl deletes older checkpoints (HF weights included) beyond this many
        kv.append(("trainer.max_actor_ckpt_to_keep", r.max_actor_ckpt_to_keep))
    overrides = [f"{k}={hydra_value(v)}" for k, v in kv]
    # padding removal and micro-batching follow the attention; command.sh decides them again on the node it runs
    overrides += attention_overrides(attention)
    for k, v in reward_kwargs(condition, seed, release_faithful).items():
        overrides.append(f"+reward.custom_reward_function.reward_kwargs.{k}={hydra_value(v)}")
    try:
        algorithm = est.config(condition.estimator_kwargs)  # the entry's own config keys
    except KeyError as e:
        raise KeyError(f"condition {condition.name!r}: {e.args[0]}") from None
    overrides += [f"+algorithm.{k}={hydra_value(v)}" for k, v in algorithm.items()]
    sampler = {"reward": condition.reward, "estimator": est.name, "dynamic_sampling": dynamic,
               "max_num_gen_batches": r.max_num_gen_batches, "release_faithful": release_faithful}
    overrides += [f"+trainer.v1.sampler.sampler_kwargs.{k}={hydra_value(v)}" for k, v in sampler.items()]
    if est.drops_unselected:  # the sampler's drop decision reads the same options, under the same keys
        overrides += [f"+trainer.v1.sampler.sampler_kwargs.estimator_config.{k}={hydra_value(v)}"
                      for k, v in algorithm.items()]
    # a group reward re-scores with the condition's own checker options (e.g. math_checker)
    overrides += [f"+trainer.v1.sampler.sampler_kwargs.score_kwargs.{k}={hydra_value(v)}"
                  for k, v in condition.reward_kwargs.items()]
    return overrides


def forwarded_env(task: Task) -> tuple[str, ...]:
    """Settings read inside verl's scoring and worker processes, which on other nodes do not see ours:
    the task's checkers' (e.g. the SynLogic checkout) and mirage's plugin list."""
    return tuple(dict.fromkeys([v for c in task.checkers for v in CHECKERS[c].env_vars] + [PLUGINS_ENV]))


def job_env(metrics_path: Path, task: Task) -> dict[str, str]:
    env = {
        "VERL_USE_EXTERNAL_MODULES": PLUGIN,
        "VERL_FILE_LOGGER_PATH": str(metrics_path),
        "PYTHONUNBUFFERED": "1",
        "HYDRA_FULL_ERROR": "1",
    }
    env.update({k: os.environ[k] for k in forwarded_env(task) if os.environ.get(k)})
    return env


def setup_problems(task: Task, condition: Condition, release_faithful: bool = False) -> list[str]:
    """Why the task's checkers cannot score here (a missing checkout), one line each."""
    own = condition.reward_spec.options  # the reward's own keywords (random: p) are not checker options
    options = parse_options({k: v for k, v in condition.reward_kwargs.items() if k not in own})
    return [problem for c in task.checkers if CHECKERS[c].setup_problem
            for problem in [CHECKERS[c].setup_problem(options[c])] if problem]


def build_command(model: str, task: str | Task, condition: str | Condition, seed: int,
                  run_dir: str | os.PathLike, recipe: Recipe = PAPER_RECIPE, *, release_faithful: bool = False,
                  data_root: str | os.PathLike | None = None, train_file: str | os.PathLike | None = None,
                  extra: Sequence[str] = (), python: str = sys.executable,
                  attention: str | None = None, loggers: Sequence[str] = (),
                  resume_from: int | None = None) -> tuple[dict[str, str], list[str]]:
    """(env, argv) of the verl run; ``extra`` raw Hydra overrides go last (they win)."""
    task = get_task(task) if isinstance(task, str) else task
    condition = get_condition(condition) if isinstance(condition, str) else condition
    run_dir = Path(run_dir).resolve()
    env = job_env(next_metrics_path(run_dir, create=False).resolve(), task)
    overrides = build_overrides(model, task, condition, seed, run_dir, recipe, release_faithful=release_faithful,
                                data_root=data_root, train_file=train_file, attention=attention, loggers=loggers,
                                resume_from=resume_from)
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


