"""Running a study: the scheduler, its lock and records, the summary it prints.

Every step runs with one torch thread, ``--jobs`` at a time: in a process of its own (papermill -> a
Jupyter kernel, or ``python -m mirage.study measure|history``), or, for the cells' notebooks, in a
warm kernel kept per job slot (``WarmPool``, ``mirage.study.nbworker``; papermill still executes
and writes each notebook). A step's
record (``study_step.json``, the ``mirage.runs`` manifest schema: kind "study-step",
status, config = its parameters, one entry per attempt) says "running" while it runs
and "finished" once it succeeded and its outputs read back sound (``mirage.study.verify``);
a finished step is never rerun unless, at a later start, its outputs no longer read back
sound: then exactly the damaged part is redone, or the runner refuses, before any work, with
a one-line fix (``repair``; ``verify_study`` is ``mirage study --verify``). The runner may be
killed at any moment: the trainer and the evaluator resume their own work, so rerunning
the same command completes the study with nothing lost. A failing step is recorded with
its executed notebook and error; the steps that depend on it are blocked; the others go
on; the summary lists what failed and the exit status is 1.

One runner per study directory (``mirage.runs.FolderLock``); a runner restricted to a
stage or to some cells (``--stage``/``--only``, one cluster job) locks that selection only,
so jobs for different cells can share a study directory; it is refused while a runner of the
whole study holds the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mirage.registry import PLUGINS_ENV
from mirage.runs import FolderBusy, FolderLock, Status, end_attempt, start_attempt, update_manifest, write_json_atomic
from mirage.study.cell import sampler_backend
from mirage.study.estimate import dry_run_cell
from mirage.study.folders import check_study_file, default_dirs, results_digest
from mirage.study.plan import NBEXEC, STAGES, STEP_RECORD, Step, only_arg, plan, stage_steps
from mirage.study.preset import Preset
from mirage.study.reference import log_comparison
from mirage.study.results import MIN_GT_GAIN, collect, gain_table, load_problems, recovered_table, summary_table
from mirage.study.seeds import ci_tables, seeds_per_run
from mirage.study.verify import Damage, StudyDamaged, check_step, check_tables, move_aside
from mirage.train.verl.command import build_command

Log = Callable[[str], None]


def fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _tail(path: Path, n: int = 40, chars: int = 2000) -> str:
    """The last ``n`` lines of a log, at most ``chars`` characters from its end: a step record keeps the
    first 2,000 characters of an error, and the end of a traceback is the part that says what failed."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])[-chars:]


def _lock(out: Path, stage: str, only: Mapping[str, set[str]] | None) -> FolderLock:
    if stage == "all" and not only:
        return FolderLock(out, "study")
    _check_no_study_runner(out)
    key = f"{stage}{sorted((k, sorted(v)) for k, v in (only or {}).items())}"
    return FolderLock(out / ".selections" / hashlib.sha256(key.encode()).hexdigest()[:8],
                      f"study selection (--stage {stage} --only {dict(only or {})})")


def _check_no_study_runner(out: Path) -> None:
    """A runner of one stage or some cells shares the folder with others of its kind, not with a runner of
    the whole study (which runs every step and the analysis itself): refuse while one holds the folder."""
    if not (out / ".lock").exists():
        return
    probe = FolderLock(out, "study")
    try:
        probe.acquire()
    except FolderBusy:
        try:
            holder = json.loads((out / ".lock.holder").read_text(encoding="utf-8"))
            who = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
        except (OSError, ValueError):
            who = "a process whose pid is not recorded"
        raise FolderBusy(f"{out}: this study folder is locked by another mirage study runner ({who}), which runs "
                         "every step and the analysis itself; wait for it to finish, or stop it") from None
    probe.release()


