"""The ``mirage`` command. Subcommands map one to one onto library functions.

Each subcommand lives with the code it drives and is registered here by name;
its module must be cheap to import (heavy imports happen inside the handler), so
``mirage --help`` and ``mirage <cmd> --help`` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> ("module:function that configures the subparser", one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "conditions": ("mirage.cli:configure_conditions", "list the study's conditions and recipes"),
    "data": ("mirage.data.cli:configure", "prepare datasets in verl's parquet schema"),
    "testbed": ("mirage.testbed.cli:configure", "the CPU testbed: tasks and tiny base models"),
    "train": ("mirage.train.cli:configure", "RL-train a model on a task under one condition"),
    "eval": ("mirage.evaluate:configure_eval_cli", "sample N responses per problem; pass@k curves"),
    "align": ("mirage.evaluate:configure_align_cli", "model-task alignment table (base pass@k)"),
    "study": ("mirage.study:configure_cli", "run a preset grid of conditions through papermill"),
}


def configure_conditions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=_list_conditions)


def _list_conditions(args: argparse.Namespace) -> int:
    import json

    from mirage.conditions import CONDITIONS

    from mirage.recipes import RECIPES

    if args.json:
        print(json.dumps({"conditions": {k: c.to_dict() for k, c in CONDITIONS.items()},
                          "recipes": {k: r.to_dict() for k, r in RECIPES.items()}}, indent=2))
        return 0
    print(f"{'condition':<16} {'rq':<4} {'reward':<14} {'estimator':<12} {'data':<18} summary")
    for c in CONDITIONS.values():
        print(f"{c.name:<16} {c.rq:<4} {c.reward:<14} {c.estimator:<12} {c.data:<18} {c.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mirage", description=__doc__.splitlines()[0])
    from mirage import __version__

    parser.add_argument("--version", action="version", version=f"mirage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (target, help_text) in SUBCOMMANDS.items():
        module_name, func_name = target.split(":")
        p = sub.add_parser(name, help=help_text, description=help_text)
        getattr(importlib.import_module(module_name), func_name)(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
