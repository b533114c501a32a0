"""One manifest schema for every folder mirage writes: a training run, an evaluation, a study step.

``<folder>/manifest.json`` (an evaluation's: ``eval_manifest.json``) holds:

    kind        "train" | "eval" | "study-step"
    status      a ``Status`` value
    identity    backend, model, task, condition, seed (what the folder is about; train / eval)
    config      the typed configuration that made it (``RunConfig`` / ``EvalSettings``), as a dict
    attempts    one dict per start: started, finished, status, and what that attempt did
    versions    library versions; started / finished timestamps; error (the last failure, if any)

A folder asked to run again with a different ``config`` is refused, naming the keys
that differ, unless the caller says to start over.
"""

from __future__ import annotations

import enum
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from mirage.runs.files import check_link, write_json_atomic

MANIFEST = "manifest.json"
IDENTITY = ("backend", "model", "task", "condition", "seed")


class Status(str, enum.Enum):
    PREPARED = "prepared"  # written, not started (verl --no-launch)
    RUNNING = "running"
    STOPPED = "stopped"  # ended early on purpose (stop_after); a rerun resumes
    INTERRUPTED = "interrupted"  # Ctrl-C; a rerun resumes
    FAILED = "failed"
    BLOCKED = "blocked"  # a study step whose dependency failed
    FINISHED = "finished"

    def __str__(self) -> str:
        return self.value


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def read_manifest(folder: str | os.PathLike, name: str = MANIFEST) -> dict:
    p = Path(folder) / name
    if not p.exists():
        check_link(p)  # a symlink loop or a dangling link is not "no manifest yet"
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{p}: not valid JSON ({e}); move it aside to start the folder over") from None


def update_manifest(folder: str | os.PathLike, name: str = MANIFEST, **fields: Any) -> dict:
    manifest = read_manifest(folder, name)
    manifest.update({k: (v.value if isinstance(v, Status) else v) for k, v in fields.items()})
    write_json_atomic(Path(folder) / name, manifest)
    return manifest


def is_finished(manifest: Mapping[str, Any]) -> bool:
    return manifest.get("status") == Status.FINISHED.value


def config_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> dict:
    """{key: (on disk, requested)} for every key whose value differs (JSON-normalised); where both values are
    mappings (a run's recipe), only their keys that differ: {"recipe": {"lr": (2e-05, 0.0003)}}."""
    if not old:
        return {}
    old = json.loads(json.dumps(old, default=str))
    new = json.loads(json.dumps(new, default=str))
    return {k: v for k, v in _diff(old, new).items() if k not in ignore}


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict:
    out = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a != b:
            out[key] = _diff(a, b) if isinstance(a, dict) and isinstance(b, dict) else (a, b)
    return out


def start_attempt(folder: str | os.PathLike, name: str = MANIFEST, **attempt: Any) -> dict:
    """Mark the folder running and append an attempt record; returns the manifest."""
    manifest = read_manifest(folder, name)
    attempts = list(manifest.get("attempts") or [])
    attempts.append({"started": now(), **attempt})
    return update_manifest(folder, name, status=Status.RUNNING, attempts=attempts,
                           started=manifest.get("started") or now(), error=None)


def end_attempt(folder: str | os.PathLike, status: Status, name: str = MANIFEST, error: str | None = None,
                **attempt: Any) -> dict:
    """Close the last attempt with ``status`` (and what it did), and set the folder's status."""
    manifest = read_manifest(folder, name)
    attempts = list(manifest.get("attempts") or [{}])
    attempts[-1] = {**attempts[-1], **attempt, "finished": now(), "status": status.value}
    fields: dict[str, Any] = {"status": status, "attempts": attempts}
    if status is Status.FINISHED:
        fields["finished"] = now()
    if error is not None:
        fields["error"] = error[:2000]
    return update_manifest(folder, name, **fields)


# --- what every manifest records about where a result came from ------------------------------
def library_versions(*dists: str) -> dict[str, str | None]:
    """Installed versions (None when absent), read from package metadata without importing."""
    out = {}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def hardware() -> dict[str, Any]:
    """The machine a result came from (host, CPUs, visible GPUs)."""
    info: dict[str, Any] = {"host": platform.node(), "platform": platform.platform(),
                            "python": platform.python_version(), "cpu_count": os.cpu_count(),
                            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    torch = sys.modules.get("torch")  # only if the backend loaded it: never pay for an import here
    if torch is not None and torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
