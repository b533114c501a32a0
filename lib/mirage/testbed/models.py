"""Tiny Llama-style causal LMs for the testbed, and where the shipped ones live.

``make_model`` builds an untrained ``LlamaForCausalLM`` sized for 2 CPU cores
(~1M parameters at the defaults). Shipped base models are plain Hugging Face
folders under ``data/models/<name>/`` (config, safetensors, tokenizer, chat
template, README.md model card, card.json), so ``AutoModelForCausalLM`` /
``AutoTokenizer.from_pretrained`` load them offline, as verl or vLLM would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CHECKOUT_MODELS = Path(__file__).resolve().parents[3] / "data" / "models"


def make_model(tokenizer: Any, hidden: int = 128, layers: int = 4, heads: int = 4,
               intermediate: int | None = None, max_positions: int = 160, seed: int = 0):
    """An untrained tiny ``LlamaForCausalLM`` matching ``tokenizer`` (deterministic in ``seed``)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate or 3 * hidden,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_positions, rope_theta=10_000.0, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, attention_dropout=0.0, torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def models_dirs() -> list[Path]:
    """Where model names are looked up: $MIRAGE_MODELS, <data root>/models, the checkout's data/models."""
    from mirage.tasks import data_root

    dirs = [Path(os.environ["MIRAGE_MODELS"]).expanduser()] if os.environ.get("MIRAGE_MODELS") else []
    dirs += [data_root() / "models", CHECKOUT_MODELS]
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def model_path(name: str | os.PathLike) -> str:
    """Resolve a shipped model name ("dial-30"), a local path, or a Hugging Face id ("org/model")."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    for d in models_dirs():
        if (d / str(name) / "config.json").exists():
            return str((d / str(name)).resolve())
    text = str(name)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return text  # a hub id; transformers resolves (or refuses) it
    known = ", ".join(m["name"] for m in list_models()) or "none"
    raise FileNotFoundError(f"no model {text!r}: not a folder, not in {[str(d) for d in models_dirs()]} "
                            f"(known: {known}), not an org/name hub id")


def read_card(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / "card.json"
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def list_models() -> list[dict[str, Any]]:
    """Every model folder in ``models_dirs()``, with its card (empty dict if it has none)."""
    found: dict[str, dict[str, Any]] = {}
    for d in models_dirs():
        if not d.is_dir():
            continue
        for folder in sorted(d.iterdir()):
            if (folder / "config.json").exists() and folder.name not in found:
                card = read_card(folder) if (folder / "card.json").exists() else {}
                found[folder.name] = {"name": folder.name, "path": str(folder), "card": card}
    return list(found.values())


def load(name: str | os.PathLike):
    """(model, tokenizer) from a name, path or hub id, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    return model.eval(), tokenizer
