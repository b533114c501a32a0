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


# KOR-Bench is on GitHub, not the hub: its data and its zero-shot prompt template come
# from one pinned checkout (mirage does not redistribute the template).
def korbench_checkout(root: str | Path) -> Path:
    return Path(root) / "raw" / "KOR-Bench"


def korbench_commands(root: str | Path) -> list[list[str]]:
    from mirage.data.korbench import KORBENCH_COMMIT, KORBENCH_REPO

    dest = korbench_checkout(root)
    return [["git", "clone", "--quiet", KORBENCH_REPO, str(dest)],
            ["git", "-C", str(dest), "checkout", "--quiet", KORBENCH_COMMIT]]


def fetch_korbench(root: str | Path) -> Path:
    """Clone KOR-Bench at the pinned commit (or reuse the clone); a clear error without a network."""
    import subprocess

    dest = korbench_checkout(root)
    if (dest / "config" / "prompt" / "zero-shot.yaml").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    for cmd in korbench_commands(root):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed ({done.stderr.strip()[:300]}). Without a network, clone "
                               f"KOR-Bench elsewhere and copy it to {dest}.")
    return dest
