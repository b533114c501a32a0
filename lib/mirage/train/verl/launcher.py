"""Launch one verl 0.9.1 run from a ``RunConfig``: a library call (the study and the CLI both use it).

``launch(cfg)`` builds the command (``mirage.train.verl.command``), composes and validates
it with verl's own Hydra config, checks that the data exist and that the task's checkers
can run (a SynLogic checkout, ...), writes ``manifest.json``, ``command.sh``,
``resolved_config.yaml`` and ``env.json`` into the run directory, checks in a fresh
interpreter that verl finds every plugin, then launches and streams the output.
Rerunning resumes from the latest checkpoint (``trainer.resume_mode=auto``) with a
fresh metrics file (verl truncates its file logger's file on start).
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable

from mirage import doctor as preflight_checks, runs
from mirage.conditions import Condition, get_condition
from mirage.objectives import POLICY_LOSSES, get_estimator
from mirage.runs import RunConfig, Status, write_json_atomic, write_text_atomic
from mirage.tasks import get_task
from mirage.train.verl.attention import attention_implementation, attention_overrides, explain
from mirage.train.verl.command import (ENTRY, PLUGIN, REWARD_FN, REWARD_MANAGER, SAMPLER, build_command, compose_config,
                                       data_files, format_command, model_path, overrides_of, setup_problems, validate)


def versions() -> dict[str, str | None]:
    return runs.library_versions("mirage", "verl", "vllm", "torch", "transformers", "ray", "math-verify")


def write_run_dir(run_dir: Path, env: dict[str, str], argv: list[str], cfg, manifest: dict,
                  attention: str | None = None) -> None:
    from omegaconf import OmegaConf

    runs.update_manifest(run_dir, **manifest)
    write_text_atomic(run_dir / "resolved_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    keep = re.compile(r"^(CUDA_|NCCL_|RAY_|VLLM_|HF_|VERL_|PYTORCH_|SLURM_)")
    write_json_atomic(run_dir / "env.json", {
        "job_env": env, "inherited": {k: v for k, v in sorted(os.environ.items()) if keep.match(k)},
        "host": platform.node(), "python": sys.version, "cwd": os.getcwd(), "versions": versions()})
    # Rerunnable as is: each attempt gets a fresh metrics file, as `mirage train` gives it.
    fresh = ("$(" + shlex.quote(sys.executable) + " -c " + shlex.quote(
        f"from mirage.runs import next_metrics_path; print(next_metrics_path({str(run_dir)!r}))") + ")")
    exports = [f"export {k}={shlex.quote(v)}" for k, v in env.items() if k != "VERL_FILE_LOGGER_PATH"]
    # The attention's overrides are decided by the node that runs the script (flash-attn importable there or
    # not), not by the machine that wrote it: they leave the fixed argv and come from mirage.train.verl.attention.
    decided = set(attention_overrides(attention or attention_implementation()))
    words = [shlex.quote(a) for a in argv if a not in decided]
    words.insert(len(ENTRY) + 1, '"${ATTENTION[@]}"')  # before every other override: --extra still wins
    body = " \\\n    ".join(words)
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
        "# the actor's attention, decided on this node (it prints which and why)",
        f"ATTENTION_ARGS=$({shlex.quote(sys.executable)} -m mirage.train.verl.attention)",
        'mapfile -t ATTENTION <<< "$ATTENTION_ARGS"',
        f"exec {body}", ""])
    write_text_atomic(run_dir / "command.sh", script)
    os.chmod(run_dir / "command.sh", 0o755)


def preflight(env: dict[str, str], condition: Condition, recipe) -> None:
    """In a fresh interpreter with the job's environment, as verl's processes will start:
    the estimator and the policy loss resolve and every object verl loads by path loads."""
    names = [get_estimator(recipe.estimator_for(condition)).verl_name, POLICY_LOSSES[recipe.policy_loss].verl_name]
    cmd = [sys.executable, "-m", PLUGIN, "--check", *names,
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


def launch(cfg: RunConfig, *, dry_run: bool = False, no_launch: bool = False, doctor: bool = True,
           out: Callable[[str], None] = print) -> int:
    """Run (or, with ``dry_run``, print) one verl training run; returns verl's exit status.

    ``no_launch`` writes the run directory (manifest, command.sh, resolved config) and stops.
    Every check that can fail does so before anything is written or launched: the data, the
    checkers, then ``mirage.doctor`` (driver, flash-attn, GPUs and CPUs, context length, vLLM's
    limits, over-long prompts), whose errors stop the launch unless ``doctor`` is False.
    """
    cfg = cfg.resolved()
    task, condition, recipe = get_task(cfg.task), get_condition(cfg.condition), cfg.recipe
    run_dir = Path(cfg.run_dir)
    if cfg.resume_from is not None:  # before anything is written: the checkpoint must be there
        ckpt = run_dir / "checkpoints" / f"global_step_{cfg.resume_from}"
        if not (ckpt / "actor").is_dir():
            saved = sorted(int(p.name.rsplit("_", 1)[1]) for p in (run_dir / "checkpoints").glob("global_step_*")
                           if p.name.rsplit("_", 1)[1].isdigit())
            raise ValueError(f"--resume-from {cfg.resume_from}: no checkpoint {ckpt / 'actor'}; saved steps: "
                             f"{', '.join(map(str, saved)) or 'none'}")
    attention = attention_implementation()  # on the node that launches (command.sh decides again where it runs)
    env, argv = build_command(cfg.model, task, condition, cfg.seed, run_dir, recipe,
                              release_faithful=cfg.release_faithful, data_root=cfg.data_root,
                              train_file=cfg.train_file, extra=cfg.extra, attention=attention, loggers=cfg.loggers,
                              resume_from=cfg.resume_from)
    train, vals = data_files(task, condition, cfg.data_root, cfg.train_file, generate=not dry_run)
    missing = [p for p in [train, *vals] if not p.exists()]
    config = compose_config(overrides_of(argv))
    validate(config)
    problems = setup_problems(task, condition)
    warnings = clipping_warnings(recipe)
    findings = preflight_checks.check_run(cfg, config=config, data=False)
    bad = preflight_checks.errors(findings)

    if dry_run:
        out(f"# {condition.name} ({condition.rq}: {condition.summary}) | {cfg.model} | {task.name} | "
            f"seed {cfg.seed} | run dir {run_dir}")
        for p in [train, *vals]:
            state = "" if p.exists() else ("  [generated on launch]" if task.ensure is not None and p.stem in
                                           task.datasets else f"  [MISSING: {task.how_to_prepare(p.stem, p)}]")
            out(f"# reads {p}{state}")
        for line in problems + warnings + [explain(attention) + " (command.sh decides again on the node it runs)"]:
            out(f"# {line}")
        for line in [str(f) for f in findings]:
            out(f"# {line}")
        out(format_command(env, argv))
        if bad:
            out(f"# preflight: {len(bad)} error(s) above: the launch would stop there")
        return 2 if bad else 0

    if problems:
        raise FileNotFoundError(f"task {task.name!r} cannot be scored here: " + "; ".join(problems))
    if missing:
        raise FileNotFoundError("verl run needs these datasets, missing:\n" + "\n".join(
            f"  {p}\n    make it with: {task.how_to_prepare(p.stem, p)}" for p in missing))
    for line in warnings:
        out(f"warning: {line}")
    out(explain(attention))
    for f in findings:
        if f.level != "ok":
            out(str(f))
    if bad and doctor:
        raise preflight_checks.PreflightError(f"preflight (mirage doctor) found {len(bad)} error(s), printed above; "
                                              "fix them, or launch anyway with --skip-preflight")
    with runs.FolderLock(run_dir, "training run"):
        previous = runs.read_manifest(run_dir)
        if previous.get("config"):
            diff = runs.config_diff(runs.result_fields(previous["config"]), runs.result_fields(cfg.to_dict()))
            if diff and not cfg.restart:
                raise ValueError(f"{run_dir}: this run was started with other settings (key: (on disk, requested)) "
                                 f"{diff}; use another --run-dir, or --restart to start it over (RunConfig: run_dir=, restart=True)")
            if not diff and runs.is_finished(previous) and not no_launch:
                out(f"{run_dir}: finished")
                return 0
        preflight(env, condition, recipe)
        manifest = {
            "kind": "train", **cfg.identity(), "config": cfg.to_dict(), "model_path": model_path(cfg.model),
            "release_faithful": bool(cfg.release_faithful), "condition_spec": condition.to_dict(),
            "task_spec": task.to_dict(), "recipe": recipe.to_dict(),
            "dynamic_sampling": bool(config.algorithm.filter_groups.enable),
            # what the machine decided and what keeps prompts and responses whole (mirage doctor)
            "attn_implementation": config.actor_rollout_ref.model.override_config.get("attn_implementation",
                                                                                      "flash_attention_2"),
            "use_remove_padding": bool(config.actor_rollout_ref.model.use_remove_padding),
            "max_model_len": config.actor_rollout_ref.rollout.max_model_len,
            "filter_overlong_prompts": bool(config.data.filter_overlong_prompts),
            "preflight": [str(f) for f in findings],
            "data": {"train": str(train), "val": [str(v) for v in vals]},
            "command": format_command(env, argv), "versions": versions(),
        }
        if no_launch:
            write_run_dir(run_dir, env, argv, config, {**manifest, "status": previous.get("status", "prepared")},
                          attention=attention)
            out(f"wrote {run_dir}; launch with {run_dir / 'command.sh'} or by rerunning this without --no-launch")
            return 0
        write_run_dir(run_dir, env, argv, config, manifest, attention=attention)
        runs.start_attempt(run_dir, metrics=env["VERL_FILE_LOGGER_PATH"])
        metrics_name = Path(env["VERL_FILE_LOGGER_PATH"]).name
        log_path = Path(env["VERL_FILE_LOGGER_PATH"]).with_name(metrics_name.replace("metrics-", "console-")
                                                                .replace(".jsonl", ".log"))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            code = _stream(argv, env, log_path)
        except KeyboardInterrupt:
            runs.end_attempt(run_dir, Status.INTERRUPTED, error="KeyboardInterrupt")
            raise
        runs.end_attempt(run_dir, Status.FINISHED if code == 0 else Status.FAILED, returncode=code,
                         error=None if code == 0 else f"verl exited with {code}; see {log_path}")
    if code != 0:
        out(f"verl exited with {code}; see {log_path}")
    return code


def clipping_warnings(recipe) -> list[str]:
    """Recipes under which PPO's ratio clipping can never act (the ratio is exactly 1)."""
    if recipe.updates_per_rollout == 1 and POLICY_LOSSES[recipe.policy_loss].clip:
        return [f"one optimizer update per rollout (train_batch_size {recipe.train_batch_size}, ppo_mini_batch_size "
                f"{recipe.ppo_mini_batch_size}, ppo_epochs {recipe.ppo_epochs}): the importance ratio is exactly 1, "
                "so ratio clipping never acts (no clipping bias)"]
    return []
