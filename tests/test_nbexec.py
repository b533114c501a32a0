"""``python -m mirage.study.nbexec``: papermill's command line without rfc3987-syntax's import.

The study runs every notebook step through it (``plan.NBEXEC``); it must execute a notebook
as ``python -m papermill`` does, validate notebooks as before, and leave the unused module out.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")])}

PROBE = """
import json, sys
block = sys.argv[1] == "block"
if block:
    from mirage.study import nbexec
    nbexec.block_unused()
import nbformat, papermill.execute  # what papermill's command line imports
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
nbformat.validate(nb)
bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
bad.cells[0]["execution_count"] = "one"
try:
    nbformat.validate(bad)
    error = None
except nbformat.ValidationError as e:
    error = str(e.message)
print(json.dumps({"loaded": sys.modules.get("rfc3987_syntax") is not None, "error": error}))
"""


def _probe(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_nbexec_leaves_out_rfc3987_syntax_and_validates_the_same():
    blocked, plain = _probe("block"), _probe("plain")
    assert not blocked["loaded"]
    if importlib.util.find_spec("rfc3987_syntax") is not None:  # where installed, plain papermill pays for it
        assert plain["loaded"]
    assert blocked["error"] and blocked["error"] == plain["error"]


def test_nbexec_runs_a_notebook_like_papermill(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("print(x * 2)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    done = subprocess.run([sys.executable, "-m", "mirage.study.nbexec", str(tmp_path / "in.ipynb"),
                           str(tmp_path / "out.ipynb"), "-p", "x", "21", "-k", "python3", "--no-progress-bar"],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in out.cells)
    assert out.cells[-1].outputs[0]["text"] == "42\n"
    assert out.metadata["papermill"]["parameters"] == {"x": 21}


def test_study_steps_run_notebooks_through_nbexec(tmp_path):
    from mirage.study.plan import NBEXEC, plan
    from mirage.study.preset import load_preset

    steps = plan(load_preset("testbed-ci"), tmp_path, None, tmp_path / "figures")
    notebooks = [s for s in steps if s.kind in ("alignment", "cell", "analysis")]
    assert notebooks and all(s.argv[1:3] == ["-m", NBEXEC] and s.notebook == s.dir / "notebook.ipynb"
                             for s in notebooks)
    assert all(s.notebook is None for s in steps if s.kind in ("measure", "history"))

