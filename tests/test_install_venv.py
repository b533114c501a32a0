"""``scripts/install_venv.py`` (what ``make install`` runs): uv with the sources pip is configured with, pip
as the fallback."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def install_venv():
    spec = importlib.util.spec_from_file_location("install_venv", ROOT / "scripts" / "install_venv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONFIG = """:env:.cert='/etc/ssl/certs/ca.crt'
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/more/simple'
global.find-links='/opt/wheels'
user.index-url='https://ignored.example/simple'
"""


def test_uv_gets_the_sources_pip_is_configured_with(install_venv, monkeypatch):
    monkeypatch.setattr(install_venv.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a[0], 0, stdout=CONFIG, stderr=""))
    config = install_venv.pip_config("python")
    args, env = install_venv.uv_arguments(config, "https://download.pytorch.org/whl/cpu")
    assert args == ["--index-strategy", "unsafe-best-match", "--prerelease", "if-necessary",
                    "--extra-index-url", "file:///opt/pypi/simple", "--extra-index-url", "file:///opt/more/simple",
                    "--extra-index-url", "https://download.pytorch.org/whl/cpu", "--find-links", "/opt/wheels",
                    "--constraint", "/etc/xdg/pip/constraints.txt"]
    assert env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca.crt", "UV_HTTP_TIMEOUT": "180"}


@pytest.mark.parametrize("uv_rc, expected", [(0, "uv"), (1, "pip")])
def test_uv_installs_and_pip_takes_over_where_uv_fails(install_venv, monkeypatch, tmp_path, uv_rc, expected):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    calls = []

    def run(cmd, **kw):
        calls.append([str(c) for c in cmd])
        rc = uv_rc if cmd[0] == "/fake/uv" else 0
        return subprocess.CompletedProcess(cmd, rc, stdout="", stderr="")

    monkeypatch.setattr(install_venv.subprocess, "run", run)
    monkeypatch.setattr(install_venv.shutil, "which", lambda name: "/fake/uv" if name == "uv" else None)
    monkeypatch.delenv("MIRAGE_INSTALLER", raising=False)
    assert install_venv.install(venv, "cpu", None) == expected
    uv = [c for c in calls if c[0] == "/fake/uv"]
    assert len(uv) == 1 and uv[0][1:3] == ["pip", "install"] and uv[0][-2:] == ["-e", f"{ROOT}[cpu]"]
    # bytecode compiled at install, as pip does: with PYTHONDONTWRITEBYTECODE set nothing would write it later
    assert "--compile-bytecode" in uv[0]
    pip = [c for c in calls if c[1:4] == ["-m", "pip", "install"]]
    assert bool(pip) == (expected == "pip") and all(c[-2:] == ["-e", f"{ROOT}[cpu]"] for c in pip[-1:])


def test_mirage_installer_pip_forces_pip(install_venv, monkeypatch):
    monkeypatch.setenv("MIRAGE_INSTALLER", "pip")
    monkeypatch.setattr(install_venv.shutil, "which", lambda name: "/fake/uv")
    assert install_venv.find_uv(Path("/nowhere")) is None


def test_make_install_runs_the_install_script():
    recipe = (ROOT / "Makefile").read_text()
    assert "scripts/install_venv.py $(VENV) --extra cpu" in recipe
