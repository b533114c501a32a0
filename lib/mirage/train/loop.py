"""The local engine's run loop: a RunConfig in, a finished run directory out.

``train(cfg)`` checks everything before any work starts (the config, the data, the
model, the run folder's lock and manifest), then runs ``engine.train_step`` for each
step, logging metrics (``logs/metrics-NNN.jsonl``, a fresh file per attempt), the
per-example training accuracy one-shot selection ranks (``logs/example_acc.jsonl``),
optional rollout dumps (``rollouts/<step>.jsonl``) and HF checkpoints in verl's layout
with the optimizer and loader state. A kill at any point and a rerun resume from the
latest checkpoint with identical numbers: append-only logs are first truncated to
the resume point, and every random draw derives from the seed and the step.

A finished run asked to run again with other settings is refused, naming the keys that
differ (``restart=True`` starts it over); a second process on the same run folder is
refused at once (``runs.FolderLock``); an unreadable checkpoint is an error naming it.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mirage import runs
from mirage.conditions import Condition, get_condition, history_condition
from mirage.data.rows import load_rows
from mirage.models import resolve_model
from mirage.recipes import Recipe
from mirage.rewards import compute_score
from mirage.runs import RunConfig, Status
from mirage.runs.metrics import VAL_ACC
from mirage.sample.base import prompt_seed
from mirage.tasks import get_task
from mirage.train.engine import Policy, row_index, train_step

TRAINER_STATE = "trainer_state.pt"  # optimizer + loader state, next to actor/huggingface
EXAMPLE_ACC = "example_acc.jsonl"


class PromptStream:
    """verl's training loader: a seeded shuffle per epoch, the incomplete last batch dropped."""

    def __init__(self, n_rows: int, batch_size: int, seed: int, drawn: int = 0, name: str = "train set"):
        self.n_rows, self.batch_size, self.seed, self.drawn = n_rows, batch_size, seed, drawn
        self.per_epoch = n_rows // batch_size
        if self.per_epoch == 0:
            raise ValueError(f"{name}: {n_rows} rows make no batch of train_batch_size={batch_size} "
                             "(the loader drops incomplete batches, as verl's does)")

    def next(self) -> tuple[int, np.ndarray]:
        """(epoch, row indices) of the next batch."""
        epoch, k = divmod(self.drawn, self.per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_rows)
        self.drawn += 1
        return epoch, order[k * self.batch_size:(k + 1) * self.batch_size]


# --- one-shot data ------------------------------------------------------------------
def accuracy_history(run_dir: Any, per: str = "epoch") -> dict[str, list[float]]:
    """{example index: [training accuracy per epoch]} from a run's ``logs/example_acc.jsonl``.

    ``per="sample"``: the individual rollout outcomes instead (the mean of each visit
    expanded back to its 0/1 samples), for runs shorter than two epochs, where every
    per-epoch history has one entry and no variance.
    """
    path = Path(run_dir) / "logs" / "example_acc.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no per-example accuracy record; train a full-data ground_truth run first")
    cells: dict[str, dict[int, list[float]]] = {}
    samples: dict[str, list[float]] = {}
    for rec in runs.read_jsonl(path):
        key = str(rec["index"])
        cells.setdefault(key, {}).setdefault(int(rec["epoch"]), []).append(float(rec["acc"]))
        correct = int(round(float(rec["acc"]) * int(rec["n"])))
        samples.setdefault(key, []).extend([1.0] * correct + [0.0] * (int(rec["n"]) - correct))
    if per == "sample":
        return samples
    if per != "epoch":
        raise ValueError(f"per must be 'epoch' or 'sample', got {per!r}")
    return {key: [float(np.mean(v)) for _, v in sorted(epochs.items())] for key, epochs in cells.items()}


