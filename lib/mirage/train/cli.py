"""``mirage train``: one condition, one model, one task, one seed -> one run directory.

The flags become one ``RunConfig``; the backend is the only thing that differs:
``local`` is the CPU testbed's GRPO loop (``mirage.train.loop``), ``verl`` builds and
launches a verl 0.9.1 run (``mirage.train.verl.launcher.launch``). Both read the same
condition, task and recipe registries.
"""

from __future__ import annotations

import argparse

from mirage import runs
from mirage.conditions import get_condition
from mirage.ranges import SEED, SEED_MAX, flag_type
from mirage.recipes import RANGES as RECIPE_RANGES
from mirage.runs import RunConfig
from mirage.runs.config import LOGGERS, RANGES as RUN_RANGES
from mirage.runs.files import resolve
from mirage.train.verl.launcher import launch


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=["local", "verl"], default="local",
                        help="local: CPU testbed GRPO loop (default); verl: verl 0.9.1 on GPUs")
    add_run_arguments(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="verl: print the preflight findings and the exact command (env as KEY=VALUE prefixes) "
                             "and exit")
    parser.add_argument("--no-launch", action="store_true",
                        help="verl: write the run directory (manifest, command.sh, resolved config) and stop")
    parser.add_argument("--skip-preflight", action="store_true",
                        help="verl: launch even when `mirage doctor`'s checks find errors (they are still printed)")
    parser.set_defaults(func=run)


def add_run_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The flags that make a ``RunConfig`` (shared with ``mirage doctor``)."""
    parser.add_argument("--model", required=required,
                        help="testbed model name (see `mirage testbed models`), HF id, or local path")
    parser.add_argument("--task", required=required,
                        help="task name (see `mirage tasks`): toy-math, toy-logic, math, logic, rg:<dataset>")
    parser.add_argument("--condition", required=required, help="condition name (see `mirage conditions`)")
    parser.add_argument("--seed", type=_seed, default=0, help=f"training seed, an integer 0..{SEED_MAX} (default 0)")
    parser.add_argument("--run-dir", default=None,
                        help="run directory (default: runs/<backend>/<model>/<task>/<condition>/seed<S>)")
    parser.add_argument("--set", dest="overrides", action="append", type=_key_value, default=[],
                        metavar="KEY=VALUE", help="override a recipe field, e.g. --set total_steps=100 (repeatable); each "
                             "numeric key has a range (mirage.recipes.RANGES, docs/engine.md), checked before any work")
    parser.add_argument("--release-faithful", action="store_true",
                        help="reproduce the released code's reward defects (docs/rewards.md); default: corrected")
    parser.add_argument("--data-root", default=None, help="data root (default: $MIRAGE_DATA or the checkout's data/)")
    parser.add_argument("--n-gpus-per-node", type=_recipe_flag("n_gpus_per_node"), default=None,
                        help="verl: GPUs per node (recipe: 8)")
    parser.add_argument("--nnodes", type=_recipe_flag("nnodes"), default=None, help="verl: number of nodes (recipe: 1)")
    parser.add_argument("--max-model-len", type=_recipe_flag("max_model_len"), default=None, metavar="TOKENS",
                        help="verl: cap vLLM's context below prompt + response, for a model with fewer positions "
                             "(responses then end at TOKENS - prompt tokens; recorded as recipe key max_model_len)")
    parser.add_argument("--extra", action="append", default=[], metavar="HYDRA_OVERRIDE",
                        help="verl: an extra raw Hydra override, passed through last (repeatable)")
    parser.add_argument("--train-file", default=None, metavar="PARQUET",
                        help="verl: train on this parquet instead of the task's (e.g. a one-shot file)")
    parser.add_argument("--history-run", default=None, metavar="DIR",
                        help="local, one_shot: the finished full-data ground_truth run whose per-example training "
                             "accuracy picks the example (default: the ground_truth sibling of the run folder)")
    parser.add_argument("--logger", type=_loggers, default=(), metavar="NAMES",
                        help="also log metrics to: tensorboard (verl: its logger; local: <run>/tensorboard event "
                             "files, needs the tensorboard package), wandb (verl only); comma-separated, e.g. "
                             "console,tensorboard (console and the metrics-*.jsonl files are always written)")
    parser.add_argument("--resume-from", type=_resume_step, default=None, metavar="STEP",
                        help="verl: resume from this checkpoint step (default: the latest)")
    parser.add_argument("--restart", action="store_true",
                        help="start the run over when its folder holds a run with other settings")


_seed = flag_type(SEED)  # mirage.runs.config.RANGES["seed"]


def _loggers(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in LOGGERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(LOGGERS)}; got {text!r}")
    return names


def _resume_step(text: str) -> int:
    return flag_type(RUN_RANGES["resume_from"])(text)


def _recipe_flag(key: str):
    return flag_type(RECIPE_RANGES[key])


def config_from_args(args: argparse.Namespace):
    verl_only = [flag for flag, value in (("--train-file", args.train_file), ("--n-gpus-per-node", args.n_gpus_per_node),
                                          ("--nnodes", args.nnodes), ("--extra", args.extra),
                                          ("--max-model-len", args.max_model_len),
                                          ("--no-launch", getattr(args, "no_launch", False)),
                                          ("--skip-preflight", getattr(args, "skip_preflight", False))) if value]
    if args.backend == "local" and verl_only:
        raise ValueError(f"{', '.join(verl_only)} only apply to --backend verl")
    if args.backend == "verl" and args.history_run:
        raise ValueError("--history-run only applies to --backend local (verl trains a one-shot set: --train-file)")
    overrides = dict(args.overrides)  # KEY=VALUE strings, parsed by the recipe
    for key in ("n_gpus_per_node", "nnodes", "max_model_len"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return RunConfig(model=args.model, task=args.task, condition=args.condition, seed=args.seed, backend=args.backend,
                     overrides=overrides, run_dir=args.run_dir, release_faithful=args.release_faithful,
                     data_root=args.data_root, train_file=args.train_file, extra=tuple(args.extra),
                     history_run=str(resolve(args.history_run)) if args.history_run else None,
                     restart=args.restart, loggers=tuple(getattr(args, "logger", ()) or ()),
                     resume_from=getattr(args, "resume_from", None)).resolved()


def run(args: argparse.Namespace) -> int:
    import json

    cfg = config_from_args(args)
    if cfg.backend == "verl":
        return launch(cfg, dry_run=args.dry_run, no_launch=args.no_launch, doctor=not args.skip_preflight)
    if args.dry_run:
        print(json.dumps({"run_dir": cfg.run_dir, "condition": get_condition(cfg.condition).to_dict(),
                          "recipe": cfg.recipe.to_dict()}, indent=2))
        return 0
    from mirage.train.loop import train  # why: torch, which importing mirage.train.cli does not need

    run_dir = train(cfg)
    status = runs.read_manifest(run_dir).get("status")
    print(f"{run_dir}: {status}")
    return 0 if status == runs.Status.FINISHED.value else 1
