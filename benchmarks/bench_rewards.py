"""Scoring throughput of mirage.rewards (responses/s), printed, never asserted.

    python benchmarks/bench_rewards.py [--data DIR] [--processes 2] [--repeat 4]
        [--korbench-repo PATH]   # also check agreement with KOR-Bench's 77,500 published verdicts
    python benchmarks/bench_rewards.py --smoke   # 8 MATH500 rows, 2 KOR-Bench rows per category, or
                                                 # 3 hand-written math rows without --data: runs, measures nothing

Workloads, built from real answers:
* math fast path:  "<answer>{gold}</answer>" (decided without math-verify);
* math-verify:     "<answer>x = {gold}</answer>" (equivalent, needs the worker), each
                   item once (cold), then repeated (answers the worker has cached);
* KOR-Bench:       every row's gold and a perturbed answer, all five categories.
Each runs single-process and in a spawn pool of --processes (pool figures include
starting the processes and their math-verify workers).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from pathlib import Path

from mirage.rewards import compute_score, compute_scores
from mirage.rewards.checkers import korbench
from mirage.rewards.worker import shutdown


def jsonl(path):
    return [json.loads(line) for line in open(path)]


def wrap(answer):
    return f"<think>working it out</think> <answer>{answer}</answer>"


SMOKE_MATH = [{"answer": "3"}, {"answer": "\\frac{1}{2}"}, {"answer": "x^2"}]


def workloads(data: Path, repeat: int, limit: int | None = None) -> dict[str, list[tuple]]:
    """``limit``: the first rows of each file only (--smoke)."""
    if limit and not (data / "math500" / "test.jsonl").exists():
        math500, categories = SMOKE_MATH, []
    else:
        math500, categories = jsonl(data / "math500" / "test.jsonl")[:limit], korbench.CATEGORIES
    kor = []
    for category in categories:
        for row in jsonl(data / "korbench" / category / "sample.jsonl")[:limit and 2]:
            info = {"rule_id": row["rule_id"], "idx": row["idx"]}
            for answer in (row["answer"], row["answer"][:-2] + "Zq]]"):
                kor.append((f"korbench/{category}", wrap(answer), row["answer"], info))
    return {
        "math fast path": [("math500", wrap(r["answer"]), r["answer"], None) for r in math500] * repeat,
        "math-verify path": [("math500", wrap(f"x = {r['answer']}"), r["answer"], None) for r in math500],
        "KOR-Bench": kor * repeat,
    }


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def check_published_verdicts(repo: Path):
    rules = {}
    for category in korbench.CATEGORIES:
        for row in jsonl(repo / "data" / category / "sample.jsonl"):
            rules[(category, row["idx"])] = row["rule_id"]
    records = []
    for path in sorted(glob.glob(str(repo / "eval" / "results" / "0923_main" / "*.json"))):
        category = os.path.basename(path).split("_")[-2]
        records += [(category, rec) for rec in json.load(open(path))]

    def run():
        agree = 0
        for category, rec in records:
            ok, _ = korbench.is_correct(category, str(rec["response"]), rec["answer"], rules[(category, rec["idx"])],
                                        rec["idx"])
            agree += ok == (rec["is_correct"] in (True, "True"))
        return agree

    agree, seconds = timed(run)
    print(f"KOR-Bench published verdicts: {agree}/{len(records)} reproduced "
          f"({len(records) / seconds:,.0f} verdicts/s, scorer only, no compute_score wrapper)")


def main():
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=here.parent / "shared" / "data")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=4, help="repeat each workload this many times")
    ap.add_argument("--korbench-repo", type=Path, help="a KOR-Bench checkout (eval/results/0923_main, data/)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes, a few seconds: checks that the benchmark runs, measures nothing")
    args = ap.parse_args()
    if args.smoke:
        args.repeat = 1

    _, cold = timed(lambda: compute_score("math500", wrap("x = 1"), "1"))
    print(f"first math-verify call (starts the worker): {cold:.2f} s")
    print(f"{'workload':<18} {'n':>6} {'1 process':>14} {f'{args.processes} processes':>14}   acc")
    for name, items in workloads(args.data, args.repeat, limit=8 if args.smoke else None).items():
        if not items:
            print(f"{name:<18} (no data in {args.data})")
            continue
        serial, t1 = timed(lambda: compute_scores(items))
        pooled, tp = timed(lambda: compute_scores(items, processes=args.processes))
        assert serial == pooled
        acc = sum(r["acc"] for r in serial) / len(serial)
        print(f"{name:<18} {len(items):>6} {len(items) / t1:>10,.0f}/s {len(items) / tp:>10,.0f}/s   {acc:.3f}")
        if name == "math-verify path":
            items = items * args.repeat
            _, t1 = timed(lambda: compute_scores(items))
            print(f"{'  (cached repeats)':<18} {len(items):>6} {len(items) / t1:>10,.0f}/s")
    if args.korbench_repo:
        check_published_verdicts(args.korbench_repo)
    shutdown()


if __name__ == "__main__":
    main()