def step_env(threads: int, plugins: Sequence[str] = ()) -> dict[str, str]:
    """A step's environment: one torch thread, and the preset's plugins loaded in its process."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "MIRAGE_TORCH_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    names = [m for m in env.get(PLUGINS_ENV, "").split(",") if m.strip()] + list(plugins)
    if names:
        env[PLUGINS_ENV] = ",".join(dict.fromkeys(names))
    return env


def _start(step: Step, env: dict[str, str], pool: WarmPool | None = None) -> tuple[Any, Any]:
    step.dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(step.dir / "params.json", step.params)
    update_manifest(step.dir, STEP_RECORD, kind="study-step", step=step.id, step_kind=step.kind, config=step.params,
                    deps=step.deps, notebook=str(step.notebook) if step.notebook else None,
                    log=str(step.dir / "step.log"))
    start_attempt(step.dir, STEP_RECORD, command=" ".join(step.argv))
    log = open(step.dir / "step.log", "a", encoding="utf-8")
    request = pool.request(step) if pool is not None else None
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(step.argv)}"
              f"{' (in a warm kernel: mirage.study.nbworker)' if request else ''}\n")
    log.flush()
    if request:
        return pool.submit(request, env), log
    # Same process group as the runner (killing the group kills the step too), and on Linux the
    # step is killed when the runner dies however it dies (kill -9 of the runner alone included).
    proc = subprocess.Popen(step.argv, cwd=step.dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    return proc, log


class WarmPool:
    """The warm kernels of one ``run_steps``: at most ``jobs`` workers (``python -m mirage.study.nbworker``),
    each keeping one Jupyter kernel alive from one cell's notebook to the next (docs/study.md). A worker
    is started when a cell's notebook finds none idle, and dies with the runner (``PR_SET_PDEATHSIG``),
    its kernel with it; a worker that died (or was killed) fails the step it ran and is replaced."""

    def __init__(self, jobs: int):
        self.jobs = max(1, jobs)
        self.workers: list[_Worker] = []

    @staticmethod
    def request(step: Step) -> dict[str, str] | None:
        """The worker's request for a cell's notebook step (``plan._papermill``'s command), else None."""
        argv = step.argv
        if step.kind != "cell" or NBEXEC not in argv or "-f" not in argv or "--cwd" not in argv:
            return None
        i = argv.index(NBEXEC)
        return {"input": argv[i + 1], "output": argv[i + 2], "parameters_file": argv[argv.index("-f") + 1],
                "cwd": argv[argv.index("--cwd") + 1], "log": str(step.dir / "step.log")}

    def submit(self, request: dict[str, str], env: dict[str, str]) -> _WarmStep:
        self.workers = [w for w in self.workers if w.proc.poll() is None or w.busy]
        worker = next((w for w in self.workers if not w.busy), None)
        if worker is None:
            worker = _Worker(env)
            self.workers.append(worker)
        return worker.send(request)

    def close(self, timeout: float = 20) -> None:
        for w in self.workers:
            w.close()
        t0 = time.time()
        for w in self.workers:
            try:
                w.proc.wait(timeout=max(0.1, timeout - (time.time() - t0)))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        self.workers = []


class _Worker:
    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "mirage.study.nbworker"], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=os.getcwd(),
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.busy: _WarmStep | None = None

    def send(self, request: dict[str, str]) -> _WarmStep:
        step = _WarmStep(self)
        self.busy = step
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker is gone: poll() says so
        return step

    def reply(self) -> int | None:
        """The exit status of the running notebook once the worker says it is done (or has died)."""
        try:
            chunk = os.read(self.proc.stdout.fileno(), 4096)
        except BlockingIOError:
            chunk = None
        if chunk:
            self.buffer += chunk
        if b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.busy = None
            return int(json.loads(line)["rc"])
        if chunk == b"" or self.proc.poll() is not None:  # died mid-notebook: the step fails, the worker is replaced
            self.busy = None
            rc = self.proc.wait()
            return rc if rc else 1
        return None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass


class _WarmStep:
    """A notebook running in a worker, with the ``poll`` of a process."""

    def __init__(self, worker: _Worker):
        self.worker = worker
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.worker.reply()
        return self.returncode


