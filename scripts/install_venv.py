"""Install mirage into a virtual environment: ``python scripts/install_venv.py VENV [--extra cpu] [--torch-index URL]``.

What ``make install`` (and so ``make test`` and ``make study``) runs. It creates VENV with the
standard library's ``venv`` and installs ``-e ".[EXTRA]"`` with **uv** (``uv pip install``, from PyPI:
``pip install uv`` into VENV first, unless a ``uv`` is on PATH), which resolves and installs the
same packages as pip several times faster; where uv cannot be had or fails, with **pip** as before
(``MIRAGE_INSTALLER=pip`` forces pip). uv reads none of pip's configuration, so the sources pip is
configured with on this machine (``pip config list``: index-url, extra-index-url, find-links,
constraint, cert, timeout, from files or ``PIP_*`` variables) are passed to it, and it chooses
among them as pip does (``--index-strategy unsafe-best-match``: the best version over every
index; a pre-release only for a package that has nothing else). Checked on the development
machine: the same versions as pip, package for package (``pip freeze``). ``--torch-index`` is PyPI's alternative for torch (PyTorch's CPU wheels), given to either
installer as an extra index.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pip_config(python: Path | str = sys.executable) -> dict[str, list[str]]:
    """pip's configured install sources: {option: [values]} from ``pip config list`` (files and PIP_*)."""
    done = subprocess.run([str(python), "-m", "pip", "config", "list"], capture_output=True, text=True,
                          check=False)
    found: dict[str, list[str]] = {}
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        key, _, value = line.partition("=")
        section, _, option = key.rpartition(".")
        if section.lstrip(":") not in ("global", "install", "env:"):
            continue
        value = value.strip().strip("'\"")
        found.setdefault(option, [])
        for v in value.split():
            if v not in found[option]:
                found[option].append(v)
    return found


def uv_arguments(config: dict[str, list[str]], torch_index: str | None) -> tuple[list[str], dict[str, str]]:
    """``uv pip install`` options and environment for pip's configured sources."""
    args = ["--index-strategy", "unsafe-best-match", "--prerelease", "if-necessary"]
    env: dict[str, str] = {}
    for url in config.get("index-url", [])[:1]:
        args += ["--index-url", url]
    for url in config.get("extra-index-url", []) + ([torch_index] if torch_index else []):
        args += ["--extra-index-url", url]
    for link in config.get("find-links", []):
        args += ["--find-links", link]
    for path in config.get("constraint", []):
        args += ["--constraint", path]
    for cert in config.get("cert", [])[:1]:
        env["SSL_CERT_FILE"] = cert
    for seconds in config.get("timeout", config.get("default-timeout", []))[:1]:
        env["UV_HTTP_TIMEOUT"] = seconds
    return args, env


def find_uv(venv: Path) -> str | None:
    """A uv to run: on PATH, else installed into the venv from PyPI (None if that fails)."""
    if os.environ.get("MIRAGE_INSTALLER") == "pip":
        return None
    found = shutil.which("uv")
    if found:
        return found
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "uv"], check=False)
    uv = venv / "bin" / "uv"
    return str(uv) if done.returncode == 0 and uv.exists() else None


def install(venv: Path, extra: str, torch_index: str | None) -> str:
    """Create ``venv`` and install ``-e .[extra]`` into it. Returns the installer that did it."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    target = f"{ROOT}[{extra}]" if extra else str(ROOT)
    uv = find_uv(venv)
    if uv:
        args, env = uv_arguments(pip_config(python), torch_index)
        # --compile-bytecode: as pip does. uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set
        # (as on CI here) no process ever writes one, so every test and study step recompiled torch, transformers
        # and verl on import: the suite took 25 min 42 s from a fresh uv venv against 16 min 41 s from pip's.
        done = subprocess.run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python), *args,
                               "-e", target],
                              env={**os.environ, **env}, check=False)
        if done.returncode == 0:
            return "uv"
        print(f"install_venv: uv failed (exit {done.returncode}); installing with pip instead", file=sys.stderr)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    index = ["--extra-index-url", torch_index] if torch_index else []
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *index, "-e", target], check=True)
    return "pip"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path)
    parser.add_argument("--extra", default="cpu", help="the optional dependencies to install (default cpu)")
    parser.add_argument("--torch-index", default=os.environ.get("TORCH_INDEX") or None,
                        help="an extra index for torch, e.g. https://download.pytorch.org/whl/cpu")
    args = parser.parse_args(argv)
    t0 = time.time()
    how = install(args.venv, args.extra, args.torch_index)
    print(f"install_venv: {args.venv} installed with {how} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
