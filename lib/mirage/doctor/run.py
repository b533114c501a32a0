"""The run's side of the preflight: the model's context, vLLM's limits, the data and its prompt lengths,
and ``check_run`` (everything ``mirage train --backend verl`` checks before launching)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from mirage.conditions import get_condition
from mirage.doctor.base import Finding
from mirage.doctor.machine import Facts, check_attention, check_driver, check_resources, parse_nvidia_smi, probe
from mirage.doctor.stack import (StackFacts, check_disk, check_gpu_arch, check_offline_model, check_shm,
                                 check_tp_visible, check_vllm_cuda, check_vllm_install, probe_stack)
from mirage.models import resolve_model
from mirage.tasks import get_task
from mirage.train.verl.command import (attention_implementation, build_command, compose_config, data_files,
                                       overrides_of, setup_problems)


def model_config(model: str) -> tuple[dict | None, str]:
    """(the model's config.json, where it came from): a local folder or shipped model, or a hub id already
    in the local Hugging Face cache (never the network); (None, why) otherwise."""
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
                                     f"({where}): verl refuses to start",
                            f"--max-model-len {mpe}" if mpe > prompt else _split(mpe, cap=True))]
        if cap < prompt + response:
            return [Finding("warn", f"vLLM's context is capped at max_model_len {cap} (your choice; the model has "
                                    f"{mpe}): responses end at {cap} - prompt tokens, not at max_response_length "
                                    f"{response}")]
        return [Finding("ok", f"max_model_len {cap} fits the model's {mpe} positions")]
    if mpe < prompt + response:
        fix = (f"--set max_response_length={mpe - prompt} (keep the recipe honest), or --max-model-len {mpe} "
               f"(accept responses ending at {mpe} - prompt tokens; recorded in the manifest)" if mpe > prompt
               else _split(mpe))
        return [Finding("error", f"the model has {mpe} positions ({where}) but max_prompt_length {prompt} + "
                                 f"max_response_length {response} = {prompt + response}: verl would cap vLLM's "
                                 "context and cut responses short of the recipe", fix)]
    return [Finding("ok", f"context: the model's {mpe} positions hold {prompt} + {response} prompt and response tokens")]


def _split(positions: int, cap: bool = False) -> str:
    """The fix when even the prompts do not fit: both lengths, halving the model's context (a valid recipe;
    ``cap``: the recipe's max_model_len, too large, becomes the model's)."""
    prompt = max(1, positions // 2)
    return (f"--set max_prompt_length={prompt} --set max_response_length={max(1, positions - prompt)}"
            + (f" --max-model-len {positions}" if cap else "")
            + f" (the model's {positions} positions shared between prompt and response; the prompt check says "
              "whether the data's prompts fit)")


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
              data: bool = True, stack: StackFacts | None = None) -> list[Finding]:
    """Every finding for one verl run (a ``RunConfig``); ``config``: its composed verl config (composed here if None).
    ``data=False``: leave the data files and checkers out (the launcher reports those itself)."""
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
    out += check_stack(stack if stack is not None else probe_stack(), facts, recipe, cfg.model, cfg.run_dir)
    if data:
        out += check_data([train, *vals], lambda p: task.how_to_prepare(p.stem, p),
                          lambda p: task.ensure is not None and p.stem in task.datasets,
                          setup_problems(task, condition, cfg.release_faithful))
    if count_prompts:
        out += check_prompts([train, *vals], load_tokenizer(cfg.model), recipe.max_prompt_length)
    return out


def check_stack(stack: StackFacts, facts: Facts, recipe, model: str, run_dir) -> list[Finding]:
    """vLLM's build, bf16 support, Ray's /dev/shm, rollout TP vs visible GPUs, the model on an offline node,
    and disk for the checkpoints the run saves."""
    config, _ = model_config(model)
    out = check_vllm_install(stack, facts.has_gpu) + check_gpu_arch(stack) + check_shm(stack, facts.has_gpu)
    out += check_vllm_cuda(stack, facts.torch_cuda, parse_nvidia_smi(facts.nvidia_smi or "")[1])
    out += check_tp_visible(recipe.tensor_parallel_size, facts.gpus, facts.has_gpu)
    out += check_offline_model(model, stack.env, config is not None)
    saves = recipe.total_steps // recipe.save_freq if recipe.save_freq else 0
    return out + check_disk(run_dir, config, saves)
