"""``mirage data``: prepare, one-shot, download, list. Heavy imports live in the handlers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mirage.data.common import DataError
from mirage.data.prepare import datasets, list_datasets, prepare
from mirage.ranges import SEED, count_flag, flag_type
from mirage.runs import write_parquet_atomic
from mirage.tasks import data_root


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda a: parser.print_help() or 2)

    p = sub.add_parser("prepare", help="convert a dataset to verl parquet under the data root",
                       description="Convert one dataset (--dataset NAME --source PATH|download) or every dataset "
                                   "found in a local mirror of the canonical sources (--all-local --local DIR; "
                                   "`mirage data list` shows where each one's source sits in it) to "
                                   "<root>/verl/<name>.parquet.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--dataset", help="dataset name (see `mirage data list`)")
    what.add_argument("--all-local", action="store_true", help="convert every dataset found under --local")
    p.add_argument("--source", help="input file or folder, or 'download' (datasets with a download source)")
    p.add_argument("--local", "--shared", dest="local",
                   help="a local mirror of the canonical sources (with --all-local)")
    p.add_argument("--root", help="data root (default $MIRAGE_DATA, else the checkout's data/)")
    p.add_argument("--skip-empty-answers", action="store_true",
                   help="DeepScaleR: drop rows with a null/empty answer (reported) instead of failing")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("one-shot", help="one example duplicated to the batch size (RQ2)",
                       description="Pick one row of a verl parquet by historical variance of its accuracy "
                                   "history (--history JSON --rank R) or at random (--random --seed S), and "
                                   "write it --batch-size times to --out.")
    p.add_argument("--source", required=True, help="verl parquet to pick from (rows keyed by extra_info.index)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--history", help="JSON {extra_info.index: [accuracy per epoch]}")
    how.add_argument("--random", action="store_true", help="pick uniformly at random with --seed")
    p.add_argument("--rank", type=count_flag(10**9), default=1,
                   help="rank by std of the history, 1 = highest (default 1)")
    p.add_argument("--seed", type=flag_type(SEED), default=0, help="seed for --random (default 0)")
    p.add_argument("--batch-size", type=count_flag(10**7), default=128,
                   help="rows to write (default 128, the paper's batch)")
    p.add_argument("--out", required=True, help="output parquet path")
    p.set_defaults(func=_one_shot)

    p = sub.add_parser("download", help="fetch every dataset with a download source and convert it",
                       description="Download the canonical raw files of every registered dataset that has a "
                                   "download source (DeepScaleR and SynLogic-Easy from the Hugging Face hub; "
                                   "KOR-Bench's pinned GitHub checkout, which also holds its prompt template) into "
                                   "<root>/raw/ and convert them (needs a network).")
    p.add_argument("--root", help="data root")
    p.add_argument("--dry-run", action="store_true", help="only print the download commands")
    p.add_argument("--skip-empty-answers", action="store_true",
                   help="DeepScaleR: drop rows with a null/empty answer (reported) instead of failing")
    p.set_defaults(func=_download)

    p = sub.add_parser("list", help="datasets under the data root, with row counts",
                       description="List the registered datasets and any other parquet under <root>/verl/.")
    p.add_argument("--root", help="data root")
    p.set_defaults(func=_list)


def _root(args) -> Path:
    return Path(args.root).resolve() if args.root else data_root()


def _prepare(args) -> int:
    root = _root(args)
    if args.dataset:
        if not args.source:
            raise ValueError("--source PATH|download is required with --dataset")
        path, conv = prepare(args.dataset, args.source, root, args.skip_empty_answers)
        print(conv.summary())
        print(f"-> {path}")
        return 0
    if not args.local:
        raise ValueError("--local DIR is required with --all-local")
    local = Path(args.local)
    if not local.is_dir():
        raise FileNotFoundError(f"--local {local}: no such folder")
    failed = []
    for name, spec in datasets().items():
        source = local / spec.local
        if not source.exists():
            print(f"{name}: skipped, {source} not found")
            continue
        try:
            path, conv = prepare(name, source, root, args.skip_empty_answers)
        except DataError as e:  # report it, go on with the other datasets, fail at the end
            print(f"{name}: FAILED: {e}")
            failed.append(name)
            continue
        print(f"{name}: {conv.summary()}\n  -> {path}")
        if spec.after_local:
            for note in spec.after_local(root, local):
                print(note)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _one_shot(args) -> int:
    from mirage.data.one_shot import load_history, one_shot_set  # why: pandas, which importing mirage.data.cli does not need

    if args.history:
        rows, example = one_shot_set(args.source, args.batch_size, history=load_history(args.history),
                                     rank=args.rank)
    else:
        rows, example = one_shot_set(args.source, args.batch_size, seed=args.seed)
    write_parquet_atomic(args.out, rows)
    print(f"example extra_info.index={example} x {args.batch_size} -> {args.out}")
    return 0


def _download(args) -> int:
    root = _root(args)
    for name, spec in datasets().items():
        if spec.fetch is None:
            continue
        if args.dry_run:
            for command in spec.fetch_commands(root):
                print(command)
            print(f"mirage data prepare --dataset {name} --source download --root {root}")
            continue
        path, conv = prepare(name, "download", root, args.skip_empty_answers)
        print(f"{conv.summary()}\n-> {path}")
    return 0


def _list(args) -> int:
    root = _root(args)
    print(f"data root: {root}")
    for d in list_datasets(root):
        rows = "missing" if d["rows"] is None else f"{d['rows']:>7} rows"
        where = d["source"] or (f"(in a local mirror: {d['local']})" if d["local"] else "")
        print(f"  {d['name']:<30} {rows:<13} {where}")
    print("generated datasets (toy-*, rg-*) are written by their task on first use; `mirage tasks` lists the tasks")
    return 0
