"""The local GRPO engine: throughput vs TRL's GRPOTrainer, one testbed run's wall time, and what RL does.

    python benchmarks/bench_train.py throughput [--model dial-60] [--prompts 16] [--n 8] [--max-tokens 48]
    python benchmarks/bench_train.py run        [--model dial-60] [--task toy-math]
    python benchmarks/bench_train.py science    [--models dial-02,...] [--eval-n 16] [--out /tmp/bench_science]

``throughput`` runs both trainers on the same model, prompts, group size, completion
length and update schedule (2 optimizer steps per generation batch, clip 0.2/0.28,
token-mean, no KL), side by side in one process, and prints completions/s for each.
``run`` times one whole run with ``TESTBED_RECIPE``. ``science`` measures base and
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


def bench_local(model: str, task: str, prompts: int, n: int, max_tokens: int, steps: int, lr: float,
                threads: int, root: Path) -> tuple[list[float], list[float], float]:
    """(wall s per step, CPU s per step, mean completion length); CPU per step from a steps vs 1-step difference."""
    from mirage import runs
    from mirage.train.local import train

    cpu = {}
    for attempt, total in enumerate((1, 1, steps)):  # the first run pays one-time costs (imports, dataset)
        start = time.process_time()
        run_dir = train(model, task, "ground_truth", seed=0, run_dir=root / f"local{attempt}", progress=False,
                        threads=threads, data_root=root / "data", validate_before=False,
                        overrides=dict(train_batch_size=prompts, rollout_n=n, ppo_mini_batch_size=prompts // 2,
                                       max_response_length=max_tokens, total_steps=total, dynamic_sampling=False,
                                       val_freq=0, save_freq=0, lr=lr, lr_warmup_steps=0))
        cpu[total] = time.process_time() - start
    frame = runs.load_metrics(run_dir)
    per_step = frame[frame.metric == "timing_s/step"].sort_values("step")["value"].tolist()
    lengths = frame[frame.metric == "response_length/mean"]["value"].mean()
    return per_step, [(cpu[steps] - cpu[1]) / (steps - 1)], float(lengths)


def bench_trl(model: str, task: str, prompts: int, n: int, max_tokens: int, steps: int, lr: float,
              root: Path) -> tuple[list[float], list[float], float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from mirage.rewards import compute_score
    from mirage.models import resolve_model

    path = resolve_model(model)
    rows = _rows(task, prompts * steps)
    data = Dataset.from_list([{"prompt": list(r["prompt"]), "ground_truth": r["reward_model"]["ground_truth"],
                               "data_source": r["data_source"]} for r in rows])
    lengths: list[float] = []

    def reward(prompts, completions, ground_truth, data_source, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [compute_score(ds, t, gt)["score"] for ds, t, gt in zip(data_source, texts, ground_truth)]

    class Clock(TrainerCallback):
        def __init__(self):
            self.stamps = []

        def on_step_end(self, args, state, control, **kw):
            self.stamps.append((time.perf_counter(), time.process_time()))

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    config = GRPOConfig(
        output_dir=str(root / "trl"), use_cpu=True, bf16=False, gradient_checkpointing=False, report_to=[],
        per_device_train_batch_size=prompts * n // 2, steps_per_generation=2, num_generations=n,
        num_iterations=1, max_completion_length=max_tokens, temperature=1.0, top_p=1.0, top_k=0,
        loss_type="dapo", beta=0.0, epsilon=0.2, epsilon_high=0.28, learning_rate=lr, weight_decay=0.1,
        max_grad_norm=1.0, lr_scheduler_type="constant", warmup_steps=0, max_steps=2 * steps, logging_steps=1,
        save_strategy="no", seed=0, shuffle_dataset=False, dataloader_num_workers=0, disable_tqdm=True)
    clock = Clock()
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), reward_funcs=[reward], args=config,
                          train_dataset=data, processing_class=AutoTokenizer.from_pretrained(path), callbacks=[clock])
    start = (time.perf_counter(), time.process_time())
    trainer.train()
    stamps = [start] + clock.stamps
    # one generation batch = 2 optimizer steps
    wall = [stamps[i + 2][0] - stamps[i][0] for i in range(0, len(stamps) - 2, 2)]
    cpu = [stamps[i + 2][1] - stamps[i][1] for i in range(0, len(stamps) - 2, 2)]
    return wall, cpu[1:], float(statistics.mean(lengths)) if lengths else float("nan")


def throughput(args) -> None:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"model {args.model}, task {args.task}: {args.prompts} prompts x {args.n} samples, "
              f"max {args.max_tokens} completion tokens, 2 optimizer steps per generation batch, "
              f"{args.steps} generation batches, threads={torch.get_num_threads()}")
        results = {}
        for label, fn in [("mirage local", bench_local), ("TRL GRPOTrainer", bench_trl)]:
            kwargs = dict(threads=args.threads) if fn is bench_local else {}
            wall, cpu, length = fn(args.model, args.task, args.prompts, args.n, args.max_tokens, args.steps,
                                   args.lr, root=root, **kwargs)
            steady = statistics.median(wall[1:] if len(wall) > 1 else wall)
            cpu_s = statistics.median(cpu)
            results[label] = (steady, cpu_s)
            completions = args.prompts * args.n
            print(f"{label:<18} {steady:6.3f} s wall ({cpu_s:6.3f} s CPU) per generation batch, "
                  f"{completions / steady:7.1f} completions/s, {completions * length / steady:8.0f} completion "
                  f"tokens/s (mean length {length:.1f}; wall = median of {len(wall) - 1} batches)")
        trl, ours = results["TRL GRPOTrainer"], results["mirage local"]
        print(f"speed-up of mirage local over TRL: {trl[0] / ours[0]:.2f}x wall, {trl[1] / ours[1]:.2f}x CPU time")


def one_run(args) -> None:
    from mirage import runs
    from mirage.recipes import TESTBED_RECIPE
    from mirage.train.local import train

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_dir = train(args.model, args.task, "ground_truth", seed=0, run_dir=Path(tmp) / "run",
                        data_root=Path(tmp) / "data", threads=args.threads, progress=True)
        wall = time.perf_counter() - start
        frame = runs.load_metrics(run_dir)
        steps = frame[frame.metric == "timing_s/step"]["value"]
        clip = frame[frame.metric == "actor/pg_clipfrac"]["value"]
        val = frame[frame.metric.str.startswith("val-core/")].sort_values("step")
        print(f"TESTBED_RECIPE: {TESTBED_RECIPE.total_steps} steps x {TESTBED_RECIPE.train_batch_size} prompts x "
              f"{TESTBED_RECIPE.rollout_n} samples, threads={args.threads}")
        print(f"one run ({args.model}, {args.task}, ground_truth): {wall:.1f} s wall, {steps.mean():.3f} s per step "
              f"(mean), clip fraction mean {clip.mean():.4f} / max {clip.max():.4f}")
        print("validation:", ", ".join(f"step {int(s)}: {v:.3f}" for s, v in zip(val.step, val.value)))


def science(args) -> None:
    import pandas as pd

    from mirage import runs
    from mirage.evaluate import evaluate
    from mirage.models import list_models
    from mirage.tasks import get_task
    from mirage.tasks.toy import ensure_dataset
    from mirage.train.local import train

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
        run_dir = train(model, task, condition, seed=args.seed, run_dir=out / "runs" / model / task / condition,
                        data_root=out / "data", threads=args.threads, progress=False)
        wall = runs.read_manifest(run_dir)["wall_seconds"]  # of the training loop, also when resumed
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
    ap.add_argument("what", choices=["throughput", "run", "science"])
    ap.add_argument("--model", default="dial-60")
    ap.add_argument("--task", default="toy-math")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--steps", type=int, default=4, help="generation batches per trainer (throughput)")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default=None, help="science: comma-separated model names (default: all shipped)")
    ap.add_argument("--tasks", default="toy-math,toy-logic")
    ap.add_argument("--conditions", default="random,nsr,majority_vote")
    ap.add_argument("--eval-n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/bench_science")
    args = ap.parse_args()
    {"throughput": throughput, "run": one_run, "science": science}[args.what](args)


if __name__ == "__main__":
    main()
