"""One evaluation: ``n`` samples per problem of one model on one task or dataset, scored, pass@k.

See the package docstring for the folder layout and its guarantees.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mirage import runs
from mirage.evaluate.datasets import DEFAULT_N, default_max_tokens, eval_datasets, load_problems, task_kind
from mirage.evaluate.scoring import ScorePool, make_sampler, render_prompt
from mirage.models import resolve_model
from mirage.passk import bootstrap_ci, counts_from_samples, default_ks
from mirage.ranges import SAMPLE_TEMPERATURE, SAMPLES, SEED, THREADS, TOKENS, TOP_P, Range, check_fields
from mirage.rewards.routing import parse_options, recorded_options
from mirage.sample.base import SamplingParams, prompt_seed, prompt_token_ids
from mirage.sample.vllm import BATCH_INVARIANCE, SEEDING

MANIFEST = "eval_manifest.json"
SAMPLE_COLUMNS = ["dataset", "problem_id", "data_source", "sample_index", "text", "finish_reason",
                  "num_tokens", "pred", "acc", "format", "score", "correct", "ground_truth", "seed",
                  "prompt_seed", "sum_neg_logprob", "acc_any_format"]
SAMPLE_DTYPES = {"dataset": "string", "problem_id": "string", "data_source": "string", "sample_index": "int64",
                 "text": "string", "finish_reason": "string", "num_tokens": "int64", "pred": "string",
                 "acc": "float64", "format": "float64", "score": "float64", "correct": "bool",
                 "ground_truth": "string", "seed": "int64", "prompt_seed": "int64",
                 "sum_neg_logprob": "float64", "acc_any_format": "float64"}
# Columns added after the first evaluations were stored: a part file without one reads back with
# the value below (NaN: "not recorded"), so older folders still load and resume.
OPTIONAL_COLUMNS = {"sum_neg_logprob": float("nan"), "acc_any_format": float("nan")}


@dataclass(frozen=True)
class EvalSettings:
    """Everything that determines the rows; a resumed evaluation must match it exactly."""

    model: str
    task: str  # task name, dataset name or parquet path, as given
    n: int
    # the sampling defaults are SamplingParams'
    temperature: float = SamplingParams.temperature
    top_p: float = SamplingParams.top_p
    max_tokens: int = SamplingParams.max_tokens
    seed: int = SamplingParams.seed
    step: int | None = None  # checkpoint step (0 = base model), when part of a run
    format_gated: bool = False  # count the training reward (format AND correct) instead of acc
    score_kwargs: dict = field(default_factory=dict)  # extra mirage.rewards.compute_score kwargs
    vllm_seeding: str = "per-request"  # vLLM: a seed per request, or "batched" (mirage.sample.vllm.SEEDING)

    def to_dict(self) -> dict:
        """What the manifest records and a resume compares; keys added later are left out at their default,
        so an evaluation folder written before them still matches its settings."""
        d = dataclasses.asdict(self)
        if d["vllm_seeding"] == "per-request":
            del d["vllm_seeding"]
        return d


# The range of every numeric evaluation setting, stated once: evaluate() checks them before any work, the
# CLI flags parse with them (mirage.ranges.flag_type), docs/evaluation.md lists them.
EVAL_RANGES = {
    "n": SAMPLES,
    "temperature": SAMPLE_TEMPERATURE,
    "top_p": TOP_P,
    "max_tokens": TOKENS,
    "seed": SEED,
    "step": Range(0, 10**9, integer=True, none_ok=True),
    "batch_size": Range(1, 2**20, integer=True, none_ok=True),  # problems per sampling call
    "score_processes": Range(0, 1024, integer=True, none_ok=True),  # 0: score inline
    "threads": THREADS,  # hf: torch CPU threads
    "tensor_parallel_size": Range(1, 1024, integer=True),  # vllm: GPUs per engine
    "max_model_len": Range(1, 2**23, integer=True, none_ok=True),  # vllm: engine context
}


# --- one evaluation ------------------------------------------------------------------
def _parts(out_dir: Path, dataset: str) -> list[Path]:
    return sorted((out_dir / "samples" / dataset).glob("part-*.parquet"))


def _finished(out_dir: Path, dataset: str, n: int) -> set[str]:
    return runs.finished_in_parts(_parts(out_dir, dataset), n, unit="samples (n)")


def read_samples(out_dir: str | os.PathLike, dataset: str | None = None) -> pd.DataFrame:
    """All sample rows of an evaluation (one dataset, or all)."""
    out_dir = Path(out_dir)
    datasets = [dataset] if dataset else sorted(p.name for p in (out_dir / "samples").iterdir())
    frames = [_with_optional(pd.read_parquet(p)) for d in datasets for p in _parts(out_dir, d)]
    if not frames:
        return pd.DataFrame(columns=SAMPLE_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _with_optional(frame: pd.DataFrame) -> pd.DataFrame:
    """A part file with every optional column (a folder written before a column existed lacks it)."""
    for col, value in OPTIONAL_COLUMNS.items():
        if col not in frame.columns:
            frame[col] = pd.Series(value, index=frame.index, dtype=SAMPLE_DTYPES[col])
    if all(c in frame.columns for c in SAMPLE_COLUMNS):  # the stored order, whichever column was added
        frame = frame[SAMPLE_COLUMNS + [c for c in frame.columns if c not in SAMPLE_COLUMNS]]
    return frame


def passk_table(samples: pd.DataFrame, n: int, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """pass@k (k = 1, 2, 4, ..., n) with bootstrap CIs, one block per dataset."""
    tables = []
    for dataset, rows in samples.groupby("dataset", sort=True):
        counts = counts_from_samples(rows, by="problem_id", correct="correct")
        curve = bootstrap_ci(counts["n"].to_numpy(), counts["c"].to_numpy(), ks=default_ks(n),
                             n_boot=n_boot, seed=seed)
        curve.insert(0, "dataset", dataset)
        tables.append(curve)
    return pd.concat(tables, ignore_index=True)


FORMAT_COLUMNS = ["dataset", "n_problems", "n_samples", "pass_at_1", "format_rate", "answer_acc",
                  "format_free_accuracy", "format_free_accuracy_samples", "format_free_defined"]


def format_table(samples: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, beside pass@1: the format rate and the format-free accuracy (docs/evaluation.md).

    ``pass_at_1``, ``format_rate``, ``answer_acc`` (the ``acc`` column: the <answer> block's answer,
    think tags ignored) and ``format_free_accuracy`` are means over problems of each problem's mean over
    its samples (pass@1's estimator); ``format_free_accuracy_samples`` is the plain mean over samples
    (the same when every problem has n samples). Format-free accuracy is NaN when any sample lacks it
    (a folder written before the column, or a family without a lenient reading:
    ``format_free_defined`` is the share of samples that have it).
    """
    rows = []
    samples = _with_optional(samples.copy())
    for dataset, d in samples.groupby("dataset", sort=True):
        per = d.assign(_correct=d["correct"].astype("float64")).groupby("problem_id")[
            ["_correct", "format", "acc", "acc_any_format"]].mean()
        defined = float(d["acc_any_format"].notna().mean())
        complete = defined == 1.0
        rows.append({"dataset": dataset, "n_problems": len(per), "n_samples": len(d),
                     "pass_at_1": float(per["_correct"].mean()), "format_rate": float(per["format"].mean()),
                     "answer_acc": float(per["acc"].mean()),
                     "format_free_accuracy": float(per["acc_any_format"].mean()) if complete else float("nan"),
                     "format_free_accuracy_samples": float(d["acc_any_format"].mean()) if complete else float("nan"),
                     "format_free_defined": defined})
    return pd.DataFrame(rows, columns=FORMAT_COLUMNS)


