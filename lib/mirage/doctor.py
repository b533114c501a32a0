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
    data         every dataset present, the checkers able to score (a SynLogic checkout), over-long prompts
                 counted with the model's tokenizer (verl drops them: data.filter_overlong_prompts)

``mirage train --backend verl`` runs ``check_run`` first: an error stops it (exit 2), warnings are
printed; ``--dry-run`` prints every finding as a comment line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

LEVELS = ("ok", "warn", "error")
# verl 0.9.1: every GPU worker's placement-group bundle reserves ResourcePoolManager.max_colocate_count CPUs
VERL_CPUS_PER_GPU = 3
# Minimum Linux driver per CUDA major version (NVIDIA's CUDA toolkit release notes, minor-version compatibility).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


@dataclass(frozen=True)
class Finding:
    level: str  # ok | warn | error
    what: str
    fix: str = ""

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"finding level must be one of {LEVELS}, got {self.level!r}")

    def __str__(self) -> str:
        return f"{self.level}: {self.what}" + (f" -- fix: {self.fix}" if self.fix else "")


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
    from mirage.train.verl.command import REWARD_WORKERS

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
def model_config(model: str) -> tuple[dict | None, str]:
    """(the model's config.json, where it came from): a local folder or shipped model, or a hub id already
    in the local Hugging Face cache (never the network); (None, why) otherwise."""
    from mirage.models import resolve_model

    path = Path(resolve_model(model, strict=False))
    if path.is_dir():
        if not (path / "config.json").is_file():
            return None, f"{path} has no config.json"
        return json.loads((path / "config.json").read_text(encoding="utf-8")), str(path / "config.json")
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(model), "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id, no hub library
        cached = None
    if isinstance(cached, str) and Path(cached).is_file():
        return json.loads(Path(cached).read_text(encoding="utf-8")), cached
    return None, f"{model} is not a local folder and not in the Hugging Face cache"


def max_positions(config: Mapping[str, Any]) -> int | None:
    """What verl reads (rollout.utils.get_max_position_embeddings): the config's, else its text_config's."""
    value = config.get("max_position_embeddings") or (config.get("text_config") or {}).get("max_position_embeddings")
    return int(value) if value else None


def check_context(model: str, recipe) -> list[Finding]:
    config, where = model_config(model)
    prompt, response = recipe.max_prompt_length, recipe.max_response_length
    if config is None:
        return [Finding("warn", f"context length not checked: {where}",
                        "download the model (its config.json) first, or run on the node that has it")]
    mpe = max_positions(config)
    if mpe is None:
        return [Finding("error", f"{where}: no max_position_embeddings (verl needs it)", "use another model")]
    if recipe.max_model_len:
        cap = recipe.max_model_len
        if cap > mpe:
            return [Finding("error", f"max_model_len {cap} exceeds the model's max_position_embeddings {mpe} "
                                     f"({where}): verl refuses to start", f"--max-model-len {mpe}")]
        if cap < prompt + response:
            return [Finding("warn", f"vLLM's context is capped at max_model_len {cap} (your choice; the model has "
                                    f"{mpe}): responses end at {cap} - prompt tokens, not at max_response_length "
                                    f"{response}")]
        return [Finding("ok", f"max_model_len {cap} fits the model's {mpe} positions")]
    if mpe < prompt + response:
        return [Finding("error", f"the model has {mpe} positions ({where}) but max_prompt_length {prompt} + "
                                 f"max_response_length {response} = {prompt + response}: verl would cap vLLM's "
                                 "context and cut responses short of the recipe",
                        f"--set max_response_length={mpe - prompt} (keep the recipe honest), or --max-model-len {mpe} "
                        f"(accept responses ending at {mpe} - prompt tokens; recorded in the manifest)")]
    return [Finding("ok", f"context: the model's {mpe} positions hold {prompt} + {response} prompt and response tokens")]


def check_vllm(config) -> list[Finding]:
    """vLLM's scheduler limits, from the composed verl config (after --extra)."""
    ro = config.actor_rollout_ref.rollout
    tokens, seqs = ro.max_num_batched_tokens, ro.max_num_seqs
    if tokens is not None and seqs is not None and tokens < seqs:
        return [Finding("error", f"vLLM: max_num_batched_tokens {tokens} < max_num_seqs {seqs}: vLLM refuses to start "
                                 "(a shrunk recipe: max_num_batched_tokens is prompt + response)",
                        f"--extra actor_rollout_ref.rollout.max_num_seqs={tokens}, or raise max_prompt_length + "
                        "max_response_length")]
    if not ro.enable_chunked_prefill and ro.max_model_len and tokens is not None and tokens < ro.max_model_len:
        return [Finding("warn", f"vLLM: chunked prefill off and max_num_batched_tokens {tokens} < max_model_len "
                                f"{ro.max_model_len}: verl raises it to {ro.max_model_len}")]
    return [Finding("ok", f"vLLM: max_num_batched_tokens {tokens} >= max_num_seqs {seqs}")]


def check_data(paths: Iterable[Path], how_to_make: Callable[[Path], str], generated: Callable[[Path], bool],
               problems: Iterable[str]) -> list[Finding]:
    out = []
    for p in paths:
        if p.exists():
            out.append(Finding("ok", f"data {p}"))
        elif generated(p):
            out.append(Finding("ok", f"data {p}: generated on launch"))
        else:
            out.append(Finding("error", f"data {p} is missing", how_to_make(p)))
    out += [Finding("error", f"the task cannot be scored here: {p}", "see docs/rewards.md") for p in problems]
    return out


