"""``probe_contamination``: does a model complete a problem it is shown only the start of?

For each problem of each evaluation set and each fraction x, the model gets the first
x of the problem statement as RAW text (no chat template: a base model continuing a
document, as Wu et al., arXiv 2507.10532, probe Qwen2.5 on MATH500), decodes greedily,
and the continuation is compared with the true remainder (exact match, ROUGE-L:
``mirage.probe.text``). The model is also asked the truncated problem through its chat
template (greedy, scored by the task's checker as evaluation scores it), and the whole
problem once, for reference.

Folder (like an evaluation's, ``mirage.evaluate``):

    <out_dir>/probe_manifest.json            settings, datasets, continuation lengths, sampler, timing
    <out_dir>/rows/<dataset>/part-<pos>.parquet  one row per problem x fraction, one file per chunk
    <out_dir>/summary.parquet, summary.csv   dataset x fraction: exact match, ROUGE-L, accuracies

A chunk's file is written atomically once scored, so a kill loses at most that chunk
and a rerun skips what is on disk; the folder is locked while written; a folder that
holds a probe with other settings is refused, naming the keys that differ.
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
from mirage.models import resolve_model
from mirage.probe import runner as probe_runner, text as P
from mirage.probe.runner import run_probe
from mirage.ranges import check_parameters
from mirage.sample.base import RawText, SamplingParams, prompt_seed

MANIFEST = "probe_manifest.json"
FRACTIONS = (0.4, 0.6, 0.8)
CONTINUATION_MARGIN = 8  # tokens decoded beyond the longest remainder of a dataset
ROW_DTYPES = {"dataset": "string", "problem_id": "string", "data_source": "string", "fraction": "float64",
              "statement_chars": "int64", "prefix": "string", "remainder": "string", "continuation": "string",
              "exact_match": "bool", "rouge_l": "float64", "answer_text": "string", "answer_pred": "string",
              "answer_acc": "float64", "full_acc": "float64"}


@dataclass(frozen=True)
class ProbeSettings:
    """Everything that determines the rows; a resumed probe must match it exactly."""

    model: str
    task: str
    fractions: tuple[float, ...] = FRACTIONS
    limit: int | None = None  # the first N problems of each evaluation set
    answer_max_tokens: int = 1024  # the chat answers (default: the recipe's response length)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fractions"] = list(self.fractions)
        return d


def probe_dir(model: str, task: str, root: str | os.PathLike = "runs/probe") -> Path:
    return Path(root) / runs.slug(model) / runs.slug(task)


# --- before any work -------------------------------------------------------------------
def load_tokenizer(model: str, sampler: Any = None):
    """The model's tokenizer (the sampler's if it has one); a model without one is an error naming it."""
    tokenizer = getattr(sampler, "tokenizer", None)
    if tokenizer is not None:
        return tokenizer

    path = resolve_model(model)
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"--model {model}: no usable tokenizer at {path} ({first[:160]}); the probe needs the "
                         "model's tokenizer to cut and compare text") from None


def load_probe_problems(task_or_dataset: str, limit: int | None, fractions: tuple[float, ...]):
    """(dataset name, path, problems with statement) per evaluation set; empty statements are refused."""
    out = []
    for name, path in eval_datasets(task_or_dataset):
        problems = load_problems(name, path)
        if limit is not None:
            problems = problems.iloc[:limit].reset_index(drop=True)
        statements = []
        for row in problems.itertuples():
            statement = P.problem_statement(row.prompt, row.extra_info)
            if not statement:
                raise ValueError(f"{name} problem {row.problem_id!r}: the problem statement is empty")
            if len(statement) < 2:
                raise ValueError(f"{name} problem {row.problem_id!r}: the problem statement {statement!r} is too "
                                 "short to cut into a prefix and a remainder")
            statements.append(statement)
        problems = problems.assign(statement=statements)
        out.append((name, path, problems))
    return out


def continuation_tokens(tokenizer, problems: pd.DataFrame, fractions: tuple[float, ...]) -> int:
    """Tokens to decode for a dataset: its longest remainder (at the smallest fraction) plus a margin."""
    longest = max(len(tokenizer(P.cut(s, min(fractions)).remainder, add_special_tokens=False)["input_ids"])
                  for s in problems["statement"])
    return longest + CONTINUATION_MARGIN


# --- the probe -------------------------------------------------------------------------
def probe_contamination(model: str, task_or_dataset: str, *, fractions=FRACTIONS, sampler: Any = "hf",
                        out_dir: str | os.PathLike | None = None, limit: int | None = None,
                        answer_max_tokens: int | None = None, batch_size: int = 64,
                        sampler_kwargs: dict | None = None, progress: bool = True) -> pd.DataFrame:
    """Run (or resume) the probe; returns the summary table (dataset x fraction)."""
    fractions = P.parse_fractions(",".join(map(str, fractions))) if not isinstance(fractions, str) \
        else P.parse_fractions(fractions)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"--limit: an integer >= 1, got {limit!r}")
    answer_max_tokens = default_max_tokens(task_or_dataset) if answer_max_tokens is None else answer_max_tokens
    if isinstance(answer_max_tokens, bool) or not isinstance(answer_max_tokens, int) or answer_max_tokens < 1:
        raise ValueError(f"--max-tokens: an integer >= 1, got {answer_max_tokens!r}")
    if isinstance(sampler, str) and sampler not in ("hf", "vllm"):
        raise ValueError(f"--backend: hf or vllm, got {sampler!r}")
    if sampler == "hf":  # a chunk's prompts decode as one batch: a tiny model's decoding is per-step overhead
        sampler_kwargs = {"batch_size": None, **(sampler_kwargs or {})}
    settings = ProbeSettings(str(model), str(task_or_dataset), fractions, limit, answer_max_tokens)
    datasets = load_probe_problems(task_or_dataset, limit, fractions)
    tokenizer = load_tokenizer(model, None if isinstance(sampler, str) else sampler)
    lengths = {name: continuation_tokens(tokenizer, problems, fractions) for name, _, problems in datasets}
    out_dir = Path(out_dir) if out_dir else probe_dir(model, task_or_dataset)
    with runs.FolderLock(out_dir, "probe"):
        manifest = probe_runner.check_settings(out_dir, MANIFEST, settings, "a probe")
        return _probe(model, datasets, lengths, sampler, settings, manifest, out_dir, batch_size,
                      sampler_kwargs, progress)


def read_rows(out_dir: str | os.PathLike) -> pd.DataFrame:
    """Every per-problem row of a probe folder."""
    return probe_runner.read_rows(out_dir, list(ROW_DTYPES))


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """dataset x fraction: problems, exact-match rate, mean ROUGE-L, truncated and full answer accuracy, and
    ``em_ceiling``: the exact-match rate of a model that memorised the whole set and, given a prefix that
    several of its statements share, picks one of them at random (mean of 1 / statements sharing the prefix;
    short statements such as toy-math's "5+3*4-2" share prefixes, long ones rarely do)."""
    shared = rows.groupby(["dataset", "fraction", "prefix"])["problem_id"].transform("nunique")
    return (rows.assign(_ceiling=1.0 / shared).groupby(["dataset", "fraction"], sort=True)
            .agg(problems=("problem_id", "nunique"), exact_match=("exact_match", "mean"),
                 rouge_l=("rouge_l", "mean"), answer_acc=("answer_acc", "mean"), full_acc=("full_acc", "mean"),
                 em_ceiling=("_ceiling", "mean"))
            .reset_index())


def _probe(model, datasets, lengths, sampler, settings: ProbeSettings, manifest: dict, out_dir: Path,
           batch_size: int, sampler_kwargs, progress: bool) -> pd.DataFrame:
    record = {"kind": "probe", "config": settings.to_dict(),
              "datasets": [{"name": n, "path": str(p), "n_problems": len(pr), "continuation_tokens": lengths[n]}
                           for n, p, pr in datasets]}
    return run_probe(model, datasets, sampler, out_dir=out_dir, manifest_name=MANIFEST, manifest=manifest,
                     record=record, rows_per_problem=len(settings.fractions), unit="rows (one per fraction)",
                     probe_chunk=lambda chunk, s: _probe_chunk(chunk, s, settings, lengths[chunk[0][0]],
                                                               score_samples),
                     summarise=summarise, columns=list(ROW_DTYPES), batch_size=batch_size, desc="probe",
                     progress=progress, sampler_kwargs=sampler_kwargs)


def _probe_chunk(chunk: list, sampler, settings: ProbeSettings, continuation_tokens: int, score) -> pd.DataFrame:
    """Rows of one chunk: greedy continuations of the raw prefixes, greedy answers to the truncated and
    the whole problem, scored."""
    cells = [(dataset, row, f, P.cut(row.statement, f)) for dataset, _, row in chunk for f in settings.fractions]
    seeds = [prompt_seed(0, f"{d}/{row.problem_id}/{f}") for d, row, f, _ in cells]
    greedy = dict(n=1, temperature=0.0, top_p=1.0)
    continued = sampler.generate([RawText(c.prefix) for *_, c in cells],
                                 SamplingParams(max_tokens=continuation_tokens, **greedy), seeds)
    asked = [P.truncated_prompt(row.prompt, row.statement, c.prefix) for _, row, _, c in cells]
    whole = [row.prompt for _, _, row in chunk]
    answers = sampler.generate(asked + whole, SamplingParams(max_tokens=settings.answer_max_tokens, **greedy),
                               seeds + [prompt_seed(0, f"{d}/{row.problem_id}") for d, _, row in chunk])
    items = [(row.data_source, out[0].text, row.ground_truth, row.extra_info)
             for (_, row, _, _), out in zip(cells, answers[:len(cells)])]
    items += [(row.data_source, out[0].text, row.ground_truth, row.extra_info)
              for (_, _, row), out in zip(chunk, answers[len(cells):])]
    scores = score(items, False, {})  # every checker at its default options
    full = {row.problem_id: s["acc"] for (_, _, row), s in zip(chunk, scores[len(cells):])}
    records = []
    for (dataset, row, fraction, c), cont, ans, s in zip(cells, continued, answers, scores):
        text = cont[0].text
        records.append({"dataset": dataset, "problem_id": str(row.problem_id), "data_source": row.data_source,
                        "fraction": fraction, "statement_chars": len(row.statement), "prefix": c.prefix,
                        "remainder": c.remainder, "continuation": text,
                        "exact_match": P.exact_match(text, c.remainder), "rouge_l": P.rouge_l(text, c.remainder),
                        "answer_text": ans[0].text, "answer_pred": s["pred"], "answer_acc": s["acc"],
                        "full_acc": full[row.problem_id]})
    return pd.DataFrame(records).astype(ROW_DTYPES)


def probe_models(models, task_or_dataset: str, out_root: str | os.PathLike, *, fractions=FRACTIONS,
                 limit: int | None = None, progress: bool = True, **kwargs: Any) -> pd.DataFrame:
    """``probe_contamination`` of each model (``<out_root>/<model>/<task>``, resumed), summaries stacked
    with a ``model`` column."""
    check_parameters({"models": models}, {"models": list})  # the contamination notebook's parameter
    frames = []
    for model in models:
        summary = probe_contamination(model, task_or_dataset, fractions=fractions, limit=limit, progress=progress,
                                      out_dir=probe_dir(model, task_or_dataset, out_root), **kwargs)
        frames.append(summary.assign(model=str(model))[["model", *summary.columns]])
    return pd.concat(frames, ignore_index=True)


def publish_probe(summary: pd.DataFrame, figures_dir: str | os.PathLike) -> Path:
    """Write the stacked probe summary as ``probe_summary.csv`` beside the figures."""
    path = Path(figures_dir) / "probe_summary.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with runs.atomic_path(path) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.4f")
    return path
