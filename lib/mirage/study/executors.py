"""A study's steps as cluster jobs, with submitit: SLURM (``--executor slurm``) or its LocalExecutor (``local``).

The plan is the inline runner's (``plan.plan``); each step becomes one job that runs it through
``runner.run_steps`` (so its record, ``study_step.json``, is written exactly as inline), with
the preset's per-step resources:

    measure steps (base pass@k of a model x task)   resources.alignment
    history runs and cells                          resources.cell
    the alignment notebook and the analysis         resources.analysis

SLURM: every job is submitted at once; a step waits for its dependencies' jobs with
``afterok`` (a cell for its pair's measurement; the alignment notebook for the measurements),
the analysis with ``afterany`` on every other job, because it analyses whichever cells
finished, as the inline runner does. The job ids are kept in ``<study>/jobs.json``;
resubmitting skips finished steps (their records) and steps whose job is still queued or
running, and resubmits a waiting job whose dependency had to be resubmitted. ``--status`` shows
each step's record and its job's SLURM state. The local executor has no dependencies: it
starts each job once its dependencies finished, ``--jobs`` at a time, and waits for them.
Ray inside a verl job is verl's business (multi-node cells: start Ray in ``setup``).

On the cluster: every job asks for its memory (``mem_gb``: the preset's, else ``DEFAULT_RESOURCES``)
and one task per node, and runs its step on the first task only (``SLURM_PROCID`` 0), so a
multi-node cell runs once. A job that reaches its time limit (or is preempted) is requeued by
submitit and resumes its step, which every step does (``StepJob.checkpoint``); its folder locks
know an earlier attempt of the same job as stale (``mirage.runs.files``). Logs: submitit's
``<study>/jobs/<job id>/<job id>_0_log.out`` (and ``_log.err``), recorded per step in jobs.json and
printed by ``--status`` with the job's state and elapsed time (sacct).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mirage.runs import FolderLock, Status, write_json_atomic
from mirage.runs.files import MAX_AGE_ENV
from mirage.study.folders import check_study_file, default_dirs, results_digest
from mirage.study.plan import plan
from mirage.study.preset import load_preset
from mirage.study.resources import DEFAULT_RESOURCES, KINDS, RESOURCE_OF, check_resources, parse_slurm, resources_for
from mirage.study.runner import run_steps, run_study
from mirage.study.verify import check_step

Log = Callable[[str], None]
GENERIC = ("name", "timeout_min", "mem_gb", "nodes", "cpus_per_task", "gpus_per_node", "tasks_per_node",
           "stderr_to_stdout")  # submitit's own names; any other key is passed to SLURM as slurm_<key>
LIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD",
        "REQUEUE_FED"}
JOBS_FILE = "jobs.json"


def make_executor(kind: str, folder: Path, params: Mapping[str, Any], name: str):
    """A submitit executor for one step; an unknown sbatch setting is an error naming it."""
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=kind)
    except RuntimeError as e:  # no srun on this machine
        raise ValueError(f"--executor {kind}: {e} (submit from a machine of the cluster)") from None
    if kind == "local":  # one machine: only what it honours
        params = {k: v for k, v in params.items() if k in ("timeout_min",)}
    else:  # one task per node: the step runs once, on the first task (StepJob)
        params = {"tasks_per_node": 1, **params}
    settings = {(k if k in GENERIC else f"slurm_{k}"): v for k, v in params.items()}
    try:
        executor.update_parameters(name=name, **settings)
    except (ValueError, TypeError, AssertionError, NameError) as e:  # NameError: an unknown setting
        raise ValueError(f"resources / --slurm: {str(e).splitlines()[0]}") from None
    return executor


# --- the job -------------------------------------------------------------------------------------------
def run_step_job(preset_name: str, out: str, step_id: str, figures_dir: str) -> str:
    """What each job runs: its one step through the inline runner (the record is written the same way);
    the analysis job runs the analysis stage (results tables, then every analysis notebook). Raises on
    failure, so that SLURM marks the job FAILED and ``afterok`` dependants do not start."""

    preset = load_preset(preset_name)
    steps = plan(preset, out, None, figures_dir)
    step = next((s for s in steps if s.id == step_id), None)
    if step is None:
        raise KeyError(f"study {out}: no step {step_id!r} in the plan of {preset.where}")
    if step.kind == "analysis":
        if run_study(preset, out, stage="analysis", figures_dir=figures_dir) != 0:
            raise RuntimeError(f"study {out}: the analysis failed (see its step records)")
        return Status.FINISHED.value

    status = run_steps([step], jobs=1, plugins=preset.plugins, outside=[s for s in steps if s.id in step.deps],
                       check=check_step)
    if status[step.id] != Status.FINISHED.value:
        raise RuntimeError(f"step {step_id} {status[step.id]}; see {step.dir / 'step.log'}")
    return status[step.id]


class StepJob:
    """The callable each job runs (``run_step_job``), checkpointable: on SLURM's time-limit (or preemption)
    signal submitit calls ``checkpoint`` and requeues the job with what it returns, the same step, which
    resumes (verl from its last checkpoint, the local engine from its own, evaluation per checkpoint).
    Only the first task (``SLURM_PROCID`` 0) runs the step; a multi-node job's other tasks return at once.
    ``timeout_min``: the job's limit, recorded with its folder locks (``MIRAGE_LOCK_MAX_AGE_H``)."""

    def __init__(self, timeout_min: float | None = None):
        self.timeout_min = timeout_min

    def __call__(self, preset_name: str, out: str, step_id: str, figures_dir: str) -> str:
        rank = int(os.environ.get("SLURM_PROCID", "0") or 0)
        if rank != 0:
            return f"task {rank}: the step runs on task 0"
        if self.timeout_min:
            os.environ.setdefault(MAX_AGE_ENV, f"{self.timeout_min / 60:g}")
        return run_step_job(preset_name, out, step_id, figures_dir)

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def job_log(entry: Mapping[str, Any]) -> str:
    """The job's stdout log, with its real id (entries written before the log was recorded: from the folder)."""
    if entry.get("log"):
        return str(entry["log"])
    from submitit.core.utils import JobPaths

    return str(JobPaths(entry["folder"], str(entry["job_id"]), 0).stdout)


