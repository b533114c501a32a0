"""``mirage doctor``: what would break a verl run on this machine, found before it starts.

Each finding is one line, ``ok|warn|error: <what> -- fix: <how>``. ``probe()`` reads the machine
once (nvidia-smi, the torch build, flash-attn, the CPUs this process may use, SLURM's variables,
Ray's view); every check is a function of those ``Facts`` and of the run, so the tests fake a
machine instead of needing one. On a machine without a GPU the GPU checks are skipped and
nothing that only the GPU node can decide (driver, GPUs, CPUs per GPU) is an error.

    driver       the NVIDIA driver's CUDA version vs the CUDA build of torch (torch 2.11 for CUDA 13 needs R580+)
    attention    flash-attn importable, else the command uses sdpa without padding removal
    resources    GPUs and CPUs visible vs what the run asks for (verl's 3 CPUs per GPU + mirage's scoring actors)
    context      the model's max_position_embeddings vs max_prompt_length + max_response_length
    vllm         max_num_batched_tokens >= max_num_seqs (vLLM refuses to start otherwise)
    stack        vLLM imports (pinned 0.24.0), bf16 needs compute capability 8.0+, /dev/shm for Ray, rollout TP
                 vs visible GPUs, the model present on an offline node, disk for the checkpoints the run saves
    data         every dataset present, the checkers able to score (a SynLogic checkout), over-long prompts
                 counted with the model's tokenizer (verl drops them: data.filter_overlong_prompts)

``mirage train --backend verl`` runs ``check_run`` first: an error stops it (exit 2), warnings are
printed; ``--dry-run`` prints every finding as a comment line.
"""

from __future__ import annotations

from mirage.doctor.base import LEVELS, Finding, PreflightError, errors
from mirage.doctor.machine import (MIN_DRIVER, VERL_CPUS_PER_GPU, Facts, check_attention, check_driver, check_resources,
                                   cpus_needed, parse_nvidia_smi, probe, slurm_cpus)
from mirage.doctor.run import (check_context, check_data, check_prompts, check_run, check_vllm, load_tokenizer,
                               max_positions, model_config, prompt_lengths)
from mirage.doctor.stack import (StackFacts, check_disk, check_gpu_arch, check_offline_model, check_shm,
                                 check_tp_visible, check_vllm_install, probe_stack)

__all__ = ["LEVELS", "Finding", "PreflightError", "errors", "MIN_DRIVER", "VERL_CPUS_PER_GPU", "Facts",
           "check_attention", "check_driver", "check_resources", "cpus_needed", "parse_nvidia_smi", "probe",
           "slurm_cpus", "check_context", "check_data", "check_prompts", "check_run", "check_vllm", "load_tokenizer",
           "max_positions", "model_config", "prompt_lengths", "StackFacts", "check_disk",
           "check_gpu_arch", "check_offline_model", "check_shm", "check_tp_visible", "check_vllm_install", "probe_stack"]
