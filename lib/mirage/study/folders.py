"""A study's folders: where it lives, which preset it belongs to, and which stored results it holds.

Shared by the inline runner (``mirage.study.runner``) and the cluster executors
(``mirage.study.executors``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from mirage.runs import config_diff, write_json_atomic
from mirage.study.plan import Step
from mirage.study.preset import NOT_IDENTITY, Preset


def default_dirs(preset: Preset, out: str | os.PathLike | None = None,
                 figures_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(study dir, figures dir): study/<preset> under the current directory (or --out), and its
    figures/ inside it. Never the checkout's committed figures/<preset> unless named (--figures):
    the study compares its tables with those instead (``mirage.study.reference``)."""
    out = Path("study") / preset.name if out is None else Path(out)
    return out.resolve(), Path(figures_dir or out / "figures").resolve()


def check_study_file(out: Path, preset: Preset, write: bool = True) -> None:
    """A study directory belongs to one preset: refuse to mix two grids' results in one table."""
    path = out / "study.json"
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))["preset"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: unreadable ({type(e).__name__}: {e}); use another --out") from None
        diff = config_diff({k: v for k, v in stored.items() if k not in NOT_IDENTITY}, preset.identity())
        if diff:
            shown = "; ".join(f"{k}: {_short(a)} there, {_short(b)} here" for k, (a, b) in diff.items())
            raise ValueError(f"{out} holds a study of another preset ({stored.get('name')!r}; {shown}): "
                             f"give this one another --out, or move {out} aside to start over")
        return
    if write:
        write_json_atomic(path, {"preset": preset.to_dict(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[:width - 3] + "..."


def results_digest(steps: Sequence[Step]) -> str:
    """Identity of the stored results: which steps finished, and when."""
    h = hashlib.sha256()
    for s in steps:
        if s.kind != "analysis" and s.finished:
            h.update(f"{s.id}\0{s.record().get('finished')}\n".encode())
    return h.hexdigest()[:16]
