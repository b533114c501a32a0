"""The coin-flip bandit of docs/science.md section 4 as a committed table.

    python scripts/bandit_table.py                       # writes figures/testbed-mechanism/bandit.csv (~40 s CPU)
    python scripts/bandit_table.py --csv PATH            # writes PATH instead

Trains ``mirage.mechanism.simulate_bandit`` at its defaults (p(favoured) 0.7, a fair coin, SGD lr 0.04,
8 mini-batches x 8 epochs = 64 updates per rollout, 100 rollouts, 400 seeds, base seed 0) five ways, the
variants ``tests/test_clipping_bias.py`` asserts orderings on: clipped eps 0.2/0.2, eps 0.1/0.1, clip-higher
0.2/0.28, the same loss unclipped, on-policy RLOO (one update per rollout). One row per variant: the settings
that vary, then ``mirage.mechanism.summarise`` of the final p(favoured): start, median, mean, quartiles,
median shift, mean share of sample-updates clipped (6 significant digits). Deterministic: a rerun writes the
same bytes (tests/test_readme_numbers.py checks it; the docs quote this file).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[1] / "figures"
DEFAULT = FIGURES / "testbed-mechanism" / "bandit.csv"
# variant -> BanditSettings overrides (tests/test_clipping_bias.py runs the same five)
VARIANTS = {"clip": {}, "eps_0.1": {"clip_ratio_low": 0.1, "clip_ratio_high": 0.1},
            "clip_higher": {"clip_ratio_high": 0.28}, "no_clip": {"policy_loss": "no_clip"},
            "rloo_on_policy": {"estimator": "rloo", "mini_batches": 1, "epochs": 1}}
SETTINGS = ["policy_loss", "estimator", "clip_ratio_low", "clip_ratio_high", "updates_per_rollout", "optimizer",
            "lr", "p_favoured", "steps", "seeds", "seed"]
SUMMARY = ["start", "median", "mean", "q25", "q75", "median_shift", "clipfrac"]


def rows():
    from mirage.mechanism import BanditSettings, simulate_bandit, summarise

    out = []
    for name, changes in VARIANTS.items():
        s = dataclasses.replace(BanditSettings(), **changes)
        r = summarise(simulate_bandit(s))
        out.append({"variant": name, **{k: getattr(s, k) for k in SETTINGS}, **{k: r[k] for k in SUMMARY}})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", metavar="PATH", default=str(DEFAULT), help="where to write (default: %(default)s)")
    a = ap.parse_args(argv)
    path = Path(a.csv)
    if not path.parent.is_dir():  # checked before the ~40 s of work
        ap.error(f"--csv: no folder {path.parent}")

    from mirage.runs.files import atomic_path

    table = rows()
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]), lineterminator="\n")
        w.writeheader()
        for r in table:
            w.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})
    for r in table:
        print(f"{r['variant']:>15}: median {r['median']:.3f} mean {r['mean']:.3f} (start {r['start']:.2f}), "
              f"clipped {100 * r['clipfrac']:.2f}%")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
