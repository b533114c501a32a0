"""The GPU stack around torch: vLLM's build, the GPUs' architecture, Ray's shared memory, checkpoint disk,
and a model an offline node must already hold. Each check is a function of ``StackFacts`` (read by
``probe_stack``) so the tests fake a node instead of needing one."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mirage.doctor.base import Finding

VLLM_PINNED = "0.24.0"  # what verl[vllm]==0.9.1 installs (pyproject's gpu extra)
BF16_MIN_CAPABILITY = (8, 0)  # bf16 tensor cores: Ampere (A100) and newer
RAY_SHM_MIN_BYTES = 2 << 30  # below this Ray's object store spills to /tmp (slow) or fails to start
# What a verl 0.9.1 FSDP checkpoint holds per model parameter: fp32 model shards (4), two fp32 Adam moments (8),
# and the HF weights verl writes from the fp32 full state dict (4): ~16 bytes, ~120 GB for a 7.6 B model.
CHECKPOINT_BYTES_PER_PARAM = 16
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass
class StackFacts:
    vllm_version: str | None = None
    vllm_error: str | None = None  # installed but failing to import
    vllm_cuda: str | None = None  # the CUDA major vLLM's kernels were built for (vllm_cuda_build)
    capabilities: list[tuple[int, int]] = field(default_factory=list)  # per visible GPU
    gpu_names: list[str] = field(default_factory=list)
    shm_bytes: int | None = None  # /dev/shm's size (None: no /dev/shm)
    env: Mapping[str, str] = field(default_factory=dict)


def probe_stack() -> StackFacts:
    """Read this node's stack (imports vLLM when installed: seconds)."""
    import importlib.metadata
    import importlib.util

    facts = StackFacts(env=dict(os.environ))
    spec = importlib.util.find_spec("vllm")
    if spec:
        try:
            version = importlib.metadata.version("vllm")
        except importlib.metadata.PackageNotFoundError:
            version = None
        folders = [Path(p) for p in spec.submodule_search_locations or ()]
        facts.vllm_cuda = vllm_cuda_build(version, [f for d in folders for f in sorted(d.glob("*.so"))])
        try:
            import vllm

            facts.vllm_version = getattr(vllm, "__version__", "?")
        except Exception as e:  # noqa: BLE001 - a CUDA/ABI mismatch raises ImportError, OSError or RuntimeError
            facts.vllm_error = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                facts.capabilities.append(tuple(torch.cuda.get_device_capability(i)))
                facts.gpu_names.append(torch.cuda.get_device_name(i))
    except ImportError:
        pass
    if os.path.isdir("/dev/shm"):
        facts.shm_bytes = shutil.disk_usage("/dev/shm").total
    return facts


def check_vllm_install(facts: StackFacts, has_gpu: bool) -> list[Finding]:
    if facts.vllm_error:
        return [Finding("error", f"vLLM is installed but does not import ({facts.vllm_error})",
                        "reinstall the gpu extra in a fresh environment whose torch matches vLLM's build: "
                        "pip install -e '.[gpu]' (docs/cluster.md section 1)")]
    if facts.vllm_version is None:
        level = "error" if has_gpu else "ok"
        return [Finding(level, "vLLM is not installed: verl's rollout and `mirage eval --backend vllm` need it",
                        "pip install -e '.[gpu]' on the GPU node" if has_gpu else "")]
    if facts.vllm_version != VLLM_PINNED:
        return [Finding("warn", f"vLLM {facts.vllm_version}: verl 0.9.1 pins {VLLM_PINNED}, the version mirage's "
                                "vLLM paths were read against", f"pip install vllm=={VLLM_PINNED}")]
    return [Finding("ok", f"vLLM {facts.vllm_version}")]


_CUDA_TAG = re.compile(r"\+cu(\d\d)(\d)\b")  # a wheel's local version: 0.24.0+cu128 -> CUDA 12.8
_CUDART = re.compile(rb"libcudart\.so\.(\d+)")
_ELF_HEAD_BYTES = 16 << 20  # the dynamic section's library names sit near an extension's start


def vllm_cuda_build(version: str | None, extensions: list[Path]) -> str | None:
    """The CUDA major vLLM's compiled kernels need, read without importing vLLM (an import is what fails on a
    mismatch): the wheel's local tag (``0.24.0+cu128`` -> "12"), else the ``libcudart.so.N`` its extension
    modules link; None when neither says."""
    tag = _CUDA_TAG.search(version or "")
    if tag:
        return tag.group(1)
    for path in extensions:
        try:
            with open(path, "rb") as f:
                found = _CUDART.search(f.read(_ELF_HEAD_BYTES))
        except OSError:
            continue
        if found:
            return found.group(1).decode()
    return None


def check_vllm_cuda(stack: StackFacts, torch_cuda: str | None, driver_cuda: str | None) -> list[Finding]:
    """vLLM's kernels, torch and the driver must agree on the CUDA major: replacing only torch with a CUDA 12
    build for an older driver (R535/R550) leaves vLLM's CUDA 13 kernels unloadable."""
    if stack.vllm_cuda is None:
        return []
    fix = ("install torch and vLLM built for one CUDA major your driver supports: the gpu extra as it resolves "
           "(CUDA 13, driver R580+), or for an R535/R550 driver torch 2.11 from PyTorch's cu128 index with vLLM "
           "0.24.0's CUDA 12 build (docs/cluster.md section 1)")
    torch_major = torch_cuda.split(".")[0] if torch_cuda else None
    if torch_major and torch_major != stack.vllm_cuda:
        return [Finding("error", f"vLLM's kernels are built for CUDA {stack.vllm_cuda}, torch for CUDA {torch_cuda}: "
                                 "vLLM cannot load its kernels against this torch", fix)]
    driver_major = driver_cuda.split(".")[0] if driver_cuda else None
    if driver_major and int(driver_major) < int(stack.vllm_cuda):
        return [Finding("error", f"vLLM's kernels are built for CUDA {stack.vllm_cuda}, the driver supports CUDA up "
                                 f"to {driver_cuda}", fix)]
    return [Finding("ok", f"vLLM's kernels built for CUDA {stack.vllm_cuda}"
                          + (f", as torch (CUDA {torch_cuda})" if torch_cuda else ""))]


