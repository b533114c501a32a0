"""Warm kernels (``mirage.study.nbworker``, ``runner.WarmPool``): the cells' notebooks of a study run one after
another in one Jupyter kernel per job slot, still executed and written by papermill.

What must hold: a notebook run in a warm kernel gives what it gives in a fresh one (outputs, execution
counts, working directory, no name left over from the previous notebook, warnings shown again); a kernel
that dies fails its step only and is replaced; a ``kill -9`` of the runner leaves no kernel behind; and a
real study's cells give the same bytes either way.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_for_exit

CELL = """
import os, warnings
import numpy as np
open(os.path.join(os.getcwd(), "kernel.pid"), "w").write(str(os.getpid()))
print(x, np.random.default_rng(x).integers(1000), "leftover" in dir(), os.getcwd() == here)
warnings.warn("shown in every notebook")
leftover = x
"""


def _notebook(path: Path, code: str = CELL) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 0\nhere = ''", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _steps(root: Path, notebook: Path, xs) -> list:
    from mirage.study.plan import Step, _papermill

    steps = []
    for i, x in enumerate(xs):
        d = root / f"cell{i}"
        steps.append(Step(f"cell{i}", "cell", d, _papermill(notebook, d / "notebook.ipynb", d / "params.json"),
                          {"x": x, "here": str(d)}))
    return steps


def _outputs(step) -> list:
    """Each code cell's execution count and outputs; a kernel's pid (in a warning's file name) left out."""
    text = re.sub(r"ipykernel_[0-9]+", "ipykernel_PID", (step.dir / "notebook.ipynb").read_text())
    nb = json.loads(text)
    return [(c.get("execution_count"), [{k: v for k, v in o.items() if k != "metadata"} for o in c.get("outputs", [])])
            for c in nb["cells"] if c["cell_type"] == "code"]


def test_notebooks_in_one_warm_kernel_give_what_fresh_kernels_give(tmp_path):
    from mirage.study.runner import run_steps

    nb = _notebook(tmp_path / "probe.ipynb")
    warm, fresh = _steps(tmp_path / "warm", nb, [3, 7]), _steps(tmp_path / "fresh", nb, [3, 7])
    assert set(run_steps(warm, jobs=1, warm=True).values()) == {"finished"}
    assert set(run_steps(fresh, jobs=1, warm=False).values()) == {"finished"}
    for w, f in zip(warm, fresh):
        assert _outputs(w) == _outputs(f)
        out = "".join("".join(o.get("text", [])) for _, outs in _outputs(w) for o in outs)
        assert "False True" in out and "shown in every notebook" in out  # no leftover name, the step's cwd
        assert json.loads((w.dir / "notebook.ipynb").read_text())["metadata"]["papermill"]["parameters"] == w.params
    pids = [(s.dir / "kernel.pid").read_text() for s in warm]
    assert pids[0] == pids[1]  # one kernel for both
    assert len({(s.dir / "kernel.pid").read_text() for s in fresh}) == 2
    assert "in a warm kernel" in (warm[1].dir / "step.log").read_text()


def test_a_kernel_that_dies_fails_its_step_only_and_is_replaced(tmp_path):
    from mirage.study.runner import run_steps

    nb = _notebook(tmp_path / "probe.ipynb")
    dies = _notebook(tmp_path / "dies.ipynb", CELL + "\nos.kill(os.getpid(), 9)\n")
    steps = _steps(tmp_path, nb, [1, 2, 3])
    steps[1].argv[steps[1].argv.index(str(nb))] = str(dies)
    lines = []
    status = run_steps(steps, jobs=1, log=lines.append, warm=True)
    assert status == {"cell0": "finished", "cell1": "failed", "cell2": "finished"}, lines
    pids = [(s.dir / "kernel.pid").read_text() for s in steps]
    assert pids[0] == pids[1] != pids[2]  # the dead kernel was replaced
    assert json.loads((steps[1].dir / "study_step.json").read_text())["attempts"][-1]["returncode"] == 138
    assert not json.loads((steps[2].dir / "notebook.ipynb").read_text())["metadata"]["papermill"]["exception"]


def test_kill_9_of_the_runner_leaves_no_warm_kernel_behind(tmp_path):
    nb = _notebook(tmp_path / "sleeps.ipynb", CELL + "\nimport time; time.sleep(120)\n")
    steps = _steps(tmp_path, nb, [1])
    runner = (f"from pathlib import Path; from mirage.study.plan import Step; from mirage.study.runner import run_steps; "
              f"s = Step('cell0', 'cell', Path({str(steps[0].dir)!r}), {steps[0].argv!r}, {steps[0].params!r}); "
              f"run_steps([s], warm=True)")
    proc = subprocess.Popen([sys.executable, "-c", runner], start_new_session=True)
    pid_file = steps[0].dir / "kernel.pid"
    t0 = time.time()
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() - t0 < 120 and proc.poll() is None
        time.sleep(0.2)
    kernel = int(pid_file.read_text())
    worker = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True,
                                             check=False).stdout.split()]
    assert worker
    os.kill(proc.pid, signal.SIGKILL)  # the runner alone, not its process group
    proc.wait()
    alive = wait_for_exit([kernel, *worker], timeout=10)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "a worker or its kernel outlived the runner"


@pytest.mark.slow
def test_a_studys_cells_give_the_same_bytes_in_warm_and_fresh_kernels(tmp_path):
    """testbed-ci's three cells (one worker, one after another) vs a fresh kernel each, from the same
    alignment and history: every evaluation file, pass@k table and training metric (timings aside) equal."""
    import shutil

    from mirage import study

    preset = study.load_preset("testbed-ci")
    a, b = tmp_path / "warm", tmp_path / "fresh"
    assert study.run_study(preset, a, stage="alignment", log=lambda s: None) == 0
    history = [s for s in study.plan(preset, a) if s.kind == "history"]
    assert set(study.run_steps(history, jobs=1, log=lambda s: None).values()) == {"finished"}
    shutil.copytree(a, b)
    for out, warm in ((a, True), (b, False)):
        assert study.run_study(preset, out, stage="cells", warm=warm, log=lambda s: None) == 0
    compared = 0
    for f in sorted(p for p in (a / "runs").rglob("*") if p.is_file()):
        g = b / f.relative_to(a)
        if f.name.startswith("metrics-"):
            strip = [{**r, "data": {k: v for k, v in r["data"].items() if not k.startswith("timing")}}
                     for r in map(json.loads, f.read_text().splitlines())]
            other = [{**r, "data": {k: v for k, v in r["data"].items() if not k.startswith("timing")}}
                     for r in map(json.loads, g.read_text().splitlines())]
            assert json.dumps(strip) == json.dumps(other), f
        elif f.suffix in (".parquet", ".jsonl", ".csv", ".safetensors", ".pt"):
            assert f.read_bytes() == g.read_bytes(), f
        compared += 1
    assert compared >= 30
