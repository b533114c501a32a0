"""The ``mirage`` command. Subcommands map one to one onto library functions.

Each subcommand lives with the code it drives and is registered here by name;
its module must be cheap to import (heavy imports happen inside the handler), so
``mirage --help`` and ``mirage <cmd> --help`` stay fast.

A user error (an unknown name, a bad value, a missing file, a folder another process
is writing) is one line on stderr and exit status 2; ``--debug`` (or ``MIRAGE_DEBUG=1``)
shows the traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from mirage import __version__
from mirage.conditions import CONDITIONS
from mirage.data.common import DataError
from mirage.objectives import ESTIMATORS
from mirage.registry import RegistryError
from mirage.rewards import REWARDS
from mirage.runs.files import DiskFull, FolderBusy, disk_full, is_disk_full
from mirage.tasks import load_tasks
from mirage.tasks.reasoning_gym import generators

# name -> ("module:function that configures the subparser", one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "conditions": ("mirage.cli:configure_conditions", "list the study's conditions, rewards and estimators"),
    "tasks": ("mirage.cli:configure_tasks", "list the tasks, their datasets and checkers"),
    "data": ("mirage.data.cli:configure", "prepare datasets in verl's parquet schema"),
    "testbed": ("mirage.testbed.cli:configure", "the CPU testbed: tasks and tiny base models"),
    "train": ("mirage.train.cli:configure", "RL-train a model on a task under one condition"),
    "eval": ("mirage.evaluate.cli:configure_eval_cli", "sample N responses per problem; pass@k curves"),
    "align": ("mirage.evaluate.cli:configure_align_cli", "model-task alignment table (base pass@k)"),
    "study": ("mirage.study:configure_cli", "run a preset grid of conditions through papermill"),
    "probe": ("mirage.probe.cli:configure", "probes: contamination (does the model complete a problem's statement?), "
                                            "forced procedure (accurate when started on the correct one?)"),
    "doctor": ("mirage.doctor.cli:configure", "preflight of a GPU run: driver, flash-attn, CPUs/GPUs, context, data"),
    "smoke": ("mirage.smoke:configure", "the first GPU run: vLLM eval + 2 verl steps of 3 conditions (--dry-run: CPU)"),
}


def configure_conditions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=_list_conditions)


def _list_conditions(args: argparse.Namespace) -> int:
    import json

    if args.json:
        print(json.dumps({"conditions": {k: c.to_dict() for k, c in CONDITIONS.items()},
                          "rewards": {k: {"scope": r.scope, "summary": r.summary} for k, r in REWARDS.items()},
                          "estimators": {k: {"verl_name": e.verl_name, "drops_unselected": e.drops_unselected}
                                         for k, e in ESTIMATORS.items()}}, indent=2))
        return 0
    print(f"{'condition':<16} {'rq':<4} {'reward':<15} {'scope':<9} {'estimator':<12} {'data':<18} summary")
    for c in CONDITIONS.values():
        print(f"{c.name:<16} {c.rq:<4} {c.reward:<15} {c.reward_scope:<9} {c.estimator:<12} {c.data:<18} {c.summary}")
    return 0


def configure_tasks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.add_argument("--rg", action="store_true", help="also list every reasoning-gym generator (rg:<dataset>)")
    parser.set_defaults(func=_list_tasks)


def _list_tasks(args: argparse.Namespace) -> int:
    import json

    tasks = load_tasks()
    if args.json:
        print(json.dumps({name: tasks[name].to_dict() for name in tasks}, indent=2, default=str))
    else:
        print(f"{'task':<12} {'kind':<8} {'train':<22} {'checkers':<18} evaluation sets")
        for name in tasks:
            t = tasks[name]
            print(f"{name:<12} {t.kind:<8} {t.train:<22} {','.join(t.checkers):<18} {', '.join(t.evals)}")
        print("rg:<dataset>[@key=value,...]  any reasoning-gym generator (mirage tasks --rg lists them)")
    if args.rg:
        print(" ".join(generators()))
    return 0


class Parser(argparse.ArgumentParser):
    """argparse, with a bad flag reported on one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mirage", description=__doc__.splitlines()[0])

    parser.add_argument("--version", action="version", version=f"mirage {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also MIRAGE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (target, help_text) in SUBCOMMANDS.items():
        module_name, func_name = target.split(":")
        p = sub.add_parser(name, help=help_text, description=help_text)
        getattr(importlib.import_module(module_name), func_name)(p)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that report a user's mistake (bad input, missing file, busy folder), not a bug."""
    return (ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError, FolderBusy,
            RegistryError, DataError, ImportError, DiskFull)


def system_error(error: BaseException) -> str | None:
    """One line for a full disk or a symlink loop met outside mirage's own writers and path checks (a library
    writing a file, pathlib resolving a link); None for anything else (a bug: it keeps its traceback)."""
    import errno

    where = getattr(error, "filename", None)
    if is_disk_full(error):
        return str(disk_full(where or os.getcwd()))
    if (isinstance(error, OSError) and error.errno == errno.ELOOP) or "Symlink loop" in str(error):
        return f"{where + ': ' if where else ''}a symlink loop ({error}); remove or fix the link"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("MIRAGE_DEBUG", "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`mirage conditions | head`): not an error
        sys.stderr.close()
        return 0
    except user_errors() as e:
        if debug:
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"mirage {args.command}: error: {message}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as e:
        line = None if debug else system_error(e)
        if line is None:
            raise
        print(f"mirage {args.command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