def _check_settings(out_dir: Path, settings: EvalSettings, restart: bool) -> dict:
    """The folder's manifest; an error when it holds an evaluation with other settings (``restart``: wipe it)."""
    manifest = runs.read_manifest(out_dir, MANIFEST)
    recorded = manifest.get("config", manifest.get("settings"))
    diff = runs.config_diff(recorded, settings.to_dict())
    if "model" in diff and _same_path(*diff["model"]):  # one checkpoint named relative, then absolute
        del diff["model"]
    if diff and restart:
        for child in ("samples", MANIFEST, "passk.parquet", "passk.csv", "format.parquet", "format.csv"):
            path = out_dir / child
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return {}
    if diff:
        raise ValueError(f"{out_dir}: this folder holds an evaluation with other settings "
                         f"(key: (on disk, requested)) {diff}; evaluate into another folder (mirage eval --out; "
                         f"evaluate(out_dir=...)) or start this one over (mirage eval --restart; restart=True)")
    return manifest


def _same_path(a: Any, b: Any) -> bool:
    """Whether two model names are one existing folder (a path given relative, then absolute)."""
    try:
        pa, pb = (runs.files.resolve(str(x)) for x in (a, b))
    except (ValueError, OSError, RuntimeError):
        return False
    return pa == pb and pa.exists()


