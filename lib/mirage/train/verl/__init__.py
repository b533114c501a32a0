"""verl 0.9.1 as mirage's GPU engine, extended through its own hooks, never forked.

    command.py  RunConfig pieces -> the exact ``python -m verl.trainer.main_ppo`` command (Hydra overrides, env),
                composed and validated with verl's own config on CPU
    launcher.py ``launch(cfg)`` (not re-exported here: it calls ``mirage.doctor``, which reads ``command``): checks, run folder, plugin preflight, launch and stream (a library call)
    plugin.py   registers mirage's advantage estimators with verl (VERL_USE_EXTERNAL_MODULES)
    reward.py   the reward manager: verl's process-based ``remote`` manager plus each sample's identity
    sampler.py  the V1 trainer's replay buffer: group / log-prob rewards, capped dynamic sampling, +-1 dropping
"""

from mirage.train.verl.command import (build_command, build_overrides, compose_config, data_files, format_command,
                                       hydra_value, merge_checkpoint, overrides_of, validate, verl_config_dir)

__all__ = ["build_command", "build_overrides", "compose_config", "data_files", "format_command", "hydra_value",
           "merge_checkpoint", "overrides_of", "validate", "verl_config_dir"]
