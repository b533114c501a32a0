"""The study end to end: the testbed-ci preset through the real runner, notebooks, trainer and evaluator.

One scenario (it is the expensive part of the suite, so it is run once):
  1. a foreign run directory makes one cell fail;
  2. the runner (its own process group) is killed with SIGKILL once the first cell is finished;
  3. a rerun completes everything else: the failed cell is recorded with its executed notebook
     and error, the others go on, the summary names it, the exit status is 1;
  4. after removing the cause, a rerun finishes the study: nothing lost or duplicated, the
     cell finished before the kill was not rerun, and every notebook was executed by papermill
     (alignment, one notebook per RQ, figures).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_for_exit
from mirage import study

pytestmark = pytest.mark.slow

PRESET = "testbed-ci"


def _runner(out: Path, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mirage.cli", "study", "--preset", PRESET, "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kw)  # its own process group, to kill it whole


def _finished(record: Path) -> bool:
    try:
        return json.loads(record.read_text())["status"] == "finished"
    except (OSError, ValueError, KeyError):
        return False


def _wait_for(record: Path, proc: subprocess.Popen, timeout: float = 400) -> None:
    """Until the step record says finished (it says running from the step's start)."""
    t0 = time.time()
    while not _finished(record):
        if proc.poll() is not None:
            raise AssertionError(f"runner exited ({proc.returncode}) before {record} said finished:\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{record} did not say finished within {timeout}s")
        time.sleep(0.5)


def test_study_survives_kill_and_failure_and_completes(tmp_path):
    import pandas as pd

    from mirage.evaluate import read_samples

    out = tmp_path / "study"
    preset = study.load_preset(PRESET)
    cells = preset.cells()
    first, bad = cells[0], next(c for c in cells if c.condition == "nsr")
    # a run directory that belongs to another run: the trainer refuses it, so this cell fails
    bad_dir = bad.run_dir(out)
    bad_dir.mkdir(parents=True)
    (bad_dir / "manifest.json").write_text(json.dumps({"backend": "local", "model": "someone-else",
                                                       "task": bad.task, "condition": bad.condition, "seed": 0}))

    # 1-2: kill -9 the whole process group as soon as the first cell has finished
    proc = _runner(out)
    record = first.run_dir(out) / study.STEP_RECORD
    _wait_for(record, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_at = json.loads(record.read_text())["finished"]
    # kernels live in their own sessions and exit within ~1 s of losing their parent
    kernels = [int(p) for p in subprocess.run(["pgrep", "-f", f"ipykernel_launcher.*{tmp_path.name}"],
                                              capture_output=True, text=True).stdout.split()]
    wait_for_exit(kernels, timeout=10)

    # 3: rerun; everything but the bad cell completes, the failure is recorded and reported
    proc = _runner(out)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, output
    assert "resuming: 1/3 cells already finished" in output
    rec = json.loads((bad_dir / study.STEP_RECORD).read_text())
    assert rec["kind"] == "study-step" and rec["status"] == "failed" and "holds a different run" in rec["error"]
    executed = json.loads(Path(rec["notebook"]).read_text())
    assert any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", []))
    assert f"FAILED {bad.id}" in output.split("[study] preset")[-1].split("cells finished")[-1]
    assert (out / "results.parquet").exists()  # the others went on and were analysed

    # 4: fix the cause, rerun: only the failed cell runs
    (bad_dir / "manifest.json").unlink()
    proc = _runner(out)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    assert "resuming: 2/3 cells already finished" in output
    assert json.loads(record.read_text())["finished"] == finished_at  # never rerun

    results = pd.read_parquet(out / "results.parquet")
    key = ["model", "task", "condition", "seed", "step", "dataset", "k"]
    assert not results.duplicated(key).any()
    assert set(results["condition"]) == {"base"} | {c.condition for c in cells}
    last = preset.recipe_dict()["total_steps"]
    dyn = pd.read_parquet(out / "dynamics.parquet")
    for c in cells:
        r = results[results.condition == c.condition]
        assert set(r["step"]) == set(range(preset.overrides["save_freq"], last + 1, preset.overrides["save_freq"]))
        assert set(r["k"]) == {1, 2, 4}
        # evaluation rows: one per problem x sample, none twice
        for step in r["step"].unique():
            samples = read_samples(c.run_dir(out) / "eval" / f"step_{step}")
            assert not samples.duplicated(["dataset", "problem_id", "sample_index"]).any()
            assert len(samples) == samples["problem_id"].nunique() * preset.eval.n
        # training metrics: every step exactly once (later attempts win)
        d = dyn[(dyn.condition == c.condition) & (dyn.metric == "critic/score/mean")]
        assert sorted(d["step"]) == list(range(1, last + 1))
        assert (c.run_dir(out) / "notebook.ipynb").exists()
        # one manifest schema: the run's (training) and the step's record, each with its attempts
        manifest = json.loads((c.run_dir(out) / "manifest.json").read_text())
        assert manifest["kind"] == "train" and manifest["status"] == "finished"
        assert {k: manifest[k] for k in ("model", "task", "condition", "seed")} == {
            "model": c.model, "task": c.task, "condition": c.condition, "seed": c.seed}
        assert manifest["config"]["recipe"]["total_steps"] == last and manifest["attempts"][-1]["status"] == "finished"
        step = json.loads((c.run_dir(out) / study.STEP_RECORD).read_text())
        assert step["kind"] == "study-step" and step["status"] == "finished" and step["config"]["run_dir"] == str(
            c.run_dir(out)) and step["attempts"][-1]["status"] == "finished"
    assert len(json.loads(record.read_text())["attempts"]) == 1  # the cell finished before the kill ran once
    # one-shot recorded which example it used, chosen from the history run
    choice = study.cell.one_shot_choice(next(c for c in cells if c.condition == "one_shot").run_dir(out))
    assert choice["history_run"] == str(out / "history" / "dial-90" / "toy-math")
    history = study.cell.accuracy_history(choice["history_run"])
    assert len(history) == preset.one_shot.pool and all(len(v) == preset.one_shot.epochs for v in history.values())
    # the analysis notebook drew the figures
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"alignment", "passk_curves", "summary_gain_vs_alignment", "dynamics_toy-math"} <= figures
    assert (out / "analysis" / "notebook.ipynb").exists() and (out / "alignment" / "notebook.ipynb").exists()
