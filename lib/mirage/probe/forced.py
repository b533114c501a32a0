"""``probe_forced``: how accurate is a model when its scratchpad is started on the correct procedure?

Erosion vs habit (docs/science.md section 6): after random-reward training a model may have lost
the *ability* to follow the correct procedure, or only the *habit* of starting on it. For each
problem of a testbed evaluation set (the generator knows the correct worked solution:
``mirage.tasks.toy``, ``extra_info.steps``) the model answers

* *unforced*: the prompt through its chat template, as evaluation asks it;
* *forced*: the same rendered prompt followed by ``<think>`` and the first ``prefix_steps`` steps of
  the correct worked solution (then a space), continued by the model; the response scored is
  that prefix plus the continuation.

Both are scored by the task's checker as evaluation scores (``mirage.evaluate.scoring``), and the
answer's procedure (correct / buggy / neither) is recorded. A model that keeps the ability but lost
the habit is accurate when forced and not unforced; one that lost the ability is inaccurate both
ways. The prefix always leaves at least one step (and the answer) for the model to compute: a
``prefix_steps`` that would give some problem's whole solution is refused before any work.

Folder (like the contamination probe's, ``mirage.probe.contamination``):

    <out_dir>/forced_manifest.json               settings, datasets, sampler, timing
    <out_dir>/rows/<dataset>/part-<pos>.parquet  one row per problem x sample, one file per chunk
    <out_dir>/summary.parquet, summary.csv       per dataset: unforced and forced accuracy, procedures

Chunks are written atomically once scored (a kill loses at most the chunk in flight; a rerun skips
what is on disk); the folder is locked while written; a folder holding a probe with other settings
is refused, naming the keys that differ.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mirage import runs
from mirage.evaluate.datasets import default_max_tokens, eval_datasets, load_problems
from mirage.evaluate.scoring import score_samples
from mirage.probe import runner as probe_runner
from mirage.probe.contamination import load_tokenizer
from mirage.probe.runner import run_probe
from mirage.ranges import SAMPLE_TEMPERATURE, SAMPLES, SEED, TOKENS, Range, check_fields
from mirage.rewards.response import THINK_OPEN
from mirage.rewards.routing import route
from mirage.sample.base import (RawText, SamplingParams, apply_chat_template, prompt_seed, prompt_token_ids,
                                raw_token_ids)

MANIFEST = "forced_manifest.json"
ROW_DTYPES = {"dataset": "string", "problem_id": "string", "data_source": "string", "sample_index": "int64",
              "steps_total": "int64", "prefix": "string", "unforced_text": "string", "unforced_pred": "string",
              "unforced_acc": "float64", "unforced_format": "float64", "unforced_procedure": "string",
              "forced_text": "string", "forced_pred": "string", "forced_acc": "float64",
              "forced_format": "float64", "forced_procedure": "string"}
SUMMARY_COLUMNS = ["dataset", "problems", "samples", "prefix_steps", "unforced_acc", "forced_acc", "forced_gain",
                   "unforced_buggy", "forced_buggy", "forced_neither", "unforced_format", "forced_format"]


@dataclass(frozen=True)
class ForcedSettings:
    """Everything that determines the rows; a resumed probe must match it exactly."""

    model: str
    task: str
    prefix_steps: int = 1
    n: int = 1
    temperature: float = 0.0  # 0: greedy
    max_tokens: int = 1024
    seed: int = 0
    limit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def forced_dir(model: str, task: str, root: str | os.PathLike = "runs/probe-forced") -> Path:
    return Path(root) / runs.slug(model) / runs.slug(task)


def split_steps(steps: str) -> list[str]:
    """A testbed worked solution's steps ("3*4=12 5+12=17" -> two steps)."""
    return str(steps).split()


def forced_prefix(steps: str, prefix_steps: int) -> str:
    """What the forced scratchpad starts with: ``<think>`` and the first steps, then a space."""
    return THINK_OPEN + " ".join(split_steps(steps)[:prefix_steps]) + " "


# --- before any work ----------------------------------------------------------------------
def load_forced_problems(task_or_dataset: str, limit: int | None, prefix_steps: int):
    """(dataset name, path, problems) per evaluation set; every problem needs a worked solution longer than
    the prefix (a one-line error naming the problem otherwise)."""
    out = []
    for name, path in eval_datasets(task_or_dataset):
        problems = load_problems(name, path)
        if limit is not None:
            problems = problems.iloc[:limit].reset_index(drop=True)
        for row in problems.itertuples():
            steps = (row.extra_info or {}).get("steps") if isinstance(row.extra_info, dict) else None
            if not steps:
                raise ValueError(f"--task {task_or_dataset}: {name} problem {row.problem_id!r} has no worked solution "
                                 "(extra_info.steps); the forced-procedure probe runs on the testbed tasks only")
            total = len(split_steps(steps))
            if prefix_steps >= total:
                raise ValueError(f"--prefix-steps {prefix_steps}: {name} problem {row.problem_id!r} has {total} "
                                 f"step(s); the prefix must leave at least one to compute (use at most {total - 1}, "
                                 "or a harder difficulty)")
        out.append((name, path, problems))
    return out


