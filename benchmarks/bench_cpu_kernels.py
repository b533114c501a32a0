"""What pinning torch's CPU kernels to AVX2 (mirage.cpu_kernels) costs: the pinned path vs torch's own choice.

    python benchmarks/bench_cpu_kernels.py [--reps 3] [--steps 8]
    python benchmarks/bench_cpu_kernels.py --smoke    # 1 rep, 1 step, 1 sample per problem: runs, measures nothing

Each repetition runs, in a fresh process per mode and the modes interleaved (so a change of
machine load hits both alike), one testbed training of ``--steps`` steps (dial-60 x toy-logic,
ground truth, the testbed recipe's batch) and an evaluation of the base model (its 200 test
problems x 16 samples, as the study evaluates), one torch thread. Prints each mode's kernel set and its median
CPU seconds (less sensitive to other processes than wall time), and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

WORK = """
import json, sys, time
from pathlib import Path
import mirage, torch
from mirage.evaluate import evaluate
from mirage.runs import RunConfig
from mirage.train.loop import train

root, steps, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0 = time.process_time()
train(RunConfig("dial-60", "toy-logic", "ground_truth", seed=0, run_dir=str(root / "run"),
                overrides={"total_steps": steps, "val_freq": 0, "save_freq": steps}, progress=False))
t1 = time.process_time()
evaluate("dial-60", "toy-logic_test", n, seed=0, score_processes=0, out_dir=str(root / "ev"), progress=False)
t2 = time.process_time()
print(json.dumps({"kernels": torch.backends.cpu.get_cpu_capability(), "train_cpu_s": t1 - t0, "eval_cpu_s": t2 - t1}))
"""


def run(mode: str, steps: int, n: int = 16) -> dict:
    env = {**os.environ, "MIRAGE_CPU_KERNELS": mode, "MIRAGE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", WORK, tmp, str(steps), str(n)], env=env,
                              capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--smoke", action="store_true",
                   help="1 rep, 1 step, 1 sample per problem: checks that the benchmark runs, measures nothing")
    a = p.parse_args()
    n = 16
    if a.smoke:
        a.reps, a.steps, n = 1, 1, 1
    results: dict[str, list[dict]] = {"native": [], "avx2": []}
    for _ in range(a.reps):
        for mode in results:
            results[mode].append(run(mode, a.steps, n))
    med = {}
    for mode, rs in results.items():
        med[mode] = {key: statistics.median(r[key] for r in rs) for key in ("train_cpu_s", "eval_cpu_s")}
        print(f"{mode:7s} kernels {rs[0]['kernels']:7s} train {med[mode]['train_cpu_s']:6.2f} CPU s "
              f"({a.steps} steps)  eval {med[mode]['eval_cpu_s']:6.2f} CPU s (200 x {n})  "
              f"median of {a.reps}")
    for key in ("train_cpu_s", "eval_cpu_s"):
        print(f"pinned / native, {key}: {med['avx2'][key] / med['native'][key]:.3f}")


if __name__ == "__main__":
    main()
