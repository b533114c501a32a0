"""``mirage train``: one condition, one model, one task, one seed -> one run directory.

The backend is the only thing that differs: ``local`` is the CPU testbed's GRPO
loop (mirage.train.local), ``verl`` builds and launches a verl 0.9.1 run
(mirage.train.verl). Both read the same condition registry and recipe.
"""

from __future__ import annotations

import argparse


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=["local", "verl"], default="local",
                        help="local: CPU testbed GRPO loop (default); verl: verl 0.9.1 on GPUs")
    parser.add_argument("--model", required=True,
                        help="testbed model name (see `mirage testbed models`), HF id, or local path")
    parser.add_argument("--task", required=True, help="task name (see mirage.tasks): math, logic, toy-math, toy-logic")
    parser.add_argument("--condition", required=True, help="condition name (see `mirage conditions`)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None,
                        help="run directory (default: runs/<backend>/<model>/<task>/<condition>/seed<S>)")
    parser.add_argument("--set", dest="overrides", action="append", type=_key_value, default=[],
                        metavar="KEY=VALUE", help="override a recipe field, e.g. --set total_steps=100 (repeatable)")
    parser.add_argument("--release-faithful", action="store_true",
                        help="reproduce the released code's reward defects (STUDY.md section 3); default: corrected")
    parser.add_argument("--data-root", default=None, help="data root (default: $MIRAGE_DATA or the checkout's data/)")
    parser.add_argument("--dry-run", action="store_true",
                        help="verl: print the exact command (env as KEY=VALUE prefixes) and exit")
    parser.add_argument("--n-gpus-per-node", type=int, default=None, help="verl: GPUs per node (recipe: 8)")
    parser.add_argument("--nnodes", type=int, default=None, help="verl: number of nodes (recipe: 1)")
    parser.add_argument("--extra", action="append", default=[], metavar="HYDRA_OVERRIDE",
                        help="verl: an extra raw Hydra override, passed through last (repeatable)")
    parser.add_argument("--train-file", default=None, metavar="PARQUET",
                        help="verl: train on this parquet instead of the task's (e.g. a one-shot file)")
    parser.add_argument("--no-launch", action="store_true",
                        help="verl: write the run directory (manifest, command.sh, resolved config) and stop")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.backend == "local":
        from mirage.train import local

        return local.main(args)
    from mirage.train import verl as verl_backend

    return verl_backend.main(args)
