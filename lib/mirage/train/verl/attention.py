"""The actor's attention, decided on the node that trains (not the login node that wrote the command).

verl 0.9.1 loads the FSDP actor with ``override_config.attn_implementation`` (default flash_attention_2)
and fails without flash-attn, which ``verl[vllm]`` does not install. Without it the actor uses sdpa with
padding removal off, and every micro-batch is padded to its longest sequence: under dynamic batch sizes
(a token budget per micro-batch) many short responses beside one long one pad to several times the
budget, and at a 152k vocabulary the fp32 logits of the padded tokens are what runs out of memory. So
the padded case trains one sequence per micro-batch (the padded size is then the sequence itself).

``python -m mirage.train.verl.attention`` prints the overrides for this node, one per line (the run
folder's command.sh calls it before verl starts), and on stderr which attention and why.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys

FLASH_ATTENTION = "flash_attention_2"  # verl's default; its padding-free path (use_remove_padding) needs flash-attn
PADDED_MICRO_BATCH = 1  # sequences per GPU micro-batch without padding removal (see the module docstring)


def attention_implementation() -> str:
    """flash_attention_2 where flash-attn is importable here (verl's default, padding-free), else sdpa."""
    return FLASH_ATTENTION if importlib.util.find_spec("flash_attn") else "sdpa"


def attention_overrides(attention: str) -> list[str]:
    """The Hydra overrides that follow from the actor's attention (and nothing else in the command does)."""
    a, ro, ref = "actor_rollout_ref.actor", "actor_rollout_ref.rollout", "actor_rollout_ref.ref"
    if attention == FLASH_ATTENTION:
        return ["actor_rollout_ref.model.use_remove_padding=true", f"{a}.use_dynamic_bsz=true"]
    return ["actor_rollout_ref.model.use_remove_padding=false",
            f"+actor_rollout_ref.model.override_config.attn_implementation={attention}",
            # padded micro-batches: a fixed number of sequences, not a token budget
            f"{a}.use_dynamic_bsz=false", f"{a}.ppo_micro_batch_size_per_gpu={PADDED_MICRO_BATCH}",
            f"{ro}.log_prob_micro_batch_size_per_gpu={PADDED_MICRO_BATCH}",
            f"{ref}.log_prob_micro_batch_size_per_gpu={PADDED_MICRO_BATCH}"]


def explain(attention: str) -> str:
    host = platform.node() or "this node"
    if attention == FLASH_ATTENTION:
        spec = importlib.util.find_spec("flash_attn")
        origin = getattr(spec, "origin", None)
        where = f" ({origin})" if origin else ""
        return (f"attention: {FLASH_ATTENTION} on {host}: flash-attn is importable{where}; padding removed, "
                "micro-batches by token budget")
    return (f"attention: {attention} on {host}: flash-attn is not importable here, so padding removal is off and "
            f"each micro-batch holds {PADDED_MICRO_BATCH} sequence per GPU (padded micro-batches of several "
            "sequences can hold many times the token budget); install flash-attn for this torch/CUDA to train "
            "padding-free")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mirage.train.verl.attention", description=__doc__.split("\n")[0])
    parser.add_argument("--attention", default=None, help="force an implementation (default: decide on this node)")
    args = parser.parse_args(argv)
    attention = args.attention or attention_implementation()
    print(explain(attention), file=sys.stderr)
    print("\n".join(attention_overrides(attention)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
