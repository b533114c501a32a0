"""Coverage of the seed summary's 95% interval (mirage.study.seeds.simulate_coverage): the numbers of
docs/science.md, section 2.

    python benchmarks/bench_seed_intervals.py            # 3 scenarios x 2 x 2 settings x 3 methods (~1-2 min)

Per scenario (the testbed-like default, fitted to dial-60 x toy-math's base pass@k curve; an aligned
pair like dial-90 x toy-math; a weak pair like dial-10 x toy-math with a larger effect), 3 and 5 seeds,
seed-to-seed SD 0.02 and 0.05: the coverage and mean width of the interval the tables use ("t": seed
and problem terms, each with its own t quantile), of a t over the seed means alone ("t_seeds") and of
the two-level percentile bootstrap it replaced ("bootstrap", fewer cells: one bootstrap per cell).
Deterministic (seed 11).
"""

from __future__ import annotations

import time

from mirage.study.seeds import simulate_coverage

SCENARIOS = {
    "default (dial-60 x toy-math-like)": {},
    "aligned (dial-90 x toy-math-like)": dict(base_logit_mean=2.45, base_logit_sd=1.55),
    "weak (dial-10 x toy-math-like), effect +1 logit": dict(base_logit_mean=-3.9, base_logit_sd=1.15, effect=1.0),
}
METHODS = (("t", 2000), ("t_seeds", 2000), ("bootstrap", 400))


def main() -> None:
    print(f"{'scenario':50s} {'S':>2s} {'SD':>5s} {'truth':>7s}  " + "  ".join(f"{m:>18s}" for m, _ in METHODS))
    for name, scenario in SCENARIOS.items():
        for n_seeds in (3, 5):
            for seed_sd in (0.02, 0.05):
                start = time.time()
                cells = [simulate_coverage(n_seeds, seed_sd, method=m, reps=reps, seed=11, **scenario)
                         for m, reps in METHODS]
                print(f"{name:50s} {n_seeds:2d} {seed_sd:5.2f} {cells[0]['truth']:+7.3f}  "
                      + "  ".join(f"{c['coverage']:.3f} (w {c['mean_width']:.3f})".rjust(18) for c in cells)
                      + f"   {time.time() - start:.0f} s", flush=True)
    print("coverage (mean width) over cells; t: 2000 cells, t_seeds: 2000, bootstrap: 400 (SE ~0.011 at 0.95)")


if __name__ == "__main__":
    main()
