"""The local GRPO engine: throughput vs TRL's GRPOTrainer, one testbed run's wall time, and what RL does.

    python benchmarks/bench_train.py throughput [--model dial-60] [--prompts 16] [--n 8] [--max-tokens 48] [--pairs 6]
    python benchmarks/bench_train.py run        [--model dial-60] [--task toy-math]
    python benchmarks/bench_train.py science    [--models dial-02,...] [--eval-n 16] [--out /tmp/bench_science]
    python benchmarks/bench_train.py --smoke    # throughput and run at tiny sizes (seconds); `science --smoke` too

``throughput`` runs both trainers on the same model, prompts, group size, completion
length and update schedule (2 optimizer steps per generation batch, clip 0.2/0.28,
token-mean, no KL) as pairs in one process: each TRL generation batch is followed by one
mirage ``train_step``; it prints each side's wall and CPU seconds per batch and the
per-pair speed-up (median and range over ``--pairs``, after one warm-up pair).
``run`` times one whole run with the testbed recipe. ``science`` measures base and
post-RL pass@k (n samples on the test split, T=1) for every shipped model x task
under ground-truth RL, plus random reward, NSR and majority vote on the most and
least aligned model x task; it prints a table and writes it as CSV.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _rows(task: str, count: int):
    from mirage.tasks.toy import problems_frame

    return problems_frame(task, "train", count, seed=0).to_dict("records")


def _recipe(prompts: int, n: int, max_tokens: int, lr: float):
    """The testbed recipe with the benchmark's batch: 2 PPO mini-batches (2 optimizer steps) per batch."""
    from mirage.recipes import TESTBED_RECIPE

    return TESTBED_RECIPE.with_overrides(dict(
        train_batch_size=prompts, rollout_n=n, ppo_mini_batch_size=max(1, prompts // 2), max_response_length=max_tokens,
        dynamic_sampling=False, val_freq=0, save_freq=0, lr=lr, lr_warmup_steps=0))


class MirageStepper:
    """mirage's GRPO step (``mirage.train.engine.train_step``), one generation batch per call.

    The same objects ``mirage.train.loop`` builds for a run (policy, AdamW, the prompt
    stream, the ground-truth condition), without checkpoints or logs.
    """

    def __init__(self, model: str, task: str, prompts: int, n: int, max_tokens: int, lr: float, batches: int):
        from mirage.conditions import get_condition
        from mirage.models import resolve_model
        from mirage.train.loop import PromptStream, _load_policy

        self.recipe = _recipe(prompts, n, max_tokens, lr)
        self.recipe.check()
        self.policy = _load_policy(resolve_model(model))
        self.optimizer = torch.optim.AdamW(self.policy.model.parameters(), lr=lr,
                                           weight_decay=self.recipe.weight_decay)
        self.rows = _rows(task, prompts * batches)
        self.stream = PromptStream(len(self.rows), prompts, seed=0)
        self.condition = get_condition("ground_truth")
        self.step = 0

    def __call__(self) -> tuple[float, float, float]:
        """(wall s, CPU s, mean completion length) of one generation batch and its 2 optimizer steps."""
        from mirage.train.engine import train_step

        self.step += 1
        wall, cpu = time.perf_counter(), time.process_time()
        result = train_step(self.policy, self.optimizer, self.stream, self.rows, self.condition, self.recipe,
                            seed=0, step=self.step, release_faithful=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return wall, cpu, float(result.metrics["response_length/mean"])


def paired(model: str, task: str, prompts: int, n: int, max_tokens: int, lr: float, pairs: int,
           root: Path) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """``pairs`` + 1 generation batches of each trainer, interleaved: TRL batch i, then mirage batch i.

    TRL's ``GRPOTrainer`` owns its loop, so mirage's step runs inside a TRL callback at the
    end of each TRL generation batch (2 optimizer steps); TRL's clock for the next batch
    starts after it. The first batch of each is a warm-up (one-time costs) and is dropped.
    Returns [(wall s, CPU s, mean completion length)] per measured batch, TRL's and mirage's.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from mirage.models import resolve_model
    from mirage.rewards import compute_score

    batches = pairs + 1
    ours = MirageStepper(model, task, prompts, n, max_tokens, lr, batches)
    path = resolve_model(model)
    rows = _rows(task, prompts * batches)
    data = Dataset.from_list([{"prompt": list(r["prompt"]), "ground_truth": r["reward_model"]["ground_truth"],
                               "data_source": r["data_source"]} for r in rows])
    lengths: list[float] = []

    def reward(prompts, completions, ground_truth, data_source, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [compute_score(ds, t, gt)["score"] for ds, t, gt in zip(data_source, texts, ground_truth)]

    trl_times: list[tuple[float, float, float]] = []
    mirage_times: list[tuple[float, float, float]] = []

    class Interleave(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.clock = (time.perf_counter(), time.process_time())

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

        def on_step_end(self, args, state, control, **kw):
            if state.global_step % 2:  # one generation batch = 2 optimizer steps
                return
            now = (time.perf_counter(), time.process_time())
            trl_times.append((now[0] - self.clock[0], now[1] - self.clock[1], float("nan")))
            mirage_times.append(ours())
            self.clock = (time.perf_counter(), time.process_time())

    config = GRPOConfig(
        output_dir=str(root / "trl"), use_cpu=True, bf16=False, gradient_checkpointing=False, report_to=[],
        per_device_train_batch_size=prompts * n // 2, steps_per_generation=2, num_generations=n,
        num_iterations=1, max_completion_length=max_tokens, temperature=1.0, top_p=1.0, top_k=0,
        loss_type="dapo", beta=0.0, epsilon=0.2, epsilon_high=0.28, learning_rate=lr, weight_decay=0.1,
        max_grad_norm=1.0, lr_scheduler_type="constant", warmup_steps=0, max_steps=2 * batches, logging_steps=2,
        save_strategy="no", seed=0, shuffle_dataset=False, dataloader_num_workers=0, disable_tqdm=True)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), reward_funcs=[reward], args=config,
                          train_dataset=data, processing_class=AutoTokenizer.from_pretrained(path),
                          callbacks=[Interleave()])
    trainer.train()
    # TRL logs the mean completion length of the generation batch every 2 optimizer steps
    trl_times = [(w, c, lengths[i] if i < len(lengths) else float("nan")) for i, (w, c, _) in enumerate(trl_times)]
    return trl_times[1:], mirage_times[1:]


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def throughput(args) -> None:
    import os

    if args.pairs < 1:
        raise SystemExit(f"--pairs: must be >= 1, got {args.pairs}")
    torch.set_num_threads(args.threads)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        print(f"model {args.model}, task {args.task}: {args.prompts} prompts x {args.n} samples, "
              f"max {args.max_tokens} completion tokens, 2 optimizer steps per generation batch, "
              f"{args.pairs} pairs (TRL batch, then mirage batch; 1 warm-up pair dropped), "
              f"threads={torch.get_num_threads()}, load average {load}")
        trl, ours = paired(args.model, args.task, args.prompts, args.n, args.max_tokens, args.lr, args.pairs,
                           Path(tmp))
    completions = args.prompts * args.n
    for label, times in (("mirage train_step", ours), ("TRL GRPOTrainer", trl)):
        wall = [t[0] for t in times]
        length = statistics.mean(t[2] for t in times)
        print(f"{label:<18} wall s per batch {_spread(wall)}, CPU s {_spread([t[1] for t in times])}, "
              f"{completions / statistics.median(wall):7.1f} completions/s, "
              f"{completions * length / statistics.median(wall):8.0f} completion tokens/s (mean length {length:.1f})")
    ratios = [t[0] / o[0] for t, o in zip(trl, ours)]
    cpu_ratios = [t[1] / o[1] for t, o in zip(trl, ours)]
    print(f"speed-up of mirage over TRL, per pair (wall): " + " ".join(f"{r:.2f}" for r in ratios))
    print(f"speed-up of mirage over TRL: wall {_spread(ratios)}x, CPU {_spread(cpu_ratios)}x "
          f"({len(ratios)} pairs)")


def one_run(args) -> None:
    from mirage import runs
    from mirage.runs import RunConfig
    from mirage.train.dispatch import run as train_run

    torch.set_num_threads(args.threads)
    overrides = dict(total_steps=args.total_steps) if args.total_steps else {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cfg = RunConfig(args.model, args.task, "ground_truth", seed=0, run_dir=str(Path(tmp) / "run"),
                        data_root=str(Path(tmp) / "data"), threads=args.threads, progress=not args.smoke,
                        overrides=overrides, val_problems=args.val_problems).resolved()
        run_dir = train_run(cfg)
        wall = time.perf_counter() - start
        frame = runs.load_metrics(run_dir)
        steps = frame[frame.metric == "timing_s/step"]["value"]
        clip = frame[frame.metric == "actor/pg_clipfrac"]["value"]
        val = frame[frame.metric.str.startswith("val-core/")].sort_values("step")
        recipe = cfg.recipe
        print(f"testbed recipe: {recipe.total_steps} steps x {recipe.train_batch_size} prompts x "
              f"{recipe.rollout_n} samples, threads={args.threads}")
        print(f"one run ({args.model}, {args.task}, ground_truth): {wall:.1f} s wall, {steps.mean():.3f} s per step "
              f"(mean), clip fraction mean {clip.mean():.4f} / max {clip.max():.4f}")
        print("validation:", ", ".join(f"step {int(s)}: {v:.3f}" for s, v in zip(val.step, val.value)))


def science(args) -> None:
    import pandas as pd

    from mirage import runs
    from mirage.evaluate import evaluate
    from mirage.models import list_models
    from mirage.tasks import get_task
    from mirage.runs import RunConfig
    from mirage.tasks.toy import ensure_dataset
    from mirage.train.dispatch import run as train_run

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    models = args.models.split(",") if args.models else [m["name"] for m in list_models()]
    tasks = args.tasks.split(",")
    rows = []

    def passk(model_path, task, tag):
        # the eval sets of the same data root as training (a stale shared copy would mislead)
        datasets = []
        for name in get_task(task).evals:
            datasets.append(str(ensure_dataset(name, out / "data")))
        table = pd.concat([evaluate(str(model_path), path, n=args.eval_n, out_dir=out / "eval" / tag / Path(path).stem,
                                    progress=False, seed=args.seed) for path in datasets])
        get = lambda k: float(table[table.k == k]["pass_at_k"].mean())  # noqa: E731
        return get(1), get(args.eval_n)

    def run(model, task, condition):
        run_dir = train_run(RunConfig(model, task, condition, seed=args.seed,
                                      run_dir=str(out / "runs" / model / task / condition),
                                      data_root=str(out / "data"), threads=args.threads, progress=False,
                                      overrides=dict(total_steps=args.total_steps) if args.total_steps else {},
                                      val_problems=args.val_problems))
        # of the training loop, summed over attempts (also when resumed)
        wall = sum(a.get("wall_seconds") or 0.0 for a in runs.read_manifest(run_dir).get("attempts", []))
        frame = runs.load_metrics(run_dir)
        clip = float(frame[frame.metric == "actor/pg_clipfrac"]["value"].max())
        final = runs.list_checkpoints(run_dir)[-1][1]
        return final, wall, clip

    base = {}
    for model in models:
        for task in tasks:
            base[model, task] = passk(model, task, f"{model}/{task}/base")
            final, wall, clip = run(model, task, "ground_truth")
            after = passk(final, task, f"{model}/{task}/ground_truth")
            rows.append(dict(model=model, task=task, condition="ground_truth", base_pass1=base[model, task][0],
                             base_passN=base[model, task][1], pass1=after[0], passN=after[1], run_s=wall,
                             max_clipfrac=clip))
            print(rows[-1], flush=True)
    ranked = sorted(base, key=lambda mt: base[mt][0])
    for model, task in dict.fromkeys([ranked[-1], ranked[0]]):  # strongest and weakest alignment
        for condition in args.conditions.split(","):
            final, wall, clip = run(model, task, condition)
            after = passk(final, task, f"{model}/{task}/{condition}")
            rows.append(dict(model=model, task=task, condition=condition, base_pass1=base[model, task][0],
                             base_passN=base[model, task][1], pass1=after[0], passN=after[1], run_s=wall,
                             max_clipfrac=clip))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table["gain_pass1"] = table.pass1 - table.base_pass1
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "science.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    print(f"pass@N uses N = {args.eval_n} samples per problem; written to {out / 'science.csv'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", choices=["throughput", "run", "science"],
                    help="(required unless --smoke, which runs all three at tiny sizes)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes (2 prompts x 2 samples, 8 tokens, 2 pairs / 2 steps), a few seconds each: "
                         "checks that the benchmark runs, measures nothing")
    ap.add_argument("--model", default="dial-60")
    ap.add_argument("--task", default="toy-math")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--pairs", type=int, default=6, help="throughput: measured pairs (TRL batch, mirage batch)")
    ap.add_argument("--total-steps", type=int, default=None, help="run/science: training steps (default: recipe's)")
    ap.add_argument("--val-problems", type=int, default=None, help="run: validate on the first N problems")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default=None, help="science: comma-separated model names (default: all shipped)")
    ap.add_argument("--tasks", default="toy-math,toy-logic")
    ap.add_argument("--conditions", default="random,nsr,majority_vote")
    ap.add_argument("--eval-n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/bench_science")
    args = ap.parse_args()
    if args.what is None and not args.smoke:
        ap.error("the following arguments are required: what (or --smoke)")
    modes = {"throughput": throughput, "run": one_run, "science": science}
    if args.smoke:
        args.prompts, args.n, args.max_tokens, args.pairs, args.total_steps, args.val_problems = 2, 2, 8, 2, 2, 4
        args.models, args.tasks, args.conditions, args.eval_n = args.model, args.task, "random", 2
        with tempfile.TemporaryDirectory(prefix="bench-train-smoke-") as args.out:
            for what in [args.what] if args.what else ["throughput", "run"]:  # science: ask for it (~20 s more)
                modes[what](args)
        return
    modes[args.what](args)


if __name__ == "__main__":
    main()
