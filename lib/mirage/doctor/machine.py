"""The machine's side of the preflight: what ``probe()`` reads (nvidia-smi, the torch build, flash-attn,
the CPUs this process may use, SLURM's variables, Ray's view) and the checks that need only that."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Mapping

from mirage.doctor.base import Finding
from mirage.train.verl.command import REWARD_WORKERS

# verl 0.9.1: every GPU worker's placement-group bundle reserves ResourcePoolManager.max_colocate_count CPUs
VERL_CPUS_PER_GPU = 3
# Minimum Linux driver per CUDA major version (NVIDIA's CUDA toolkit release notes, minor-version compatibility).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


@dataclass
class Facts:
    """What the machine says; ``probe()`` reads it, tests build it."""

    nvidia_smi: str | None = None  # `nvidia-smi`'s output (None: not installed, or it failed)
    torch_version: str | None = None
    torch_cuda: str | None = None  # torch.version.cuda (None: a CPU build)
    gpus: int = 0  # devices torch sees (honours CUDA_VISIBLE_DEVICES)
    flash_attn: str | None = None  # its version when it imports
    flash_attn_error: str | None = None  # installed but failing to import (an ABI mismatch)
    cpus: int = 1  # CPUs this process may run on (os.sched_getaffinity)
    ray_cpus: float | None = None  # what Ray schedules on this node (None: Ray absent)
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_gpu(self) -> bool:
        return self.gpus > 0 or bool(self.nvidia_smi)


def probe(ray: bool = True) -> Facts:
    """Read this machine (a few seconds: imports torch, and Ray when ``ray``)."""
    import importlib.util

    facts = Facts(env=dict(os.environ))
    try:
        facts.nvidia_smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30,
                                          check=True).stdout
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import torch

        facts.torch_version, facts.torch_cuda = torch.__version__, torch.version.cuda
        facts.gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        pass
    if importlib.util.find_spec("flash_attn"):
        try:
            import flash_attn

            facts.flash_attn = getattr(flash_attn, "__version__", "?")
        except Exception as e:  # noqa: BLE001 - an ABI mismatch raises ImportError or OSError
            facts.flash_attn_error = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    facts.cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if ray and importlib.util.find_spec("ray"):
        facts.ray_cpus = _ray_cpus()
    return facts


def _ray_cpus() -> float | None:
    """Ray's CPU count: the cluster's when RAY_ADDRESS names one, else what a local Ray would detect."""
    try:
        if os.environ.get("RAY_ADDRESS"):
            import ray

            ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, logging_level="ERROR")
            try:
                return float(ray.cluster_resources().get("CPU", 0))
            finally:
                ray.shutdown()
        from ray._private.utils import get_num_cpus

        return float(get_num_cpus())
    except Exception:  # noqa: BLE001 - a view we cannot get is reported as unknown
        return None


# --- the machine ---------------------------------------------------------------------------------
def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def parse_nvidia_smi(text: str) -> tuple[str | None, str | None]:
    """(driver version, highest CUDA version the driver supports) from `nvidia-smi`'s header."""
    driver = re.search(r"Driver Version:\s*([\d.]+)", text or "")
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", text or "")
    return (driver.group(1) if driver else None, cuda.group(1) if cuda else None)


def check_driver(facts: Facts) -> list[Finding]:
    if not facts.has_gpu:
        return [Finding("warn", "no GPU: GPU checks skipped (driver, GPUs, CPUs per GPU); the GPU node decides them",
                        "run `mirage doctor` (or `mirage smoke`) on the GPU node")]
    if facts.torch_cuda is None:
        return [Finding("error", f"torch {facts.torch_version} is a CPU build on a machine with GPUs",
                        "install the gpu extra in a fresh environment: pip install -e '.[gpu]'")]
    driver, driver_cuda = parse_nvidia_smi(facts.nvidia_smi or "")
    need = _version(facts.torch_cuda)
    if driver_cuda is None and driver is None:
        return [Finding("warn", f"torch is built for CUDA {facts.torch_cuda}; the driver version is unknown "
                                "(nvidia-smi gave no header)", "check `nvidia-smi` on this node")]
    have = _version(driver_cuda) if driver_cuda else None
    minimum = MIN_DRIVER.get(need[0])
    wants = f"driver >= {minimum} (R{minimum.split('.')[0]}+)" if minimum else f"a driver for CUDA {facts.torch_cuda}"
    if have is not None and have[:1] < need[:1] or have is None and minimum and _version(driver) < _version(minimum):
        return [Finding("error", f"NVIDIA driver {driver} supports CUDA up to {driver_cuda or '?'}, but torch "
                                 f"{facts.torch_version} is built for CUDA {facts.torch_cuda}: CUDA fails to start",
                        f"install NVIDIA {wants}, or a torch built for your driver's CUDA (docs/cluster.md section 1)")]
    if have is not None and have[:2] < need[:2]:
        return [Finding("warn", f"NVIDIA driver {driver} supports CUDA {driver_cuda}, torch is built for "
                                f"{facts.torch_cuda}: runs through minor-version compatibility (PTX-only kernels fail)",
                        f"install NVIDIA {wants}")]
    return [Finding("ok", f"NVIDIA driver {driver} (CUDA {driver_cuda or '?'}) runs torch {facts.torch_version} "
                          f"built for CUDA {facts.torch_cuda}; {facts.gpus} GPU(s) visible")]


