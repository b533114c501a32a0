"""Benchmark: the contamination probe on 500 toy problems with a testbed model (issue 12: <= 1 min on 2 cores).

500 toy-math test-bucket problems (seed 3) written as a verl parquet, then
``mirage.probe.probe_contamination`` at fractions 0.4, 0.6, 0.8 from an empty folder: per problem
3 raw-prefix continuations, 3 truncated-problem answers and the whole problem's answer, greedy,
on the hf sampler. Wall time includes loading the model (not the interpreter's imports); the CPU
time of this process is printed too, the number to compare when other work shares the cores.

    python benchmarks/bench_probe.py [--model dial-10-leaked] [--problems 500] [--threads 1]
    python benchmarks/bench_probe.py --smoke    # 8 problems: runs, measures nothing
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from mirage.probe import probe_contamination
from mirage.tasks import toy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dial-10-leaked")
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the hf sampler (1: a tiny model decodes fastest on one; 2 spent 3x the CPU)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds: checks that the benchmark runs, measures nothing")
    args = parser.parse_args()
    if args.smoke:
        args.problems, args.batch_size = 8, 8
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "toy-math_bench.parquet"
        problems = toy.generate("toy-math", "test", args.problems, seed=3)
        pd.DataFrame([toy.to_row(p, i, "test") for i, p in enumerate(problems)]).to_parquet(data)
        start, cpu = time.perf_counter(), time.process_time()
        summary = probe_contamination(args.model, str(data), out_dir=Path(tmp) / "probe", batch_size=args.batch_size,
                                      sampler_kwargs={"threads": args.threads}, progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    calls = args.problems * (2 * len(summary) + 1)
    print(f"\nprobe of {args.problems} toy-math problems x {len(summary)} fractions ({calls} greedy decodes), "
          f"{args.model}, {args.threads} torch threads: {seconds:.1f} s wall ({args.problems / seconds:.1f} problems/s; "
          f"issue 12 target <= 60 s on 2 cores); {cpu:.1f} s of CPU time (wall exceeds it when other work shares "
          "the cores)")


if __name__ == "__main__":
    main()