def prompt_renderer(model: str, sampler: Any):
    """(messages -> the rendered chat prompt as raw text the sampler encodes to the same tokens, the tokenizer
    or None when the sampler renders its own prompts)."""
    tokenizer = getattr(sampler, "tokenizer", None)
    if tokenizer is None and isinstance(sampler, str):
        tokenizer = load_tokenizer(model)
    if tokenizer is None:  # a sampler that renders its own prompts (tests' fakes)
        if not hasattr(sampler, "render_prompt"):
            raise ValueError(f"--model {model}: the sampler has neither a tokenizer nor render_prompt; the forced "
                             "probe needs the chat template's text")
        return sampler.render_prompt, None

    bos = getattr(tokenizer, "bos_token", None)

    def render(messages) -> str:
        text = apply_chat_template(tokenizer, messages)
        # raw text is encoded as a document start (BOS added): drop the template's own BOS
        return text[len(bos):] if bos and text.startswith(bos) else text

    return render, tokenizer


def check_rendering(render, tokenizer, messages) -> None:
    """The raw text of the rendered prompt must encode to the chat prompt's tokens exactly."""
    if tokenizer is not None and raw_token_ids(tokenizer, render(messages)) != prompt_token_ids(tokenizer, messages):
        raise ValueError("the rendered chat prompt, encoded as raw text, differs from the chat prompt's tokens "
                         "(a template this probe cannot reproduce); the forced probe would ask another prompt")


# --- the probe ----------------------------------------------------------------------------
def probe_forced(model: str, task_or_dataset: str, *, prefix_steps: int = 1, n: int = 1, temperature: float = 0.0,
                 max_tokens: int | None = None, seed: int = 0, sampler: Any = "hf",
                 out_dir: str | os.PathLike | None = None, limit: int | None = None, batch_size: int = 64,
                 sampler_kwargs: dict | None = None, progress: bool = True) -> pd.DataFrame:
    """Run (or resume) the probe; returns the summary (one row per dataset; module docstring)."""
    max_tokens = default_max_tokens(task_or_dataset) if max_tokens is None else max_tokens
    check_fields({"prefix_steps": prefix_steps, "n": n, "temperature": temperature, "max_tokens": max_tokens,
                  "seed": seed, "limit": limit, "batch_size": batch_size},
                 {"prefix_steps": Range(1, 10**6, integer=True), "n": SAMPLES, "temperature": SAMPLE_TEMPERATURE,
                  "max_tokens": TOKENS, "seed": SEED, "limit": Range(1, 10**9, integer=True, none_ok=True),
                  "batch_size": Range(1, 2**20, integer=True)})
    if temperature == 0 and n != 1:
        raise ValueError(f"--n {n}: greedy decoding (--temperature 0) gives one answer per prompt; use --n 1")
    if isinstance(sampler, str) and sampler not in ("hf", "vllm"):
        raise ValueError(f"--backend: hf or vllm, got {sampler!r}")
    if sampler == "hf":  # a chunk's prompts decode as one batch
        sampler_kwargs = {"batch_size": None, **(sampler_kwargs or {})}
    settings = ForcedSettings(str(model), str(task_or_dataset), int(prefix_steps), int(n), float(temperature),
                              int(max_tokens), int(seed), limit)
    datasets = load_forced_problems(task_or_dataset, limit, prefix_steps)
    render, tokenizer = prompt_renderer(model, sampler)
    check_rendering(render, tokenizer, datasets[0][2]["prompt"].iloc[0])
    out_dir = Path(out_dir) if out_dir else forced_dir(model, task_or_dataset)
    with runs.FolderLock(out_dir, "forced probe"):
        manifest = probe_runner.check_settings(out_dir, MANIFEST, settings, "a forced probe")
        return _probe(model, datasets, render, sampler, settings, manifest, out_dir, batch_size, sampler_kwargs,
                      progress)


def read_rows(out_dir: str | os.PathLike) -> pd.DataFrame:
    """Every row of a forced-probe folder."""
    return probe_runner.read_rows(out_dir, list(ROW_DTYPES))