def evaluate(model: str, task_or_dataset: str, n: int | None = None, sampler: Any = "hf", *,
             temperature: float = SamplingParams.temperature, top_p: float = SamplingParams.top_p,
             max_tokens: int | None = None, seed: int = SamplingParams.seed, out_dir: str | os.PathLike | None = None, format_gated: bool = False, batch_size: int | None = None,
             score_processes: int | None = None, score_kwargs: dict | None = None, step: int | None = None,
             sampler_kwargs: dict | None = None, n_boot: int = 1000, progress: bool = True,
             restart: bool = False) -> pd.DataFrame:
    """Sample ``n`` responses per problem, score them, write rows and the pass@k curve.

    ``sampler`` is a ``Sampler`` or a backend name ('hf', 'vllm'; built from ``model``
    with ``sampler_kwargs`` only if some problem still needs sampling, so a finished
    evaluation reruns for free). Returns the pass@k table. Every setting is checked
    before anything is sampled; ``restart`` starts over a folder that holds other settings.
    """
    kind = task_kind(task_or_dataset)  # (reads a parquet's data sources: once)
    n = DEFAULT_N[kind] if n is None else n
    max_tokens = default_max_tokens(task_or_dataset, kind) if max_tokens is None else max_tokens
    check_fields({"n": n, "max_tokens": max_tokens, "seed": seed, "temperature": temperature, "top_p": top_p,
                  "step": step, "batch_size": batch_size, "score_processes": score_processes,
                  **{k: v for k, v in (sampler_kwargs or {}).items() if k in EVAL_RANGES}}, EVAL_RANGES)
    SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)  # checks them
    if score_processes is None:  # testbed answers are checked in microseconds: a pool would only compete for CPUs
        score_processes = 0 if kind == "testbed" else max(1, min(8, (os.cpu_count() or 2) - 1))
    settings = EvalSettings(model=str(model), task=str(task_or_dataset), n=n, temperature=temperature,
                            top_p=top_p, max_tokens=max_tokens, seed=seed, step=step,
                            format_gated=format_gated,
                            # the options checkers ask to record even at their default (KOR-Bench's mode)
                            score_kwargs={**recorded_options(), **(score_kwargs or {})})
    if isinstance(sampler, str):  # a backend name: the model must resolve before anything runs
        resolve_model(model)
        seeding = (sampler_kwargs or {}).get("seeding", "per-request") if sampler == "vllm" else "per-request"

        if seeding not in SEEDING:
            raise ValueError(f"--vllm-seeding: one of {', '.join(SEEDING)}, got {seeding!r}")
    else:
        seeding = getattr(sampler, "seeding", None) or (
            sampler.describe().get("seeding", "per-request") if getattr(sampler, "backend", "") == "vllm"
            else "per-request")
    settings = dataclasses.replace(settings, vllm_seeding=seeding)
    if score_kwargs:  # a misspelt scoring option fails here, not after sampling

        parse_options({k: v for k, v in score_kwargs.items() if k != "release_faithful"})
    datasets = [(name, path, load_problems(name, path)) for name, path in eval_datasets(task_or_dataset)]
    out_dir = Path(out_dir) if out_dir else runs.eval_dir(model, task_or_dataset)
    created = runs.files.first_missing(out_dir)
    with runs.FolderLock(out_dir, "evaluation"):
        try:
            return _evaluate(model, task_or_dataset, datasets, n, sampler, settings, out_dir, kind, batch_size,
                             score_processes, sampler_kwargs, n_boot, progress, restart)
        except BaseException:  # refused before writing anything (an over-long prompt): leave no folder behind
            if created is not None and runs.files.holds_only_locks(created):
                shutil.rmtree(created, ignore_errors=True)
            raise


