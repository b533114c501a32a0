"""``mirage doctor``: the machine's checks, and with --model/--task/--condition the run's."""

from __future__ import annotations

import argparse

from mirage.doctor import (check_attention, check_driver, check_gpu_arch, check_resources, check_run, check_shm,
                           check_tp_visible, check_vllm_install, errors, probe, probe_stack)
from mirage.recipes import PAPER_RECIPE
from mirage.train.cli import add_run_arguments, config_from_args
from mirage.train.verl.attention import attention_implementation


def configure(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, required=False)
    parser.add_argument("--no-prompts", action="store_true",
                        help="skip counting over-long prompts (tokenises every dataset: seconds to a minute)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Machine checks, and with --model/--task/--condition the run's; exit 2 when a finding is an error."""
    facts = probe()
    if args.model and args.task and args.condition:
        args.backend = "verl"
        findings = check_run(config_from_args(args), facts, count_prompts=not args.no_prompts)
    elif args.model or args.task or args.condition:
        raise ValueError("--model, --task and --condition go together (or none: machine checks only)")
    else:
        n_gpus = args.n_gpus_per_node or PAPER_RECIPE.n_gpus_per_node
        stack = probe_stack()
        findings = (check_driver(facts) + check_attention(facts, attention_implementation())
                    + check_resources(facts, n_gpus, args.nnodes or 1)
                    + check_vllm_install(stack, facts.has_gpu) + check_gpu_arch(stack) + check_shm(stack, facts.has_gpu)
                    + check_tp_visible(PAPER_RECIPE.tensor_parallel_size, facts.gpus, facts.has_gpu))
    for f in findings:
        print(f)
    bad = errors(findings)
    print(f"{len(findings)} checks: {len(bad)} error(s), {sum(f.level == 'warn' for f in findings)} warning(s)")
    return 2 if bad else 0
