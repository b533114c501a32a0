"""Erosion vs habit (docs/science.md section 6, issue 18 item 4a) as committed tables.

    python scripts/erosion_probe.py --study study/testbed-mechanism        # probes, then the two CSVs
    python scripts/erosion_probe.py --study DIR --out figures/testbed-mechanism --n 8 --temperature 1.0   # sampled

For the base model and every finished cell of the study whose (condition, regime) is in ``--cells``
(default: random and ground_truth under u2 and u16, the regimes section 6's prediction names), on
``--model`` x ``--task``: the forced-procedure probe (``mirage.probe.forced``) of the final checkpoint on
every test problem, greedy by default (the probe's default and docs/evaluation.md's base-model table;
``--n 8 --temperature 1`` samples as evaluation does, ~8x the cost), its folder under
``<study>/probe-forced/`` (resumable). Writes

* ``erosion.csv``: one row per probed model (condition ``base`` for the base model; regime, seed,
  checkpoint step): unforced and forced accuracy, the buggy and neither shares of the forced answers;
* ``erosion_summary.csv``: per (condition, regime) and statistic (``forced_acc`` change, ``unforced_acc``
  change vs the base model), the mean over seeds with section 2's interval over seeds and problems
  (``mirage.study.seeds.seed_interval`` of the seeds x problems gains), its p, Holm over the statistic's
  family (the rows of that statistic), and the pre-registered reading: ``erosion`` (forced accuracy
  more than 0.10 below the base model's, interval excluding 0), ``derailment`` (forced within 0.05 of
  the base model's, interval inside +-0.05, while unforced accuracy falls with its interval below 0),
  else ``neither``.

Deterministic: the probe's sampling is seeded per prompt and the summary is arithmetic on its rows, so a
rerun over the same study writes the same bytes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_CELLS = ("random:u2", "random:u16", "ground_truth:u2", "ground_truth:u16")
STATS = ("forced_acc", "unforced_acc")
EROSION_DROP, DERAIL_BAND = 0.10, 0.05  # section 6's words


def final_checkpoint(run_dir: Path) -> tuple[int, Path]:
    """The highest ``global_step_N/actor/huggingface`` of a cell's run folder."""
    steps = sorted(int(p.name.split("_")[-1]) for p in (run_dir / "checkpoints").glob("global_step_*")
                   if (p / "actor" / "huggingface").is_dir())
    if not steps:
        raise FileNotFoundError(f"{run_dir}: no checkpoint with actor/huggingface")
    return steps[-1], run_dir / "checkpoints" / f"global_step_{steps[-1]}" / "actor" / "huggingface"


def cell_runs(study: Path, model: str, task: str, cells: list[tuple[str, str]]) -> list[dict]:
    """Every finished cell's run folder for the (condition, regime) pairs, in a fixed order."""
    out = []
    for condition, regime in cells:
        base = study / "runs" / model / task / condition / regime
        for seed_dir in sorted(base.glob("seed*"), key=lambda p: int(p.name[4:])):
            if not (seed_dir / "checkpoints").is_dir():
                continue
            step, path = final_checkpoint(seed_dir)
            out.append({"condition": condition, "regime": regime, "seed": int(seed_dir.name[4:]), "step": step,
                        "path": path})
    return out


def probe(model_path: str, task: str, out_dir: Path, n: int, temperature: float) -> pd.DataFrame:
    """Per-problem means (unforced_acc, forced_acc, forced_buggy, forced_neither) of one model's probe."""
    from mirage.probe.forced import probe_forced, read_rows

    probe_forced(model_path, task, n=n, temperature=temperature, out_dir=out_dir, progress=False)
    rows = read_rows(out_dir)
    rows = rows.assign(forced_buggy=(rows["forced_procedure"] == "buggy").astype(float),
                       forced_neither=(rows["forced_procedure"] == "neither").astype(float))
    return rows.groupby(["dataset", "problem_id"], sort=True)[
        ["unforced_acc", "forced_acc", "forced_buggy", "forced_neither"]].mean()


def reading(forced: dict, unforced: dict) -> str:
    if forced["mean"] < -EROSION_DROP and forced["ci_high"] < 0:
        return "erosion"
    if (-DERAIL_BAND <= forced["ci_low"] and forced["ci_high"] <= DERAIL_BAND and unforced["ci_high"] < 0):
        return "derailment"
    return "neither"


def tables(base: pd.DataFrame, probed: list[tuple[dict, pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    from mirage.study.seeds import holm, seed_interval

    by_model = [{"condition": "base", "regime": "", "seed": -1, "step": 0,
                 **{k: float(base[k].mean()) for k in base.columns}}]
    for cell, per in probed:
        if not per.index.equals(base.index):
            raise ValueError(f"{cell['path']}: probed other problems than the base model")
        by_model.append({k: cell[k] for k in ("condition", "regime", "seed", "step")}
                        | {k: float(per[k].mean()) for k in per.columns})
    summary = []
    groups: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for cell, per in probed:
        groups.setdefault((cell["condition"], cell["regime"]), []).append(per)
    for (condition, regime), pers in groups.items():
        iv = {s: seed_interval(np.stack([(p[s] - base[s]).to_numpy() for p in pers])) for s in STATS}
        read = reading(iv["forced_acc"], iv["unforced_acc"]) if len(pers) > 1 else ""
        for s in STATS:
            summary.append({"condition": condition, "regime": regime, "statistic": f"{s} change", "seeds": len(pers),
                            "problems": len(base), "base": float(base[s].mean()), **iv[s], "reading": read})
    summary = pd.DataFrame(summary)
    summary["holm"] = False
    for s, rows in summary.groupby("statistic").groups.items():
        summary.loc[rows, "holm"] = holm(summary.loc[rows, "p"].to_numpy())
    return pd.DataFrame(by_model), summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", required=True, help="a study folder holding the cells (testbed-mechanism's layout)")
    ap.add_argument("--model", default="dial-90")
    ap.add_argument("--task", default="toy-math")
    ap.add_argument("--cells", default=",".join(DEFAULT_CELLS), help="condition:regime pairs, comma-separated")
    ap.add_argument("--n", type=int, default=1, help="samples per problem (default 1: greedy)")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--out", default="figures/testbed-mechanism", help="folder for erosion.csv, erosion_summary.csv")
    args = ap.parse_args(argv)
    study = Path(args.study)
    if not (study / "runs").is_dir():
        ap.error(f"--study {study}: no runs/ folder (not a study folder)")
    try:
        cells = [tuple(c.split(":")) for c in args.cells.split(",")]
        if any(len(c) != 2 or not all(c) for c in cells):
            raise ValueError
    except ValueError:
        ap.error(f"--cells {args.cells!r}: want condition:regime[,condition:regime...]")
    runs = cell_runs(study, args.model, args.task, cells)
    if not runs:
        ap.error(f"--study {study}: no finished cell of {args.model} x {args.task} for --cells {args.cells}")
    root = study / "probe-forced" / args.model / args.task
    base = probe(args.model, args.task, root / "base", args.n, args.temperature)
    probed = []
    for cell in runs:
        print(f"[erosion] {cell['condition']}/{cell['regime']}/seed{cell['seed']} step {cell['step']}", file=sys.stderr)
        out_dir = root / cell["condition"] / cell["regime"] / f"seed{cell['seed']}"
        probed.append((cell, probe(str(cell["path"]), args.task, out_dir, args.n, args.temperature)))
    by_model, summary = tables(base, probed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    by_model.to_csv(out / "erosion.csv", index=False, float_format="%.6g")
    summary.to_csv(out / "erosion_summary.csv", index=False, float_format="%.6g")
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
