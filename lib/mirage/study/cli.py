"""``mirage study``: run (or dry-run, or list) a preset; the subcommand is configured by ``configure_cli``."""

from __future__ import annotations

import argparse

from mirage.study.plan import STAGES


def configure_cli(parser: argparse.ArgumentParser) -> None:
    from mirage.study.preset import list_presets

    parser.add_argument("--preset", default="testbed-quick",
                        help=f"a shipped preset ({', '.join(list_presets())}) or a preset YAML/JSON file "
                             "(default testbed-quick; docs/study.md describes the keys)")
    parser.add_argument("--out", default=None, help="study directory (default study/<preset> in the current directory)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="steps run at once, each with one torch thread (default: the preset's)")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=V[,KEY=V]",
                        help="restrict the cells: model=..,task=..,condition=a|b,seed=.. (repeatable)")
    parser.add_argument("--stage", choices=STAGES, default="all",
                        help="all (default); or one stage, for one job per step on a cluster: alignment, "
                             "cells (with --only: one cell), analysis (results tables + figures)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the steps and the commands each runs (verl + eval commands for the paper preset)")
    parser.add_argument("--force-analysis", action="store_true",
                        help="rebuild the results tables and rerun the analysis notebook even if nothing changed")
    parser.add_argument("--figures", default=None,
                        help="figures folder (default figures/<preset>; with --out: <out>/figures)")
    parser.add_argument("--list", action="store_true", help="list the shipped presets and exit")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from mirage.study.plan import parse_only
    from mirage.study.preset import list_presets, load_preset
    from mirage.study.runner import dry_run, run_study

    if args.list:
        for name in list_presets():
            p = load_preset(name)
            print(f"{p.name:<17} {len(p.cells()):>4} cells  {p.backend:<5}  {p.description}")
        return 0
    preset = load_preset(args.preset)
    only = parse_only(args.only)
    if args.dry_run:
        dry_run(preset, args.out, only, args.figures)
        return 0
    return run_study(preset, args.out, jobs=args.jobs, only=only, stage=args.stage,
                     force_analysis=args.force_analysis, figures_dir=args.figures)
