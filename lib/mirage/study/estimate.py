"""Estimated hours of a verl study cell (training + its pass@k sweep) against its time limit.

An ESTIMATE from arithmetic on the recipe and the constants below, not measured on hardware
(docs/cluster.md section 6 gives the reasoning; replace the constants with a smoke test's
``timing_s/step`` and vLLM's throughput once a GPU run exists). ``mirage study --dry-run`` prints
it per cell and refuses a cell whose estimate exceeds ``resources.cell.timeout_min`` or whose GPU
layout verl cannot run (``Recipe.gpu_layout_problems``).

Training: ``SECONDS_PER_STEP`` on the reference node (8 GPUs, 2,048 responses per step, an
8,192-token response cap), scaled linearly with the responses per step and the cap and inversely
with the GPUs (n_gpus_per_node x nnodes). Evaluation: one vLLM engine of tensor parallelism 1 per
GPU of the cell's first node (``cell.evaluate(gpus=)``):

    hours = n x problems x (PROMPT_TOKENS + max_tokens / 2) x checkpoints / (engines x tokens/s) / 3600

with ``max_tokens / 2`` the assumed average response, and checkpoints every ``save_freq`` steps
(``eval.checkpoints: all``) or the last one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mirage.study.resources import resources_for
from mirage.tasks import dataset_path, get_task
from mirage.train.verl.attention import attention_implementation

# vLLM generated tokens/s of ONE engine serving a 7-8 B model with long outputs on H100s, by tensor
# parallelism. TP 4: docs/cluster.md section 6 (10-15 k tokens/s per TP-4 engine; the middle). TP 1: the same
# per-GPU rate as TP 4 plus a little for no all-reduce (assumed, not measured).
TOKENS_PER_S = {1: 4_000, 4: 12_500}
TOKENS_PER_S_PER_GPU = 3_000  # any other TP: tp x this
SECONDS_PER_STEP = 360  # docs/cluster.md section 6: 5-7 min per step on one 8 x H100 node
REFERENCE_GPUS, REFERENCE_RESPONSES, REFERENCE_CAP = 8, 128 * 16, 8192  # the node and step SECONDS_PER_STEP is for
PROMPT_TOKENS = 256  # average prompt of the evaluation sets (chat template included)
# evaluation problems of a task whose prepared datasets are not on this machine to count and whose registry
# entry states none (``Task.eval_problems``)
DEFAULT_EVAL_PROBLEMS = 1000


def tokens_per_s(tp: int) -> float:
    """Assumed generated tokens/s of one vLLM engine of tensor parallelism ``tp`` (7-8 B model)."""
    return float(TOKENS_PER_S.get(tp, TOKENS_PER_S_PER_GPU * max(tp, 1)))


def train_hours(recipe: Any) -> float:
    """Estimated hours to train ``recipe.total_steps`` steps (see the module docstring)."""
    gpus = max(recipe.n_gpus_per_node * max(recipe.nnodes, 1), 1)
    per_step = (SECONDS_PER_STEP * (recipe.train_batch_size * recipe.rollout_n / REFERENCE_RESPONSES)
                * (recipe.max_response_length / REFERENCE_CAP) * (REFERENCE_GPUS / gpus))
    return recipe.total_steps * per_step / 3600


def n_checkpoints(recipe: Any, which: str) -> int:
    """Checkpoints a cell evaluates: one every save_freq steps and the last ('all'), or the last."""
    if which != "all" or recipe.save_freq <= 0:
        return 1
    return math.ceil(recipe.total_steps / recipe.save_freq)


def eval_problems(task: str) -> int:
    """Rows of the task's evaluation sets where they are prepared here, else its entry's ``eval_problems``."""
    stated = DEFAULT_EVAL_PROBLEMS
    try:
        import pyarrow.parquet as pq

        entry = get_task(task)
        stated = entry.eval_problems or DEFAULT_EVAL_PROBLEMS
        paths = [dataset_path(name) for name in entry.evals]
        if paths and all(p.exists() for p in paths):
            return sum(pq.read_metadata(p).num_rows for p in paths)
    except Exception:  # noqa: BLE001 - an unknown task or unreadable file: the stated default
        pass
    return stated


def eval_hours(n: int, problems: int, max_tokens: int, checkpoints: int, engines: int, tp: int = 1) -> float:
    """n x problems x (prompt + max_tokens/2) x checkpoints / (engines x tokens/s), in hours."""
    tokens = n * problems * (PROMPT_TOKENS + max_tokens / 2) * checkpoints
    return tokens / (max(engines, 1) * tokens_per_s(tp)) / 3600


@dataclass(frozen=True)
class CellEstimate:
    gpus: int
    rollout_tp: int
    train_h: float
    eval_h: float
    limit_h: float | None  # resources.cell.timeout_min / 60

    @property
    def total_h(self) -> float:
        return self.train_h + self.eval_h

    def line(self, attention: str) -> str:
        limit = f"{self.limit_h:.0f} h" if self.limit_h else "none"
        return (f"#   layout: {self.gpus} GPU(s), attention {attention} here (the node decides again at launch), "
                f"rollout TP {self.rollout_tp}; estimated {self.train_h:.0f} h training + {self.eval_h:.0f} h "
                f"evaluation = {self.total_h:.0f} h vs the limit resources.cell.timeout_min = {limit} "
                "(an estimate, not measured: mirage/study/estimate.py)")


def estimate_cell(recipe: Any, task: str, n: int, max_tokens: int, checkpoints: str,
                  timeout_min: float | None) -> CellEstimate:
    gpus = recipe.n_gpus_per_node
    return CellEstimate(gpus=gpus * max(recipe.nnodes, 1), rollout_tp=recipe.tensor_parallel_size,
                        train_h=train_hours(recipe),
                        eval_h=eval_hours(n, eval_problems(task), max_tokens, n_checkpoints(recipe, checkpoints),
                                          engines=gpus),
                        limit_h=timeout_min / 60 if timeout_min else None)


def cell_problems(recipe: Any, estimate: CellEstimate) -> list[str]:
    """Why the cell cannot run as planned: its GPU layout, or an estimate over the time limit (each a fix)."""
    out = list(recipe.gpu_layout_problems())
    if estimate.limit_h and estimate.total_h > estimate.limit_h:
        need = math.ceil(estimate.total_h * 1.2 * 60)
        out.append(f"resources.cell.timeout_min ({estimate.limit_h * 60:.0f}) is below this cell's estimated "
                   f"{estimate.total_h:.0f} h: raise it to {need} in the preset's resources (your site's limit allowing), "
                   "lower eval.n / eval.checkpoints, or give the cell more GPUs")
    return out


def dry_run_cell(preset: Any, step: Any, ev: dict[str, Any], log: Any) -> list[str]:
    """The dry-run's per-cell layout and estimate line (verl cells); returns the cell's problems."""
    recipe = preset.recipe_obj(step.cell.regime)
    timeout = resources_for(preset)["cell"].get("timeout_min")
    est = estimate_cell(recipe, step.cell.task, int(ev["n"]), int(ev["max_tokens"] or recipe.max_response_length),
                        str(ev.get("checkpoints", "last")), timeout)
    log(est.line(attention_implementation()))
    return [f"cell {step.id}: {p}" for p in cell_problems(recipe, est)]
