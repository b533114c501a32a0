"""``run(cfg)``: train one run with the engine its ``backend`` names (the local engine or verl)."""

from __future__ import annotations

from pathlib import Path

from mirage.runs import RunConfig, is_finished, read_manifest
from mirage.train.verl.launcher import launch


def run(cfg: RunConfig) -> Path:
    """Train one run to the end (or resume it); returns its run directory. Raises if it did not finish."""
    cfg = cfg.resolved()
    if cfg.backend == "local":
        from mirage.train.loop import train  # why: torch, which a verl launch does not need here

        run_dir = train(cfg)
    else:
        code = launch(cfg)
        run_dir = Path(cfg.run_dir)
        if code:
            raise RuntimeError(f"{run_dir}: verl training exited with status {code}")
    status = read_manifest(run_dir).get("status")
    if not is_finished(read_manifest(run_dir)) and cfg.stop_after is None:
        raise RuntimeError(f"{run_dir}: training ended with status {status!r}, not 'finished'")
    return run_dir
