"""The paper's math task: DeepScaleR-Preview -> MATH500, AIME24, AMC23, scored by math-verify.

Datasets are prepared, not generated (``mirage data prepare`` / ``download``); the
converters are ``mirage.data.math_data``. One-shot sets for verl (RQ2) are prepared
from DSR-sub and One-Shot-RLVR's accuracy history (``mirage data prepare --all-local``).
"""

from __future__ import annotations

from pathlib import Path

from mirage.data.hub import hub_source
from mirage.data.math_data import convert_deepscaler, convert_math_eval
from mirage.data.prepare import Dataset, register_dataset, write_one_shot
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
    prepare_help=_prepare_help, eval_problems=570,  # MATH-500 + AIME24 + AMC23
))


# --- its prepared datasets: converters (mirage.data.math_data), local mirror layout, download source ---
ONE_SHOT_HISTORY = "deepscaler/one_shot_rlvr/acc_step_500.json"  # One-Shot-RLVR's per-example accuracy history


def _deepscaler(src: Path, skip: bool):
    return convert_deepscaler(src, skip_empty_answers=skip)


def _eval_set(name: str):
    def convert(src: Path, skip: bool):
        return convert_math_eval(src, name)

    return convert


def _one_shot_sets(root: Path, local: Path) -> list[str]:
    """The paper's one-shot sets from DSR-sub and One-Shot-RLVR's accuracy history (when both are there)."""
    from mirage.data.one_shot import load_history  # why: pandas, which importing mirage.tasks.math does not need

    source, history = root / "verl" / "deepscaler_dsr_sub.parquet", local / ONE_SHOT_HISTORY
    if not (source.exists() and history.exists()):
        return []
    notes = []
    for name, kw in [("one_shot_pi1", {"history": load_history(history), "rank": 1}),
                     ("one_shot_random_seed0", {"seed": 0})]:
        path, example = write_one_shot(name, source, root, **kw)
        notes.append(f"{name}: example {example} x 128 from {source.name}\n  -> {path}")
    return notes


register_dataset(Dataset("deepscaler", _deepscaler, "deepscaler/deepscaler.json",
                         "DeepScaleR-Preview train (40,315 problems; hub file deepscaler.json)",
                         **hub_source("agentica-org/DeepScaleR-Preview-Dataset", "deepscaler.json")))
register_dataset(Dataset("deepscaler_dsr_sub", _deepscaler, "deepscaler/one_shot_rlvr/dsr_sub.parquet",
                         "DSR-sub: One-Shot-RLVR's 1,209-problem random subset of DeepScaleR",
                         after_local=_one_shot_sets))
for _name in EVALS:
    register_dataset(Dataset(_name, _eval_set(_name), f"{_name}/test.jsonl", f"{_name.upper()} test set"))