def summarise(rows: pd.DataFrame, prefix_steps: int) -> pd.DataFrame:
    """Per dataset: accuracy unforced and forced (means over problems of their samples' means, pass@1's
    estimator), the forced gain, the buggy / neither shares of the answers, and both format rates."""
    out = []
    for dataset, d in rows.groupby("dataset", sort=True):
        per = d.assign(unforced_buggy=(d["unforced_procedure"] == "buggy").astype(float),
                       forced_buggy=(d["forced_procedure"] == "buggy").astype(float),
                       forced_neither=(d["forced_procedure"] == "neither").astype(float)).groupby("problem_id")[
            ["unforced_acc", "forced_acc", "unforced_buggy", "forced_buggy", "forced_neither", "unforced_format",
             "forced_format"]].mean().mean()
        out.append({"dataset": dataset, "problems": int(d["problem_id"].nunique()), "samples": len(d),
                    "prefix_steps": prefix_steps, **{k: float(v) for k, v in per.items()},
                    "forced_gain": float(per["forced_acc"] - per["unforced_acc"])})
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def _probe(model, datasets, render, sampler, settings: ForcedSettings, manifest: dict, out_dir: Path,
           batch_size: int, sampler_kwargs, progress: bool) -> pd.DataFrame:
    record = {"kind": "probe-forced", "config": settings.to_dict(),
              "datasets": [{"name": n, "path": str(p), "n_problems": len(pr)} for n, p, pr in datasets]}
    return run_probe(model, datasets, sampler, out_dir=out_dir, manifest_name=MANIFEST, manifest=manifest,
                     record=record, rows_per_problem=settings.n, unit="rows (n per problem)",
                     probe_chunk=lambda chunk, s: _probe_chunk(chunk, s, render, settings),
                     summarise=lambda rows: summarise(rows, settings.prefix_steps), columns=list(ROW_DTYPES),
                     batch_size=batch_size, desc="forced", progress=progress,
                     sampler_kwargs={"seed": settings.seed, **(sampler_kwargs or {})})


def _probe_chunk(chunk: list, sampler, render, settings: ForcedSettings) -> pd.DataFrame:
    """Rows of one chunk: each problem asked plainly and with the forced prefix, ``n`` samples each, scored."""
    params = SamplingParams(n=settings.n, temperature=settings.temperature, top_p=1.0,
                            max_tokens=settings.max_tokens, seed=settings.seed)
    prefixes = [forced_prefix(row.extra_info["steps"], settings.prefix_steps) for _, _, row in chunk]
    plain = [row.prompt for _, _, row in chunk]
    forced = [RawText(render(row.prompt) + prefix) for (_, _, row), prefix in zip(chunk, prefixes)]
    seeds = [prompt_seed(settings.seed, f"{d}/{row.problem_id}/unforced") for d, _, row in chunk]
    seeds += [prompt_seed(settings.seed, f"{d}/{row.problem_id}/forced") for d, _, row in chunk]
    outs = sampler.generate(plain + forced, params, seeds)
    if len(outs) != 2 * len(chunk) or any(len(o) != settings.n for o in outs):
        raise RuntimeError(f"sampler returned {[len(o) for o in outs]} samples for {2 * len(chunk)} prompts, "
                           f"expected {settings.n} each")
    records, items = [], []
    for i, (dataset, _, row) in enumerate(chunk):
        for j in range(settings.n):
            unforced = outs[i][j].text
            forced_text = prefixes[i] + outs[len(chunk) + i][j].text
            records.append((dataset, row, j, prefixes[i], unforced, forced_text))
            items += [(row.data_source, unforced, row.ground_truth, row.extra_info),
                      (row.data_source, forced_text, row.ground_truth, row.extra_info)]
    scores = score_samples(items, False, {})  # every checker at its default options
    rows = []
    for k, (dataset, row, j, prefix, unforced, forced_text) in enumerate(records):
        u, f = scores[2 * k], scores[2 * k + 1]
        procedure_of = route(row.data_source).procedure  # the checker entry's (the testbed's: correct/buggy/neither)
        rows.append({"dataset": dataset, "problem_id": str(row.problem_id), "data_source": row.data_source,
                     "sample_index": j, "steps_total": len(split_steps(row.extra_info["steps"])), "prefix": prefix,
                     "unforced_text": unforced, "unforced_pred": u["pred"], "unforced_acc": u["acc"],
                     "unforced_format": u["format"],
                     "unforced_procedure": procedure_of(u["pred"], row.ground_truth, row.extra_info),
                     "forced_text": forced_text, "forced_pred": f["pred"], "forced_acc": f["acc"],
                     "forced_format": f["format"],
                     "forced_procedure": procedure_of(f["pred"], row.ground_truth, row.extra_info)})
    return pd.DataFrame(rows).astype(ROW_DTYPES)
