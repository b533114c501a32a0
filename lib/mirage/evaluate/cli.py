"""``mirage eval`` and ``mirage align``: flags in, library calls out (heavy imports stay in the handlers)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from mirage import runs
from mirage.evaluate import align, evaluate, evaluate_run
from mirage.evaluate.core import EVAL_RANGES
from mirage.ranges import SAMPLE_TEMPERATURE, SEED_MAX, flag_type
from mirage.recipes import RECIPES
from mirage.rewards.routing import add_option_flags, options_from_args


# --- CLI ----------------------------------------------------------------------------------
def _flag(key: str):
    """A numeric flag parsed with its evaluation setting's range (mirage.evaluate.core.EVAL_RANGES, imported
    only when the flag is given: building the parser stays light)."""
    def parse(text: str):
        return flag_type(EVAL_RANGES[key])(text)

    parse.__name__ = key
    return parse


def _gpus(text: str) -> int | list[str]:
    """'4' -> 4 GPUs (the first 4 assigned: sample.parallel.assigned_gpus); '0,2,3' -> those GPUs."""
    if re.fullmatch(r"\d+", text):
        if int(text) < 1:
            raise argparse.ArgumentTypeError(f"--gpus: at least 1, got {text!r}")
        return int(text)
    if re.fullmatch(r"\d+(,\d+)*", text):
        return text.split(",")
    raise argparse.ArgumentTypeError(f"--gpus: expected a count (4) or a list (0,1,2,3), got {text!r}")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf",
                   help="hf: transformers generate (CPU or one GPU); vllm: vLLM engines on GPUs")
    p.add_argument("--temperature", type=_flag("temperature"), default=1.0,
                   help=f"sampling temperature, {SAMPLE_TEMPERATURE.interval()} (default 1.0; 0: greedy)")
    p.add_argument("--top-p", type=_flag("top_p"), default=1.0, help="nucleus sampling top_p, (0, 1] (default 1.0)")
    p.add_argument("--max-tokens", type=_flag("max_tokens"), default=None,
                   help="max response tokens (default: the training recipe's, "
                        f"{RECIPES['testbed'].max_response_length} testbed / {RECIPES['paper'].max_response_length} paper)")
    p.add_argument("--seed", type=_flag("seed"), default=0,
                   help=f"evaluation seed, 0..{SEED_MAX} (per-problem seeds derive from it)")
    p.add_argument("--batch-size", type=_flag("batch_size"), default=None,
                   help="problems per sampling call and per part file; a kill loses at most one chunk "
                        "(default: 32; vllm: 64 per engine, to keep the end-of-chunk straggler cost small)")
    p.add_argument("--score-processes", type=_flag("score_processes"), default=None,
                   help="scoring processes (default: 0 = inline for testbed tasks, whose checks take "
                        "microseconds; min(8, CPUs - 1) otherwise)")
    p.add_argument("--format-gated", action="store_true",
                   help="count the training reward (format AND correct) instead of plain accuracy")
    p.add_argument("--release-faithful", action="store_true",
                   help="score with the released code's format regex and exact-match math (docs/rewards.md)")
    p.add_argument("--threads", type=_flag("threads"), default=None,
                   help="hf: torch CPU threads (default: torch's; 1 is fastest on a loaded small machine)")
    p.add_argument("--tensor-parallel-size", type=_flag("tensor_parallel_size"), default=1,
                   help="vllm: GPUs per engine")
    p.add_argument("--gpus", type=_gpus, default=None,
                   help="vllm: GPUs to use, a count (8) or list (0,1,2,3): one engine per "
                        "tensor-parallel group, prompts sharded across engines")
    p.add_argument("--ray", action="store_true",
                   help="vllm: engines as Ray actors (multi-node; connects to RAY_ADDRESS or starts Ray)")
    p.add_argument("--dtype", default=None, help="model dtype (vllm: passed to LLM; hf: passed to the sampler)")
    p.add_argument("--max-model-len", type=_flag("max_model_len"), default=None, help="vllm: engine context length")
    p.add_argument("--vllm-seeding", choices=["per-request", "batched"], default="per-request",
                   help="vllm: per-request (default): a seed per problem, samples independent of batching, "
                        "sharding and resuming; batched: unseeded requests in one batched sampler call per chunk, "
                        "faster at large n, reproducible only by the same run from scratch (docs/evaluation.md)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_option_flags(p)  # one flag per registered checker option (--math-checker, --korbench-mode, ...)


def _eval_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    sampler_kwargs: dict[str, Any] = {}
    if args.dtype:
        sampler_kwargs["dtype"] = args.dtype
    if args.backend == "hf" and args.threads:
        sampler_kwargs["threads"] = args.threads
    if args.backend == "vllm":
        sampler_kwargs.update(tensor_parallel_size=args.tensor_parallel_size, gpus=args.gpus, use_ray=args.ray,
                              seeding=args.vllm_seeding)
        if args.max_model_len:
            sampler_kwargs["max_model_len"] = args.max_model_len
    return dict(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed,
                batch_size=args.batch_size, score_processes=args.score_processes,
                format_gated=args.format_gated, progress=not args.no_progress, sampler_kwargs=sampler_kwargs,
                score_kwargs=_score_kwargs(args))


def _score_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = options_from_args(args)  # the checker options given, by option name
    if args.release_faithful:
        kwargs["release_faithful"] = True
    return kwargs


def configure_eval_cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="testbed model name, HF id or local path (default with --run-dir: the run's model)")
    parser.add_argument("--task", default=None,
                        help="task (math, logic, toy-math, toy-logic), dataset name, or parquet path "
                             "(default with --run-dir: the run's task)")
    parser.add_argument("--n", type=_flag("n"), default=None,
                        help="samples per problem (default 64 testbed, 256 paper)")
    parser.add_argument("--out", default=None, help="output folder (default runs/eval/<model>/<task>)")
    parser.add_argument("--run-dir", default=None,
                        help="sweep a training run: its base model and every checkpoint, into <run-dir>/eval/step_N")
    parser.add_argument("--no-base", action="store_true", help="with --run-dir: skip the base model (step 0)")
    parser.add_argument("--restart", action="store_true",
                        help="start over an output folder that holds an evaluation with other settings")
    _add_common(parser)
    parser.set_defaults(func=_eval_main)


def _eval_main(args: argparse.Namespace) -> int:
    import pandas as pd

    kwargs = {**_eval_kwargs(args), "restart": args.restart}
    if args.run_dir:
        table = evaluate_run(args.run_dir, args.n, backend=args.backend, include_base=not args.no_base,
                             model=args.model, task=args.task, **kwargs)
    else:
        if not args.model or not args.task:
            raise ValueError("--model and --task are required (or --run-dir)")
        table = evaluate(args.model, args.task, args.n, sampler=args.backend, out_dir=args.out, **kwargs)
    with pd.option_context("display.max_rows", 200, "display.width", 160):
        print(table.to_string(index=False))
        if not args.run_dir:  # beside pass@1: the format rate and the format-free accuracy

            formats = (Path(args.out) if args.out else runs.eval_dir(args.model, args.task)) / "format.csv"
            if formats.is_file():
                print(pd.read_csv(formats).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def configure_align_cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", required=True, help="base models (testbed names, HF ids or paths)")
    parser.add_argument("--tasks", nargs="+", required=True, help="tasks (math, logic, toy-math, toy-logic)")
    parser.add_argument("--n", type=_flag("n"), default=None,
                        help="samples per problem (default 64 testbed, 256 paper)")
    parser.add_argument("--out", default="runs/alignment",
                        help="folder for alignment.parquet/.csv, predictors.parquet/.csv and the cached evaluations "
                             "(default runs/alignment)")
    _add_common(parser)
    parser.set_defaults(func=_align_main)


def _align_main(args: argparse.Namespace) -> int:
    kwargs = _eval_kwargs(args)
    table = align(args.models, args.tasks, args.n, args.out, backend=args.backend,
                  **{k: v for k, v in kwargs.items() if k not in ("temperature", "top_p", "max_tokens", "seed")},
                  temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed)
    summary = table.drop_duplicates(["model", "task", "dataset"])[
        ["model", "task", "dataset", "n", "pass_at_1", "k_max", "alignment"]]
    print(summary.to_string(index=False))
    print(f"alignment table: {Path(args.out) / 'alignment.parquet'}")
    print(f"alignment predictors (majority share, maj@n, entropy, format, saturation; mirage.evaluate.predictors): "
          f"{Path(args.out) / 'predictors.parquet'}")
    return 0
