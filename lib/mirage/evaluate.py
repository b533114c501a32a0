"""Evaluation: N samples per problem, scored, and the pass@k curve with bootstrap CIs.

One evaluation (one model or checkpoint, one task or dataset) lives in one folder:

    <out_dir>/
      eval_manifest.json                     settings, model, prompt template, sampler, versions,
                                             hardware, timing, status ("running" | "complete")
      samples/<dataset>/part-<pos>.parquet   ONE ROW PER SAMPLE; one file per chunk of problems,
                                             named by the chunk's first problem position
      passk.parquet, passk.csv               dataset, k, pass_at_k, ci_low, ci_high, n_problems

Each chunk's file is written atomically once its samples are scored, so a kill loses
at most the chunk in flight; a rerun skips the problems already on disk. Every
problem's samples are seeded by ``prompt_seed(seed, "<dataset>/<problem_id>")``, so a
resumed or re-chunked run gives the same rows as an uninterrupted one. Scoring runs
in a process pool while the next chunk is sampled.

``evaluate_run`` sweeps the base model and every checkpoint of a training run
(``<run_dir>/eval/step_<N>/``); ``align`` measures base models on tasks and writes
the alignment table; ``load_eval`` reads any of them into one tidy frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import multiprocessing as mp
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from mirage import __version__
from mirage.recipes import RECIPES
from mirage.runs import atomic_path, list_checkpoints, read_manifest, write_json_atomic, write_parquet_atomic
from mirage.tasks import TASKS, dataset_path

DEFAULT_N = {"testbed": 64, "paper": 256}  # n large enough for the k the curves report
SAMPLE_COLUMNS = ["dataset", "problem_id", "data_source", "sample_index", "text", "finish_reason",
                  "num_tokens", "pred", "acc", "format", "score", "correct", "ground_truth", "seed",
                  "prompt_seed"]
SAMPLE_DTYPES = {"dataset": "string", "problem_id": "string", "data_source": "string", "sample_index": "int64",
                 "text": "string", "finish_reason": "string", "num_tokens": "int64", "pred": "string",
                 "acc": "float64", "format": "float64", "score": "float64", "correct": "bool",
                 "ground_truth": "string", "seed": "int64", "prompt_seed": "int64"}


@dataclass(frozen=True)
class EvalSettings:
    """Everything that determines the rows; a resumed evaluation must match it exactly."""

    model: str
    task: str  # task name, dataset name or parquet path, as given
    n: int
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int = 0
    step: int | None = None  # checkpoint step (0 = base model), when part of a run
    format_gated: bool = False  # count the training reward (format AND correct) instead of acc
    score_kwargs: dict = field(default_factory=dict)  # extra mirage.rewards.compute_score kwargs


# --- what to evaluate ----------------------------------------------------------------
def task_kind(task_or_dataset: str) -> str:
    """'testbed' or 'paper': picks the default n and max_tokens.

    A task or a known dataset name says it; a parquet file is 'testbed' when all its
    rows come from testbed tasks (by data_source).
    """
    if task_or_dataset in TASKS:
        return TASKS[task_or_dataset].kind
    path = Path(task_or_dataset)
    for task in TASKS.values():
        if path.stem in task.evals or path.stem == task.train:
            return task.kind
    if path.suffix == ".parquet" and path.exists():
        from mirage.tasks.toy import TASK_NAMES

        sources = set(pd.read_parquet(path, columns=["data_source"])["data_source"])
        if sources and sources <= set(TASK_NAMES):
            return "testbed"
    return "paper"


def default_n(task_or_dataset: str) -> int:
    return DEFAULT_N[task_kind(task_or_dataset)]


def default_max_tokens(task_or_dataset: str) -> int:
    """The response length training allowed (the recipe of the task's backend)."""
    return RECIPES[task_kind(task_or_dataset)].max_response_length


def eval_datasets(task_or_dataset: str) -> list[tuple[str, Path]]:
    """(dataset name, parquet path) for a task's eval sets, a dataset name, or a parquet path."""
    if task_or_dataset in TASKS:
        names = list(TASKS[task_or_dataset].evals)
    else:
        names = [task_or_dataset]
    out = []
    for name in names:
        if name.endswith(".parquet") or os.sep in name:
            path = Path(name).expanduser().resolve()
            name = path.stem
        else:
            path = dataset_path(name)
            if task_kind(name) == "testbed":  # generated, or regenerated if an older generator wrote it
                _ensure_testbed_dataset(name)
        if not path.exists():
            raise FileNotFoundError(f"dataset {name!r}: {path} does not exist (prepare it with "
                                    f"`mirage data prepare` or `mirage testbed data`, or pass a parquet path)")
        out.append((name, path))
    return out


def _ensure_testbed_dataset(name: str) -> None:
    from mirage.tasks.toy import ensure_dataset  # generated, never downloaded

    ensure_dataset(name)


def load_problems(name: str, path: str | os.PathLike) -> pd.DataFrame:
    """A verl-format parquet as one row per problem: problem_id, data_source, prompt, ground_truth, extra_info.

    ``problem_id`` is ``extra_info.index`` when every row has one, else the row position.
    """
    df = pd.read_parquet(path)
    missing = {"data_source", "prompt", "reward_model"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing verl columns {sorted(missing)} (has {list(df.columns)})")
    extra = df["extra_info"].tolist() if "extra_info" in df.columns else [None] * len(df)
    extra = [dict(e) if isinstance(e, dict) else {} for e in extra]
    has_index = all(e.get("index") is not None for e in extra)
    problems = []
    for pos, (source, prompt, reward_model, info) in enumerate(
            zip(df["data_source"], df["prompt"], df["reward_model"], extra)):
        if not isinstance(reward_model, dict) or reward_model.get("ground_truth") is None:
            raise ValueError(f"{path}: row {pos}: reward_model has no ground_truth ({reward_model!r:.200})")
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
        if not messages:
            raise ValueError(f"{path}: row {pos}: empty prompt")
        problems.append({"problem_id": str(info["index"]) if has_index else str(pos),
                         "data_source": str(source), "prompt": messages,
                         "ground_truth": str(reward_model["ground_truth"]), "extra_info": info})
    out = pd.DataFrame(problems, columns=["problem_id", "data_source", "prompt", "ground_truth", "extra_info"])
    dupes = out["problem_id"][out["problem_id"].duplicated()].unique()
    if len(dupes):
        raise ValueError(f"{path}: duplicate extra_info.index values {list(dupes[:5])}")
    out.attrs["dataset"] = name
    return out


# --- samplers ----------------------------------------------------------------------
def resolve_model(model: str) -> str:
    """A testbed model name, an HF id or a path -> what the backend loads."""
    from mirage.models import resolve_model

    return str(resolve_model(model))


def make_sampler(backend: str, model: str, *, seed: int = 0, tensor_parallel_size: int = 1,
                 gpus: Sequence[str] | None = None, use_ray: bool = False, **kwargs: Any):
    """Build a ``Sampler`` for ``backend`` ('hf' or 'vllm').

    vLLM engines always run in child processes (one per GPU group, or Ray actors), so
    a sweep over checkpoints frees each engine's GPU memory when it is closed.
    """
    if backend == "hf":
        from mirage.sample.hf import HFSampler

        return HFSampler(resolve_model(model), **kwargs)
    if backend == "vllm":
        from mirage.sample import vllm as vllm_sampler

        factory = functools.partial(vllm_sampler.VLLMSampler, resolve_model(model),
                                    tensor_parallel_size=tensor_parallel_size, seed=seed, **kwargs)
        if use_ray or gpus:
            return vllm_sampler.data_parallel(factory, gpus or [], tensor_parallel_size, use_ray=use_ray)
        return vllm_sampler.ShardedSampler([vllm_sampler.ProcessWorker(factory)])
    raise ValueError(f"unknown backend {backend!r}; known: hf, vllm")


def render_prompt(sampler, messages) -> str | None:
    """The exact prompt text the model sees (the chat template training used)."""
    if hasattr(sampler, "render_prompt"):
        return sampler.render_prompt(messages)
    if hasattr(sampler, "tokenizer"):
        from mirage.sample.base import apply_chat_template

        return apply_chat_template(sampler.tokenizer, messages)
    return None


# --- scoring (runs in worker processes) --------------------------------------------
def score_samples(items: Sequence[tuple], format_gated: bool, score_kwargs: dict) -> list[dict]:
    """Score (data_source, text, ground_truth, extra_info) items with mirage.rewards.compute_score."""
    from mirage.rewards import compute_score

    out = []
    for data_source, text, ground_truth, extra_info in items:
        r = compute_score(data_source, text, ground_truth, extra_info=extra_info,
                          **{"variant": "ground_truth", **score_kwargs})
        score, acc = float(r["score"]), float(r["acc"])
        out.append({"pred": None if r.get("pred") is None else str(r["pred"]), "acc": acc,
                    "format": float(r["format"]), "score": score,
                    "correct": (score if format_gated else acc) > 0})
    return out


class ScorePool:
    """Scores a chunk in a process pool (or inline with processes=0) while the next is sampled."""

    def __init__(self, processes: int, format_gated: bool, score_kwargs: dict):
        self.processes = processes
        self.args = (format_gated, dict(score_kwargs))
        # forkserver: the parent may hold torch/CUDA threads, which fork must not copy
        self.pool = (ProcessPoolExecutor(processes, mp_context=mp.get_context("forkserver"))
                     if processes > 0 else None)

    def submit(self, items: list[tuple]):
        if self.pool is None:
            return [score_samples(items, *self.args)]
        size = math.ceil(len(items) / self.processes) or 1
        return [self.pool.submit(score_samples, items[i:i + size], *self.args)
                for i in range(0, len(items), size)]

    @staticmethod
    def collect(job) -> list[dict]:
        return [r for part in job for r in (part if isinstance(part, list) else part.result())]

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


# --- one evaluation ------------------------------------------------------------------
def _parts(out_dir: Path, dataset: str) -> list[Path]:
    return sorted((out_dir / "samples" / dataset).glob("part-*.parquet"))


def _finished(out_dir: Path, dataset: str, n: int) -> set[str]:
    done: set[str] = set()
    for part in _parts(out_dir, dataset):
        counts = pd.read_parquet(part, columns=["problem_id"])["problem_id"].value_counts()
        bad = counts[counts != n]
        if len(bad):
            raise ValueError(f"{part}: problem {bad.index[0]!r} has {bad.iloc[0]} samples, expected n={n}")
        overlap = done & set(counts.index)
        if overlap:
            raise ValueError(f"{part}: problems {sorted(overlap)[:5]} already in another part file")
        done |= set(counts.index)
    return done


def read_samples(out_dir: str | os.PathLike, dataset: str | None = None) -> pd.DataFrame:
    """All sample rows of an evaluation (one dataset, or all)."""
    out_dir = Path(out_dir)
    datasets = [dataset] if dataset else sorted(p.name for p in (out_dir / "samples").iterdir())
    frames = [pd.read_parquet(p) for d in datasets for p in _parts(out_dir, d)]
    if not frames:
        return pd.DataFrame(columns=SAMPLE_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def passk_table(samples: pd.DataFrame, n: int, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """pass@k (k = 1, 2, 4, ..., n) with bootstrap CIs, one block per dataset."""
    from mirage.passk import bootstrap_ci, counts_from_samples, default_ks

    tables = []
    for dataset, rows in samples.groupby("dataset", sort=True):
        counts = counts_from_samples(rows, by="problem_id", correct="correct")
        curve = bootstrap_ci(counts["n"].to_numpy(), counts["c"].to_numpy(), ks=default_ks(n),
                             n_boot=n_boot, seed=seed)
        curve.insert(0, "dataset", dataset)
        tables.append(curve)
    return pd.concat(tables, ignore_index=True)


def _check_settings(manifest_path: Path, settings: EvalSettings) -> dict:
    if not manifest_path.exists():
        return {}
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    old = manifest.get("settings", {})
    new = json.loads(json.dumps(dataclasses.asdict(settings), default=str))
    diff = {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}
    if diff:
        raise ValueError(f"{manifest_path}: this folder holds an evaluation with other settings "
                         f"(key: (on disk, requested)) {diff}; use another out_dir")
    return manifest


def default_out_dir(model: str, task_or_dataset: str) -> Path:
    return Path("runs") / "eval" / _slug(model) / _slug(task_or_dataset)


def _slug(text: str) -> str:
    """A folder name for a model / task: a path's last part (a checkpoint's: <run>--global_step_N)."""
    text = str(text).rstrip("/")
    if os.sep in text and Path(text).exists():
        path = Path(text).resolve()
        checkpoint = path.name == "huggingface" and path.parent.name == "actor"
        text = f"{path.parents[3].name}--{path.parents[1].name}" if checkpoint else path.name
    return re.sub(r"[^A-Za-z0-9._-]+", "--", text)


def evaluate(model: str, task_or_dataset: str, n: int | None = None, sampler: Any = "hf", *,
             temperature: float = 1.0, top_p: float = 1.0, max_tokens: int | None = None, seed: int = 0,
             out_dir: str | os.PathLike | None = None, format_gated: bool = False, batch_size: int | None = None,
             score_processes: int | None = None, score_kwargs: dict | None = None, step: int | None = None,
             sampler_kwargs: dict | None = None, n_boot: int = 1000, progress: bool = True) -> pd.DataFrame:
    """Sample ``n`` responses per problem, score them, write rows and the pass@k curve.

    ``sampler`` is a ``Sampler`` or a backend name ('hf', 'vllm'; built from ``model``
    with ``sampler_kwargs`` only if some problem still needs sampling, so a finished
    evaluation reruns for free). Returns the pass@k table.
    """
    from tqdm.auto import tqdm

    from mirage.sample.base import SamplingParams, prompt_seed
    from mirage.sample.vllm import hardware, library_versions

    kind = task_kind(task_or_dataset)  # (reads a parquet's data sources: once)
    n = n or DEFAULT_N[kind]
    max_tokens = max_tokens or RECIPES[kind].max_response_length
    if score_processes is None:  # testbed answers are checked in microseconds: a pool would only compete for CPUs
        score_processes = 0 if kind == "testbed" else max(1, min(8, (os.cpu_count() or 2) - 1))
    settings = EvalSettings(model=str(model), task=str(task_or_dataset), n=n, temperature=temperature,
                            top_p=top_p, max_tokens=max_tokens, seed=seed, step=step,
                            format_gated=format_gated,
                            # recorded explicitly: KOR-Bench has two scoring modes (STUDY.md section 10)
                            score_kwargs={"korbench_mode": "published", **(score_kwargs or {})})
    out_dir = Path(out_dir) if out_dir else default_out_dir(model, task_or_dataset)
    manifest_path = out_dir / "eval_manifest.json"
    manifest = _check_settings(manifest_path, settings)

    datasets = [(name, path, load_problems(name, path)) for name, path in eval_datasets(task_or_dataset)]
    todo = []  # (dataset, position, problem row)
    for name, _, problems in datasets:
        done = _finished(out_dir, name, n)
        todo += [(name, pos, row) for pos, row in enumerate(problems.itertuples()) if row.problem_id not in done]
    total = sum(len(p) for _, _, p in datasets)

    started = time.time()
    attempt = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "problems": len(todo), "samples": len(todo) * n,
               "score_processes": score_processes}
    if todo:
        own_sampler = isinstance(sampler, str)
        if own_sampler:
            sampler = make_sampler(sampler, model, seed=seed, **(sampler_kwargs or {}))
        batch_size = attempt["batch_size"] = batch_size or default_batch_size(sampler)
        first = datasets[0][2]["prompt"].iloc[0]
        manifest.update({
            "settings": dataclasses.asdict(settings), "status": "running", "model": str(model), "step": step,
            "task": str(task_or_dataset),
            "datasets": [{"name": name, "path": str(path), "n_problems": len(p),
                          "data_sources": sorted(p["data_source"].unique())} for name, path, p in datasets],
            "prompt_template": {"messages": first, "rendered": render_prompt(sampler, first)},
            "sampler": sampler.describe(), "versions": {"mirage": __version__, **library_versions(
                "torch", "transformers", "vllm", "math-verify", "numpy", "pandas", "pyarrow")}, "hardware": hardware(),
        })
        write_json_atomic(manifest_path, manifest)
        params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
        scorer = ScorePool(score_processes, format_gated, settings.score_kwargs)
        bar = tqdm(total=total, initial=total - len(todo), unit="problem", desc=f"eval {_slug(model)}",
                   disable=not progress, dynamic_ncols=True)
        sample_s = wait_s = 0.0
        written = 0
        loop_start = time.time()  # throughput excludes model loading

        def finish(job):  # wait for a chunk's scores, then write its part file
            nonlocal wait_s, written
            rows, scores_job, dataset, pos = job
            t = time.perf_counter()
            scores = scorer.collect(scores_job)
            wait_s += time.perf_counter() - t
            frame = pd.concat([pd.DataFrame(rows), pd.DataFrame(scores)], axis=1)[SAMPLE_COLUMNS]
            frame = frame.astype(SAMPLE_DTYPES)  # same column types in every part (pred may be all missing)
            write_parquet_atomic(out_dir / "samples" / dataset / f"part-{pos:06d}.parquet", frame)
            written += len(frame)
            bar.update(len(frame) // n)
            bar.set_postfix(samples_per_s=f"{written / (time.time() - loop_start):.1f}")

        pending = None
        try:
            for chunk in _chunks(todo, batch_size):
                dataset, pos = chunk[0][0], chunk[0][1]
                seeds = [prompt_seed(seed, f"{dataset}/{row.problem_id}") for _, _, row in chunk]
                t = time.perf_counter()
                try:
                    completions = sampler.generate([row.prompt for _, _, row in chunk], params, seeds)
                except BaseException:  # keep the chunk already sampled and scored, then fail
                    if pending:
                        finish(pending)
                    raise
                sample_s += time.perf_counter() - t
                rows, items = _sample_rows(chunk, seeds, completions, n, seed)
                if pending:
                    finish(pending)
                pending = (rows, scorer.submit(items), dataset, pos)
            if pending:
                finish(pending)
        finally:
            bar.close()
            scorer.close()
            if own_sampler and hasattr(sampler, "close"):
                sampler.close()
        attempt.update(seconds=round(time.time() - started, 3), setup_seconds=round(loop_start - started, 3),
                       sample_seconds=round(sample_s, 3), score_wait_seconds=round(wait_s, 3),
                       samples_per_second=round(written / max(time.time() - loop_start, 1e-9), 2))
        manifest.setdefault("attempts", []).append(attempt)

    samples = read_samples(out_dir)
    for name, _, problems in datasets:
        got = samples.loc[samples["dataset"] == name, "problem_id"].nunique()
        if got != len(problems):
            raise RuntimeError(f"{out_dir}: {name} has samples for {got} of {len(problems)} problems")
    table = passk_table(samples, n, seed=seed, n_boot=n_boot)
    write_parquet_atomic(out_dir / "passk.parquet", table)
    with atomic_path(out_dir / "passk.csv") as tmp:
        table.to_csv(tmp, index=False)
    by_dataset = samples.groupby("dataset")
    manifest.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), summary={
        d: {"pass@1": float(t.loc[t.k == 1, "pass_at_k"].iloc[0]),
            f"pass@{n}": float(t.loc[t.k == t.k.max(), "pass_at_k"].iloc[0]),
            "truncated": float((by_dataset.get_group(d)["finish_reason"] == "length").mean()),
            "mean_tokens": float(by_dataset.get_group(d)["num_tokens"].mean())}
        for d, t in table.groupby("dataset")})
    write_json_atomic(manifest_path, manifest)
    return table


def _sample_rows(chunk: list, seeds: list[int], completions: list, n: int, seed: int) -> tuple[list, list]:
    """Unscored sample rows of a chunk, and the (data_source, text, ground_truth, extra_info) to score."""
    rows, items = [], []
    for (dataset, _, problem), pseed, samples in zip(chunk, seeds, completions):
        if len(samples) != n:
            raise RuntimeError(f"sampler returned {len(samples)} samples for problem {problem.problem_id!r} "
                               f"of {dataset}, expected {n}")
        for i, c in enumerate(samples):
            rows.append({"dataset": dataset, "problem_id": problem.problem_id, "data_source": problem.data_source,
                         "sample_index": i, "text": c.text, "finish_reason": c.finish_reason,
                         "num_tokens": int(c.num_tokens), "ground_truth": problem.ground_truth, "seed": seed,
                         "prompt_seed": pseed})
            items.append((problem.data_source, c.text, problem.ground_truth, problem.extra_info))
    return rows, items


def default_batch_size(sampler) -> int:
    """Problems per chunk. Each chunk ends at a barrier (its longest response), so vLLM gets
    64 problems per engine: with n=256 a chunk is ~16k responses, long enough that one
    straggler cut at max_tokens idles the GPU for a small fraction of the chunk."""
    if sampler.backend == "vllm":
        return 64 * len(getattr(sampler, "workers", [sampler]))
    return 32


def _chunks(todo: list, batch_size: int) -> Iterable[list]:
    """Consecutive problems of one dataset, at most ``batch_size`` per chunk."""
    chunk: list = []
    for item in todo:
        if chunk and (len(chunk) == batch_size or item[0] != chunk[0][0]):
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


# --- checkpoint sweeps ---------------------------------------------------------------
def evaluate_run(run_dir: str | os.PathLike, n: int | None = None, *, backend: str = "hf",
                 include_base: bool = True, steps: Sequence[int] | None = None, model: str | None = None,
                 task: str | None = None, **eval_kwargs: Any) -> pd.DataFrame:
    """Evaluate the base model (step 0) and every saved checkpoint of a run.

    Results go to ``<run_dir>/eval/step_<N>/``; finished steps are skipped. ``model``
    and ``task`` default to the run's manifest. Returns ``load_eval`` of the sweep.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    model = model or manifest.get("model")
    task = task or manifest.get("task")
    if not model or not task:
        raise ValueError(f"{run_dir}/manifest.json: needs 'model' and 'task' (or pass model=, task=)")
    targets = ([(0, str(model))] if include_base else []) + [(s, str(p)) for s, p in list_checkpoints(run_dir)]
    if steps is not None:
        targets = [(s, p) for s, p in targets if s in set(steps)]
    if not targets:
        raise FileNotFoundError(f"{run_dir}: no checkpoints under checkpoints/global_step_*/actor/huggingface")
    for step, path in targets:
        evaluate(path, task, n, sampler=backend, step=step, out_dir=run_dir / "eval" / f"step_{step}",
                 **eval_kwargs)
    return load_eval(run_dir)


def load_eval(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """pass@k of evaluation folders, run folders (their eval/step_*) or any folder above them.

    Columns: model, task, dataset, condition, seed, step, k, pass_at_k, ci_low, ci_high,
    n_problems, plus n, temperature, top_p, eval_seed, eval_dir. ``model`` is the run's
    base model for checkpoints; ``condition`` and ``seed`` come from the run's manifest
    ("base" and None outside a run).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    dirs = []
    for p in map(Path, paths):
        found = [p] if (p / "passk.parquet").exists() else sorted(f.parent for f in p.rglob("passk.parquet"))
        if not found:
            raise FileNotFoundError(f"{p}: no evaluation (passk.parquet) found")
        dirs += found
    frames = []
    for d in dirs:
        m = json.loads((d / "eval_manifest.json").read_text(encoding="utf-8"))
        s = m["settings"]
        run = read_manifest(d.parent.parent) if d.parent.name == "eval" else {}
        df = pd.read_parquet(d / "passk.parquet")
        df = df.assign(model=run.get("model") or s["model"], task=run.get("task") or s["task"],
                       condition=run.get("condition", "base"), seed=run.get("seed"), step=s.get("step"),
                       n=s["n"], temperature=s["temperature"], top_p=s["top_p"], eval_seed=s["seed"],
                       eval_dir=str(d))
        frames.append(df)
    cols = ["model", "task", "dataset", "condition", "seed", "step", "k", "pass_at_k", "ci_low", "ci_high",
            "n_problems", "n", "temperature", "top_p", "eval_seed", "eval_dir"]
    return pd.concat(frames, ignore_index=True)[cols]


# --- model-task alignment -------------------------------------------------------------
def align(models: Sequence[str], tasks: Sequence[str], n: int | None = None, out: str | os.PathLike = "runs/alignment",
          *, backend: str = "hf", temperature: float = 1.0, top_p: float = 1.0, max_tokens: int | None = None,
          seed: int = 0, **eval_kwargs: Any) -> pd.DataFrame:
    """Each base model's pass@k on each task: the alignment table the notebooks read.

    Evaluations are cached in ``<out>/evals/<model>/<task>/<settings>/`` per (model,
    task, n, seed, temperature, top_p, max_tokens): a rerun only reads them. Writes
    ``<out>/alignment.parquet`` and ``.csv`` (model, task, dataset, k, pass_at_k,
    ci_low, ci_high, n_problems, n, pass_at_1, alignment = pass@k at the largest k).
    """
    out = Path(out)
    tables = []
    for model in models:
        for task in tasks:
            task_n = n or default_n(task)
            task_max = max_tokens or default_max_tokens(task)
            key = f"n{task_n}_T{temperature:g}_p{top_p:g}_len{task_max}_seed{seed}"
            folder = out / "evals" / _slug(model) / _slug(task) / key
            evaluate(model, task, task_n, sampler=backend, temperature=temperature, top_p=top_p,
                     max_tokens=task_max, seed=seed, out_dir=folder, **eval_kwargs)
            tables.append(load_eval(folder).assign(model=str(model), task=str(task)))
    table = pd.concat(tables, ignore_index=True)
    keys = ["model", "task", "dataset"]
    table["k_max"] = table.groupby(keys)["k"].transform("max")
    pass_at_1 = table[table["k"] == 1].set_index(keys)["pass_at_k"].rename("pass_at_1")
    at_k_max = table[table["k"] == table["k_max"]].set_index(keys)["pass_at_k"].rename("alignment")
    table = table.join(pass_at_1, on=keys).join(at_k_max, on=keys)
    cols = ["model", "task", "dataset", "k", "pass_at_k", "ci_low", "ci_high", "n_problems", "n",
            "pass_at_1", "alignment", "k_max", "temperature", "top_p", "eval_seed", "eval_dir"]
    table = table[cols]
    write_parquet_atomic(out / "alignment.parquet", table)
    with atomic_path(out / "alignment.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table


# --- CLI ----------------------------------------------------------------------------------
def _gpus(text: str) -> list[str]:
    """'4' -> GPUs 0..3; '0,2,3' -> those GPUs."""
    if re.fullmatch(r"\d+", text):
        return [str(i) for i in range(int(text))]
    if re.fullmatch(r"\d+(,\d+)*", text):
        return text.split(",")
    raise argparse.ArgumentTypeError(f"--gpus: expected a count (4) or a list (0,1,2,3), got {text!r}")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf",
                   help="hf: transformers generate (CPU or one GPU); vllm: vLLM engines on GPUs")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling top_p (default 1.0)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="max response tokens (default: the training recipe's, "
                        f"{RECIPES['testbed'].max_response_length} testbed / {RECIPES['paper'].max_response_length} paper)")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (per-problem seeds derive from it)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="problems per sampling call and per part file; a kill loses at most one chunk "
                        "(default: 32; vllm: 64 per engine, to keep the end-of-chunk straggler cost small)")
    p.add_argument("--score-processes", type=int, default=None,
                   help="scoring processes (default: 0 = inline for testbed tasks, whose checks take "
                        "microseconds; min(8, CPUs - 1) otherwise)")
    p.add_argument("--format-gated", action="store_true",
                   help="count the training reward (format AND correct) instead of plain accuracy")
    p.add_argument("--math-checker", choices=["math_verify", "exact"], default=None,
                   help="math answer check passed to compute_score (default: its own default)")
    p.add_argument("--release-faithful", action="store_true",
                   help="score with the released code's format regex and exact-match math (STUDY.md section 3)")
    p.add_argument("--korbench-mode", choices=["published", "documented"], default="published",
                   help="KOR-Bench scoring: published-compatible (default) or as documented (STUDY.md section 10)")
    p.add_argument("--synlogic-path", default=None,
                   help="SynLogic checkout for logic verifiers (default: $MIRAGE_SYNLOGIC_PATH)")
    p.add_argument("--threads", type=int, default=None,
                   help="hf: torch CPU threads (default: torch's; 1 is fastest on a loaded small machine)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per engine")
    p.add_argument("--gpus", type=_gpus, default=None,
                   help="vllm: GPUs to use, a count (8) or list (0,1,2,3): one engine per "
                        "tensor-parallel group, prompts sharded across engines")
    p.add_argument("--ray", action="store_true",
                   help="vllm: engines as Ray actors (multi-node; connects to RAY_ADDRESS or starts Ray)")
    p.add_argument("--dtype", default=None, help="model dtype (vllm: passed to LLM; hf: passed to the sampler)")
    p.add_argument("--max-model-len", type=int, default=None, help="vllm: engine context length")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _eval_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    sampler_kwargs: dict[str, Any] = {}
    if args.dtype:
        sampler_kwargs["dtype"] = args.dtype
    if args.backend == "hf" and args.threads:
        sampler_kwargs["threads"] = args.threads
    if args.backend == "vllm":
        sampler_kwargs.update(tensor_parallel_size=args.tensor_parallel_size, gpus=args.gpus, use_ray=args.ray)
        if args.max_model_len:
            sampler_kwargs["max_model_len"] = args.max_model_len
    return dict(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed,
                batch_size=args.batch_size, score_processes=args.score_processes,
                format_gated=args.format_gated, progress=not args.no_progress, sampler_kwargs=sampler_kwargs,
                score_kwargs=_score_kwargs(args))