def check_attention(facts: Facts, attention: str) -> list[Finding]:
    """flash-attn, and what the command does without it (``attention``: what the command uses)."""
    if facts.flash_attn_error:
        return [Finding("error", f"flash-attn is installed but does not import ({facts.flash_attn_error})",
                        "install the flash-attn wheel built for this torch and CUDA, or uninstall it "
                        "(the run then uses sdpa)")]
    if facts.flash_attn:
        return [Finding("ok", f"flash-attn {facts.flash_attn}: the actor uses {attention}"
                              + (" with padding removal" if attention == "flash_attention_2" else ""))]
    if attention == "flash_attention_2":  # forced by the caller
        return [Finding("error", "flash-attn is not importable but the command uses flash_attention_2",
                        "install flash-attn (docs/cluster.md section 1)")]
    level = "warn" if facts.has_gpu else "ok"
    return [Finding(level, f"flash-attn not importable: the verl command uses attn_implementation={attention} "
                           "without padding removal (use_remove_padding=false; slower, more memory)",
                    "install a flash-attn wheel for this torch/CUDA to train padding-free (docs/cluster.md section 1)"
                    if facts.has_gpu else "")]


def slurm_cpus(env: Mapping[str, str]) -> int | None:
    """CPUs SLURM gave this job on this node (SLURM_CPUS_ON_NODE, else CPUs per task x tasks per node)."""
    if env.get("SLURM_CPUS_ON_NODE", "").isdigit():
        return int(env["SLURM_CPUS_ON_NODE"])
    per_task, tasks = env.get("SLURM_CPUS_PER_TASK", ""), env.get("SLURM_NTASKS_PER_NODE", "1")
    if per_task.isdigit():
        return int(per_task) * (int(tasks) if tasks.isdigit() else 1)
    return None


def cpus_needed(n_gpus_per_node: int, reward_workers: int | None = None) -> int:
    """CPUs Ray must be able to schedule on the head node of a verl run, or actors stay pending.

    verl reserves VERL_CPUS_PER_GPU per GPU (placement-group bundles); mirage's reward manager
    starts reward.num_workers loop workers with as many 1-CPU scoring actors each; one more for
    the TaskRunner and the loop workers, which need a CPU free to be scheduled.
    """
    workers = REWARD_WORKERS if reward_workers is None else reward_workers
    return VERL_CPUS_PER_GPU * n_gpus_per_node + workers * workers + 1


def check_resources(facts: Facts, n_gpus_per_node: int, nnodes: int,
                    reward_workers: int | None = None) -> list[Finding]:
    env = facts.env
    if not facts.has_gpu:
        return []  # check_driver said the GPU node decides
    out = []
    nodes = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES")
    if nodes and nodes.isdigit() and int(nodes) < nnodes:
        out.append(Finding("error", f"the run asks for {nnodes} nodes, the SLURM job has {nodes}",
                           f"sbatch --nodes={nnodes}, or --nnodes {nodes}"))
    gpus = facts.gpus
    if gpus < n_gpus_per_node:
        seen = f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']!r}, " if "CUDA_VISIBLE_DEVICES" in env else ""
        slurm = f"SLURM_GPUS_ON_NODE={env['SLURM_GPUS_ON_NODE']}, " if env.get("SLURM_GPUS_ON_NODE") else ""
        out.append(Finding("error", f"the run asks for {n_gpus_per_node} GPUs per node, this node shows {gpus} "
                                    f"({seen}{slurm}torch): verl waits for the missing GPUs forever",
                           f"--n-gpus-per-node {gpus} (and tensor_parallel_size dividing it), or allocate "
                           f"{n_gpus_per_node} GPUs (sbatch --gpus-per-node={n_gpus_per_node})"))
    else:
        out.append(Finding("ok", f"{gpus} GPU(s) visible for the {n_gpus_per_node} per node the run asks for"))
    need = cpus_needed(n_gpus_per_node, reward_workers)
    views = {"CPU affinity": facts.cpus, "SLURM": slurm_cpus(env), "Ray": facts.ray_cpus}
    known = {k: v for k, v in views.items() if v is not None}
    seen = ", ".join(f"{k} {v:g}" for k, v in known.items())
    why = (f"{need} CPUs needed on the head node ({VERL_CPUS_PER_GPU} per GPU reserved by verl x "
           f"{n_gpus_per_node} + {need - VERL_CPUS_PER_GPU * n_gpus_per_node - 1} scoring actors + 1)")
    fix = (f"allocate >= {need} CPUs on the node (sbatch --cpus-per-task={need} with one task per node; "
           f"start Ray with `ray start --num-cpus {need}` or more), or fewer scoring actors "
           "(--extra reward.num_workers=2: 2 x 2)")
    binding = {k: v for k, v in known.items() if k in ("SLURM", "Ray")}
    if binding and min(binding.values()) < need:
        out.append(Finding("error", f"{why}, only {min(binding.values()):g} schedulable ({seen}): Ray leaves "
                                    "actors pending and training hangs at the first reward", fix))
    elif facts.cpus < need:
        out.append(Finding("warn", f"{why}, this process may use {facts.cpus} cores ({seen}): Ray schedules them "
                                   "but they share the cores (scoring slows)", fix))
    else:
        out.append(Finding("ok", f"{why}: {seen}"))
    return out


# --- the run ---------------------------------------------------------------------------------------
