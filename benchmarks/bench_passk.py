"""Benchmark: pass@k (exact, each distinct (n, c, k) once) vs a plain per-problem math.comb loop.

100,000 problems x n = 1024 samples, every k in default_ks(1024). The math.comb
loop is timed on a random subsample of problems in the same run and
extrapolated linearly to all problems (stated as such in the output).

    python benchmarks/bench_passk.py [--problems 100000] [--n 1024] [--loop-sample 2000]
    python benchmarks/bench_passk.py --smoke    # 1,000 problems x n = 64: runs, measures nothing
"""

import argparse
import math
import time

import numpy as np

from mirage.passk import default_ks, pass_at_k, pass_at_k_curve


def comb_loop(n, c, ks):
    return [[1.0 - math.comb(int(ni) - int(ci), k) / math.comb(int(ni), k) for k in ks] for ni, ci in zip(n, c)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=100_000)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--loop-sample", type=int, default=2000, help="problems timed in the math.comb loop")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds: checks that the benchmark runs, measures nothing")
    args = ap.parse_args()
    if args.smoke:
        args.problems, args.n, args.loop_sample, args.repeats = 1000, 64, 100, 1

    rng = np.random.default_rng(0)
    n = np.full(args.problems, args.n)
    # a realistic mix: many unsolved, many easy, the rest in between
    c = np.where(rng.random(args.problems) < 0.3, 0, rng.integers(0, args.n + 1, args.problems))
    ks = default_ks(args.n)

    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        per_k = [pass_at_k(n, c, k) for k in ks]
        times.append(time.perf_counter() - t0)
    t_vec = min(times)
    t0 = time.perf_counter()
    curve = pass_at_k_curve(n, c, ks)
    t_curve = time.perf_counter() - t0

    sub = rng.choice(args.problems, size=args.loop_sample, replace=False)
    t0 = time.perf_counter()
    ref = np.array(comb_loop(n[sub], c[sub], ks))
    t_loop_sub = time.perf_counter() - t0
    t_loop = t_loop_sub * args.problems / args.loop_sample
    err = np.abs(np.stack(per_k, axis=1)[sub] - ref).max()

    print(f"problems={args.problems:,}  n={args.n}  ks={ks}")
    print(f"vectorised pass_at_k, all {len(ks)} ks: {t_vec:.3f} s (best of {args.repeats})")
    print(f"pass_at_k_curve (same work + mean):  {t_curve:.3f} s")
    print(f"math.comb loop: {t_loop_sub:.2f} s on {args.loop_sample} problems; "
          f"extrapolated to {args.problems:,}: {t_loop:.1f} s")
    print(f"speed-up (extrapolated loop / vectorised): {t_loop / t_vec:,.0f}x")
    print(f"max |vectorised - math.comb| on the subsample: {err:.2e}")
    print(curve.to_string(index=False))


if __name__ == "__main__":
    main()
