"""``mirage study``: run (or dry-run, or list) a preset; the subcommand is configured by ``configure_cli``."""

from __future__ import annotations

import argparse

from mirage.ranges import flag_type
from mirage.study import executors
from mirage.study.plan import STAGES, parse_only
from mirage.study.preset import PRESET_RANGES, list_presets, load_preset
from mirage.study.runner import dry_run, run_study, verify_study


def configure_cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="testbed-quick",
                        help=f"a shipped preset ({', '.join(list_presets())}) or a preset YAML/JSON file "
                             "(default testbed-quick; docs/study.md describes the keys)")
    parser.add_argument("--out", default=None, help="study directory (default study/<preset> in the current directory)")
    parser.add_argument("--jobs", type=flag_type(PRESET_RANGES["jobs"]), default=None,
                        help=f"steps run at once, each with one torch thread, {PRESET_RANGES['jobs'].interval()} "
                             "(default: the preset's)")
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
                        help="figures and tables folder (default <study dir>/figures; name figures/<preset> to "
                             "publish over the checkout's committed ones)")
    parser.add_argument("--fresh-kernels", action="store_true",
                        help="run every cell's notebook in a fresh papermill process and kernel (the default keeps one "
                             "warm kernel per job slot for the cells: the same results, imports paid once)")
    parser.add_argument("--list", action="store_true", help="list the shipped presets and exit")
    parser.add_argument("--executor", choices=["inline", "local", "slurm"], default="inline",
                        help="inline (default): run the steps here as processes; slurm: submit every step as a SLURM "
                             "job with dependencies and the preset's resources (submitit), resubmitting only what is "
                             "neither finished nor queued; local: the same jobs through submitit's local executor")
    parser.add_argument("--slurm", action="append", default=[], metavar="[KIND.]KEY=VALUE",
                        help="an sbatch setting for every job, or for one kind (alignment, cell, analysis), over the "
                             "preset's resources: e.g. --slurm partition=gpu --slurm cell.timeout_min=2880")
    parser.add_argument("--verify", action="store_true",
                        help="read back every finished step's outputs (files present and readable, samples and "
                             "problem counts as the settings say, results tables consistent) and print every "
                             "inconsistency; changes nothing (exit 1 if any)")
    parser.add_argument("--status", action="store_true",
                        help="show each step: finished, failed, its job id and SLURM state, or not submitted")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.list:
        for name in list_presets():
            p = load_preset(name)
            print(f"{p.name:<17} {len(p.cells()):>4} cells  {p.backend:<5}  {p.description}")
        return 0
    preset = load_preset(args.preset)
    only = parse_only(args.only)
    if args.verify:
        if args.stage != "all" or args.dry_run or args.force_analysis or args.status or args.executor != "inline":
            raise ValueError("--verify checks a study folder and changes nothing: no --stage, --dry-run, "
                             "--force-analysis, --status or --executor with it")
        return verify_study(preset, args.out, only, args.figures)
    if args.status or args.executor != "inline":
        if args.status:
            executors.study_status(preset, args.out, only, args.figures)
            return 0
        if args.stage != "all" or args.dry_run or args.force_analysis:
            raise ValueError("--executor local|slurm submits the whole plan: no --stage, --dry-run or "
                             "--force-analysis with it (use --only to restrict the cells)")
        return executors.submit_study(preset, args.out, args.executor, only, args.slurm, args.jobs, args.figures)
    if args.slurm:
        raise ValueError("--slurm applies to --executor slurm")
    if args.dry_run:
        dry_run(preset, args.out, only, args.figures)
        return 0
    return run_study(preset, args.out, jobs=args.jobs, only=only, stage=args.stage,
                     force_analysis=args.force_analysis, figures_dir=args.figures, warm=not args.fresh_kernels)
