"""Where things go: one naming function for run folders, and the layout inside a run.

    runs.run_dir(model, task, condition, seed, root)  -> <root>/<slug(model)>/<slug(task)>/<condition>/seed<seed>
                                                         (a study regime adds <regime>/ before seed<seed>)
    runs.eval_dir(model, task, root)                  -> <root>/<slug(model)>/<slug(task)>

Both engines, the study and the notebooks name run folders with ``run_dir`` (only the
root differs: ``runs/<backend>``, ``<study>/runs``, ``runs/notebooks``). Inside a run:

    manifest.json                 what ran, its config and status (``mirage.runs.manifest``)
    logs/metrics-<attempt>.jsonl  one JSON line per step (``mirage.runs.metrics``)
    checkpoints/global_step_<N>/actor/huggingface/   HF weights + tokenizer (verl's layout)
    eval/step_<N>/                evaluations of the base model (N = 0) and each checkpoint
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,@+-]+")


def slug(name: str | os.PathLike) -> str:
    """A model or task name as ONE safe path component.

    A hub id keeps its organisation (``Qwen/Qwen2.5-7B`` -> ``Qwen__Qwen2.5-7B``); an existing
    local path gives its last part (a checkpoint's ``.../<run>/checkpoints/global_step_N/actor/
    huggingface`` gives ``<run>--global_step_N``); other unsafe characters become ``_``. A name
    that would climb out of its folder (``..``, ``.``, empty) is an error naming it.
    """
    text = str(name).rstrip("/")
    path = Path(text).expanduser()
    if os.sep in text and path.exists():
        path = path.resolve()
        checkpoint = path.name == "huggingface" and path.parent.name == "actor"
        text = f"{path.parents[3].name}--{path.parents[1].name}" if checkpoint else path.name
    elif text.count("/") == 1 and not text.startswith((".", "~")):
        text = text.replace("/", "__")
    out = _UNSAFE.sub("_", text)
    if out in ("", ".", "..") or out.startswith("."):
        raise ValueError(f"{str(name)!r} cannot name a folder (it must not be empty, '.', '..' or start with '.')")
    return out


def run_dir(model: str, task: str, condition: str, seed: int, root: str | os.PathLike = "runs/local",
            regime: str | None = None) -> Path:
    """The folder of one training run; ``regime`` (a study's named recipe variant) adds a level above the seed."""
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    base = Path(root) / slug(model) / slug(task) / slug(condition)
    return (base / slug(regime) if regime else base) / f"seed{int(seed)}"


def eval_dir(model: str, task: str, root: str | os.PathLike = "runs/eval") -> Path:
    """The folder of one evaluation outside a run."""
    return Path(root) / slug(model) / slug(task)


def checkpoint_eval_dir(run: str | os.PathLike, step: int, tag: str | None = None) -> Path:
    """Where the evaluation of a run's checkpoint (step 0: its base model) goes; ``tag`` names a second
    evaluation of the same checkpoints (e.g. "greedy")."""
    return Path(run) / "eval" / (slug(tag) if tag else "") / f"step_{int(step)}"


def next_metrics_path(run_dir: str | os.PathLike, create: bool = True) -> Path:
    """A fresh metrics file for a new attempt (verl truncates its log on resume).

    ``create=False`` only names it (a dry run must not write anything).
    """
    logs = Path(run_dir) / "logs"
    if create:
        logs.mkdir(parents=True, exist_ok=True)
    n = len(list(logs.glob("metrics-*.jsonl"))) if logs.is_dir() else 0
    return logs / f"metrics-{n:03d}.jsonl"


_STEP_DIR = re.compile(r"global_step_(\d+)$")


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, HF model dir) for every saved checkpoint with HF weights, in step order.

    verl writes config.json and the tokenizer into ``huggingface/`` even when it saves
    no HF weights there (``hf_model`` not in save_contents), so weights are required.
    """
    out = []
    for d in (Path(run_dir) / "checkpoints").glob("global_step_*"):
        m = _STEP_DIR.search(d.name)
        hf = d / "actor" / "huggingface"
        has_weights = any(hf.glob("*.safetensors")) or any(hf.glob("pytorch_model*.bin"))
        if m and (hf / "config.json").exists() and has_weights:
            out.append((int(m.group(1)), hf))
    return sorted(out)


def incomplete_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The ``checkpoints/global_step_*`` entries ``list_checkpoints`` leaves out (no HF weights: an empty folder,
    a save that never finished, a link to nothing), for a sweep to name instead of skipping them."""
    found = {hf.parents[1] for _, hf in list_checkpoints(run_dir)}
    return sorted(d for d in (Path(run_dir) / "checkpoints").glob("global_step_*") if d not in found)


