"""The coin-flip bandit (mirage.mechanism) across regimes: where does clipping bias show?

    python benchmarks/bench_bandit.py            # the scan of docs/science.md (~15 min on one core)
    python benchmarks/bench_bandit.py --quick    # only the default regime, three base seeds (~1.5 min)
    python benchmarks/bench_bandit.py --smoke    # 4 seeds x 5 rollouts, one base seed (a second): runs, measures nothing

For each regime (optimizer, lr, updates per rollout, rollouts, seeds) it trains the same
bandit five ways: clipped (eps 0.2), no clipping, RLOO advantages (clipped), eps 0.1, and
clip-higher (0.2 / 0.28), and prints the median and mean final p(favoured arm) (start 0.70)
and the share of sample-updates clipped. Deterministic in the base seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from mirage.mechanism import BanditSettings, simulate_bandit, summarise

VARIANTS = {"clip 0.2": {}, "no clip": {"policy_loss": "no_clip"}, "rloo": {"estimator": "rloo"},
            "clip 0.1": {"clip_ratio_low": 0.1, "clip_ratio_high": 0.1}, "clip 0.2/0.28": {"clip_ratio_high": 0.28}}
# (optimizer, lr, epochs of 8 mini-batches, rollouts, seeds): the scan that located the regime
SCAN = [("sgd", 0.02, 4, 300, 200), ("sgd", 0.05, 4, 300, 200), ("sgd", 0.02, 16, 300, 200),
        ("adam", 0.005, 4, 300, 200), ("adam", 0.01, 4, 300, 200)]


def row(settings: BanditSettings) -> str:
    cells = []
    for name, changes in VARIANTS.items():
        r = summarise(simulate_bandit(dataclasses.replace(settings, **changes)))
        cells.append(f"{name}: {r['median']:.3f}/{r['mean']:.3f} ({100 * r['clipfrac']:.1f}%)")
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the default regime, three base seeds")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds: checks that the benchmark runs, measures nothing")
    args = parser.parse_args()
    print("median/mean final p(favoured arm), start 0.70 (share of sample-updates clipped)")
    default = BanditSettings(seeds=4, steps=5, mini_batches=2, epochs=2) if args.smoke else BanditSettings()
    for seed in (0,) if args.smoke else (0, 1, 2):
        t0 = time.time()
        print(f"default ({default.optimizer} lr {default.lr}, {default.updates_per_rollout} updates/rollout, "
              f"{default.steps} rollouts, {default.seeds} seeds), base seed {seed}: "
              f"{row(dataclasses.replace(default, seed=seed))}  [{time.time() - t0:.0f} s]", flush=True)
    if args.quick or args.smoke:
        return
    for optimizer, lr, epochs, steps, seeds in SCAN:
        t0 = time.time()
        settings = BanditSettings(optimizer=optimizer, lr=lr, epochs=epochs, steps=steps, seeds=seeds)
        print(f"{optimizer} lr {lr}, {settings.updates_per_rollout} updates/rollout, {steps} rollouts, {seeds} seeds: "
              f"{row(settings)}  [{time.time() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
