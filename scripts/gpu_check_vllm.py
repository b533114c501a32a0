"""Exercise the real sampling path end to end on a GPU machine (vLLM, or HF on CUDA).

A tiny testbed model, a handful of toy problems, n=8. Checks, and prints PASS/FAIL for each:

1. ``mirage.evaluate`` writes n rows per problem, the pass@k curve and a complete manifest;
2. max_tokens is honoured and finish_reason is recorded ("length" exactly at the cap);
3. a second evaluation with other chunking gives the same samples (per-prompt seeds);
4. vllm only: a prompt's samples drawn in several requests at disjoint seed offsets
   equal those of one request (vLLM's child i uses seed + i); vllm with --gpus:
   the data-parallel shards (one engine per GPU) give the same samples as one engine.

    python scripts/gpu_check_vllm.py                       # vLLM on GPU 0
    python scripts/gpu_check_vllm.py --gpus 0,1            # + one engine per GPU, merged
    python scripts/gpu_check_vllm.py --backend hf          # transformers on CUDA (or CPU)

Exit status 0 when every check passes. Nothing is downloaded: the model comes from
data/models (or --model PATH) and the problems are generated.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from mirage.evaluate import evaluate, read_samples
from mirage.sample.base import SamplingParams, prompt_seed
from mirage.models import list_models, resolve_model
from mirage.tasks.toy import INSTRUCTION, problems_frame

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"[{'PASS' if ok else 'FAIL'}] {what}")
    if not ok:
        failures.append(what)


def rows(out: Path) -> pd.DataFrame:
    return read_samples(out).sort_values(["problem_id", "sample_index"]).reset_index(drop=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["vllm", "hf"], default="vllm", help="sampler to exercise (default vllm)")
    ap.add_argument("--model", default=None, help="testbed model name or path (default: the first in data/models)")
    ap.add_argument("--task", choices=["toy-math", "toy-logic"], default="toy-math", help="testbed task")
    ap.add_argument("--problems", type=int, default=16, help="problems to sample (default 16)")
    ap.add_argument("--n", type=int, default=8, help="samples per problem (default 8)")
    ap.add_argument("--max-tokens", type=int, default=64, help="response cap (default 64, the testbed recipe's)")
    ap.add_argument("--gpus", default=None, help="vllm: also run one engine per GPU of this list (e.g. 0,1)")
    ap.add_argument("--out", default=None, help="keep outputs here (default: a temporary folder)")
    args = ap.parse_args()

    models = list_models()
    model = resolve_model(args.model or (models[0]["path"] if models else ""))
    out = Path(args.out or tempfile.mkdtemp(prefix="mirage-gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{args.task}_check.parquet"
    problems_frame(args.task, "test", args.problems, seed=0).to_parquet(data)
    print(f"model {model}\nbackend {args.backend}, {args.problems} problems x n={args.n}, outputs in {out}")
    common = dict(n=args.n, max_tokens=args.max_tokens, seed=0, score_processes=2)

    t = time.time()
    table = evaluate(model, str(data), sampler=args.backend, out_dir=out / "a", batch_size=args.problems, **common)
    first_s = time.time() - t
    a = rows(out / "a")
    manifest = json.loads((out / "a" / "eval_manifest.json").read_text())
    print(table.to_string(index=False))
    print(json.dumps({k: manifest[k] for k in ("sampler", "hardware", "attempts")}, indent=1, default=str))
    check(len(a) == args.problems * args.n and not a.duplicated(["problem_id", "sample_index"]).any(),
          f"{len(a)} rows = problems x n, no duplicates")
    check(manifest["status"] == "complete" and INSTRUCTION in (manifest["prompt_template"]["rendered"] or ""),
          "manifest complete, rendered chat template recorded")
    check(bool((a["num_tokens"] <= args.max_tokens).all()), f"every response <= max_tokens={args.max_tokens}")
    cut = a["finish_reason"] == "length"
    check(bool((a.loc[cut, "num_tokens"] == args.max_tokens).all()) and set(a["finish_reason"]) <= {"stop", "length"},
          f"finish_reason recorded ({cut.mean():.0%} length, the rest stop)")

    evaluate(model, str(data), sampler=args.backend, out_dir=out / "b", batch_size=max(1, args.problems // 3),
             **common)
    b = rows(out / "b")
    same = (a["text"] == b["text"]).mean()
    check(same == 1.0, f"other chunking, same samples ({same:.1%} identical)")

    if args.backend == "vllm":
        from functools import partial

        from mirage.sample.parallel import ProcessWorker, data_parallel
        from mirage.sample.vllm import VLLMSampler

        frame = pd.read_parquet(data)
        prompts = [list(map(dict, p)) for p in frame["prompt"]]
        seeds = [prompt_seed(0, f"split/{i}") for i in range(len(prompts))]
        params = SamplingParams(n=args.n, max_tokens=args.max_tokens)

        def draw(worker):  # one engine in its own process: its GPU memory is freed on close
            try:
                return worker.submit(prompts, params, seeds).result()
            finally:
                worker.close()

        def identical(x, y):
            return sum(a.text == b.text for p, q in zip(x, y) for a, b in zip(p, q)) / (len(prompts) * args.n)

        whole = draw(ProcessWorker(partial(VLLMSampler, model)))
        split = draw(ProcessWorker(partial(VLLMSampler, model, max_samples_per_call=3)))
        same = identical(whole, split)
        check(same == 1.0, f"split requests at seed offsets = one request ({same:.1%} identical)")
        if args.gpus:
            dp = data_parallel(partial(VLLMSampler, model), args.gpus.split(","))
            try:
                merged = dp.generate(prompts, params, seeds)
            finally:
                dp.close()
            same = identical(whole, merged)
            check(same == 1.0, f"{len(dp.workers)} data-parallel engines = one engine ({same:.1%} identical)")

    print(f"first evaluation: {first_s:.1f} s, {len(a) / first_s:.1f} samples/s (engine start included)")
    print("ALL CHECKS PASSED" if not failures else f"{len(failures)} CHECK(S) FAILED: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