def check_gpu_arch(facts: StackFacts, dtype: str = "bfloat16") -> list[Finding]:
    """bf16 (verl's and vLLM's dtype for these models) needs compute capability 8.0+."""
    if not facts.capabilities or dtype not in ("bfloat16", "bf16"):
        return []
    old = sorted({(n, c) for n, c in zip(facts.gpu_names or ["?"] * len(facts.capabilities), facts.capabilities)
                  if tuple(c) < BF16_MIN_CAPABILITY}, key=str)
    if old:
        seen = ", ".join(f"{n} (sm{c[0]}{c[1]})" for n, c in old)
        return [Finding("error", f"{seen}: bf16 needs compute capability >= 8.0 (A100, L40S, H100); verl trains and "
                                 "vLLM samples these models in bf16", "run on Ampere or newer GPUs")]
    return [Finding("ok", f"{len(facts.capabilities)} GPU(s) of compute capability >= 8.0: bf16 available")]


def check_shm(facts: StackFacts, has_gpu: bool) -> list[Finding]:
    """Ray keeps its object store in /dev/shm (containers often mount 64 MB)."""
    if not has_gpu:
        return []
    if facts.shm_bytes is None or facts.shm_bytes < RAY_SHM_MIN_BYTES:
        have = "no /dev/shm" if facts.shm_bytes is None else f"/dev/shm is {facts.shm_bytes / 2**30:.2f} GiB"
        return [Finding("warn", f"{have}: Ray's object store falls back to /tmp (slow) or fails to start",
                        "give the job a larger /dev/shm (container: --shm-size=16g or more)")]
    return [Finding("ok", f"/dev/shm {facts.shm_bytes / 2**30:.0f} GiB for Ray's object store")]


def parameter_count(config: Mapping[str, Any]) -> int | None:
    """A decoder's parameters from its config.json (embeddings, attention with GQA, gated MLP); None if unknown."""
    cfg = dict(config.get("text_config") or config)
    try:
        h, layers, vocab = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]), int(cfg["vocab_size"])
        inter = int(cfg.get("intermediate_size") or 4 * h)
        heads = int(cfg.get("num_attention_heads") or 1)
        kv = int(cfg.get("num_key_value_heads") or heads)
    except (KeyError, TypeError, ValueError):
        return None
    head_dim = int(cfg.get("head_dim") or h // heads)
    attention = h * heads * head_dim * 2 + h * kv * head_dim * 2
    embeddings = vocab * h * (1 if cfg.get("tie_word_embeddings") else 2)
    return embeddings + layers * (attention + 3 * h * inter)


def checkpoint_bytes(config: Mapping[str, Any]) -> int | None:
    params = parameter_count(config)
    return None if params is None else params * CHECKPOINT_BYTES_PER_PARAM


def check_disk(where: str | os.PathLike, config: Mapping[str, Any] | None, checkpoints: int) -> list[Finding]:
    """Free space where the checkpoints go vs ``checkpoints`` of them (what the run keeps)."""
    one = checkpoint_bytes(config) if config else None
    if one is None or checkpoints < 1:
        return []
    path = Path(where).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    free = shutil.disk_usage(path).free
    need = one * checkpoints
    what = (f"{checkpoints} checkpoint(s) of ~{one / 1e9:.0f} GB (fp32 shards + Adam + fp32 HF weights) need "
            f"{need / 1e9:.0f} GB; {path} has {free / 1e9:.0f} GB free")
    if free < one:
        return [Finding("error", what + ": the first save fails", "free disk or point --run-dir at a larger filesystem")]
    if free < need:
        return [Finding("warn", what, "keep fewer checkpoints (--set max_actor_ckpt_to_keep=1 where the recipe has it, "
                                      "or a larger save_freq) or free disk")]
    return [Finding("ok", what)]


def check_offline_model(model: str, env: Mapping[str, str], found: bool) -> list[Finding]:
    """An offline node (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) must hold the model locally or in its cache."""
    offline = [v for v in OFFLINE_VARS if str(env.get(v, "")).lower() in ("1", "true", "yes", "on")]
    if not offline or found:
        return []
    return [Finding("error", f"{offline[0]} is set and {model} is neither a local folder nor in the Hugging Face "
                             "cache: verl and vLLM cannot load it", f"huggingface-cli download {model} on a node with "
                                                                    "network (same HF_HOME), or pass a local folder")]


def check_tp_visible(tensor_parallel_size: int, gpus: int, has_gpu: bool) -> list[Finding]:
    if not has_gpu or not tensor_parallel_size:
        return []
    if tensor_parallel_size > gpus:
        return [Finding("error", f"rollout tensor_parallel_size {tensor_parallel_size} > the {gpus} GPU(s) visible: "
                                 "no vLLM rollout server can start",
                        f"--set tensor_parallel_size={max(d for d in range(1, max(gpus, 1) + 1) if gpus % d == 0)} "
                        if gpus else "allocate GPUs")]
    return [Finding("ok", f"rollout tensor_parallel_size {tensor_parallel_size} fits the {gpus} visible GPU(s)")]
