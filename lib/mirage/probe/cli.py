"""``mirage probe contamination`` / ``mirage probe forced``: flags in, ``probe_contamination`` /
``probe_forced`` out (heavy imports in the handlers)."""

from __future__ import annotations

import argparse

from mirage.ranges import SAMPLE_TEMPERATURE, SAMPLES, SEED, THREADS, TOKENS, count_flag, flag_type


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="probe_command", metavar="PROBE")
    p = sub.add_parser("contamination", help="raw-prefix completion of each problem (memorised or not?)",
                       description="For each problem of each evaluation set: greedy continuation of the first "
                                   "x of its statement as raw text (exact match, ROUGE-L vs the true "
                                   "remainder) and greedy accuracy when asked the truncated problem.")
    p.add_argument("--model", required=True, help="model name (data/models), folder or hub id")
    p.add_argument("--task", required=True, help="task (its evaluation sets), dataset name or parquet path")
    p.add_argument("--fractions", default="0.4,0.6,0.8",
                   help="shares of the statement's characters given, each in (0, 1) (default 0.4,0.6,0.8)")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="sampler (default hf)")
    p.add_argument("--out", default=None, help="folder (default runs/probe/<model>/<task>); a rerun resumes")
    p.add_argument("--limit", type=count_flag(10**9), default=None,
                   help="only the first N problems of each evaluation set")
    p.add_argument("--max-tokens", type=flag_type(TOKENS), default=None,
                   help="answer length for the truncated/whole problem (default: the recipe's response length)")
    p.add_argument("--batch-size", type=count_flag(2**20), default=64,
                   help="problems per chunk and part file (default 64)")
    p.add_argument("--threads", type=flag_type(THREADS), default=None,
                   help="hf: torch CPU threads (default: torch's; 1 is fastest for a testbed model: 500 toy problems took "
                        "12 s of CPU on 1 thread, 99 s on 2)")
    p.add_argument("--tensor-parallel-size", type=count_flag(1024), default=1, help="vllm: GPUs per engine")
    p.set_defaults(func=_contamination)

    f = sub.add_parser("forced", help="forced-procedure probe: accuracy when the scratchpad starts on the correct "
                                      "procedure (testbed tasks)",
                       description="For each testbed problem: the model's answer to the plain prompt, and its "
                                   "continuation of the prompt followed by <think> and the first steps of the "
                                   "correct worked solution, both scored by the task's checker: forced-correct "
                                   "accuracy beside unforced accuracy (capability kept vs lost).")
    f.add_argument("--model", required=True, help="model name (data/models), folder or hub id")
    f.add_argument("--task", required=True, help="testbed task (its evaluation sets), dataset name or parquet path")
    f.add_argument("--prefix-steps", type=count_flag(10**6), default=1,
                   help="steps of the correct worked solution given (default 1); must leave at least one")
    f.add_argument("--n", type=flag_type(SAMPLES), default=1, help="samples per prompt (default 1; >1 needs "
                                                                    "--temperature > 0)")
    f.add_argument("--temperature", type=flag_type(SAMPLE_TEMPERATURE), default=0.0,
                   help="sampling temperature (default 0: greedy)")
    f.add_argument("--seed", type=flag_type(SEED), default=0, help="sampling seed (default 0)")
    f.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="sampler (default hf)")
    f.add_argument("--out", default=None, help="folder (default runs/probe-forced/<model>/<task>); a rerun resumes")
    f.add_argument("--limit", type=count_flag(10**9), default=None,
                   help="only the first N problems of each evaluation set")
    f.add_argument("--max-tokens", type=flag_type(TOKENS), default=None,
                   help="response length (default: the recipe's response length)")
    f.add_argument("--batch-size", type=count_flag(2**20), default=64,
                   help="problems per chunk and part file (default 64)")
    f.add_argument("--threads", type=flag_type(THREADS), default=None, help="hf: torch CPU threads")
    f.add_argument("--tensor-parallel-size", type=count_flag(1024), default=1, help="vllm: GPUs per engine")
    f.set_defaults(func=_forced)
    parser.set_defaults(func=lambda _args: parser.print_help() or 2)


def _contamination(args: argparse.Namespace) -> int:
    from mirage.probe.contamination import probe_contamination  # why: pandas, which importing mirage.probe.cli does not need

    if args.batch_size < 1:
        raise ValueError(f"--batch-size: an integer >= 1, got {args.batch_size}")
    kwargs = {"threads": args.threads} if args.backend == "hf" else {"tensor_parallel_size": args.tensor_parallel_size}
    summary = probe_contamination(args.model, args.task, fractions=args.fractions, sampler=args.backend,
                                  out_dir=args.out, limit=args.limit, answer_max_tokens=args.max_tokens,
                                  batch_size=args.batch_size, sampler_kwargs=kwargs)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _forced(args: argparse.Namespace) -> int:
    from mirage.probe.forced import probe_forced  # why: pandas, which importing mirage.probe.cli does not need

    kwargs = {"threads": args.threads} if args.backend == "hf" else {"tensor_parallel_size": args.tensor_parallel_size}
    summary = probe_forced(args.model, args.task, prefix_steps=args.prefix_steps, n=args.n,
                           temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed,
                           sampler=args.backend, out_dir=args.out, limit=args.limit, batch_size=args.batch_size,
                           sampler_kwargs=kwargs)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