def check_prompt_lengths(model: str, prompts: list, sampler: Any,
                         sampler_kwargs: dict | None = None) -> tuple[int, int] | None:
    """Every prompt must leave room for a response in the model's context (its max_position_embeddings; vLLM:
    ``max_model_len`` when smaller), as training checks its prompts against max_prompt_length: an error naming
    the file, the problem and its length, before anything is sampled. ``prompts``: (dataset file, problem id,
    messages). Checked for a local model folder or a sampler that can encode (a hub id is left to the sampler:
    vLLM refuses an over-long prompt itself). Returns (longest prompt in tokens, the model's positions) when
    it could count, else None."""
    import json

    if isinstance(sampler, str):
        path = Path(resolve_model(model))
        if not (path / "config.json").is_file():
            path = _cached_hub_model(model)  # a hub id already in the local HF cache (never the network)
            if path is None:
                return None
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        positions = config.get("max_position_embeddings") or (config.get("text_config") or {}).get(
            "max_position_embeddings")
        if not positions:
            return
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        tokenizer.model_max_length = int(1e12)  # counted here, not truncated: no "longer than" warning

        def encode(messages):
            return prompt_token_ids(tokenizer, messages)
    else:
        encode = getattr(sampler, "encode", None)
        positions = getattr(getattr(getattr(sampler, "model", None), "config", None), "max_position_embeddings", None)
        if encode is None or not isinstance(positions, int):
            return
    cap = (sampler_kwargs or {}).get("max_model_len")
    limit = min(int(positions), int(cap)) if cap else int(positions)
    longest = 0
    for path, pid, prompt in prompts:
        tokens = len(encode(prompt))
        if tokens >= limit:
            raise ValueError(f"{path}: problem {pid!r} has a prompt of {tokens} tokens, but the model {model} has "
                             f"{limit} positions: no room for a response; shorten or drop that problem, or use a "
                             "model with a longer context")
        longest = max(longest, tokens)
    return longest, int(positions)


