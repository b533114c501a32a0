"""The paper's math task: DeepScaleR-Preview -> MATH500, AIME24, AMC23, scored by math-verify.

Datasets are prepared, not generated (``mirage data prepare`` / ``download``); the
converters are ``mirage.data.math_data``. One-shot sets for verl (RQ2) are prepared
from DSR-sub and One-Shot-RLVR's accuracy history (``mirage data prepare --all-local``).
"""

from __future__ import annotations

from pathlib import Path

from mirage.tasks import Task, register_task

EVALS = ("math500", "aime24", "amc23")
# Other spellings of the same sets, as verl-style sources name them ("simplerl/math500", "HuggingFaceH4/MATH-500").
ALIASES = {"deepscaler", "math500", "aime24", "amc23", "aime2024", "amc2023"}


def is_math_source(data_source: str) -> bool:
    """<org>/<name> spellings of deepscaler, math500, aime24, amc23 (also aime2024, amc2023)"""
    return data_source.rsplit("/", 1)[-1].lower().replace("-", "").replace("_", "") in ALIASES


def _prepare_help(dataset: str, path: Path) -> str:
    if dataset.startswith("one_shot"):
        pick = "--history <per-example accuracy history JSON> --rank 1" if "pi1" in dataset else "--random --seed 0"
        return (f"mirage data one-shot --source <deepscaler parquet> {pick} --batch-size 128 --out {path} "
                "(or `mirage data prepare --all-local --shared DIR`, which writes it from DSR-sub)")
    return f"mirage data prepare --dataset {dataset} --source <file>|hub --root {path.parent.parent}"


register_task(Task(
    "math", "paper", train="deepscaler", evals=EVALS,
    sources={**{name: "math" for name in ("deepscaler", *EVALS)}, is_math_source: "math"},
    description="DeepScaleR-Preview -> MATH500, AIME24, AMC23", colour="#1b6ca8", marker="o",
    one_shot={"one_shot_selected": "one_shot_pi1", "one_shot_random": "one_shot_random_seed0"},
    prepare_help=_prepare_help,
))