def _die_with_parent() -> None:
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_steps(steps: list[Step], jobs: int = 1, log: Log = print, plugins: Sequence[str] = (),
              outside: Sequence[Step] = (), check: Callable[[Step], list] | None = None,
              warm: bool = False) -> dict[str, str]:
    """Run steps (dependencies first, ``jobs`` at a time); skip finished ones. -> {step id: status}.

    ``outside``: steps this call does not run that some of ``steps`` depend on (``--stage cells``
    after ``--stage alignment``): a dependency among them counts if it finished, and blocks its
    dependants if it did not (it will not finish while this call waits).

    ``check``: reads a step's outputs back once its process exited 0 (``mirage.study.verify.check_step``);
    a step whose outputs are incomplete is recorded as failed, naming them, not finished.

    Each step gets ONE torch thread: the testbed's models are too small for intra-op
    parallelism to pay, and on a loaded 2-core machine 2 threads per process measured
    13x slower than 1 (threads spin-waiting on each other). Parallelism comes from ``jobs``.

    ``warm``: the cells' notebooks run in warm kernels (``WarmPool``, ``mirage.study.nbworker``), at most
    ``jobs`` of them; every other step is a process of its own.
    """
    pool = WarmPool(jobs) if warm else None
    try:
        return _run_steps(steps, jobs, log, plugins, outside, check, pool)
    finally:
        if pool is not None:
            pool.close()


def _run_steps(steps: list[Step], jobs: int, log: Log, plugins: Sequence[str], outside: Sequence[Step],
               check: Callable[[Step], list] | None, pool: WarmPool | None) -> dict[str, str]:
    env = step_env(1, plugins)
    by_id = {s.id: s for s in steps}
    status = {s.id: (Status.FINISHED.value if s.finished else "pending") for s in steps}
    # a dependency this call does not run: finished, or as good as failed for its dependants
    done_outside = {s.id: Status.FINISHED.value if s.finished else Status.BLOCKED.value for s in outside
                    if s.id not in status}
    todo = [s for s in steps if status[s.id] == "pending"]
    cells = [s for s in steps if s.kind == "cell"]
    done_cells = sum(status[s.id] == Status.FINISHED.value for s in cells)
    if done_cells:
        log(f"[study] resuming: {done_cells}/{len(cells)} cells already finished")
    running: dict[str, tuple[Any, Any, float]] = {}
    durations: list[float] = []
    t0 = time.time()

    def progress_line() -> str:
        if not cells:
            return f"elapsed {fmt_s(time.time() - t0)}"
        finished = sum(status[s.id] == Status.FINISHED.value for s in cells)
        remaining = sum(status[s.id] in ("pending", Status.RUNNING.value) for s in cells)
        eta = (f"~{fmt_s(sum(durations) / len(durations) * remaining / max(1, jobs))} left"
               if durations else "time left: known after the first cell")
        return f"{finished}/{len(cells)} cells done, elapsed {fmt_s(time.time() - t0)}, {eta}"

    while todo or running:
        for s in list(todo):
            if len(running) >= max(1, jobs):
                break
            dep_states = [status.get(d, done_outside.get(d, Status.BLOCKED.value)) for d in s.deps]
            if any(d in (Status.FAILED.value, Status.BLOCKED.value) for d in dep_states):
                status[s.id] = Status.BLOCKED.value
                todo.remove(s)
                update_manifest(s.dir, STEP_RECORD, kind="study-step", step=s.id, step_kind=s.kind, config=s.params,
                                status=Status.BLOCKED, error=f"dependency failed or not run: {s.deps}")
                log(f"[study] blocked {s.id}: dependency {s.deps} failed (or, outside this --stage, has not "
                    "finished)")
                continue
            if any(d != Status.FINISHED.value for d in dep_states):
                continue
            proc, fh = _start(s, env, pool)
            running[s.id] = (proc, fh, time.time())
            status[s.id] = Status.RUNNING.value
            todo.remove(s)
            log(f"[study] start {s.kind} {s.id}  ({progress_line()})")
        time.sleep(0.2)
        for sid, (proc, fh, started) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            fh.close()
            del running[sid]
            s = by_id[sid]
            seconds = time.time() - started
            damage = check(s) if rc == 0 and check else []
            if damage:
                status[sid] = Status.FAILED.value
                error = "exited 0, but its outputs are incomplete: " + "; ".join(d.line() for d in damage[:5])
                end_attempt(s.dir, Status.FAILED, STEP_RECORD, error=error, returncode=rc, seconds=round(seconds, 2))
                log(f"[study] FAILED {sid}: {error}")
            elif rc == 0:
                status[sid] = Status.FINISHED.value
                end_attempt(s.dir, Status.FINISHED, STEP_RECORD, returncode=rc, seconds=round(seconds, 2))
                if s.kind == "cell":
                    durations.append(seconds)
                log(f"[study] done  {sid} in {fmt_s(seconds)}  ({progress_line()})")
            else:
                status[sid] = Status.FAILED.value
                end_attempt(s.dir, Status.FAILED, STEP_RECORD, error=_tail(s.dir / "step.log"), returncode=rc,
                            seconds=round(seconds, 2))
                log(f"[study] FAILED {sid} (exit {rc}) after {fmt_s(seconds)}; see {s.dir / 'step.log'}"
                    f"{' and ' + str(s.notebook) if s.notebook else ''}")
    return status


