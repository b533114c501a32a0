"""What the committed seed_summary.csv / results.csv files already decide about the new seed interval.

    python scripts/seed_ci_bounds.py testbed-seeds [testbed-mechanism ...]     # prints one table per preset

The new interval (mirage.study.seeds.seed_interval) needs each seed's per-problem scores for its problem
term; the committed figures/<preset>/ files hold only each seed's pass@1 (``values``, 4 decimals) and
each seed's problem-bootstrap CI of pass@1 (results.csv), so the interval cannot be recomputed exactly.
Per gain of the preset this prints:

  old     the committed median [two-level bootstrap CI]
  mean    the mean over seeds (exact, from ``values``)
  inner   the interval with the problem term set to 0: the narrowest the new interval can be (exact)
  outer   with the problem term at its upper bound (SE of the seed-mean gain <= mean per-seed SE of the
          trained pass@1 + SE of the base pass@1, SEs read off results.csv's bootstrap CIs as width / 3.92):
          the widest it can be, up to that bootstrap's noise
  approx  with the problem term estimated from the old bootstrap CI minus its seed share: an estimate only
  verdict Holm at 0.05 over the preset's family of that statistic: "survives" even at the outer bound,
          "fails" even at the inner bound (both decided), else "undetermined" (holm_est: at approx)

Nothing is written; rerunning the study's analysis stage gives the exact table.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mirage.study import seeds

pd.set_option("display.width", 250)
pd.set_option("display.max_rows", 500)
Z = 1.959964  # the bootstrap CIs of results.csv are percentile 95% CIs: SE ~ width / (2 Z)


def bounds(preset):
    root = Path(__file__).resolve().parents[1] / "figures" / preset
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
        out.append(dict(statistic=row.statistic, model=row.model, task=row.task, dataset=row.dataset,
                        condition=row.condition, regime=row.regime, S=S,
                        old=f"{row['median']:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]", mean=mean,
                        inner=f"[{mean - h_lo:+.3f}, {mean + h_lo:+.3f}]",
                        outer=f"[{mean - h_hi:+.3f}, {mean + h_hi:+.3f}]",
                        approx=f"[{mean - h_est:+.3f}, {mean + h_est:+.3f}]",
                        p_est=seeds._p_value(mean, v_seed, v_est, S, m),
                        p_min=seeds._p_value(mean, v_seed, 0.0, S, m), p_max=seeds._p_value(mean, v_seed, v_hi, S, m),
                        old_excl0=(row.ci_low > 0) or (row.ci_high < 0)))
    o = pd.DataFrame(out)
    for stat, g in o.groupby("statistic"):
        o.loc[g.index, "holm_sure"] = seeds.holm(g.p_max.to_numpy())      # survives even at the widest
        o.loc[g.index, "holm_maybe"] = seeds.holm(g.p_min.to_numpy())     # could survive at the narrowest
        o.loc[g.index, "holm_est"] = seeds.holm(g.p_est.to_numpy())
    o["verdict"] = np.where(o.holm_sure, "survives", np.where(o.holm_maybe, "undetermined", "fails"))
    return o


if len(sys.argv) < 2:
    sys.exit("usage: python scripts/seed_ci_bounds.py PRESET [PRESET ...] (folders under figures/)")
for preset in sys.argv[1:]:
    o = bounds(preset)
    print("=====", preset)
    shown = o.drop(columns=["holm_sure", "holm_maybe", "p_min", "p_max", "S"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
