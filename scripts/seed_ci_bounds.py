"""What the committed seed_summary.csv / results.csv files already decide about the new seed interval.

    python scripts/seed_ci_bounds.py testbed-seeds [testbed-mechanism ...]     # prints one table per preset
    python scripts/seed_ci_bounds.py testbed-seeds --csv figures/testbed-seeds/seed_ci_bounds.csv
    python scripts/seed_ci_bounds.py testbed-seeds testbed-quick --csv 'figures/{preset}/seed_ci_bounds.csv'

The new interval (mirage.study.seeds.seed_interval) needs each seed's per-problem scores for its problem
term; the committed figures/<preset>/ files hold only each seed's pass@1 (``values``, 4 decimals) and
each seed's problem-bootstrap CI of pass@1 (results.csv), so the interval cannot be recomputed exactly.
Per gain of the preset this prints (and with --csv writes, one row per gain, numbers unrounded to 6
significant digits; ``old_*``, ``inner_*``, ``outer_*``, ``approx_*`` are the columns below):

  old     the committed median [two-level bootstrap CI]
  mean    the mean over seeds (exact, from ``values``)
  inner   the interval with the problem term set to 0: the narrowest the new interval can be (exact);
          with one seed (testbed-quick) it is the point itself, so it decides nothing there
  outer   with the problem term at its upper bound (SE of the seed-mean gain <= mean per-seed SE of the
          trained pass@1 + SE of the base pass@1, SEs read off results.csv's bootstrap CIs as width / 3.92):
          the widest it can be, up to that bootstrap's noise
  approx  with the problem term estimated from the old bootstrap CI minus its seed share: an estimate only
  p_min / p_max / p_est   the two-sided p of the new interval at the inner / outer / approx width
  verdict Holm at 0.05 over the preset's family of that statistic: "survives" even at the outer bound,
          "fails" even at the inner bound (both decided), else "undetermined" (holm_est: at approx)

The CSV describes the committed old-method seed_summary.csv beside it; once a study's analysis stage is
rerun (which needs its per-problem scores) its seed_summary.csv holds the exact interval and Holm verdict,
and this file is superseded.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mirage.runs.files import atomic_path
from mirage.study import seeds

pd.set_option("display.width", 250)
pd.set_option("display.max_rows", 500)
Z = 1.959964  # the bootstrap CIs of results.csv are percentile 95% CIs: SE ~ width / (2 Z)
FIGURES = Path(__file__).resolve().parents[1] / "figures"
KEYS = ["statistic", "model", "task", "dataset", "condition", "regime"]


def bounds(preset, figures=FIGURES):
    """One row per gain of ``figures/<preset>/seed_summary.csv``: the bounds and verdicts above (numbers)."""
    root = Path(figures) / preset
    s = pd.read_csv(root / "seed_summary.csv", keep_default_na=False)
    r = pd.read_csv(root / "results.csv", keep_default_na=False)
    r = r[r.k == 1]
    out = []
    for _, row in s[s.statistic.str.endswith("gain")].iterrows():
        tag = "greedy" if row.statistic.startswith("greedy") else ""
        vals = np.array([float(v) for v in str(row["values"]).split()])
        S, m = len(vals), int(row.n_problems)
        q = r[(r.model == row.model) & (r.task == row.task) & (r.dataset == row.dataset) & (r.eval_tag == tag)]
        b = q[q.condition == "base"]
        t = q[(q.condition == row.condition) & (q.regime.astype(str) == str(row.regime))]
        t = t[t.step == t.groupby("seed").step.transform("max")]
        assert len(b) == 1 and len(t) == S, (row.to_dict(), len(b), len(t))
        se_b = (b.ci_high.iloc[0] - b.ci_low.iloc[0]) / (2 * Z)
        se_t = ((t.ci_high - t.ci_low) / (2 * Z)).mean()
        v_seed = vals.var(ddof=1) / S if S > 1 else 0.0
        v_hi = (se_b + se_t) ** 2
        mean = vals.mean()
        v_boot = ((row.ci_high - row.ci_low) / (2 * Z)) ** 2
        v_est = max(0.0, v_boot - (vals.var(ddof=0) / S if S > 1 else 0.0))
        h_est = float(seeds._half_width(v_seed, v_est, S, m))
        h_lo = float(seeds._half_width(v_seed, 0.0, S, m))
        h_hi = float(seeds._half_width(v_seed, v_hi, S, m))
        out.append(dict({k: row[k] for k in KEYS}, seeds=S,
                        old_median=row["median"], old_ci_low=row.ci_low, old_ci_high=row.ci_high, mean=mean,
                        inner_low=mean - h_lo, inner_high=mean + h_lo, outer_low=mean - h_hi,
                        outer_high=mean + h_hi, approx_low=mean - h_est, approx_high=mean + h_est,
                        p_min=seeds._p_value(mean, v_seed, 0.0, S, m), p_max=seeds._p_value(mean, v_seed, v_hi, S, m),
                        p_est=seeds._p_value(mean, v_seed, v_est, S, m),
                        old_excl0=bool((row.ci_low > 0) or (row.ci_high < 0))))
    o = pd.DataFrame(out)
    for _, g in o.groupby("statistic"):
        o.loc[g.index, "holm_sure"] = seeds.holm(g.p_max.to_numpy())      # survives even at the widest
        o.loc[g.index, "holm_maybe"] = seeds.holm(g.p_min.to_numpy())     # could survive at the narrowest
        o.loc[g.index, "holm_est"] = seeds.holm(g.p_est.to_numpy())
    o["verdict"] = np.where(o.holm_sure, "survives", np.where(o.holm_maybe, "undetermined", "fails"))
    return o.drop(columns=["holm_sure", "holm_maybe"]).astype({"holm_est": bool})


def shown(o):
    """The printed table: intervals as text, 3 decimals."""
    iv = lambda lo, hi: [f"[{a:+.3f}, {b:+.3f}]" for a, b in zip(o[lo], o[hi])]  # noqa: E731
    return pd.DataFrame(dict({k: o[k] for k in KEYS},
                             old=[f"{m:+.3f} [{a:+.3f}, {b:+.3f}]" for m, a, b in zip(o.old_median, o.old_ci_low, o.old_ci_high)],
                             mean=o["mean"], inner=iv("inner_low", "inner_high"), outer=iv("outer_low", "outer_high"),
                             approx=iv("approx_low", "approx_high"), p_est=o.p_est, old_excl0=o.old_excl0,
                             holm_est=o.holm_est, verdict=o.verdict))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="Folders: figures/<PRESET>/ of the checkout.")
    ap.add_argument("presets", nargs="+", metavar="PRESET", help="a folder under figures/ (e.g. testbed-seeds)")
    ap.add_argument("--csv", metavar="PATH", help="also write each preset's table as CSV to PATH "
                    "('{preset}' in PATH is replaced by the preset; required with several presets)")
    a = ap.parse_args(argv)
    for p in a.presets:  # every input checked before any work
        for name in ("seed_summary.csv", "results.csv"):
            if not (FIGURES / p / name).is_file():
                ap.error(f"PRESET {p!r}: no figures/{p}/{name} in the checkout")
    if a.csv and len(set(a.presets)) > 1 and "{preset}" not in a.csv:
        ap.error("--csv: several presets need '{preset}' in PATH (one file each)")
    for p in a.presets:
        o = bounds(p)
        print("=====", p)
        print(shown(o).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        if a.csv:
            path = Path(a.csv.replace("{preset}", p))
            with atomic_path(path) as tmp:
                o.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
            print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