def repair(out: Path, preset: Preset, work: Sequence[Step], read: Sequence[Step] = (), log: Log = print) -> bool:
    """Read back the outputs of every finished step (``mirage.study.verify``) before any work.

    A damaged step of ``work`` that a rerun repairs is redone: its damaged files are moved aside
    (``<out>/.damaged/``), its record says failed with what was wrong, and the runner reruns it (the
    trainer and evaluator redo only what is missing). Damage a rerun cannot repair, or in a step of
    ``read`` (the whole plan, which the analysis reads) that this runner does not run, is refused with
    a one-line fix (``StudyDamaged``), nothing changed. Returns whether the results tables were damaged
    (the analysis then reruns)."""
    ids = {s.id for s in work}
    found = {s.id: (s, check_step(s)) for s in work if s.finished}
    rerun = f"mirage study --preset {preset.cli_name} --out {out}"
    elsewhere = [d if d.fix else Damage(d.step, d.path, d.what, d.aside,
                                        f"run `{rerun}` (this runner does not run that step)")
                 for s in read if s.id not in ids and s.kind != "analysis" and s.finished for d in check_step(s)]
    every = [d for _, ds in found.values() for d in ds] + elsewhere
    refused = [d for d in every if d.fix]
    if refused:
        more = f" (and {len(every) - 1} more: `{rerun} --verify` lists them)" if len(every) > 1 else ""
        raise StudyDamaged(refused[0].line() + more)
    for sid, (s, damage) in found.items():
        if not damage:
            continue
        moved = move_aside([p for d in damage for p in d.aside], out)
        update_manifest(s.dir, STEP_RECORD, status=Status.FAILED,
                        error="outputs damaged: " + "; ".join(f"{d.path}: {d.what}" for d in damage)[:1900])
        for d in damage:
            log(f"[study] damaged {sid}: {d.path}: {d.what}")
        log(f"[study] redo {sid}" + (f" (damaged files moved to {out / '.damaged'}: {len(moved)})" if moved else ""))
    tables = check_tables(out, read) if read and (out / "results.parquet").exists() else []
    for d in tables:
        log(f"[study] damaged results: {d.path}: {d.what}; the tables are rebuilt and the analysis rerun")
    return bool(tables)


