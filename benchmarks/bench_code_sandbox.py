"""Throughput and overhead of the code checker's sandbox (mirage.rewards.sandbox), printed, never asserted.

    python benchmarks/bench_code_sandbox.py [--n 40] [--parallel 2] [--smoke]

Workloads, each a batch of real-style problems (5 tests each, as HumanEval / LiveCodeBench rows
have a handful) scored through the code checker (sandbox + comparison), ``--parallel`` at a time:
* correct stdin/stdout programs (read numbers, print their sum);
* correct function-call programs (LeetCode-style two-sum);
* programs that hit the time limit (an endless loop; 1 s CPU per test, the first timeout ends the run).
Then toy-code (the testbed's code task) as a checkpoint's evaluation scores it: 16 samples per
problem, a mix of the correct program, the buggy one and a miscopied one (the sampled texts of a
tiny model repeat), through ``compute_score``; the verdict cache runs each distinct (program, tests)
once. Then the sandbox's own cost per program: one trivial one-test program, run one at a time, through
the sandbox and as a plain ``python -I -S -c`` subprocess (no isolation, same interpreter start);
the difference is the sandbox's overhead (namespaces, new root, fork per test, the protocol).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from mirage.rewards import sandbox
from mirage.rewards.checkers import code

STDIN_PROGRAM = "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n"
CALL_PROGRAM = """
class Solution:
    def twoSum(self, nums, target):
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
"""
LOOP_PROGRAM = "while True:\n    pass\n"


def stdin_tests(k: int) -> code.Tests:
    inputs = [" ".join(str(j) for j in range(i + k, i + k + 20)) + "\n" for i in range(5)]
    return code.Tests("stdio", inputs, [f"{sum(map(int, s.split()))}\n" for s in inputs])


def call_tests(k: int) -> code.Tests:
    inputs = [[[100 + k, 3 + i, 11, 7 * i + 200], 14 + i] for i in range(5)]
    return code.Tests("call", inputs, [[1, 2]] * 5, "Solution.twoSum")


def batch(programs, tests, limits, parallel):
    def one(args):
        program, t = args
        return code.score_program(program, t, limits)

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(one, zip(programs, tests)))
    return results, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="problems per workload")
    parser.add_argument("--parallel", type=int, default=2, help="sandboxes at once")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a few seconds")
    args = parser.parse_args()
    n, n_loop, repeats = (args.n, max(2, args.n // 10), 30) if not args.smoke else (4, 2, 5)
    if args.n < 1 or args.parallel < 1:
        parser.error("--n and --parallel must be >= 1")

    probe = sandbox.probe()
    print(f"isolation: {probe.isolation or 'unavailable'}" + (f" ({probe.error})" if probe.error else ""))
    if probe.error:
        return

    limits = sandbox.Limits(cpu_s=2.0)
    for name, program, make in (("correct stdin/stdout", STDIN_PROGRAM, stdin_tests),
                                ("correct function-call", CALL_PROGRAM, call_tests)):
        results, seconds = batch([program] * n, [make(k) for k in range(n)], limits, args.parallel)
        passed = sum(acc for acc, _, _ in results)
        failures = sorted({details["reason"] for acc, details, _ in results if not acc})
        print(f"{name:24s} {n} problems x 5 tests, {args.parallel} at a time: {n / seconds:6.1f} verdicts/s "
              f"({seconds:.2f} s; {passed}/{n} passed{'; ' + ', '.join(failures) if failures else ''})")
    loop_limits = sandbox.Limits(cpu_s=1.0)
    results, seconds = batch([LOOP_PROGRAM] * n_loop, [stdin_tests(k) for k in range(n_loop)], loop_limits,
                             args.parallel)
    reasons = {details["reason"].split(" (")[0] for _, details, _ in results}
    print(f"{'time limit (1 s CPU)':24s} {n_loop} problems, {args.parallel} at a time: "
          f"{n_loop / seconds:6.2f} verdicts/s "
          f"({seconds:.2f} s; reasons: {', '.join(sorted(reasons))})")

    toy_code(n, args.parallel)

    # the sandbox's own cost: sandboxed vs plain, one trivial program at a time, interleaved
    trivial = "print(input())\n"
    wall = {"sandboxed": [], "plain": []}
    cpu = {"sandboxed": [], "plain": []}

    def timed(kind, fn):
        c0, t0 = children_cpu(), time.perf_counter()
        fn()
        wall[kind].append(time.perf_counter() - t0)
        cpu[kind].append(children_cpu() - c0)

    def sandboxed():
        r = sandbox.run(trivial, ["hi"], "stdio")
        assert r.tests[0].stdout == "hi\n", r

    def plain():
        subprocess.run([sys.executable, "-I", "-S", "-c", trivial], input=b"hi", capture_output=True, env={},
                       check=True)

    for _ in range(repeats):
        timed("sandboxed", sandboxed)
        timed("plain", plain)
    w = {k: 1000 * statistics.median(v) for k, v in wall.items()}
    c = {k: 1000 * statistics.median(v) for k, v in cpu.items()}
    print(f"one trivial program, median of {repeats} (load average {os.getloadavg()[0]:.1f}): "
          f"sandboxed {w['sandboxed']:.1f} ms wall / {c['sandboxed']:.1f} ms CPU, plain subprocess "
          f"{w['plain']:.1f} ms wall / {c['plain']:.1f} ms CPU")
    print(f"sandbox overhead per program: {w['sandboxed'] - w['plain']:.1f} ms wall, "
          f"{c['sandboxed'] - c['plain']:.1f} ms CPU")


def toy_code(n: int, parallel: int, samples: int = 16) -> None:
    """A checkpoint's toy-code evaluation: ``samples`` per problem, each the correct program (40%), the buggy
    one (50%) or a miscopied one (10%), seeded; the cache cleared first."""
    import random

    from mirage.rewards import compute_score
    from mirage.tasks import toy_code as C

    rng = random.Random(0)
    jobs = []
    for i, problem in enumerate(C.generate("test", n, seed=1)):
        row = C.to_row(problem, i, "test")
        for _ in range(samples):
            u = rng.random()
            program = (problem.answer if u < 0.4 else problem.buggy_answer if u < 0.9
                       else problem.answer.replace("sum(", "sum(1+"))
            jobs.append((row, f"<think>x</think> <answer>{program}</answer>"))
    code.clear_cache()

    def one(job):
        row, text = job
        return compute_score(row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"])

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(one, jobs))
    seconds = time.perf_counter() - start
    runs = code.CACHE_STATS["runs"]
    print(f"{'toy-code evaluation':24s} {n} problems x {samples} samples, {parallel} at a time: "
          f"{len(jobs) / seconds:6.1f} verdicts/s ({seconds:.2f} s; {runs} sandbox runs for {len(jobs)} verdicts, "
          f"{runs / seconds:.1f} runs/s; pass rate {sum(r['acc'] for r in results) / len(jobs):.2f})")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


if __name__ == "__main__":
    main()
