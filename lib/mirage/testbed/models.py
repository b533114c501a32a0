"""Tiny Llama-style causal LMs for the testbed.

``make_model`` builds an untrained ``LlamaForCausalLM`` sized for 2 CPU cores
(~1M parameters at the defaults). Shipped base models are plain Hugging Face
folders under ``data/models/<name>/`` (config, safetensors, tokenizer, chat
template, README.md model card, card.json), so ``AutoModelForCausalLM`` /
``AutoTokenizer.from_pretrained`` load them offline, as verl or vLLM would;
``mirage.models`` resolves their names.
"""

from __future__ import annotations

from typing import Any


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
