"""Sampling throughput: mirage's KV-cache sampler vs a naive loop vs HF ``generate``.

Same model, prompts, n and max_tokens for all three; prints samples/s and tokens/s,
and the FLOP ceiling of this machine for reference (measured matmul GFLOP/s divided
by the model's FLOPs per generated token).

    python benchmarks/bench_sample.py [--model dial-60] [--prompts 16] [--n 16] [--max-tokens 48] [--threads 2]
    python benchmarks/bench_sample.py --smoke    # 2 prompts x 2 samples, 8 tokens, once: runs, measures nothing
"""

from __future__ import annotations

import argparse
import time

import torch


def load(model_name: str | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mirage.testbed.models import make_model

    from mirage.models import list_models, resolve_model
    from mirage.testbed.tokenizer import make_tokenizer

    names = [m["name"] for m in list_models()]
    name = model_name or ("dial-60" if "dial-60" in names else (names[0] if names else None))
    if name is None:  # no shipped model yet: an untrained one of the testbed's size
        tok = make_tokenizer()
        return make_model(tok).eval(), tok, "untrained make_model() (no shipped model found)"
    path = resolve_model(name)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path), name


def prompts_for(tok, count: int) -> list[list[int]]:
    from mirage.sample.base import apply_chat_template
    from mirage.tasks.toy import problems_frame

    rows = problems_frame("toy-math", "test", count // 2, seed=1).to_dict("records")
    rows += problems_frame("toy-logic", "test", count - count // 2, seed=1).to_dict("records")
    return [tok(apply_chat_template(tok, list(r["prompt"])), add_special_tokens=False)["input_ids"] for r in rows]


@torch.no_grad()
def naive(model, prompts, n, max_tokens, eos, pad):
    """Token by token, no KV cache: the whole sequence is re-run at every step."""
    from mirage.sample.hf import left_pad, positions_from_mask

    ids, mask = left_pad([p for p in prompts for _ in range(n)], pad)
    done = torch.zeros(ids.shape[0], dtype=torch.bool)
    lengths = torch.zeros(ids.shape[0], dtype=torch.long)
    for _ in range(max_tokens):
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)).logits[:, -1]
        tok = torch.multinomial(torch.softmax(logits.float(), -1), 1).squeeze(-1)
        tok = torch.where(done, torch.full_like(tok, pad), tok)
        lengths += (~done).long()
        done |= tok == eos
        ids = torch.cat([ids, tok[:, None]], 1)
        mask = torch.cat([mask, (~done | (tok == eos)).long()[:, None]], 1)
        if done.all():
            break
    return int(lengths.sum())


@torch.no_grad()
def hf_generate(model, prompts, n, max_tokens, eos, pad):
    from mirage.sample.hf import left_pad

    ids, mask = left_pad([p for p in prompts for _ in range(n)], pad)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                         max_new_tokens=max_tokens, eos_token_id=eos, pad_token_id=pad)[:, ids.shape[1]:]
    # tokens up to and including the first EOS
    is_eos = out == eos
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full((out.shape[0],), out.shape[1]))
    return int(first.sum())


def mirage_sampler(model, prompts, n, max_tokens, eos, pad):
    from mirage.sample.hf import sample_tokens

    batch = sample_tokens(model, prompts, list(range(len(prompts))), n=n, max_tokens=max_tokens,
                          stop_token_ids=eos, pad_token_id=pad)
    return int(batch.lengths.sum())


def matmul_gflops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    count, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.process_time() - start) / 1e9


def flops_per_token(model, context: int) -> float:
    """2 x (weights touched per token) + attention over the context (forward only)."""
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    embed = cfg.vocab_size * cfg.hidden_size
    weights = params - embed + (embed if getattr(cfg, "tie_word_embeddings", False) else 0)  # lm head is a matmul
    attention = 2 * 2 * cfg.num_hidden_layers * context * cfg.hidden_size
    return 2 * weights + attention


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="testbed model name or path (default: dial-60 if shipped)")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds: checks that the benchmark runs, measures nothing")
    args = ap.parse_args()
    if args.smoke:
        args.prompts, args.n, args.max_tokens, args.repeats = 2, 2, 8, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tok, name = load(args.model)
    prompts = prompts_for(tok, args.prompts)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    samples = len(prompts) * args.n
    print(f"model {name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params; {len(prompts)} prompts x "
          f"n={args.n} = {samples} samples, max_tokens={args.max_tokens}, threads={torch.get_num_threads()}")
    results = {}
    for label, fn in [("mirage sample_tokens (KV cache)", mirage_sampler), ("HF generate", hf_generate),
                      ("naive loop, no KV cache", naive)]:
        best, best_cpu, tokens = float("inf"), float("inf"), 0
        for _ in range(args.repeats if fn is not naive else 1):
            wall, cpu = time.perf_counter(), time.process_time()
            tokens = fn(model, prompts, args.n, args.max_tokens, eos, pad)
            best, best_cpu = min(best, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
        results[label] = (best, best_cpu)
        print(f"{label:<34} {best:7.3f} s wall ({best_cpu:7.3f} s CPU)  {samples / best:8.0f} samples/s  "
              f"{tokens / best:8.0f} tokens/s (mean {tokens / samples:.1f} tokens/sample)")
    ours = results["mirage sample_tokens (KV cache)"]
    for label, (wall, cpu) in list(results.items())[1:]:
        print(f"  mirage vs {label}: {wall / ours[0]:.1f}x faster (wall), {cpu / ours[1]:.1f}x (CPU time)")
    mean_prompt = sum(map(len, prompts)) / len(prompts)
    per_token = flops_per_token(model, int(mean_prompt + args.max_tokens / 2))
    width = model.config.hidden_size
    for shape in ((samples, width, width * 3), (1024, 1024, 1024)):  # a decode-step matmul, and a large one
        g = matmul_gflops(*shape, seconds=0.05 if args.smoke else 1.0)
        print(f"matmul {shape[0]}x{shape[1]} @ {shape[1]}x{shape[2]}: {g:.1f} GFLOP/s -> ceiling "
              f"{g * 1e9 / per_token:,.0f} tokens/s at {per_token / 1e6:.2f} MFLOP per token (forward)")

if __name__ == "__main__":
    main()