def verify_study(preset: Preset, out: str | os.PathLike | None = None, only: Mapping[str, set[str]] | None = None,
                 figures_dir: str | os.PathLike | None = None, log: Log = print) -> int:
    """``mirage study --verify``: every inconsistency of a study folder, one line each; changes nothing
    (no lock, no record). Returns 0 when every finished step's outputs are sound, 1 otherwise."""
    out, figures_dir = default_dirs(preset, out, figures_dir)
    if not (out / "study.json").is_file():
        raise FileNotFoundError(f"{out}: no study here (no study.json); give the study's folder with --out")
    check_study_file(out, preset, write=False)
    steps = plan(preset, out, only, figures_dir)
    for analysis in (s for s in steps if s.kind == "analysis"):
        analysis.params["results_digest"] = results_digest(steps)
    finished = [s for s in steps if s.finished]
    damage = [d for s in finished for d in check_step(s)]
    if (out / "results.parquet").exists() or any(s.kind == "analysis" for s in finished):
        damage += check_tables(out, steps)
    for d in damage:
        log(d.line())
    states = {}
    for s in steps:
        if not s.finished:
            states.setdefault(s.record().get("status") or "not started", []).append(s.id)
    pending = "; ".join(f"{state}: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}" for state, ids in
                        states.items())
    log(f"[verify] {out}: {len(finished)} of {len(steps)} steps finished and checked, {len(damage)} inconsistenc"
        f"{'y' if len(damage) == 1 else 'ies'}" + (f" ({sum(d.redo for d in damage)} a rerun redoes)" if damage
                                                  else "") + (f"; not finished: {pending}" if pending else ""))
    return 1 if damage else 0


