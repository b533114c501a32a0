"""What each kind of study step asks a cluster for: the defaults, a preset's ``resources`` block and
``--slurm`` overrides. Read by the preset's check, the dry-run's estimate and the executors."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

KINDS = ("alignment", "cell", "analysis")
RESOURCE_OF = {"measure": "alignment", "alignment": "analysis", "history": "cell", "cell": "cell",
               "analysis": "analysis"}
# mem_gb is always asked for: a site's default memory per CPU would otherwise decide it (a verl cell gathers the
# full fp32 state dict of a 7-8 B model, ~30 GB, on its first rank when it saves HF weights, beside Ray's object store)
DEFAULT_RESOURCES = {"alignment": {"nodes": 1, "cpus_per_task": 2, "timeout_min": 240, "mem_gb": 64},
                     "cell": {"nodes": 1, "cpus_per_task": 2, "timeout_min": 240, "mem_gb": 256},
                     "analysis": {"nodes": 1, "cpus_per_task": 2, "timeout_min": 60, "mem_gb": 16}}


# --- resources --------------------------------------------------------------------------------------
def check_resources(resources: Any, where: str) -> dict[str, dict[str, Any]]:
    """A preset's ``resources`` block: {alignment|cell|analysis: {key: value}}; an error names the bad key."""
    if not isinstance(resources, Mapping):
        raise ValueError(f"{where}: resources must be a mapping of {KINDS}, got {resources!r}")
    out = {}
    for kind, keys in resources.items():
        if kind not in KINDS:
            raise ValueError(f"{where}: resources: unknown step kind {kind!r}; known: {', '.join(KINDS)}")
        if not isinstance(keys, Mapping) or not all(isinstance(k, str) for k in keys):
            raise ValueError(f"{where}: resources.{kind} must be a mapping of sbatch settings, got {keys!r}")
        out[kind] = dict(keys)
    return out


def parse_slurm(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--slurm KEY=VALUE`` (every kind) or ``KIND.KEY=VALUE`` -> {kind: {key: value}}; values read as YAML."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--slurm: expected [KIND.]KEY=VALUE, got {item!r}")
        key, text = (s.strip() for s in item.split("=", 1))
        kind, _, name = key.rpartition(".")
        if kind and kind not in KINDS:
            raise ValueError(f"--slurm {item}: unknown step kind {kind!r}; known: {', '.join(KINDS)}")
        value = yaml.safe_load(text) if text else ""
        for k in [kind] if kind else KINDS:
            out.setdefault(k, {})[name] = value
    return out


def resources_for(preset, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Per kind: the defaults, then the preset's ``resources``, then ``--slurm``."""
    mine = dict(preset.resources or {})
    return {k: {**DEFAULT_RESOURCES[k], **mine.get(k, {}), **(overrides or {}).get(k, {})} for k in KINDS}
