"""The canonical raw files on the Hugging Face hub (needs a network).

They are downloaded with ``huggingface_hub`` (installed with transformers) into
``<data root>/raw/<repo id>/<file>``, then converted from there like any local file.
"""

from __future__ import annotations

from pathlib import Path

# dataset name -> (hub dataset repo, file in it)
HUB_FILES = {
    "deepscaler": ("agentica-org/DeepScaleR-Preview-Dataset", "deepscaler.json"),
    "synlogic_easy_train": ("MiniMaxAI/SynLogic", "synlogic_easy/train.parquet"),
    "synlogic_easy_val": ("MiniMaxAI/SynLogic", "synlogic_easy/validation.parquet"),
}


def raw_path(name: str, root: str | Path) -> Path:
    repo, filename = HUB_FILES[name]
    return Path(root) / "raw" / repo / filename


def download_command(name: str, root: str | Path) -> str:
    repo, filename = HUB_FILES[name]
    return f"hf download {repo} {filename} --repo-type dataset --local-dir {Path(root) / 'raw' / repo}"


def fetch(name: str, root: str | Path) -> Path:
    """Download (or reuse) the raw file of ``name``; a clear error without a network."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if name not in HUB_FILES:
        raise KeyError(f"{name!r} has no hub source; hub datasets: {', '.join(HUB_FILES)}")
    repo, filename = HUB_FILES[name]
    try:
        return Path(hf_hub_download(repo, filename, repo_type="dataset", local_dir=Path(root) / "raw" / repo))
    except (LocalEntryNotFoundError, HfHubHTTPError) as e:
        raise RuntimeError(
            f"could not download {filename} of {repo} from the Hugging Face hub ({type(e).__name__}: "
            f"{str(e).splitlines()[0]}). Without a network, fetch it on another machine "
            f"({download_command(name, root)}) and pass it with --source FILE."
        ) from e