def run_study(preset: Preset, out: str | os.PathLike | None = None, jobs: int | None = None,
              only: Mapping[str, set[str]] | None = None, stage: str = "all", force_analysis: bool = False,
              figures_dir: str | os.PathLike | None = None, log: Log = print, warm: bool = True) -> int:
    """Run (or resume) a study. Returns 0 when every step finished, 1 otherwise.

    ``warm``: the cells' notebooks run in warm kernels, one per job slot (``run_steps``)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    out, figures_dir = default_dirs(preset, out, figures_dir)
    jobs = jobs or preset.jobs
    t0 = time.time()
    with _lock(out, stage, only):
        check_study_file(out, preset)
        steps = plan(preset, out, only, figures_dir)
        n_cells = sum(s.kind == "cell" for s in steps)
        log(f"[study] preset {preset.cli_name}: {n_cells} cells ({preset.describe_grid()}"
            f"{', filtered by --only' if only else ''}), {jobs} at a time -> {out}")
        work = stage_steps(steps, stage)
        # a finished step is trusted once its outputs are read back: what this runner runs is redone where
        # damaged; what only the analysis reads must be sound (else: refused, before any work)
        read = plan(preset, out, None, figures_dir) if stage in ("all", "analysis") else []
        force_analysis = repair(out, preset, work, read, log) or force_analysis
        status = run_steps(work, jobs=jobs, log=log, plugins=preset.plugins,
                           outside=[s for s in steps if s not in work], check=check_step, warm=warm)
        failed = [s for s in work if status[s.id] in (Status.FAILED.value, Status.BLOCKED.value)]

        results = None
        if stage in ("all", "analysis"):
            every = plan(preset, out, None, figures_dir)  # results cover the whole grid, not just --only
            analyses = [s for s in every if s.kind == "analysis"]
            if not (out / "alignment" / "alignment.parquet").exists() or not any(
                    s.kind == "cell" and s.finished for s in every):
                log("[study] no finished cell (or no alignment table) yet: nothing to analyse")
                if stage == "analysis":
                    failed += analyses
            else:
                results, _ = collect(out, every, preset)
                for analysis in analyses:  # the preset's analysis notebooks, in order
                    analysis.params["results_digest"] = results_digest(every)
                    if force_analysis:
                        analysis.record_path.unlink(missing_ok=True)
                    if run_steps([analysis], jobs=1, log=log, plugins=preset.plugins)[analysis.id] != "finished":
                        failed.append(analysis)
        print_summary(out, preset, steps, failed, results, time.time() - t0, log)
        if results is not None and not any(s.kind == "analysis" for s in failed):  # issue 22.3: checkout untouched

            log_comparison(preset.name, figures_dir, log)
        return 1 if failed else 0



def print_summary(out: Path, preset: Preset, steps: list[Step], failed: list[Step], results, seconds: float,
                  log: Log = print) -> None:
    cells = [s for s in steps if s.kind == "cell"]
    log("")
    log(f"[study] {preset.cli_name}: {sum(s.finished for s in cells)}/{len(cells)} cells finished, {len(failed)} "
        f"step(s) failed, wall time this invocation {fmt_s(seconds)}; study dir {out}")
    if results is not None:
        import pandas as pd

        with pd.option_context("display.width", 250, "display.max_columns", 40, "display.precision", 3):
            ks = sorted({int(k) for k in results["align_k"].dropna()})
            seeds = seeds_per_run(results)
            log(f"pass@1 on the test set: base model vs the final checkpoint of each condition ("
                f"{'median over seeds' if seeds > 1 else 'one seed'}); "
                f"alignment = base pass@{'/'.join(map(str, ks)) or 'k'}")
            log(summary_table(results).to_string())
            if seeds > 1:
                log_seed_cis(out, log)
            gains = gain_table(results)
            rec = recovered_table(gains)
            log("gain recovered relative to each condition's baseline, (cond - base) / (baseline - base); "
                f"undefined where the baseline's gain < {MIN_GT_GAIN}:")
            none = ("    (no baseline in the grid)" if gains["baseline_pass_at_1"].isna().all()
                    else "    (undefined everywhere: the baselines gained too little)")
            log(rec.to_string() if rec.size else none)
        figs = sorted(Path(steps[-1].params["figures_dir"]).glob("*.png"))
        log(f"results: {out / 'results.parquet'} ({len(results)} rows), {out / 'problems.parquet'}, "
            f"{out / 'dynamics.parquet'}")
        log(f"figures ({len(figs)}): " + ", ".join(str(f) for f in figs))
    for s in failed:
        rec = s.record()
        where = "; ".join(f"{k} {rec[k]}" for k in ("notebook", "log") if rec.get(k))
        log(f"[study] FAILED {s.id}: {rec.get('status', 'failed')}; "
            + (where or "not run: no finished cell (or no alignment table) to analyse yet"))
        for line in [line for line in (rec.get("error") or "").splitlines() if line.strip()][-6:]:
            log(f"    {line}")
    if failed:
        log(f"[study] rerun to retry them: mirage study --preset {preset.cli_name} --out {out}")


def log_seed_cis(out: Path, log: Log = print) -> None:
    """The mean over seeds with its 95% CI over seeds and problems (``mirage.study.seeds``), of
    pass@1 and of the gain over the base model, for each evaluation the study made."""
    log("mean over seeds [95% CI over seeds and problems, mirage.study.seeds]; * the gain survives Holm over its family:")
    log(ci_tables(load_problems(out)).to_string())


# --- dry run: what would run, and the one-job-per-cell commands for a cluster ------------------------
def _shell(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    import shlex

    prefix = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in (env or {}).items())
    return (prefix + " " if prefix else "") + " ".join(shlex.quote(str(a)) for a in argv)


def dry_run(preset: Preset, out: str | os.PathLike | None = None, only: Mapping[str, set[str]] | None = None,
            figures_dir: str | os.PathLike | None = None, log: Log = print) -> list[Step]:
    """Print every step (with its done/pending state) and, per cell, the commands it runs. Writes nothing."""
    out, figures_dir = default_dirs(preset, out, figures_dir)
    steps = plan(preset, out, only, figures_dir)
    base = ["mirage", "study", "--preset", preset.cli_name, "--out", str(out)]
    ev = {**steps[0].params["eval"], **next(s.params["eval"] for s in steps if s.kind == "cell")}  # resolved
    eval_opts = ["--n", str(ev["n"]), "--temperature", str(ev["temperature"]), "--top-p", str(ev["top_p"]),
                 "--max-tokens", str(ev["max_tokens"]), "--seed", str(ev["seed"]), "--no-base"]
    env = {PLUGINS_ENV: ",".join(preset.plugins)} if preset.plugins else {}
    refused: list[str] = []  # cells that cannot run as planned (mirage.study.estimate.dry_run_cell)
    log(f"# preset {preset.cli_name}: {preset.description}")
    log(f"# backend {preset.backend}, recipe {preset.recipe}"
        + (f" with {dict(preset.overrides)}" if preset.overrides else "") + f", eval {ev}")
    log(f"# {sum(s.kind == 'cell' for s in steps)} cells. The runner runs every step below in order, --jobs at a "
        "time; on a cluster submit one job per '## step' line (its --stage/--only select it)")
    for s in steps:
        state = "done" if s.finished else "pending"
        if s.kind == "measure":
            continue  # listed under the alignment step, which runs them
        if s.kind == "alignment":
            what = (" and ".join(f"{m} x {t}" for m, t in s.params["pairs"]) if "pairs" in s.params
                    else f"{s.params['models']} x {s.params['tasks']}")
            log(f"\n## [{state}] alignment: base pass@k of {what}")
            log(_shell(base + ["--stage", "alignment"], env))
            for m in (x for x in steps if x.kind == "measure"):
                settings = [(ev["align_n"], ev["temperature"], m.dir)] + (
                    [(1, 0.0, m.dir / "greedy")] if ev.get("greedy") else [])  # cell.greedy_pair_dir
                for n, temperature, folder in settings:
                    log("#   runs: " + _shell(["mirage", "align", "--backend", sampler_backend(preset.backend),
                                                 "--models", m.params["model"], "--tasks", m.params["task"],
                                                 "--n", str(n), "--temperature", str(temperature),
                                                 "--top-p", str(ev["top_p"]), "--max-tokens", str(ev["max_tokens"]),
                                                 "--seed", str(ev["seed"]), "--out", str(folder)], env))
            log(f"#   then notebooks/{Path(s.argv[3]).name} assembles {s.dir / 'alignment.parquet'}")
        elif s.kind == "history":
            log(f"\n## [{state}] {s.id}: per-example accuracy history for one-shot selection")
            log(_shell(s.argv, env))
        elif s.kind == "cell":
            c = s.cell
            log(f"\n## [{state}] cell {s.id} ({c.rq}, notebook {c.notebook})")
            log(_shell(base + ["--stage", "cells", "--only", only_arg(c)], env))
            if preset.backend == "verl":
                venv, argv = build_command(c.model, c.task, c.condition, c.seed, s.dir, preset.recipe_obj(c.regime))
                log("#   trains: " + _shell(argv, {**env, **venv}))
            else:
                log("#   trains: " + _shell(["mirage", "train", "--backend", "local", "--model", c.model,
                                             "--task", c.task, "--condition", c.condition, "--seed", str(c.seed),
                                             "--run-dir", str(s.dir)]
                                            + [f"--set={k}={v}" for k, v in s.params["recipe_overrides"].items()], env)
                    + (f"   # example chosen from the history run {s.params['history_run']}"
                       if s.params["history_run"] else ""))
            log("#   evaluates: " + _shell(["mirage", "eval", "--backend", sampler_backend(preset.backend),
                                            "--run-dir", str(s.dir), *eval_opts], env))
            if preset.eval.greedy:  # `mirage eval` has no --tag: the cell's notebook makes this evaluation
                log(f"#   and greedily: the same checkpoints at temperature 0, n 1 -> {s.dir / 'eval' / 'greedy'} "
                    "(mirage.study.cell.evaluate(..., greedy=True), run by the cell's notebook)")
            if preset.backend == "verl":  # GPUs, attention, rollout TP, estimated hours vs the time limit

                refused += dry_run_cell(preset, s, ev, log)
        elif s.id == next(x.id for x in steps if x.kind == "analysis"):
            names = [Path(x.argv[3]).name for x in steps if x.kind == "analysis"]
            log(f"\n## [{state if s.finished else 'after the cells'}] analysis: results tables + every figure "
                f"(notebooks {', '.join(names)})")
            log(_shell(base + ["--stage", "analysis"], env))
    if refused:  # mirage.study.estimate: an impossible layout or an estimate over the time limit
        raise ValueError(refused[0] + (f" ({len(refused) - 1} more such problem(s))" if len(refused) > 1 else ""))
    return steps
