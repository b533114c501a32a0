"""mirage study --executor slurm|local: the plan as submitit jobs.

SLURM is faked by three small programs on PATH (sbatch numbers the jobs and keeps each batch
script, sacct answers from a state file, scancel marks a job cancelled), so what is tested is
what submitit really submits: dependencies, resources, and what a resubmission leaves alone.
The local executor runs the testbed-ci study for real (one cell): it finishes, a rerun submits nothing.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from mirage.study import executors, load_preset

FAKE = {
    "srun": "",  # submitit only checks that it exists (the jobs would call it on the cluster)
    "sbatch": """
import json, os, shutil, sys
d = os.environ["FAKE_SLURM"]
path = os.path.join(d, "counter")
n = int(open(path).read()) + 1 if os.path.exists(path) else 101
open(path, "w").write(str(n))
shutil.copy(sys.argv[-1], os.path.join(d, f"sbatch-{n}.sh"))
print(f"Submitted batch job {n}")
""",
    "sacct": """
import json, os, sys
d = os.environ["FAKE_SLURM"]
states = json.load(open(os.path.join(d, "states.json"))) if os.path.exists(os.path.join(d, "states.json")) else {}
asked = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "-j"]
fields = sys.argv[sys.argv.index("-o") + 1].split(",")
print("|".join(fields))
for j in asked:
    if os.path.exists(os.path.join(d, f"sbatch-{j}.sh")):
        row = {"JobID": j, "State": states.get(j, "PENDING"), "NodeList": "node1", "Elapsed": f"01:02:{int(j) % 60:02d}"}
        print("|".join(row[f] for f in fields))
""",
    "scancel": """