def select_one_shot(condition: Condition, rows: list[dict], seed: int, run_dir: Path,
                    history_run: Any = None, index: Any = None) -> dict[str, Any]:
    """Which training example a one-shot condition uses, and why (recorded in the manifest)."""
    from mirage.data import one_shot  # why: pandas, which importing mirage.train.loop does not need

    ids = [str(row_index(r, i)) for i, r in enumerate(rows)]
    if index is not None:
        choice = {"index": str(index), "criterion": "given"}
    elif condition.data == "one_shot_random":
        choice = {"index": one_shot.select_random(ids, seed), "criterion": f"random(seed={seed})"}
    else:
        given = bool(history_run)
        ranked = history_condition().name  # the condition whose full-data runs one-shot selection ranks
        history_run = Path(history_run) if given else run_dir.parent.parent / ranked / run_dir.name
        if not (history_run / "logs" / EXAMPLE_ACC).is_file():
            raise FileNotFoundError(
                f"{history_run / 'logs' / EXAMPLE_ACC}: no per-example accuracy record, which the "
                f"{condition.name} condition ranks to pick its example; "
                + (f"--history-run must name a finished full-data {ranked} run of this model and task"
                   if given else f"name a finished full-data {ranked} run of this model and task with "
                                 f"--history-run DIR (the default is the {ranked} sibling of the run folder), "
                                 "or train that run first"))
        history = accuracy_history(history_run)
        per = "epoch"
        if max(len(v) for v in history.values()) < 2:  # shorter than two epochs: no per-epoch variance
            history, per = accuracy_history(history_run, per="sample"), "sample"
        known = set(ids)
        history = {k: v for k, v in history.items() if k in known}
        best = one_shot.select_by_historical_variance(history, rank=1)
        choice = {"index": best, "criterion": f"historical variance (std per {per}, rank 1)",
                  "history_run": str(history_run), "std": float(np.std(history[best]))}
    if choice["index"] not in ids:
        raise KeyError(f"one-shot example {choice['index']!r} is not an extra_info.index of the training set")
    return choice


# --- validation -------------------------------------------------------------------------
def validate(policy: Policy, val_sets: dict[str, list[dict]], recipe: Recipe, seed: int,
             batch_size: int = 256) -> dict[str, float]:
    """``val-core/<data_source>/acc/mean@<val_n>``: accuracy without the format gate, as verl's validation."""
    sums: dict[str, list[float]] = {}
    for name, rows in val_sets.items():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            seeds = [prompt_seed(seed, f"val/{name}/{row_index(r, start + i)}") for i, r in enumerate(chunk)]
            sampled, texts = policy.sample([policy.encode(r["prompt"]) for r in chunk], seeds, recipe.val_n,
                                           recipe.val_temperature, recipe.val_top_p, recipe.max_response_length)
            for g, text in zip(sampled.prompt_index.tolist(), texts):
                row = chunk[g]
                s = compute_score(row["data_source"], text, row["reward_model"]["ground_truth"], row.get("extra_info"))
                sums.setdefault(row["data_source"], []).append(float(s["acc"]))
    return {VAL_ACC.format(data_source=ds, n=recipe.val_n): float(np.mean(v)) for ds, v in sums.items()}


# --- checkpoints ------------------------------------------------------------------------
def save_checkpoint(run_dir: Path, step: int, policy: Policy, optimizer: torch.optim.Optimizer,
                    drawn: int, keep: int = 0) -> Path:
    """verl's layout, written to a temporary folder and renamed (a kill never leaves half a checkpoint).
    ``keep`` > 0 (the recipe's max_actor_ckpt_to_keep): then delete all but the newest ``keep`` checkpoints, as
    verl does."""
    root = run_dir / "checkpoints"
    final = root / f"global_step_{step}"
    with runs.atomic_dir(final) as tmp:
        hf = tmp / "actor" / "huggingface"
        policy.model.save_pretrained(hf)
        policy.tokenizer.save_pretrained(hf)
        torch.save({"step": step, "drawn": drawn, "optimizer": optimizer.state_dict()},
                   tmp / "actor" / TRAINER_STATE)
    runs.write_text_atomic(root / "latest_checkpointed_iteration.txt", f"{step}\n")
    for _, older in runs.list_checkpoints(run_dir):  # keep older weights for sweeps, drop their optimizer state
        state = older.parent / TRAINER_STATE
        if older.parent.parent != final and state.exists():
            state.unlink()
    if keep > 0:
        saved = sorted((int(d.name.rsplit("_", 1)[1]), d) for d in root.glob("global_step_*")
                       if d.is_dir() and d.name.rsplit("_", 1)[1].isdigit())
        for _, old in saved[:-keep]:
            shutil.rmtree(old)
    return final


def latest_resumable(run_dir: Path) -> tuple[int, Path] | None:
    found = [(s, hf) for s, hf in runs.list_checkpoints(run_dir) if (hf.parent / TRAINER_STATE).exists()]
    return found[-1] if found else None


def _load_state(resume: tuple[int, Path]) -> dict:
    path = resume[1].parent / TRAINER_STATE
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file; name the file
        raise ValueError(f"{path}: unreadable optimizer state ({type(e).__name__}); the checkpoint is damaged: "
                         "delete that global_step folder to resume from an earlier one, or restart the run") from None


def _load_policy(source: str) -> Policy:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        return Policy(AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32),
                      AutoTokenizer.from_pretrained(source))
    except OSError:
        raise
    except Exception as e:  # noqa: BLE001 - safetensors / json errors name no file
        raise ValueError(f"{source}: the model cannot be loaded ({type(e).__name__}: {e})") from None


