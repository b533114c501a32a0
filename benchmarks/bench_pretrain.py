"""Benchmark: testbed pretraining throughput, plain forward vs the shared-prefix trick.

Every corpus text starts with the same ~32 tokens (bos, role, instruction);
``mirage.testbed.pretrain.batch_loss`` runs them once per batch and expands their
keys/values. This prints seconds per optimizer step and tokens/s for both, on the
shipped model architecture and batch, interleaved so machine noise hits both, and
the projected wall time of one model's pretraining.

    python benchmarks/bench_pretrain.py [--steps 20] [--threads 1] [--repeats 3]
    python benchmarks/bench_pretrain.py --smoke    # 2 steps of batch 4, once: runs, measures nothing
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from mirage.testbed.models import count_parameters, make_model
from mirage.testbed.pretrain import FAMILY, _right_padded, batch_loss, encode_corpus, shared_prefix_length
from mirage.testbed.tokenizer import make_tokenizer


def plain_loss(model, sequences, pad_id, shared):
    ids, mask = _right_padded(sequences, pad_id)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :shared] = -100  # the same tokens as batch_loss trains on
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds: checks that the benchmark runs, measures nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = FAMILY["dial-30"]
    if args.smoke:
        args.steps, args.repeats = 2, 1
        config = dataclasses.replace(config, batch_size=4)
    tokenizer = make_tokenizer()
    start = time.perf_counter()
    sequences = encode_corpus(dataclasses.replace(config, corpus_size=config.batch_size * args.steps), tokenizer)
    print(f"corpus of {len(sequences)} texts built and tokenised in {time.perf_counter() - start:.1f} s "
          f"(the full {config.corpus_size:,} scale linearly)")
    shared = shared_prefix_length(sequences)
    model = make_model(tokenizer, hidden=config.hidden, layers=config.layers, heads=config.heads,
                       intermediate=config.intermediate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = [sequences[i:i + config.batch_size] for i in range(0, len(sequences), config.batch_size)]
    tokens = sum(len(s) - shared for s in sequences)
    print(f"model {count_parameters(model):,} parameters; batch {config.batch_size}; {shared} shared prefix "
          f"tokens; {tokens / len(sequences):.1f} trained tokens per text; {args.threads} thread(s)")

    def step(kind, batch):
        if kind == "plain":
            loss = plain_loss(model, batch, tokenizer.pad_token_id, shared)
        else:
            loss = batch_loss(model, batch[0][:shared], [s[shared:] for s in batch], tokenizer.pad_token_id)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    times = {"plain": [], "shared prefix": []}
    for _ in range(args.repeats):
        for kind in times:
            start = time.perf_counter()
            for batch in batches:
                step(kind, batch)
            times[kind].append((time.perf_counter() - start) / len(batches))
    for kind, values in times.items():
        per_step = statistics.median(values)
        print(f"{kind:>14}: {per_step * 1000:7.1f} ms/step  {tokens / len(sequences) * config.batch_size / per_step:8.0f} "
              f"trained tokens/s  -> {config.steps} steps in {per_step * config.steps / 60:.1f} min")
    print(f"speed-up: {statistics.median(times['plain']) / statistics.median(times['shared prefix']):.2f}x")


if __name__ == "__main__":
    main()