def _entry(job, executor: str, **extra: Any) -> dict[str, Any]:
    return {"job_id": str(job.job_id), "executor": executor, "folder": str(job.paths.folder),
            "log": str(job.paths.stdout), "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "submitted_at": time.time(), **extra}


# --- submission --------------------------------------------------------------------------------------
def read_jobs(out: Path) -> dict[str, dict[str, Any]]:
    path = out / JOBS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def sacct(job_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """{job id: {'State', 'Elapsed'}} from one sacct call; {} where sacct is absent or fails."""
    if not job_ids:
        return {}
    from submitit.slurm.slurm import SlurmInfoWatcher

    command = ["sacct", "-o", "JobID,State,Elapsed", "--parsable2"]
    for job_id in job_ids:
        command += ["-j", str(job_id)]
    try:
        text = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return SlurmInfoWatcher().read_info(text)


def job_info(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """{step id: {'state', 'elapsed'}} of its recorded job: SLURM's state ('UNKNOWN' where sacct does not know
    the job, or is absent) and elapsed time; 'NOT RUNNING' for a local job (it lived with its submitter)."""
    slurm = {sid: str(e["job_id"]) for sid, e in entries.items() if e.get("executor") == "slurm"}
    info = {sid: {"state": "NOT RUNNING", "elapsed": ""} for sid in entries if sid not in slurm}
    known = sacct(sorted(set(slurm.values())))
    for sid, job_id in slurm.items():
        row = known.get(job_id, {})
        info[sid] = {"state": (row.get("State") or "UNKNOWN").split()[0], "elapsed": row.get("Elapsed", "")}
    return info


def job_states(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """{step id: its recorded job's SLURM state} (``job_info``)."""
    return {sid: i["state"] for sid, i in job_info(entries).items()}


def is_live(entry: Mapping[str, Any], state: str) -> bool:
    """Queued or running; UNKNOWN only just after submission (sacct may not list a job yet)."""
    return state in LIVE or state == "UNKNOWN" and time.time() - entry.get("submitted_at", 0) < 600


def job_steps(preset, out: Path, only, figures_dir: Path) -> tuple[list, dict[str, bool]]:
    """(the steps that become jobs, {step id: finished}). The analysis notebooks are one job (the analysis
    stage runs them all), finished when each ran on the results as they are now (the runner's digest)."""

    steps = plan(preset, out, only, figures_dir)
    jobs = [s for s in steps if s.kind != "analysis"]
    done = {s.id: s.finished for s in jobs}
    analyses = [s for s in plan(preset, out, None, figures_dir) if s.kind == "analysis"]
    if analyses:
        digest = results_digest(plan(preset, out, None, figures_dir))
        for a in analyses:
            a.params["results_digest"] = digest
        jobs.append(analyses[0])
        done[analyses[0].id] = all(a.finished for a in analyses)
    return jobs, done


def submit_study(preset, out: str | os.PathLike | None = None, executor: str = "slurm",
                 only: Mapping[str, set[str]] | None = None, slurm: Sequence[str] = (), jobs: int | None = None,
                 figures_dir: str | os.PathLike | None = None, log: Log = print) -> int:
    """Submit (slurm) or run (local) the study's unfinished steps as submitit jobs. Returns an exit status."""

    if executor not in ("slurm", "local"):
        raise ValueError(f"--executor: one of inline, local, slurm; got {executor!r}")
    out, figures_dir = default_dirs(preset, out, figures_dir)
    resources = resources_for(preset, parse_slurm(slurm))
    with FolderLock(out / "jobs", "study submission"):
        check_study_file(out, preset)
        steps, done = job_steps(preset, out, only, figures_dir)
        if executor == "local":
            return _run_local(preset, out, steps, done, resources, jobs or preset.jobs, figures_dir, log)
        return _submit_slurm(preset, out, steps, done, resources, figures_dir, log)


def _submit_slurm(preset, out: Path, steps, done, resources, figures_dir: Path, log: Log) -> int:
    recorded = read_jobs(out)
    states = job_states(recorded)
    job_of: dict[str, str] = {}  # step id -> the live job its dependants wait for
    resubmitted: set[str] = set()
    submitted = 0
    for s in steps:
        if done[s.id]:
            continue
        entry = recorded.get(s.id)
        deps = [d for d in _deps(s, steps) if not done.get(d, True)]
        if entry and is_live(entry, states[s.id]):
            if not any(d in resubmitted for d in deps):
                job_of[s.id] = str(entry["job_id"])
                log(f"[study] {s.id}: job {entry['job_id']} still queued or running")
                continue
            _cancel(entry)  # waits on a job that will never succeed: resubmit it behind the new one
        waiting = [job_of[d] for d in deps if d in job_of]
        params = dict(resources[RESOURCE_OF[s.kind]])
        if waiting:
            mode = "afterany" if s.kind == "analysis" else "afterok"
            params["dependency"] = f"{mode}:" + ":".join(waiting)
        ex = make_executor("slurm", out / "jobs" / "%j", params, f"mirage-{s.id}")  # submitit: jobs/<job id>/
        job = ex.submit(StepJob(params.get("timeout_min")), preset.cli_name, str(out), s.id, str(figures_dir))
        job_of[s.id] = str(job.job_id)
        resubmitted.add(s.id)
        recorded[s.id] = _entry(job, "slurm", resources=params)
        write_json_atomic(out / JOBS_FILE, recorded)
        submitted += 1
        log(f"[study] submitted {s.id}: job {job.job_id}" + (f" ({params['dependency']})" if waiting else "")
            + f", log {job.paths.stdout}")
    log(f"[study] {submitted} job(s) submitted; `mirage study --preset {preset.cli_name} --out {out} --status` "
        "shows their states")
    return 0


def _deps(step, steps) -> list[str]:
    """What a job waits for: its step's dependencies; the analysis, every other job."""
    return [d.id for d in steps if d.kind != "analysis"] if step.kind == "analysis" else list(step.deps)


def _cancel(entry: Mapping[str, Any]) -> None:
    import submitit

    try:
        submitit.SlurmJob(entry["folder"], str(entry["job_id"])).cancel(check=False)
    except Exception:  # noqa: BLE001 - already gone
        pass


def _run_local(preset, out: Path, steps, done, resources, jobs: int, figures_dir: Path, log: Log) -> int:
    """submitit's LocalExecutor: start a step's job once its dependencies finished, ``jobs`` at a time."""
    todo = [s for s in steps if not done[s.id]]
    running: dict[str, Any] = {}
    failed: set[str] = set()
    recorded = read_jobs(out)
    n_submitted = 0
    while todo or running:
        for s in list(todo):
            deps = _deps(s, steps)
            if any(d in failed for d in deps) and s.kind != "analysis":
                todo.remove(s)
                failed.add(s.id)
                log(f"[study] blocked {s.id}: dependency failed")
                continue
            if len(running) >= max(1, jobs) or any(d in running or d in (t.id for t in todo) for d in deps):
                continue
            ex = make_executor("local", out / "jobs" / "%j", resources[RESOURCE_OF[s.kind]], f"mirage-{s.id}")
            running[s.id] = ex.submit(StepJob(), preset.cli_name, str(out), s.id, str(figures_dir))
            recorded[s.id] = _entry(running[s.id], "local")
            write_json_atomic(out / JOBS_FILE, recorded)
            todo.remove(s)
            n_submitted += 1
            log(f"[study] started {s.id}: local job {running[s.id].job_id}")
        time.sleep(0.5)
        for sid, job in list(running.items()):
            if not job.done():
                continue
            del running[sid]
            try:
                job.result()
                log(f"[study] done  {sid}")
            except Exception as e:  # noqa: BLE001 - submitit re-raises the job's failure
                failed.add(sid)
                log(f"[study] FAILED {sid}: {str(e).strip().splitlines()[-1] if str(e).strip() else e}")
    log(f"[study] {n_submitted} local job(s) run, {len(failed)} failed or blocked; study dir {out}")
    return 1 if failed else 0


# --- status --------------------------------------------------------------------------------------------
def study_status(preset, out: str | os.PathLike | None = None, only: Mapping[str, set[str]] | None = None,
                 figures_dir: str | os.PathLike | None = None, log: Log = print) -> dict[str, str]:
    """One line per step: finished / failed / job id, its SLURM state, elapsed time and log / not submitted.
    -> {step id: state}."""

    out, figures_dir = default_dirs(preset, out, figures_dir)
    recorded = read_jobs(out)
    states = {}
    steps, done = job_steps(preset, out, only, figures_dir)
    live = job_info({s.id: recorded[s.id] for s in steps if s.id in recorded and not done[s.id]})
    for s in steps:
        status = s.record().get("status")
        entry = recorded.get(s.id)
        info = live.get(s.id, {})
        job = (f"job {entry['job_id']} ({entry['executor']}): {info.get('state', '')}"
               + (f", elapsed {info['elapsed']}" if info.get("elapsed") else "")
               + f", log {job_log(entry)}") if entry else ""
        if done[s.id]:
            state = "finished"
        elif entry:
            state = job + (f", last attempt {status}" if status else "")
        else:
            state = status or "not submitted"
        states[s.id] = state
        log(f"{s.kind:<9} {s.id:<48} {state}")
    return states