def _check_folder(cfg: RunConfig, manifest: dict) -> str:
    """'new', 'resume' or 'finished' for this run folder; an error when it holds another run or config."""
    if not manifest:
        return "new"
    clash = {k: (manifest.get(k), v) for k, v in cfg.identity().items() if manifest.get(k) != v}
    if clash:
        raise ValueError(f"{cfg.run_dir}: holds a different run ({clash}); use another run_dir")
    recorded = manifest.get("config")
    diff = (runs.config_diff(runs.result_fields(recorded), runs.result_fields(cfg.to_dict())) if recorded else
            runs.config_diff(manifest.get("recipe"), cfg.recipe.to_dict()))
    if diff:
        raise ValueError(f"{cfg.run_dir}: this run was started with other settings (key: (on disk, requested)) "
                         f"{diff}; use another --run-dir, or --restart to start it over (RunConfig: run_dir=, restart=True)")
    return "finished" if runs.is_finished(manifest) else "resume"


def _wipe(run_dir: Path) -> None:
    """Start a run folder over (its lock stays)."""
    for child in run_dir.iterdir():
        if not child.name.startswith(".lock"):
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def tensorboard_writer():
    """torch's TensorBoard SummaryWriter class; a one-line error when the tensorboard package is absent."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("--logger tensorboard: the tensorboard package is not installed; install it "
                         "(pip install tensorboard) or leave tensorboard out of --logger") from None
    return SummaryWriter


def tensorboard_scalars(writer, step: int, data: dict[str, Any]) -> None:
    """Every finite number of a metrics row, under its own name (the names verl's TensorBoard logger uses)."""
    for key, value in data.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            writer.add_scalar(key, value, global_step=step)
    writer.flush()


def train(cfg: RunConfig) -> Path:
    """Train ``cfg.model`` on ``cfg.task`` under ``cfg.condition`` with the local engine; return the run dir.

    A finished run with the same settings is returned as is; an unfinished one resumes
    from its latest checkpoint. See ``RunConfig`` for every setting.
    """
    from transformers.utils import logging as hf_logging

    cfg = cfg.resolved()
    if cfg.backend != "local":
        raise ValueError(f"mirage.train.loop runs the local engine, not backend {cfg.backend!r}")
    if cfg.recipe.use_kl_loss or cfg.recipe.use_kl_in_reward:
        raise ValueError("the local engine has no reference model: use_kl_loss/use_kl_in_reward must be False")
    if "tensorboard" in cfg.loggers:
        tensorboard_writer()  # before any work: a one-line error without the tensorboard package
    run_dir = Path(cfg.run_dir)
    created = runs.files.first_missing(run_dir)  # the folder this call creates (None: it existed)
    with runs.FolderLock(run_dir, "training run"):
        try:
            manifest = runs.read_manifest(run_dir)
            if manifest and cfg.restart:
                _wipe(run_dir)
                manifest = {}
            if _check_folder(cfg, manifest) == "finished":
                return run_dir
            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # no loading/saving bars at every checkpoint
            try:
                _run(cfg, run_dir, manifest)
            finally:
                if bars:
                    hf_logging.enable_progress_bar()
        except BaseException:
            # refused before it wrote anything (a missing history run, model or dataset): leave no empty run
            # folder (with only its lock) behind
            if created is not None and runs.files.holds_only_locks(created):
                shutil.rmtree(created, ignore_errors=True)
            raise
    return run_dir


def _run(cfg: RunConfig, run_dir: Path, manifest: dict) -> None:
    from tqdm.auto import tqdm

    cond, task, recipe, seed = get_condition(cfg.condition), get_task(cfg.task), cfg.recipe, cfg.seed
    threads = int(cfg.threads or manifest.get("threads") or runs.default_threads())  # floats depend on it
    torch.set_num_threads(threads)
    torch.manual_seed(seed)  # nothing below draws from it; set for any library code that might

    train_rows = load_rows(task.train, cfg.data_root)
    val_sets = {name: load_rows(name, cfg.data_root)[:cfg.val_problems] for name in task.evals}
    one_shot = None
    if cond.data != "full":
        one_shot = manifest.get("one_shot") or select_one_shot(cond, train_rows, seed, run_dir, cfg.history_run,
                                                               cfg.one_shot_index)
        row = next(r for i, r in enumerate(train_rows) if str(row_index(r, i)) == one_shot["index"])
        train_rows = [row] * recipe.train_batch_size

    resume = latest_resumable(run_dir)
    if resume is None and any((run_dir / "checkpoints").glob("global_step_*")):
        raise ValueError(f"{run_dir / 'checkpoints'}: holds checkpoints but none with loadable weights and optimizer "
                         "state; delete the damaged global_step folders to resume, or restart the run")
    model_path = resolve_model(cfg.model)
    policy = _load_policy(str(resume[1]) if resume else model_path)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    start, drawn = 0, 0
    if resume:
        state = _load_state(resume)
        optimizer.load_state_dict(state["optimizer"])
        start, drawn = int(state["step"]), int(state["drawn"])
    # append-only logs forget what came after the resume point: a rerun never duplicates a line (and a
    # run that restarts from step 0 writes metrics-000 again, as an uninterrupted run does)
    for log in [run_dir / "logs" / EXAMPLE_ACC, *sorted((run_dir / "logs").glob("metrics-*.jsonl"))]:
        if start == 0:
            log.unlink(missing_ok=True)
        else:
            runs.truncate_jsonl(log, lambda rec: int(rec["step"]) <= start)
    stream = PromptStream(len(train_rows), recipe.train_batch_size, seed, drawn, name=task.train)

    runs.update_manifest(run_dir, kind="train", **cfg.identity(), config=cfg.to_dict(), model_path=model_path,
                         condition_spec=cond.to_dict(), task_spec=task.to_dict(), recipe=recipe.to_dict(),
                         threads=threads, one_shot=one_shot, train_dataset=task.train, eval_datasets=list(task.evals),
                         versions={**runs.library_versions("mirage", "torch", "transformers", "numpy"),
                                   "python": sys.version.split()[0], "platform": platform.platform()})
    runs.start_attempt(run_dir, resumed_from_step=start, threads=threads,
                       cpu_kernels=torch.backends.cpu.get_cpu_capability())  # floats depend on it too
    metrics_path = runs.next_metrics_path(run_dir)
    # --logger tensorboard: the same metric names as logs/metrics-*.jsonl, as event files (checked in train())
    writer = tensorboard_writer()(str(run_dir / "tensorboard")) if "tensorboard" in cfg.loggers else None

    def log_metrics(step: int, data: dict[str, Any]) -> None:
        runs.append_jsonl(metrics_path, [{"step": step, "data": data}])
        if writer is not None:
            tensorboard_scalars(writer, step, data)

    wall, cpu = time.perf_counter(), time.process_time()
    status, error = Status.FAILED, None
    try:
        if start == 0 and cfg.validate_before and recipe.val_freq > 0:
            log_metrics(0, validate(policy, val_sets, recipe, seed))
        steps = range(start + 1, recipe.total_steps + 1)
        if cfg.stop_after is not None:
            steps = steps[:cfg.stop_after]
        bar = tqdm(steps, desc=f"{cond.name} {task.name} seed{seed}", disable=not cfg.progress, initial=start,
                   total=recipe.total_steps)
        for step in bar:
            result = train_step(policy, optimizer, stream, train_rows, cond, recipe, seed, step, cfg.release_faithful,
                                cfg.micro_batch_size, cfg.dump_rollouts, record_history=cond.data == "full")
            metrics = result.metrics
            if recipe.val_freq > 0 and (step % recipe.val_freq == 0 or step == recipe.total_steps):
                metrics.update(validate(policy, val_sets, recipe, seed))
            if result.history:
                runs.append_jsonl(run_dir / "logs" / EXAMPLE_ACC, result.history)
            if result.rollouts:
                runs.write_text_atomic(run_dir / "rollouts" / f"{step}.jsonl",
                                       "".join(json.dumps(r, default=float) + "\n" for r in result.rollouts))
            # log first: a kill between the two reruns this step from the previous checkpoint, after the
            # log is truncated to it, whereas the other order would lose the step's metrics
            log_metrics(step, metrics)
            if (recipe.save_freq > 0 and step % recipe.save_freq == 0) or step == recipe.total_steps:
                save_checkpoint(run_dir, step, policy, optimizer, stream.drawn, keep=recipe.max_actor_ckpt_to_keep)
            bar.set_postfix(score=f"{metrics['critic/score/mean']:.2f}", acc=f"{metrics['train/acc/mean']:.2f}")
        status = Status.FINISHED if (steps[-1] if len(steps) else start) >= recipe.total_steps else Status.STOPPED
    except KeyboardInterrupt:
        status, error = Status.INTERRUPTED, "KeyboardInterrupt"
        raise
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
        raise
    finally:
        if writer is not None:
            writer.close()
        runs.end_attempt(run_dir, status, error=error, wall_seconds=round(time.perf_counter() - wall, 2),
                         cpu_seconds=round(time.process_time() - cpu, 2))
