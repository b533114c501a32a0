"""Training: one RunConfig, two engines.

    mirage.train.run(RunConfig(model="dial-90", task="toy-math", condition="nsr"))

``backend="local"``: the CPU testbed's GRPO engine (``engine.py`` computes a step,
``loop.py`` runs it: checkpoints, resume, logs); ``backend="verl"``: verl 0.9.1 on GPUs
(``verl/``). Both read the same condition, task and recipe registries; dynamic sampling
and response dropping are ``sampling.py``, which both call.
"""

from __future__ import annotations

from pathlib import Path

from mirage.runs import RunConfig


def run(cfg: RunConfig) -> Path:
    """Train one run to the end (or resume it); returns its run directory. Raises if it did not finish."""
    from mirage.runs import is_finished, read_manifest

    cfg = cfg.resolved()
    if cfg.backend == "local":
        from mirage.train.loop import train

        run_dir = train(cfg)
    else:
        from mirage.train.verl import launch

        code = launch(cfg)
        run_dir = Path(cfg.run_dir)
        if code:
            raise RuntimeError(f"{run_dir}: verl training exited with status {code}")
    status = read_manifest(run_dir).get("status")
    if not is_finished(read_manifest(run_dir)) and cfg.stop_after is None:
        raise RuntimeError(f"{run_dir}: training ended with status {status!r}, not 'finished'")
    return run_dir