def _score_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"korbench_mode": args.korbench_mode}
    if args.math_checker:
        kwargs["math_checker"] = args.math_checker
    if args.release_faithful:
        kwargs["release_faithful"] = True
    if args.synlogic_path:
        kwargs["synlogic_path"] = str(Path(args.synlogic_path).expanduser().resolve())
    return kwargs


def configure_eval_cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="testbed model name, HF id or local path (default with --run-dir: the run's model)")
    parser.add_argument("--task", default=None,
                        help="task (math, logic, toy-math, toy-logic), dataset name, or parquet path "
                             "(default with --run-dir: the run's task)")
    parser.add_argument("--n", type=int, default=None, help="samples per problem (default 64 testbed, 256 paper)")
    parser.add_argument("--out", default=None, help="output folder (default runs/eval/<model>/<task>)")
    parser.add_argument("--run-dir", default=None,
                        help="sweep a training run: its base model and every checkpoint, into <run-dir>/eval/step_N")
    parser.add_argument("--no-base", action="store_true", help="with --run-dir: skip the base model (step 0)")
    _add_common(parser)
    parser.set_defaults(func=_eval_main)


def _eval_main(args: argparse.Namespace) -> int:
    kwargs = _eval_kwargs(args)
    if args.run_dir:
        table = evaluate_run(args.run_dir, args.n, backend=args.backend, include_base=not args.no_base,
                             model=args.model, task=args.task, **kwargs)
    else:
        if not args.model or not args.task:
            raise SystemExit("mirage eval: --model and --task are required (or --run-dir)")
        table = evaluate(args.model, args.task, args.n, sampler=args.backend, out_dir=args.out, **kwargs)
    with pd.option_context("display.max_rows", 200, "display.width", 160):
        print(table.to_string(index=False))
    return 0


def configure_align_cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", required=True, help="base models (testbed names, HF ids or paths)")
    parser.add_argument("--tasks", nargs="+", required=True, help="tasks (math, logic, toy-math, toy-logic)")
    parser.add_argument("--n", type=int, default=None, help="samples per problem (default 64 testbed, 256 paper)")
    parser.add_argument("--out", default="runs/alignment",
                        help="folder for alignment.parquet/.csv and the cached evaluations (default runs/alignment)")
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
    return 0