import json, os, sys
d = os.environ["FAKE_SLURM"]
path = os.path.join(d, "states.json")
states = json.load(open(path)) if os.path.exists(path) else {}
states.update({j: "CANCELLED" for j in sys.argv[1:] if j.isdigit()})
json.dump(states, open(path, "w"))
""",
}


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    d = tmp_path / "fake_slurm"
    d.mkdir()
    for name, body in FAKE.items():
        (d / name).write_text(f"#!{sys.executable}\n{body}")
        (d / name).chmod((d / name).stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(d))

    class Slurm:
        folder = d

        @staticmethod
        def scripts() -> dict[str, str]:
            return {p.stem.split("-")[1]: p.read_text() for p in sorted(d.glob("sbatch-*.sh"))}

        @staticmethod
        def set_states(**states):
            path = d / "states.json"
            current = json.loads(path.read_text()) if path.exists() else {}
            path.write_text(json.dumps({**current, **states}))

    return Slurm


@pytest.fixture
def preset_file(tmp_path):
    """testbed-ci with a resources block, as a preset file."""
    data = yaml.safe_load((Path(executors.__file__).parent / "presets" / "testbed-ci.yaml").read_text())
    data["resources"] = {"cell": {"gpus_per_node": 8, "cpus_per_task": 48, "timeout_min": 2880},
                         "alignment": {"timeout_min": 600}}
    path = tmp_path / "ci-slurm.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _sbatch(script: str, key: str) -> str | None:
    line = next((l for l in script.splitlines() if l.startswith(f"#SBATCH --{key}=")), None)
    return line.split("=", 1)[1] if line else None


def test_resources_and_slurm_flags(fake_slurm):
    assert executors.parse_slurm(["partition=gpu", "cell.timeout_min=2880", "cell.exclusive=true"]) == {
        "alignment": {"partition": "gpu"}, "cell": {"partition": "gpu", "timeout_min": 2880, "exclusive": True},
        "analysis": {"partition": "gpu"}}
    with pytest.raises(ValueError, match="unknown step kind 'cells'"):
        executors.parse_slurm(["cells.nodes=2"])
    with pytest.raises(ValueError, match=r"expected \[KIND.\]KEY=VALUE"):
        executors.parse_slurm(["partition"])
    with pytest.raises(KeyError, match="resources: unknown step kind 'training'"):
        load_preset("testbed-ci").__class__.from_dict({**yaml.safe_load(
            (Path(executors.__file__).parent / "presets" / "testbed-ci.yaml").read_text()),
            "resources": {"training": {"nodes": 1}}})
    with pytest.raises(ValueError, match="partitionn"):  # an sbatch setting submitit does not know
        executors.make_executor("slurm", Path("/tmp/x/%j"), {"partitionn": "gpu"}, "x")


def test_slurm_submits_the_plan_with_dependencies_and_resumes(fake_slurm, preset_file, tmp_path, capsys):
    from mirage.cli import main

    out = tmp_path / "study"
    base = ["study", "--preset", preset_file, "--out", str(out)]
    assert main(base + ["--executor", "slurm", "--slurm", "partition=gpu", "--slurm", "analysis.mem_gb=8"]) == 0
    jobs = json.loads((out / "jobs.json").read_text())
    ids = {step: entry["job_id"] for step, entry in jobs.items()}
    assert set(ids) == {"alignment/dial-90/toy-math", "alignment", "history/dial-90/toy-math",
                        "dial-90/toy-math/ground_truth/seed0", "dial-90/toy-math/one_shot/seed0",
                        "dial-90/toy-math/nsr/seed0", "analysis"}
    scripts = fake_slurm.scripts()
    measure = ids["alignment/dial-90/toy-math"]
    for step, job in ids.items():
        script = scripts[job]
        assert _sbatch(script, "partition") == "gpu" and _sbatch(script, "job-name") == f"mirage-{step}"
    cell = scripts[ids["dial-90/toy-math/nsr/seed0"]]
    assert _sbatch(cell, "dependency") == f"afterok:{measure}"
    assert (_sbatch(cell, "gpus-per-node"), _sbatch(cell, "cpus-per-task"), _sbatch(cell, "time")) == ("8", "48", "2880")
    one_shot = scripts[ids["dial-90/toy-math/one_shot/seed0"]]
    assert _sbatch(one_shot, "dependency") == f"afterok:{measure}:{ids['history/dial-90/toy-math']}"
    assert _sbatch(scripts[ids["alignment"]], "dependency") == f"afterok:{measure}"
    assert _sbatch(scripts[measure], "dependency") is None and _sbatch(scripts[measure], "time") == "600"
    analysis = scripts[ids["analysis"]]
    assert _sbatch(analysis, "dependency") == "afterany:" + ":".join(
        sorted((ids[s] for s in ids if s != "analysis"), key=int))
    assert _sbatch(analysis, "mem") == "8GB" and _sbatch(analysis, "gpus-per-node") is None
    capsys.readouterr()

    # everything queued or running: a resubmission submits nothing
    fake_slurm.set_states(**{job: "RUNNING" for job in ids.values()})
    assert main(base + ["--executor", "slurm"]) == 0
    assert "0 job(s) submitted" in capsys.readouterr().out and len(fake_slurm.scripts()) == 7

    # the measurement failed: it is resubmitted, and the waiting jobs behind it are cancelled and resubmitted
    # behind the new one; the history run, still running, is left alone; a finished cell is skipped
    fake_slurm.set_states(**{measure: "FAILED"}, **{ids[c]: "PENDING" for c in ids if "/seed0" in c})
    gt = load_preset(preset_file).cells()[0].run_dir(out)
    gt.mkdir(parents=True, exist_ok=True)
    from mirage.study.plan import plan

    step = next(s for s in plan(load_preset(preset_file), out) if s.id == "dial-90/toy-math/ground_truth/seed0")
    (gt / "study_step.json").write_text(json.dumps({"status": "finished", "config": step.params}))
    assert main(base + ["--executor", "slurm"]) == 0
    log = capsys.readouterr().out
    new = json.loads((out / "jobs.json").read_text())
    assert new["history/dial-90/toy-math"]["job_id"] == ids["history/dial-90/toy-math"]
    assert new["dial-90/toy-math/ground_truth/seed0"]["job_id"] == ids["dial-90/toy-math/ground_truth/seed0"]
    new_measure = new["alignment/dial-90/toy-math"]["job_id"]
    assert new_measure != measure
    states = json.loads((fake_slurm.folder / "states.json").read_text())
    for c in ("dial-90/toy-math/nsr/seed0", "dial-90/toy-math/one_shot/seed0"):
        assert states[ids[c]] == "CANCELLED"
        assert _sbatch(fake_slurm.scripts()[new[c]["job_id"]], "dependency").startswith(f"afterok:{new_measure}")
    assert "5 job(s) submitted" in log  # measure, alignment, 2 cells, analysis

    # --status: one line per step with its record and job state
    fake_slurm.set_states(**{new_measure: "RUNNING"})
    assert main(base + ["--status"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["dial-90/toy-math/ground_truth/seed0"].endswith("finished")
    assert f"job {new_measure} (slurm): RUNNING" in lines["alignment/dial-90/toy-math"]
    assert "PENDING" in lines["analysis"]


def test_status_before_anything_was_submitted(tmp_path, capsys):
    states = executors.study_status(load_preset("testbed-ci"), tmp_path / "s", log=lambda line: None)
    assert set(states.values()) == {"not submitted"} and len(states) == 7


@pytest.mark.slow
def test_local_executor_runs_testbed_ci_and_a_rerun_submits_nothing(tmp_path, capsys):
    from mirage.cli import main

    args = ["study", "--preset", "testbed-ci", "--out", str(tmp_path / "s"), "--only", "condition=nsr",
            "--executor", "local"]
    assert main(args) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "4 local job(s) run, 0 failed" in out  # the measurement, the alignment notebook, the cell, the analysis
    assert (tmp_path / "s" / "results.parquet").exists()
    record = json.loads((tmp_path / "s" / "runs" / "dial-90" / "toy-math" / "nsr" / "seed0" / "study_step.json")
                        .read_text())
    assert record["status"] == "finished"
    assert main(args) == 0
    assert "0 local job(s) run" in capsys.readouterr().out


def test_slurm_jobs_ask_for_memory_one_task_and_requeue_resuming(fake_slurm, preset_file, tmp_path, capsys,
                                                                 monkeypatch):
    """Issue 21 item 8: mem_gb always asked for, one task per node, the step on task 0 only, a timed-out job
    requeued by submitit's own checkpoint logic, logs at jobs/<id>/<id>_0_log.out, --status with elapsed + log."""
    from submitit.core.job_environment import _checkpoint
    from submitit.core.utils import DelayedSubmission

    from mirage.cli import main

    out = tmp_path / "study"
    base = ["study", "--preset", preset_file, "--out", str(out)]
    assert main(base + ["--executor", "slurm"]) == 0
    jobs = json.loads((out / "jobs.json").read_text())
    scripts = fake_slurm.scripts()
    cell = jobs["dial-90/toy-math/nsr/seed0"]
    script = scripts[cell["job_id"]]
    assert _sbatch(script, "mem") == f"{executors.DEFAULT_RESOURCES['cell']['mem_gb']}GB"
    assert _sbatch(scripts[jobs["alignment/dial-90/toy-math"]["job_id"]], "mem") == "64GB"
    assert _sbatch(script, "ntasks-per-node") == "1"
    assert _sbatch(script, "signal") == "USR2@90"  # submitit's time-limit warning, handled by StepJob.checkpoint

    # logs: one place, with the real job id; no literal %j folder
    job_id = cell["job_id"]
    assert cell["log"] == str(out / "jobs" / job_id / f"{job_id}_0_log.out")
    assert cell["folder"] == str(out / "jobs" / job_id) and "%j" not in json.dumps(jobs)
    assert _sbatch(script, "output") == str(out / "jobs" / "%j" / "%j_0_log.out")  # SLURM fills in the id
    assert not (out / "jobs" / "%j").exists()

    # time limit: submitit requeues a job whose function has a checkpoint method; the requeued job is the same step
    pickle = out / "jobs" / job_id / f"{job_id}_submitted.pkl"
    delayed = DelayedSubmission.load(pickle)
    assert hasattr(delayed.function, "checkpoint")
    delayed.set_timeout(2880, 3)
    assert _checkpoint(delayed, pickle, 2) == ""  # "" = requeue (else the reason it is not requeued)
    again = DelayedSubmission.load(pickle)
    assert isinstance(again.function, executors.StepJob) and again.args == delayed.args
    assert again.args[2] == "dial-90/toy-math/nsr/seed0"

    # a multi-node job's other tasks do not run the step; task 0 does, with its time limit for folder locks
    ran = []
    monkeypatch.setattr(executors, "run_step_job", lambda *a: ran.append(a) or "finished")
    monkeypatch.delenv("MIRAGE_LOCK_MAX_AGE_H", raising=False)
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert again.function(*again.args) == "task 1: the step runs on task 0" and ran == []
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert again.function(*again.args) == "finished" and ran == [tuple(again.args)]
    assert os.environ["MIRAGE_LOCK_MAX_AGE_H"] == "48"  # timeout_min 2880

    # --status: state, elapsed and log per step
    capsys.readouterr()
    fake_slurm.set_states(**{job_id: "RUNNING"})
    assert main(base + ["--status"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()}
    assert (f"job {job_id} (slurm): RUNNING, elapsed 01:02:{int(job_id) % 60:02d}, log {cell['log']}"
            in lines["dial-90/toy-math/nsr/seed0"])