def load_tokenizer(model: str):
    """The model's tokenizer from a local folder or the local HF cache (never the network); None when absent."""
    from mirage.models import resolve_model

    try:
        from transformers import AutoTokenizer

        path = resolve_model(model, strict=False)
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception:  # noqa: BLE001 - absent or unreadable: reported as not checked
        return None


def prompt_lengths(path: Path, tokenizer) -> list[int]:
    """Each row's prompt length in tokens as verl's filter counts it (chat template, generation prompt)."""
    import pandas as pd

    lengths = []
    for prompt in pd.read_parquet(path, columns=["prompt"])["prompt"]:
        messages = [dict(m) for m in prompt]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, Mapping) else ids
        lengths.append(len(ids))
    return lengths


def check_prompts(paths: Iterable[Path], tokenizer, max_prompt_length: int) -> list[Finding]:
    if tokenizer is None:
        return [Finding("warn", "over-long prompts not counted: the model's tokenizer is not on this machine",
                        "run `mirage doctor` where the model is (verl drops over-long prompts either way)")]
    out = []
    for p in (p for p in paths if p.exists()):
        try:
            lengths = prompt_lengths(p, tokenizer)
        except Exception as e:  # noqa: BLE001 - an unreadable file is the data check's business
            out.append(Finding("warn", f"{p.stem}: prompts not counted ({type(e).__name__}: {str(e)[:120]})"))
            continue
        over = sum(n > max_prompt_length for n in lengths)
        if over:
            out.append(Finding("warn", f"{p.stem}: {over} of {len(lengths)} prompts are longer than max_prompt_length "
                                       f"{max_prompt_length} tokens (longest {max(lengths)}): verl drops them "
                                       "(data.filter_overlong_prompts=true)",
                               f"--set max_prompt_length={max(lengths)} to keep them"))
        else:
            out.append(Finding("ok", f"{p.stem}: all {len(lengths)} prompts fit in {max_prompt_length} tokens"))
    return out


def check_run(cfg, facts: Facts | None = None, config=None, count_prompts: bool = True,
              data: bool = True) -> list[Finding]:
    """Every finding for one verl run (a ``RunConfig``); ``config``: its composed verl config (composed here if None).
    ``data=False``: leave the data files and checkers out (the launcher reports those itself)."""
    from mirage.conditions import get_condition
    from mirage.tasks import get_task
    from mirage.train.verl.command import (attention_implementation, build_command, compose_config, data_files,
                                           overrides_of, setup_problems)

    cfg = cfg.resolved()
    facts = facts if facts is not None else probe()
    task, condition, recipe = get_task(cfg.task), get_condition(cfg.condition), cfg.recipe
    if config is None:
        _, argv = build_command(cfg.model, task, condition, cfg.seed, cfg.run_dir, recipe, data_root=cfg.data_root,
                                train_file=cfg.train_file, extra=cfg.extra)
        config = compose_config(overrides_of(argv))
    attention = (config.actor_rollout_ref.model.get("override_config") or {}).get("attn_implementation",
                                                                                 attention_implementation())
    train, vals = data_files(task, condition, cfg.data_root, cfg.train_file)
    out = check_driver(facts) + check_attention(facts, attention)
    out += check_resources(facts, recipe.n_gpus_per_node, recipe.nnodes, int(config.reward.num_workers))
    out += check_context(cfg.model, recipe) + check_vllm(config)
    if data:
        out += check_data([train, *vals], lambda p: task.how_to_prepare(p.stem, p),
                          lambda p: task.ensure is not None and p.stem in task.datasets,
                          setup_problems(task, condition, cfg.release_faithful))
    if count_prompts:
        out += check_prompts([train, *vals], load_tokenizer(cfg.model), recipe.max_prompt_length)
    return out


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


class PreflightError(ValueError):
    """A run the preflight found errors in; the message counts them (the findings were printed)."""


# --- CLI ---------------------------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    from mirage.train.cli import add_run_arguments

    add_run_arguments(parser, required=False)
    parser.add_argument("--no-prompts", action="store_true",
                        help="skip counting over-long prompts (tokenises every dataset: seconds to a minute)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Machine checks, and with --model/--task/--condition the run's; exit 2 when a finding is an error."""
    facts = probe()
    if args.model and args.task and args.condition:
        from mirage.train.cli import config_from_args

        args.backend = "verl"
        findings = check_run(config_from_args(args), facts, count_prompts=not args.no_prompts)
    elif args.model or args.task or args.condition:
        raise ValueError("--model, --task and --condition go together (or none: machine checks only)")
    else:
        from mirage.recipes import PAPER_RECIPE
        from mirage.train.verl.command import attention_implementation

        n_gpus = args.n_gpus_per_node or PAPER_RECIPE.n_gpus_per_node
        findings = (check_driver(facts) + check_attention(facts, attention_implementation())
                    + check_resources(facts, n_gpus, args.nnodes or 1))
    for f in findings:
        print(f)
    bad = errors(findings)
    print(f"{len(findings)} checks: {len(bad)} error(s), {sum(f.level == 'warn' for f in findings)} warning(s)")
    return 2 if bad else 0
