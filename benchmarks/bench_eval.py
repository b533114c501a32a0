"""Benchmark: can scoring keep up with sampling? (mirage.evaluate keeps it off the critical path)

1. Scoring throughput (responses/s) of ``mirage.rewards.compute_score``, one process vs
   mirage.evaluate's process pool, on
   - math: MATH500's own reference solutions as the reasoning, closed by an answer that
     is the gold string, the gold reformatted (boxed / in $...$), or another problem's
     answer, read from a verl parquet. The first two mostly take compute_score's fast
     path; wrong answers go through math-verify (in its guarded worker process), the
     worst case, which the GPU estimate uses;
   - testbed: toy-math responses (correct / buggy procedure / truncated junk).
2. Sampling throughput on the testbed: HFSampler on a testbed model, n=64.
3. mirage.evaluate on the testbed with inline scoring vs the pool: wall time and the
   time the sampling loop waited for scores.
4. The GPU case: 500 problems x n=256 with vLLM on one GPU, from the measured scoring
   rate and a stated vLLM throughput.

    python benchmarks/bench_eval.py --math500 <data root>/verl/math500.parquet \
        [--responses 900] [--processes 2] [--model NAME] [--threads 1]

(``mirage data prepare --dataset math500 --source <MATH500 test.jsonl>`` writes the parquet.)
``--smoke``: 30 responses, 4 problems x 4 samples, 3 hand-written math rows when the MATH500
parquet is absent; checks that the benchmark runs, measures nothing.
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import shutil
import tempfile
import time

import pandas as pd

from mirage.evaluate import evaluate
from mirage.evaluate.scoring import ScorePool, score_samples
from mirage.tasks import dataset_path
from mirage.tasks import toy as toy

# vLLM output throughput assumed for the GPU argument: Llama-3.1-8B (BF16) on one H100 80GB,
# ~12,500 output tokens/s at saturation (third-party vLLM V1 figure, morphllm.com/vllm-benchmarks,
# 2026). Qwen2.5-7B is the same size class; n=256 per prompt keeps the engine saturated.
VLLM_TOKENS_PER_S = 12_500


def equivalent(gold: str) -> str:
    """The same answer written differently (math-verify must parse both sides)."""
    return f"\\boxed{{{gold}}}" if len(gold) % 2 else f"$ {gold} $"


def math_items(path: str, count: int, kind: str = "mix", seed: int = 0) -> list[tuple]:
    """kind: 'gold' (the answer string itself), 'equivalent' (reformatted), 'wrong' (another problem's), 'mix'."""
    rows = pd.read_parquet(path)
    rng = random.Random(seed)
    items = []
    for i in range(count):
        row = rows.iloc[i % len(rows)]
        gold = row["reward_model"]["ground_truth"]
        solution = (row["extra_info"] or {}).get("solution") or "Some reasoning."
        this = ("gold", "equivalent", "wrong")[i % 3] if kind == "mix" else kind
        answer = gold if this == "gold" else equivalent(gold) if this == "equivalent" else \
            rows.iloc[rng.randrange(len(rows))]["reward_model"]["ground_truth"]
        items.append((row["data_source"], f"<think>{solution}</think> <answer>{answer}</answer>", gold,
                      dict(row["extra_info"] or {})))
    return items


def toy_items(count: int) -> list[tuple]:
    problems = toy.generate("toy-math", "test", 200, seed=1)
    items = []
    for i in range(count):
        p = problems[i % len(problems)]
        text = p.response(correct=i % 3 == 0) if i % 3 < 2 else p.response()[:20]
        items.append((p.data_source, text, p.answer, {}))
    return items


def rate(label: str, items: list[tuple], processes: int) -> float:
    from mirage.rewards.routing import recorded_options

    kwargs = recorded_options()  # what an evaluation passes when no checker option is given
    if processes == 0:
        t = time.perf_counter()
        score_samples(items, False, kwargs)
        dt = time.perf_counter() - t
        print(f"  {label:<16} 1 process (inline): {len(items) / dt:8.1f} responses/s  ({len(items)} in {dt:.2f} s)")
        return len(items) / dt
    scorer = ScorePool(processes, False, kwargs)
    try:
        t = time.perf_counter()
        scorer.collect(scorer.submit(items[:processes * 4]))  # start the workers (imports) first
        start = time.perf_counter() - t
        t = time.perf_counter()
        scorer.collect(scorer.submit(items))
        dt = time.perf_counter() - t
    finally:
        scorer.close()
    print(f"  {label:<16} pool of {processes}:        {len(items) / dt:8.1f} responses/s  ({len(items)} in {dt:.2f} s; "
          f"pool start {start:.1f} s, paid once per evaluation)")
    return len(items) / dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--math500", default=str(dataset_path("math500")), help="MATH500 verl parquet")
    ap.add_argument("--responses", type=int, default=900, help="responses scored per measurement")
    ap.add_argument("--processes", type=int, default=2, help="scoring pool size to measure")
    ap.add_argument("--model", default=None, help="testbed model (default: the first in data/models, else a tiny "
                                                  "untrained one)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for testbed sampling")
    ap.add_argument("--problems", type=int, default=32, help="testbed problems sampled")
    ap.add_argument("--n", type=int, default=64, help="testbed samples per problem")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds: checks that the benchmark runs, measures nothing")
    args = ap.parse_args()
    if args.smoke:
        args.responses, args.problems, args.n = 30, 4, 4
        if not os.path.exists(args.math500):
            args.math500 = _smoke_math(_scratch("bench-eval-smoke-"))
    print(f"machine: {os.cpu_count()} CPUs (shared machines are noisy: compare figures of one run only)")

    print("1. scoring throughput")
    per_kind = {kind: rate(f"math/{kind}", math_items(args.math500, args.responses // 3, kind), 0)
                for kind in ("gold", "equivalent", "wrong")}
    math = math_items(args.math500, args.responses)
    toys = toy_items(args.responses)
    math_1 = rate("math/mix", math, 0)
    math_p = rate("math/mix", math, args.processes)
    toy_1 = rate("testbed", toys, 0)
    rate("testbed", toys, args.processes)

    print("2. testbed sampling throughput")
    work = _scratch("bench-eval-")
    model = args.model or _testbed_model(work)
    data = os.path.join(work, "toy.parquet")
    toy.problems_frame("toy-math", "test", args.problems, seed=1).to_parquet(data)
    walls, sample_rates = {}, {}
    for processes in (0, args.processes):
        t = time.perf_counter()
        evaluate(model, data, args.n, sampler="hf", max_tokens=64, out_dir=os.path.join(work, f"p{processes}"),
                 batch_size=max(1, args.problems // 4), score_processes=processes, progress=False,
                 sampler_kwargs={"threads": args.threads})
        walls[processes] = time.perf_counter() - t
        attempt = pd.read_json(os.path.join(work, f"p{processes}", "eval_manifest.json"), typ="series")["attempts"][0]
        samples = args.problems * args.n
        sample_rates[processes] = samples / attempt["sample_seconds"]
        print(f"  {samples} samples, scoring {'inline' if processes == 0 else f'in a pool of {processes}'}: "
              f"wall {walls[processes]:.1f} s (setup {attempt['setup_seconds']:.1f} s), sampling "
              f"{attempt['sample_seconds']:.1f} s = {samples / attempt['sample_seconds']:.0f} samples/s, "
              f"waited for scores {attempt['score_wait_seconds']:.1f} s")
    sample_rate = sample_rates[0]
    print(f"3. testbed: sampling {sample_rate:.0f} samples/s vs scoring {toy_1:.0f}/s in one process "
          f"({toy_1 / sample_rate:.1f}x): scoring {'keeps up' if toy_1 > sample_rate else 'needs the pool'}")

    print(f"4. GPU case: 500 problems x n=256 = 128,000 responses, vLLM at ~{VLLM_TOKENS_PER_S:,} output tokens/s "
          f"(assumed, see VLLM_TOKENS_PER_S)")
    # pessimistic: the slowest answer kind, and the pool's per-process rate if lower
    per_process = min(min(per_kind.values()), math_1, math_p / args.processes)
    pool = 8  # evaluate's default on a GPU node (min(8, CPUs - 1); such nodes have >= 16 CPUs)
    for mean_tokens in (200, 600, 1500):
        need = VLLM_TOKENS_PER_S / mean_tokens
        hours = 128_000 * mean_tokens / VLLM_TOKENS_PER_S / 3600
        procs = need / per_process
        verdict = "keeps up" if pool * per_process > need else "FALLS BEHIND"
        print(f"  mean response {mean_tokens:>4} tokens: vLLM makes {need:5.1f} responses/s ({hours:.1f} h); "
              f"math scoring needs {procs:4.2f} processes at {per_process:.0f}/s each -> a pool of {pool} {verdict}")
    chunk = 64 * 256  # default vLLM chunk (64 problems per engine) x n
    print(f"  left on the critical path: scoring the last chunk ({chunk:,} responses / ({pool} x {per_process:.0f}/s) "
          f"= {chunk / (pool * per_process):.0f} s) plus the pool start")
    return 0


def _scratch(prefix: str) -> str:
    """A temporary folder, deleted when the benchmark exits."""
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _smoke_math(work: str) -> str:
    """Three MATH500-like rows (--smoke without a prepared MATH500 parquet)."""
    path = os.path.join(work, "math500.parquet")
    pd.DataFrame([{"data_source": "math500", "prompt": [{"role": "user", "content": q}],
                   "reward_model": {"style": "rule", "ground_truth": a},
                   "extra_info": {"index": i, "solution": f"So the answer is {a}."}}
                  for i, (q, a) in enumerate([("What is 1+2?", "3"), ("Halve 1.", "\\frac{1}{2}"),
                                              ("Square x.", "x^2")])]).to_parquet(path)
    return path


def _testbed_model(work: str) -> str:
    from mirage.testbed.models import make_model
    from mirage.models import list_models
    from mirage.testbed.tokenizer import make_tokenizer

    shipped = list_models()
    if shipped:
        return shipped[0]["path"]
    folder = os.path.join(work, "tiny")
    tokenizer = make_tokenizer()
    make_model(tokenizer).save_pretrained(folder)  # the testbed's default size, untrained
    tokenizer.save_pretrained(folder)
    print(f"  (no shipped testbed model: an untrained one of the default size, {folder})")
    return folder


if __name__ == "__main__":
    raise SystemExit(main())