def _cached_hub_model(model: str) -> Path | None:
    """The snapshot folder of a hub id whose config and tokenizer are in the local HF cache, else None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(str(model), "config.json")
        tokenizer = try_to_load_from_cache(str(model), "tokenizer_config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id
        return None
    if isinstance(config, str) and isinstance(tokenizer, str) and Path(config).parent == Path(tokenizer).parent:
        return Path(config).parent
    return None


def vllm_context(longest_prompt: int, max_tokens: int, positions: int) -> int:
    """vLLM's max_model_len for an evaluation: the longest prompt plus the response budget, within the model's
    positions. Left unset, vLLM takes the model's whole context (131k for Llama-3.1), whose KV cache does not
    fit a 40 GB card."""
    return min(int(positions), int(longest_prompt) + int(max_tokens))


def _evaluate(model, task_or_dataset, datasets, n, sampler, settings: EvalSettings, out_dir: Path, kind, batch_size,
              score_processes, sampler_kwargs, n_boot, progress, restart) -> pd.DataFrame:
    from tqdm.auto import tqdm

    manifest = _check_settings(out_dir, settings, restart)
    manifest_path = out_dir / MANIFEST
    seed, step = settings.seed, settings.step
    todo = []  # (dataset, position, problem row)
    for name, _, problems in datasets:
        done = _finished(out_dir, name, n)
        todo += [(name, pos, row) for pos, row in enumerate(problems.itertuples()) if row.problem_id not in done]
    total = sum(len(p) for _, _, p in datasets)

    started = time.time()
    attempt = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "problems": len(todo), "samples": len(todo) * n,
               "score_processes": score_processes}
    if todo:  # the prompts still to sample must fit the model's context (a finished rerun costs nothing)
        paths = {name: path for name, path, _ in datasets}
        counted = check_prompt_lengths(model, [(paths[name], row.problem_id, row.prompt) for name, _, row in todo],
                                       sampler, sampler_kwargs)
        if sampler == "vllm" and counted and not (sampler_kwargs or {}).get("max_model_len"):
            sampler_kwargs = {**(sampler_kwargs or {}),
                              "max_model_len": vllm_context(counted[0], settings.max_tokens, counted[1])}
        own_sampler = isinstance(sampler, str)
        if own_sampler:
            sampler = make_sampler(sampler, model, seed=seed, **(sampler_kwargs or {}))
        batch_size = attempt["batch_size"] = batch_size or default_batch_size(sampler)
        first = datasets[0][2]["prompt"].iloc[0]
        manifest.update({
            "kind": "eval", "config": settings.to_dict(), "model": str(model), "step": step,
            "task": str(task_or_dataset),
            "datasets": [{"name": name, "path": str(path), "n_problems": len(p),
                          "data_sources": sorted(p["data_source"].unique())} for name, path, p in datasets],
            "prompt_template": {"messages": first, "rendered": render_prompt(sampler, first)},
            "sampler": sampler.describe(), "versions": runs.library_versions(
                "mirage", "torch", "transformers", "vllm", "math-verify", "numpy", "pandas", "pyarrow"),
            "hardware": runs.hardware(), "status": runs.Status.RUNNING.value,
        })
        if manifest["sampler"].get("backend") == "vllm":  # what rows may differ by on a rerun (docs/evaluation.md)

            manifest["vllm"] = {"version": manifest["sampler"].get("vllm_version"), "seeding": settings.vllm_seeding,
                                "batch_invariance": BATCH_INVARIANCE}
        manifest.pop("settings", None)
        runs.write_json_atomic(manifest_path, manifest)
        params = SamplingParams(n=n, temperature=settings.temperature, top_p=settings.top_p,
                                max_tokens=settings.max_tokens, seed=seed)
        scorer = ScorePool(score_processes, settings.format_gated, settings.score_kwargs)
        bar = tqdm(total=total, initial=total - len(todo), unit="problem", desc=f"eval {runs.slug(model)}",
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
            runs.write_parquet_atomic(out_dir / "samples" / dataset / f"part-{pos:06d}.parquet", frame)
            written += len(frame)
            bar.update(len(frame) // n)
            bar.set_postfix(samples_per_s=f"{written / (time.time() - loop_start):.1f}")

        pending = None
        try:
            for chunk in runs.dataset_chunks(todo, batch_size):
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
    runs.write_parquet_atomic(out_dir / "passk.parquet", table)
    with runs.atomic_path(out_dir / "passk.csv") as tmp:
        table.to_csv(tmp, index=False)
    formats = format_table(samples)
    runs.write_parquet_atomic(out_dir / "format.parquet", formats)
    with runs.atomic_path(out_dir / "format.csv") as tmp:
        formats.to_csv(tmp, index=False)
    fmt = formats.set_index("dataset")
    by_dataset = samples.groupby("dataset")
    manifest.update(status=runs.Status.FINISHED.value, finished=runs.manifest.now(), summary={
        d: {"pass@1": float(t.loc[t.k == 1, "pass_at_k"].iloc[0]),
            f"pass@{n}": float(t.loc[t.k == t.k.max(), "pass_at_k"].iloc[0]),
            "truncated": float((by_dataset.get_group(d)["finish_reason"] == "length").mean()),
            "mean_tokens": float(by_dataset.get_group(d)["num_tokens"].mean()),
            "format_rate": float(fmt.loc[d, "format_rate"]),
            "format_free_accuracy": _json_float(fmt.loc[d, "format_free_accuracy"])}
        for d, t in table.groupby("dataset")})
    runs.write_json_atomic(manifest_path, manifest)
    return table


def _json_float(v) -> float | None:
    """A float for the manifest (JSON has no NaN: None)."""
    return None if v is None or math.isnan(float(v)) else float(v)


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
                         "prompt_seed": pseed, "sum_neg_logprob": sum_neg_logprob(c)})
            items.append((problem.data_source, c.text, problem.ground_truth, problem.extra_info))
    return rows, items


def sum_neg_logprob(completion) -> float:
    """-sum log p(sampled token) over a completion's tokens (the stop token included), NaN when the
    sampler gives no log-probs. Over many samples at top_p = 1, its sum divided by the token count
    estimates the sampling distribution's mean per-token entropy (``mirage.evaluate.predictors``).
    Per-token log-probs (the testbed/HF sampler) or their sum (vLLM's ``cumulative_logprob``)."""
    lps = completion.logprobs
    if lps is not None and len(lps) == completion.num_tokens:
        return float(-sum(lps))
    cumulative = getattr(completion, "cumulative_logprob", None)
    if lps is None and cumulative is not None and math.isfinite(cumulative):
        return float(-cumulative)
    return float("nan")


def default_batch_size(sampler) -> int:
    """Problems per chunk. Each chunk ends at a barrier (its longest response), so vLLM gets
    64 problems per engine: with n=256 a chunk is ~16k responses, long enough that one
    straggler cut at max_tokens idles the GPU for a small fraction of the chunk."""
    if sampler.backend == "vllm":
        return 64 * len(getattr(sampler, "workers", [sampler]))
    return 32


