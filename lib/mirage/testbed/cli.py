"""``mirage testbed data|models|pretrain``: the testbed's datasets and base models.

Import-cheap: torch and transformers are imported inside the handlers.
"""

from __future__ import annotations

import argparse

from mirage.models import list_models
from mirage.ranges import THREADS, count_flag, flag_type
from mirage.tasks import toy_code
from mirage.tasks.toy import DEFAULT_SIZES, TASK_NAMES, ensure_dataset
from mirage.testbed.pretrain import SHIPPED, pretrain_family


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="testbed_command", metavar="COMMAND")

    p = sub.add_parser("data", help="write the testbed's verl parquet files (train and test)",
                       description="Generate toy-math / toy-logic / toy-code train and test sets (deterministic).")
    p.add_argument("--task", choices=[*TASK_NAMES, toy_code.TASK], action="append",
                   help="task to write (repeatable; default toy-math and toy-logic)")
    p.add_argument("--root", help="data root (default: $MIRAGE_DATA or the checkout's data/)")
    p.add_argument("--n-train", type=count_flag(10**8), default=None, help="train rows (default 4000)")
    p.add_argument("--n-test", type=count_flag(10**8), default=None, help="test rows (default 200)")
    p.add_argument("--overwrite", action="store_true", help="rewrite files that already exist")
    p.set_defaults(func=_data)

    p = sub.add_parser("models", help="list the base models and their measured alignment",
                       description="List model folders (data/models, $MIRAGE_MODELS) with the "
                                   "pass@k their cards record.")
    p.add_argument("--json", action="store_true", help="print the cards as JSON")
    p.set_defaults(func=_models)

    p = sub.add_parser("pretrain", help="pretrain the base-model family (the alignment dial)",
                       description="Pretrain tiny base models from scratch on a corpus whose mix of "
                                   "correct and buggy solutions sets each task's alignment, then "
                                   "measure pass@k and write the model card.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every shipped model (the dial, the models filling its axis, the leaked variants, the format dial)")
    which.add_argument("--name", action="append", help="one model of the family (repeatable)")
    p.add_argument("--out", help="folder to write models into (default: the checkout's data/models)")
    p.add_argument("--force", action="store_true", help="retrain models whose card already exists")
    p.add_argument("--threads", type=flag_type(THREADS), default=1,
                   help="torch threads per model (default 1: fastest here)")
    p.add_argument("--jobs", type=count_flag(1024), default=1,
                   help="models trained at once, one process each (2 on a 2-core machine)")
    p.set_defaults(func=_pretrain)
    parser.set_defaults(func=lambda _args: parser.print_help() or 2)


def _data(args: argparse.Namespace) -> int:
    for task in args.task or TASK_NAMES:
        for split, n in (("train", args.n_train), ("test", args.n_test)):
            n = DEFAULT_SIZES[split] if n is None else n  # the command's defaults, not what a file records
            ensure = toy_code.ensure_dataset if task == toy_code.TASK else ensure_dataset
            path = ensure(f"{task}_{split}", root=args.root, n=n, overwrite=args.overwrite)
            print(path)
    return 0


def _models(args: argparse.Namespace) -> int:
    import json

    models = list_models()
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print("no models found; run `mirage testbed pretrain --all`")
        return 0
    print(f"{'model':<14} {'q math':>6} {'q logic':>7} {'q code':>6}   "
          f"{'math pass@1':>11} {'@16':>5}   {'logic pass@1':>12} {'@16':>5}   {'code pass@1':>11} {'@16':>5}   "
          f"{'params':>8}  path")
    for m in models:
        card = m["card"]
        q, passk = card.get("q", {}), card.get("passk", {})

        def cell(task, k):
            value = passk.get(task, {}).get(f"pass@{k}")
            return "-" if value is None else f"{value:.3f}"

        print(f"{m['name']:<14} {q.get('toy-math', '-'):>6} {q.get('toy-logic', '-'):>7} {q.get('toy-code', '-'):>6}   "
              f"{cell('toy-math', 1):>11} {cell('toy-math', 16):>5}   "
              f"{cell('toy-logic', 1):>12} {cell('toy-logic', 16):>5}   "
              f"{cell('toy-code', 1):>11} {cell('toy-code', 16):>5}   "
              f"{card.get('parameters', '-'):>8}  {m['path']}")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    names = list(SHIPPED) if args.all else args.name
    unknown = [n for n in names if n not in SHIPPED]
    if unknown:
        raise ValueError(f"--name: unknown model(s) {unknown}; the shipped models are {', '.join(SHIPPED)}")
    pretrain_family(names, out=args.out, force=args.force, threads=args.threads, jobs=args.jobs)
    return 0
