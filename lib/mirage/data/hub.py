"""The canonical raw files on the Hugging Face hub (needs a network).

They are downloaded with ``huggingface_hub`` (installed with transformers) into
``<data root>/raw/<repo id>/<file>``, then converted from there like any local file.
"""

from __future__ import annotations

from pathlib import Path

from mirage.data.korbench import KORBENCH_COMMIT, KORBENCH_REPO

def raw_path(repo: str, filename: str, root: str | Path) -> Path:
    return Path(root) / "raw" / repo / filename


def download_command(repo: str, filename: str, root: str | Path) -> str:
    return f"hf download {repo} {filename} --repo-type dataset --local-dir {Path(root) / 'raw' / repo}"


def fetch(repo: str, filename: str, root: str | Path) -> Path:
    """Download (or reuse) one file of a hub dataset repo; a clear error without a network."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, filename, repo_type="dataset", local_dir=Path(root) / "raw" / repo))
    except (LocalEntryNotFoundError, HfHubHTTPError) as e:
        raise RuntimeError(
            f"could not download {filename} of {repo} from the Hugging Face hub ({type(e).__name__}: "
            f"{str(e).splitlines()[0]}). Without a network, fetch it on another machine "
            f"({download_command(repo, filename, root)}) and pass it with --source FILE."
        ) from e


def hub_source(repo: str, filename: str) -> dict:
    """``fetch`` / ``fetch_commands`` for a dataset whose canonical file is on the hub (``register_dataset``)."""
    return {"fetch": lambda root: fetch(repo, filename, root),
            "fetch_commands": lambda root: [download_command(repo, filename, root)]}


# KOR-Bench is on GitHub, not the hub: its data and its zero-shot prompt template come
# from one pinned checkout (mirage does not redistribute the template).
def korbench_checkout(root: str | Path) -> Path:
    return Path(root) / "raw" / "KOR-Bench"


def korbench_commands(root: str | Path) -> list[list[str]]:
    dest = korbench_checkout(root)
    return [["git", "clone", "--quiet", KORBENCH_REPO, str(dest)],
            ["git", "-C", str(dest), "checkout", "--quiet", KORBENCH_COMMIT]]


def korbench_source(category: str) -> dict:
    """``fetch`` / ``fetch_commands`` of one KOR-Bench category (the pinned checkout's data/<category>)."""
    return {"fetch": lambda root: fetch_korbench(root) / "data" / category,
            "fetch_commands": lambda root: [" ".join(c) for c in korbench_commands(root)]}


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


def snapshot_command(repo: str, patterns: list[str], root: str | Path) -> str:
    include = " ".join(f"--include '{p}'" for p in patterns)  # typer's list option: one flag per pattern
    return f"hf download {repo} --repo-type dataset --local-dir {Path(root) / 'raw' / repo} {include}"


def fetch_snapshot(repo: str, patterns: list[str], root: str | Path) -> Path:
    """Download (or reuse) the files of a hub dataset repo matching ``patterns``; the local folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, repo_type="dataset", allow_patterns=patterns,
                                      local_dir=Path(root) / "raw" / repo))
    except (LocalEntryNotFoundError, HfHubHTTPError) as e:
        raise RuntimeError(
            f"could not download {' '.join(patterns)} of {repo} from the Hugging Face hub ({type(e).__name__}: "
            f"{str(e).splitlines()[0]}). Without a network, fetch it on another machine "
            f"({snapshot_command(repo, patterns, root)}) and pass the folder with --source DIR."
        ) from e


def snapshot_source(repo: str, patterns: list[str]) -> dict:
    """``fetch`` / ``fetch_commands`` for a dataset made of several files of a hub repo (a folder source)."""
    return {"fetch": lambda root: fetch_snapshot(repo, patterns, root),
            "fetch_commands": lambda root: [snapshot_command(repo, patterns, root)]}
