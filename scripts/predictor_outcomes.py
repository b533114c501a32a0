"""The alignment predictors re-asked from a preset's committed tables, no study directory needed.

    python scripts/predictor_outcomes.py testbed-predictors            # writes figures/testbed-predictors/
                                                                       # predictor_outcomes.csv (+ .png, .pdf)
    python scripts/predictor_outcomes.py testbed-seeds --no-figure     # the CSV only

Reads figures/<PRESET>/results.csv (each seed's pass@1) and predictors.csv (the base models' measures) and
writes what the analysis notebook writes beside them (``mirage.study.predictors.committed_outcomes``): per
predictor x technique x outcome (gain minus ground truth's gain; gain / ground truth's gain where ground truth
gained >= 0.02; ground truth's own gain) x stratum (each task, and the within-task pooled rho), Spearman's rho
with a 95% bootstrap CI that resamples models as clusters then seeds, its width, a reading that follows the
width, and an exact within-task permutation p. tests/test_predictors.py checks the committed CSV is this output.
"""
from __future__ import annotations

import argparse
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[1] / "figures"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="Folders: figures/<PRESET>/ of the checkout.")
    ap.add_argument("presets", nargs="+", metavar="PRESET", help="a folder under figures/ (e.g. testbed-predictors)")
    ap.add_argument("--out", metavar="DIR", help="write into DIR/<PRESET>/ instead of figures/<PRESET>/")
    ap.add_argument("--no-figure", action="store_true", help="write the CSV only")
    args = ap.parse_args(argv)
    for p in args.presets:
        for name in ("results.csv", "predictors.csv"):
            if not (FIGURES / p / name).exists():
                ap.error(f"PRESET {p!r}: no figures/{p}/{name} in the checkout")

    from mirage import plots
    from mirage.study.predictors import committed_outcomes, write_csv

    for p in args.presets:
        out = Path(args.out) / p if args.out else FIGURES / p
        table = committed_outcomes(FIGURES / p)
        print(f"wrote {write_csv(table, out / 'predictor_outcomes.csv')} ({len(table)} rows)")
        if not args.no_figure:
            plots.style()
            print("wrote", *plots.save(plots.plot_predictor_outcomes(table), "predictor_outcomes", out))


if __name__ == "__main__":
    main()
