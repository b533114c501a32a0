"""The paper's logic task: SynLogic-Easy -> SynLogic validation and the five KOR-Bench categories.

SynLogic rows are scored by SynLogic's own verifiers (from the user's checkout), KOR-Bench
rows by KOR-Bench's rules (``mirage.rewards.checkers``). Datasets are prepared by
``mirage data prepare`` / ``download`` (converters: ``mirage.data.synlogic``, ``.korbench``).
"""

from __future__ import annotations

from pathlib import Path

from mirage.data.hub import hub_source, korbench_source
from mirage.data.korbench import convert_korbench
from mirage.data.prepare import Dataset, register_dataset
from mirage.data.synlogic import convert_synlogic
from mirage.rewards.checkers.korbench import CATEGORIES
from mirage.rewards.checkers.synlogic import task_name
from mirage.tasks import Task, register_task

TRAIN = "synlogic_easy_train"


def is_synlogic_source(data_source: str) -> bool:
    """SynLogic task names (task2verifier's keys, optionally 'val/<task>')"""
    return task_name(data_source) is not None


def _prepare_help(dataset: str, path: Path) -> str:
    if dataset.startswith(f"{TRAIN}_one_shot"):
        pick = "--history <per-example accuracy history JSON> --rank 1" if "pi1" in dataset else "--random --seed 0"
        return f"mirage data one-shot --source <{TRAIN} parquet> {pick} --batch-size 128 --out {path}"
    return f"mirage data prepare --dataset {dataset} --source <file>|hub --root {path.parent.parent}"


register_task(Task(
    "logic", "paper", train=TRAIN,
    evals=("synlogic_easy_val", *(f"korbench_{c}" for c in CATEGORIES)),
    sources={**{f"korbench/{c}": "korbench" for c in CATEGORIES}, is_synlogic_source: "synlogic"},
    description="SynLogic-Easy -> SynLogic validation and KOR-Bench", colour="#a8431b", marker="s",
    one_shot={"one_shot_selected": f"{TRAIN}_one_shot_pi1", "one_shot_random": f"{TRAIN}_one_shot_random_seed0"},
    prepare_help=_prepare_help, eval_problems=1520,  # SynLogic-easy validation + KOR-Bench
))


# --- its prepared datasets: converters (mirage.data.korbench, .synlogic), local layout, download source ---
def _korbench(category: str):
    def convert(src: Path, skip: bool):
        return convert_korbench(src, category)

    return convert


def _synlogic(split: str):
    def convert(src: Path, skip: bool):
        return convert_synlogic(src, split)

    return convert


for _c in CATEGORIES:
    register_dataset(Dataset(f"korbench_{_c}", _korbench(_c), f"korbench/{_c}", f"KOR-Bench {_c} (250 questions)",
                             **korbench_source(_c)))
register_dataset(Dataset(TRAIN, _synlogic("train"), "synlogic/synlogic_easy/train.parquet",
                         "SynLogic-Easy train (hub MiniMaxAI/SynLogic)",
                         **hub_source("MiniMaxAI/SynLogic", "synlogic_easy/train.parquet")))
register_dataset(Dataset("synlogic_easy_val", _synlogic("test"), "synlogic/synlogic_easy/validation.parquet",
                         "SynLogic-Easy validation (hub MiniMaxAI/SynLogic)",
                         **hub_source("MiniMaxAI/SynLogic", "synlogic_easy/validation.parquet")))
register_dataset(Dataset("synlogic_sample", _synlogic("train"), "synlogic/sample_rows.jsonl",
                         "33 generated SynLogic rows (an offline stand-in, not HF rows)"))
