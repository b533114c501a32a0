"""mirage smoke: the widened model is exact, and the CPU dry mode CI runs passes (the GPU run is not run here)."""

from __future__ import annotations

import json

import pytest

from mirage import smoke


def test_widen_heads_is_exact_and_refuses_what_it_cannot_widen():
    import torch

    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64)
    old = LlamaForCausalLM(config).eval()
    wide_config = LlamaConfig(**{**config.to_dict(), "head_dim": 16})
    wide = LlamaForCausalLM(wide_config).eval()
    wide.load_state_dict(smoke.widen_heads(old.state_dict(), config, 16), strict=True)
    ids = torch.randint(0, 50, (2, 40))  # long enough for RoPE's low frequencies to matter
    with torch.no_grad():
        assert torch.allclose(old(ids).logits, wide(ids).logits, atol=1e-5)
    with pytest.raises(ValueError, match="doubles head_dim"):
        smoke.widen_heads(old.state_dict(), config, 24)


@pytest.mark.slow
@pytest.mark.verl
def test_dry_run_builds_checks_and_composes_everything(tmp_path, capsys):
    from mirage.cli import main

    assert main(["smoke", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "smoke --dry-run: 6/6 checks passed" in out
    assert out.count("composes, validates and passes the doctor") == 3
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert (config["head_dim"], config["dtype"]) == (32, "bfloat16")
    assert (tmp_path / "model" / "tokenizer.json").exists() and (tmp_path / "model" / "chat_template.jinja").exists()
    commands = [line for line in out.splitlines() if line.startswith("VERL_USE_EXTERNAL_MODULES=")]
    assert len(commands) == 3
    assert all("actor_rollout_ref.rollout.max_num_seqs=64" in c and "trainer.n_gpus_per_node=1" in c
               for c in commands)
    assert "algorithm.adv_estimator=mirage_masked_nsr" in commands[1]
    assert "trainer.v1.sampler.sampler_kwargs.reward=majority_vote" in commands[2]
    assert not (tmp_path / "runs").exists()  # nothing launched, no run folder written
