"""The study: presets, a resumable runner that executes the notebooks with papermill, the results tables.

A preset is a grid (models x tasks x conditions x seeds) plus a recipe, evaluation
settings and a backend. ``mirage study --preset P`` turns it into steps and runs them:

    alignment/<model>/<task>          base pass@k of one model on one task (the pairs run in parallel)
    alignment                         notebooks/00_alignment.ipynb: the alignment table and curves
    history/<model>/<task>            a ground-truth run over a small pool, several epochs: the
                                      per-example accuracy history one-shot selection ranks
                                      (testbed only, where the grid has a one-shot condition)
    runs/<model>/<task>/<cond>/seedS  notebooks/<RQ notebook>: train, evaluate, record
    analysis                          notebooks/90_figures.ipynb: every figure, from stored results

Every step runs in its own process (papermill -> a Jupyter kernel, or ``python -m
mirage.study measure|history``) with one torch thread, ``--jobs`` at a time, and leaves a
completion record (``study_step.json``) written atomically when it succeeds; a
finished step is never rerun. The runner may be killed at any moment: the trainer
and the evaluator resume their own work, so rerunning the same command completes the
study with nothing lost. A failing step is recorded with its executed notebook and
error; the others go on; the summary lists what failed and the exit status is 1.

Results, built from stored evaluation outputs only: ``results.parquet``/``.csv`` (one
row per model x task x condition x seed x step x dataset x k, step 0 = the base model,
plus the base model's alignment) and ``dynamics.parquet`` (every run's training metrics).
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mirage.conditions import CONDITIONS, PAPER_CONDITIONS
from mirage.runs import default_threads, write_json_atomic
from mirage.testbed.pretrain import FAMILY

# The notebook that runs a cell, by research question of its condition.
RQ_NOTEBOOKS = {"RQ1": "10_rq1_reward_signal.ipynb", "RQ2": "20_rq2_one_shot.ipynb",
                "RQ3": "30_rq3_sample_polarity.ipynb"}
ALIGNMENT_NOTEBOOK = "00_alignment.ipynb"
FIGURES_NOTEBOOK = "90_figures.ipynb"
STEP_RECORD = "study_step.json"
# A ratio "gain recovered relative to ground truth" needs ground truth to have gained
# something: below this pass@1 gain (about the noise of one testbed evaluation,
# STUDY.md section 9) the ratio is left undefined (NaN) rather than exploding.
MIN_GT_GAIN = 0.03


# --- presets -------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalSettings:
    """How base models and checkpoints are evaluated (pass@k)."""

    n: int = 16  # samples per problem for trained checkpoints (k = 1, 2, 4, ..., n)
    align_n: int = 64  # samples per problem for the base models (alignment reads large k)
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None  # None: the recipe's max_response_length (what training sampled)
    seed: int = 0
    checkpoints: str = "last"  # "last": the final checkpoint; "all": every saved checkpoint
    # the k at which the base model's pass@k is read as its alignment (None: the largest k
    # measured, i.e. align_n). The testbed's dials saturate at large k (a model that samples
    # the correct procedure 7% of the time solves ~every problem at k=64), so its presets read
    # k=16, where the dials still spread out.
    alignment_k: int | None = None

    def __post_init__(self):
        if self.checkpoints not in ("last", "all"):
            raise ValueError(f"eval.checkpoints must be 'last' or 'all', got {self.checkpoints!r}")
        if self.alignment_k is not None and not 1 <= self.alignment_k <= self.align_n:
            raise ValueError(f"eval.alignment_k ({self.alignment_k}) must be in 1..align_n ({self.align_n})")


@dataclass(frozen=True)
class OneShotSettings:
    """The history run that one-shot selection ranks (Wang et al.: std of per-epoch accuracy)."""

    pool: int = 64  # examples of the training set in the pool
    epochs: int = 4  # passes over the pool (pool x epochs / train_batch_size steps)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    backend: str  # "local" (CPU testbed) or "verl" (GPUs)
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    conditions: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    recipe: str = "testbed"  # a key of mirage.conditions.RECIPES
    overrides: Mapping[str, Any] = field(default_factory=dict)  # recipe fields changed for this preset
    eval: EvalSettings = EvalSettings()
    one_shot: OneShotSettings = OneShotSettings()
    jobs: int = 1  # steps run at once (each with one torch thread)

    def __post_init__(self):
        from mirage.conditions import get_condition
        from mirage.recipes import RECIPES
        from mirage.tasks import get_task

        if self.backend not in ("local", "verl"):
            raise ValueError(f"preset {self.name!r}: backend must be 'local' or 'verl', got {self.backend!r}")
        if self.recipe not in RECIPES:
            raise ValueError(f"preset {self.name!r}: unknown recipe {self.recipe!r}; known: {list(RECIPES)}")
        for what in ("models", "tasks", "conditions", "seeds"):
            if not getattr(self, what):
                raise ValueError(f"preset {self.name!r}: {what} is empty")
        for c in self.conditions:
            get_condition(c)
        for t in self.tasks:
            get_task(t)
        RECIPES[self.recipe].replace(**dict(self.overrides))  # unknown recipe keys fail here

    def cells(self) -> list["Cell"]:
        return [Cell(m, t, c, s) for m in self.models for t in self.tasks
                for c in self.conditions for s in self.seeds]

    def recipe_dict(self) -> dict[str, Any]:
        from mirage.recipes import RECIPES

        return RECIPES[self.recipe].replace(**dict(self.overrides)).to_dict()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["overrides"] = dict(self.overrides)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "preset") -> "Preset":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise KeyError(f"{source}: unknown preset keys {sorted(unknown)}; known: {sorted(known)}")
        for key, sub in (("eval", EvalSettings), ("one_shot", OneShotSettings)):
            if isinstance(d.get(key), Mapping):
                bad = set(d[key]) - {f.name for f in dataclasses.fields(sub)}
                if bad:
                    raise KeyError(f"{source}: unknown {key} keys {sorted(bad)}")
                d[key] = sub(**d[key])
        for key in ("models", "tasks", "conditions", "seeds"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


TESTBED_MODELS = tuple(FAMILY)  # every shipped dial model
TESTBED_TASKS = ("toy-math", "toy-logic")

PRESETS: dict[str, Preset] = {}


def _register(p: Preset) -> Preset:
    PRESETS[p.name] = p
    return p


_register(Preset(
    name="testbed-quick",
    description="the README's main command: 3 alignment dials x both toy tasks x one or two conditions "
                "per RQ, 1 seed; ~15 minutes on 2 CPU cores",
    backend="local",
    models=("dial-10", "dial-60", "dial-90"),
    tasks=TESTBED_TASKS,
    conditions=("ground_truth", "random", "majority_vote", "one_shot", "nsr"),
    # the final checkpoint's pass@k replaces in-training validation (saves ~10% of a run)
    overrides={"val_freq": 0},
    eval=EvalSettings(n=16, align_n=32, alignment_k=16),
    jobs=2,
))
_register(Preset(
    name="testbed-full",
    description="every condition x every shipped testbed model x both toy tasks x 3 seeds",
    backend="local",
    models=TESTBED_MODELS,
    tasks=TESTBED_TASKS,
    conditions=tuple(CONDITIONS),
    seeds=(0, 1, 2),
    eval=EvalSettings(n=32, align_n=64, alignment_k=16, checkpoints="all"),
    jobs=2,
))
_register(Preset(
    name="testbed-ci",
    description="the smallest end-to-end study (tests): one model, one task, one condition per RQ, few steps",
    backend="local",
    models=("dial-90",),
    tasks=("toy-math",),
    conditions=("ground_truth", "one_shot", "nsr"),
    overrides={"total_steps": 4, "train_batch_size": 4, "rollout_n": 4, "ppo_mini_batch_size": 4,
               "save_freq": 2, "val_freq": 0},
    eval=EvalSettings(n=4, align_n=4, checkpoints="all"),
    one_shot=OneShotSettings(pool=8, epochs=2),
    jobs=1,
))
_register(Preset(
    name="paper",
    description="the paper's grid on verl + vLLM: Qwen2.5-7B and Llama-3.1-8B-Instruct x math, logic x "
                "the paper's conditions (a cluster: one job per cell; --dry-run prints them)",
    backend="verl",
    models=("Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B-Instruct"),
    tasks=("math", "logic"),
    conditions=PAPER_CONDITIONS,
    recipe="paper",
    eval=EvalSettings(n=256, align_n=256, temperature=1.0, top_p=1.0, checkpoints="all"),
    jobs=1,
))


def load_preset(name_or_path: str) -> Preset:
    """A preset by name, or from a YAML/JSON file with Preset's fields."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") and path.exists():
        from omegaconf import OmegaConf

        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        return Preset.from_dict(data, source=str(path))
    raise KeyError(f"unknown preset {name_or_path!r}: not one of {list(PRESETS)} and not a .yaml/.json file")


# --- the plan: cells and steps ------------------------------------------------------------
def safe_name(model: str) -> str:
    """A model name usable as one path component (HF ids contain '/')."""
    return model.replace("/", "__")


@dataclass(frozen=True)
class Cell:
    model: str
    task: str
    condition: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.model}/{self.task}/{self.condition}/seed{self.seed}"

    def run_dir(self, out: Path) -> Path:
        return Path(out) / "runs" / safe_name(self.model) / self.task / self.condition / f"seed{self.seed}"

    @property
    def rq(self) -> str:
        from mirage.conditions import get_condition

        return get_condition(self.condition).rq


@dataclass
class Step:
    """One unit of work: run ``argv`` (a notebook through papermill, or a python module) in ``dir``."""

    id: str
    kind: str  # "measure" | "alignment" | "history" | "cell" | "analysis"
    dir: Path
    argv: list[str]
    params: dict[str, Any]
    deps: list[str] = field(default_factory=list)
    cell: Cell | None = None

    @property
    def record_path(self) -> Path:
        return self.dir / STEP_RECORD

    def record(self) -> dict:
        p = self.record_path
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}

    @property
    def finished(self) -> bool:
        """Finished with these very parameters (the alignment step reruns, from its cache, on a wider grid)."""
        rec = self.record()
        return rec.get("status") == "finished" and _portable(rec.get("params")) == _portable(self.params)


def _portable(params: Any) -> Any:
    """Parameters with the study directory's own path factored out, so a study directory copied
    elsewhere (a cluster's results on a laptop) is still finished where it was finished."""
    params = json.loads(json.dumps(params))
    root = params.get("study_dir") if isinstance(params, dict) else None
    if not root:
        return params

    def strip(v: Any) -> Any:
        if isinstance(v, str) and (v == root or v.startswith(root + os.sep)):
            return "<study_dir>" + v[len(root):]
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return strip(params)


def notebooks_dir() -> Path:
    """The checkout's ``notebooks/`` folder (the notebooks are not part of the installed package)."""
    d = Path(os.environ.get("MIRAGE_NOTEBOOKS", Path(__file__).resolve().parents[2] / "notebooks"))
    if not (d / ALIGNMENT_NOTEBOOK).exists():
        raise FileNotFoundError(f"notebooks not found in {d}: run from a mirage checkout or set MIRAGE_NOTEBOOKS")
    return d


def _papermill(notebook: Path, out_nb: Path, params_file: Path) -> list[str]:
    # -k python3: jupyter_client maps the "python3" kernel onto this very interpreter,
    # so the kernel sees the same environment (and mirage) as the runner.
    return [sys.executable, "-m", "papermill", str(notebook), str(out_nb), "-f", str(params_file),
            "-k", "python3", "--cwd", str(out_nb.parent), "--no-progress-bar", "--log-output"]


def parse_only(spec: Sequence[str] | str | None) -> dict[str, set[str]]:
    """``model=a,task=b,condition=c|d,seed=0`` (repeatable) -> {key: allowed values}."""
    if not spec:
        return {}
    parts = [spec] if isinstance(spec, str) else list(spec)
    only: dict[str, set[str]] = {}
    for part in parts:
        for item in part.split(","):
            if not item.strip():
                continue
            if "=" not in item:
                raise ValueError(f"--only: expected KEY=VALUE, got {item!r}")
            key, value = (s.strip() for s in item.split("=", 1))
            if key not in ("model", "task", "condition", "seed"):
                raise ValueError(f"--only: unknown key {key!r} (model, task, condition, seed)")
            only.setdefault(key, set()).update(v.strip() for v in value.split("|"))
    return only


def _selected(cell: Cell, only: Mapping[str, set[str]]) -> bool:
    return all(str(getattr(cell, key)) in values for key, values in only.items())


def plan(preset: Preset, out: str | os.PathLike, only: Mapping[str, set[str]] | None = None,
         figures_dir: str | os.PathLike | None = None) -> list[Step]:
    """The steps of a study, in launch order, with their dependencies."""
    from mirage.conditions import get_condition

    out = Path(out).resolve()
    nb = notebooks_dir()
    only = only or {}
    cells = [c for c in preset.cells() if _selected(c, only)]
    if not cells:
        raise ValueError(f"--only {dict(only)} selects no cell of preset {preset.name!r}")
    if only and not any(_selected(c, {"model": only.get("model", {c.model})}) for c in cells):
        raise ValueError(f"--only selects no model of preset {preset.name!r}")
    models = list(dict.fromkeys(c.model for c in cells))
    tasks = list(dict.fromkeys(c.task for c in cells))
    ev = dataclasses.asdict(preset.eval)
    ev["max_tokens"] = ev["max_tokens"] or preset.recipe_dict()["max_response_length"]
    # each step's parameters hold only what it uses, so changing e.g. align_n reruns no training cell
    sampling = {k: ev[k] for k in ("temperature", "top_p", "max_tokens", "seed")}
    ev_align = {**sampling, "align_n": ev["align_n"], "alignment_k": ev["alignment_k"]}
    ev_cell = {**sampling, "n": ev["n"], "checkpoints": ev["checkpoints"]}
    common = {"backend": preset.backend, "preset": preset.name, "study_dir": str(out)}
    steps: list[Step] = []

    # alignment: one measurement step per model x task (they run in parallel), then the notebook
    # that assembles the table from their caches and draws it
    align_dir = out / "alignment"
    measure_ids: dict[tuple[str, str], str] = {}  # (model, task) -> its measure step
    for model in models:
        for task in tasks:
            mdir = pair_dir(align_dir, model, task)
            mid = f"alignment/{model}/{task}"
            params = {**common, "model": model, "task": task, "out_dir": str(align_dir), "eval": ev_align}
            steps.append(Step(mid, "measure", mdir,
                              [sys.executable, "-m", "mirage.study", "measure", str(mdir / "params.json")], params))
            measure_ids[model, task] = mid
    params = {**common, "models": models, "tasks": tasks, "out_dir": str(align_dir), "eval": ev_align}
    steps.append(Step("alignment", "alignment", align_dir,
                      _papermill(nb / ALIGNMENT_NOTEBOOK, align_dir / "notebook.ipynb", align_dir / "params.json"),
                      params, deps=list(measure_ids.values())))

    history_ids: dict[tuple[str, str], str] = {}
    for cell in cells:
        # the testbed ranks its own history run; verl's one-shot sets are made by `mirage data one-shot`
        # from a published history (STUDY.md section 7), so the paper preset has no history step
        if (preset.backend == "local" and get_condition(cell.condition).data == "one_shot_selected"
                and (cell.model, cell.task) not in history_ids):
            hdir = out / "history" / safe_name(cell.model) / cell.task
            hid = f"history/{cell.model}/{cell.task}"
            params = {**common, "model": cell.model, "task": cell.task, "run_dir": str(hdir),
                      "recipe": preset.recipe, "recipe_overrides": dict(preset.overrides),
                      "pool": preset.one_shot.pool, "epochs": preset.one_shot.epochs, "seed": 0}
            steps.append(Step(hid, "history", hdir,
                              [sys.executable, "-m", "mirage.study", "history", str(hdir / "params.json")], params))
            history_ids[(cell.model, cell.task)] = hid

    for cell in cells:
        rdir = cell.run_dir(out)
        hid = history_ids.get((cell.model, cell.task)) if get_condition(cell.condition).data == "one_shot_selected" else None
        # the base model's curve comes from its own pair's measurement, so a cell waits for that pair only
        pair = pair_dir(align_dir, cell.model, cell.task)
        params = {**common, "model": cell.model, "task": cell.task, "condition": cell.condition, "seed": cell.seed,
                  "run_dir": str(rdir), "recipe": preset.recipe, "recipe_overrides": dict(preset.overrides),
                  "eval": ev_cell, "alignment_table": str(pair / "alignment.parquet"),
                  "history_run": str(out / "history" / safe_name(cell.model) / cell.task) if hid else "",
                  "figures_dir": str(rdir / "figures")}
        notebook = nb / RQ_NOTEBOOKS[cell.rq]
        deps = [measure_ids[cell.model, cell.task]] + ([hid] if hid else [])
        steps.append(Step(cell.id, "cell", rdir, _papermill(notebook, rdir / "notebook.ipynb", rdir / "params.json"),
                          params, deps=deps, cell=cell))

    adir = out / "analysis"
    fdir = Path(figures_dir).resolve() if figures_dir else out / "figures"  # run_study passes its default
    params = {"study_dir": str(out), "figures_dir": str(fdir)}
    steps.append(Step("analysis", "analysis", adir,
                      _papermill(nb / FIGURES_NOTEBOOK, adir / "notebook.ipynb", adir / "params.json"), params))
    return steps


# --- running --------------------------------------------------------------------------------
def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _tail(path: Path, n: int = 40) -> str:
    if not path.exists():
        return ""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:])


class _Lock:
    """One runner per study directory (released by the OS when the process dies, even by kill -9)."""

    def __init__(self, out: Path, suffix: str = ""):
        out.mkdir(parents=True, exist_ok=True)
        self.f = open(out / f".runner{'-' + suffix if suffix else ''}.lock", "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.f.close()
            raise RuntimeError(f"another `mirage study` with the same selection is running on {out}") from None

    def release(self):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _check_study_file(out: Path, preset: Preset) -> None:
    """A study directory belongs to one preset: refuse to mix two grids' results in one table."""
    path = out / "study.json"
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))["preset"]
        if stored != json.loads(json.dumps(preset.to_dict())):
            raise RuntimeError(f"{out} holds a study of a different preset ({stored.get('name')!r} with other "
                               "settings); use another --out, or delete the directory to start over")
        return
    write_json_atomic(path, {"preset": preset.to_dict(), "created": time.strftime("%Y-%m-%d %H:%M:%S")})


def _start(step: Step, threads: int) -> tuple[subprocess.Popen, Any]:
    step.dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(step.dir / "params.json", step.params)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "MIRAGE_TORCH_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    log = open(step.dir / "step.log", "a", encoding="utf-8")
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(step.argv)}\n")
    log.flush()
    # Same process group as the runner (killing the group kills the step too), and on Linux the
    # step is killed when the runner dies however it dies (kill -9 of the runner alone included).
    proc = subprocess.Popen(step.argv, cwd=step.dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    return proc, log


def _die_with_parent() -> None:
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_steps(steps: list[Step], jobs: int = 1, log: Callable[[str], None] = print) -> dict[str, str]:
    """Run steps (dependencies first, ``jobs`` at a time); skip finished ones. -> {step id: status}.

    Each step gets ONE torch thread: the testbed's models are too small for intra-op
    parallelism to pay, and on a loaded 2-core machine 2 threads per process measured
    13x slower than 1 (threads spin-waiting on each other). Parallelism comes from ``jobs``.
    """
    threads = 1
    by_id = {s.id: s for s in steps}
    status = {s.id: ("finished" if s.finished else "pending") for s in steps}
    todo = [s for s in steps if status[s.id] == "pending"]
    n_cells = sum(s.kind == "cell" for s in steps)
    done_cells = sum(s.kind == "cell" and status[s.id] == "finished" for s in steps)
    if done_cells:
        log(f"[study] resuming: {done_cells}/{n_cells} cells already finished")
    running: dict[str, tuple[subprocess.Popen, Any, float]] = {}
    durations: list[float] = []
    t0 = time.time()

    def progress_line() -> str:
        if not n_cells:
            return f"elapsed {_fmt_s(time.time() - t0)}"
        finished = sum(s.kind == "cell" and status[s.id] == "finished" for s in steps)
        remaining = sum(s.kind == "cell" and status[s.id] in ("pending", "running") for s in steps)
        eta = (f"~{_fmt_s(sum(durations) / len(durations) * remaining / max(1, jobs))} left"
               if durations else "time left: known after the first cell")
        return f"{finished}/{n_cells} cells done, elapsed {_fmt_s(time.time() - t0)}, {eta}"

    while todo or running:
        for s in list(todo):
            if len(running) >= max(1, jobs):
                break
            dep_states = [status[d] for d in s.deps]
            if any(d in ("failed", "blocked") for d in dep_states):
                status[s.id] = "blocked"
                todo.remove(s)
                write_json_atomic(s.record_path, {"status": "blocked", "step": s.id,
                                                  "error": f"dependency failed: {s.deps}"})
                log(f"[study] blocked {s.id}: dependency {s.deps} failed")
                continue
            if any(d != "finished" for d in dep_states):
                continue
            proc, fh = _start(s, threads)
            running[s.id] = (proc, fh, time.time())
            status[s.id] = "running"
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
            rec = {"step": sid, "kind": s.kind, "seconds": round(seconds, 2), "returncode": rc,
                   "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"), "params": s.params,
                   "notebook": str(s.dir / "notebook.ipynb") if "papermill" in s.argv else None,
                   "log": str(s.dir / "step.log")}
            if rc == 0:
                status[sid] = "finished"
                rec["status"] = "finished"
                if s.kind == "cell":
                    durations.append(seconds)
                log(f"[study] done  {sid} in {_fmt_s(seconds)}  ({progress_line()})")
            else:
                status[sid] = "failed"
                rec.update(status="failed", error=_tail(s.dir / "step.log"))
                log(f"[study] FAILED {sid} (exit {rc}) after {_fmt_s(seconds)}; see {s.dir / 'step.log'}"
                    f"{' and ' + rec['notebook'] if rec['notebook'] else ''}")
            write_json_atomic(s.record_path, rec)
    return status


# --- what the notebooks call ---------------------------------------------------------------
def sampler_backend(backend: str) -> str:
    """The evaluation sampler of a training backend: the testbed samples with HF, verl runs with vLLM."""
    return {"local": "hf", "verl": "vllm"}[backend]


def pair_dir(out_dir: str | os.PathLike, model: str, task: str) -> Path:
    """Where one model x task alignment measurement lives (its own alignment.parquet and cache)."""
    return Path(out_dir) / "pairs" / safe_name(model) / task


def measure_pair(model: str, task: str, out_dir: str | os.PathLike, eval: Mapping[str, Any],
                 backend: str = "local"):
    """Base pass@k of one model on one task (``mirage.evaluate.align``, cached in ``pair_dir``)."""
    from mirage.evaluate import align

    return align([model], [task], n=eval["align_n"], out=pair_dir(out_dir, model, task),
                 backend=sampler_backend(backend), temperature=eval["temperature"], top_p=eval["top_p"],
                 max_tokens=eval["max_tokens"], seed=eval["seed"])


def measure_alignment(models: Sequence[str], tasks: Sequence[str], out_dir: str | os.PathLike,
                      eval: Mapping[str, Any], backend: str = "local"):
    """The alignment table of every model x task -> ``<out_dir>/alignment.parquet`` (+ .csv).

    Each pair is measured (or read back from its cache) by ``measure_pair``; the study
    runs the pairs as parallel steps first, so here they are only read.
    """
    import pandas as pd

    from mirage.runs import write_parquet_atomic

    table = pd.concat([measure_pair(m, t, out_dir, eval, backend) for m in models for t in tasks],
                      ignore_index=True)
    write_parquet_atomic(Path(out_dir) / "alignment.parquet", table)
    with _atomic(Path(out_dir) / "alignment.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table


def evaluate_cell(run_dir: str | os.PathLike, eval: Mapping[str, Any], backend: str = "local",
                  include_base: bool = False):
    """pass@k of a run's checkpoints (the last or all, per ``eval['checkpoints']``); step 0 = base if asked."""
    from mirage.evaluate import evaluate_run
    from mirage.runs import list_checkpoints

    ckpts = [s for s, _ in list_checkpoints(run_dir)]
    if not ckpts:
        raise FileNotFoundError(f"{run_dir}: no checkpoint to evaluate (did training finish?)")
    steps = ckpts if eval["checkpoints"] == "all" else ckpts[-1:]
    return evaluate_run(run_dir, eval["n"], backend=sampler_backend(backend), include_base=include_base,
                        steps=([0] if include_base else []) + steps, temperature=eval["temperature"],
                        top_p=eval["top_p"], max_tokens=eval["max_tokens"], seed=eval["seed"])


def base_curves(alignment_table: str | os.PathLike, model: str, task: str):
    """The base model's pass@k rows (condition 'base', step 0) from a stored alignment table."""
    import pandas as pd

    table = pd.read_parquet(alignment_table)
    rows = table[(table["model"] == model) & (table["task"] == task)]
    if rows.empty:
        raise KeyError(f"{alignment_table}: no alignment rows for model {model!r} x task {task!r}")
    return rows.assign(condition="base", seed=None, step=0)


def train_cell(model: str, task: str, condition: str, seed: int, run_dir: str | os.PathLike, *,
               backend: str = "local", recipe: str = "testbed", recipe_overrides: Mapping[str, Any] | None = None,
               history_run: str | os.PathLike = "", progress: bool = True) -> Path:
    """Train one cell, or return its finished run (an interrupted run resumes from its last checkpoint).

    ``one_shot`` needs a history run: without ``history_run`` one is trained next to the
    run (``<run_dir>/../../one_shot_history``) with the default pool.
    """
    from mirage.conditions import get_condition
    from mirage.recipes import RECIPES
    from mirage.runs import read_manifest

    run_dir = Path(run_dir)
    if backend == "verl":
        if read_manifest(run_dir).get("status") != "finished":
            from mirage.cli import main as mirage_main

            # through the `mirage train` command line: verl's launcher composes, validates and streams
            rc = mirage_main(["train", "--backend", "verl", "--model", model, "--task", task,
                              "--condition", condition, "--seed", str(seed), "--run-dir", str(run_dir)]
                             + [f"--set={k}={v}" for k, v in dict(recipe_overrides or {}).items()])
            if rc:
                raise RuntimeError(f"{run_dir}: verl training exited with status {rc}")
    elif backend == "local":
        from mirage.train.local import train

        if get_condition(condition).data == "one_shot_selected" and not history_run:
            history_run = ensure_history(model, task, run_dir.parent.parent / "one_shot_history", recipe=recipe,
                                         recipe_overrides=recipe_overrides, progress=progress)
        train(model, task, condition, seed, run_dir, recipe=RECIPES[recipe], overrides=dict(recipe_overrides or {}),
              history_run=history_run or None, threads=default_threads(), progress=progress)
    else:
        raise ValueError(f"backend must be 'local' or 'verl', got {backend!r}")
    status = read_manifest(run_dir).get("status")
    if status != "finished":
        raise RuntimeError(f"{run_dir}: training ended with status {status!r}, not 'finished'")
    return run_dir


def ensure_history(model: str, task: str, run_dir: str | os.PathLike, *, recipe: str = "testbed",
                   recipe_overrides: Mapping[str, Any] | None = None, pool: int = 64, epochs: int = 6,
                   seed: int = 0, progress: bool = True) -> Path:
    """The run one-shot selection ranks: ground truth on the first ``pool`` training examples, ``epochs`` passes.

    Dynamic sampling is off here so every example is visited exactly once per epoch;
    the trainer logs each visit's accuracy (``logs/example_acc.jsonl``). The pool is
    written as the run's own data root, so the trainer reads it like any dataset.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mirage.recipes import RECIPES
    from mirage.runs import atomic_path
    from mirage.tasks import dataset_path, get_task
    from mirage.train.local import load_rows, train

    run_dir = Path(run_dir)
    task_obj = get_task(task)
    r = RECIPES[recipe].replace(**dict(recipe_overrides or {}))
    if pool < r.train_batch_size or pool % r.train_batch_size:
        raise ValueError(f"one-shot pool ({pool}) must be a multiple of train_batch_size ({r.train_batch_size}): "
                         "the loader drops incomplete batches")
    root = run_dir / "pool"
    for name in (task_obj.train, *task_obj.evals):
        path = dataset_path(name, root)
        if not path.exists():
            rows = load_rows(name)
            if name == task_obj.train:
                if len(rows) < pool:
                    raise ValueError(f"{name}: {len(rows)} rows, fewer than the one-shot pool of {pool}")
                rows = rows[:pool]
            with atomic_path(path) as tmp:
                pq.write_table(pa.Table.from_pylist(rows), tmp)
    steps = epochs * pool // r.train_batch_size
    overrides = {**dict(recipe_overrides or {}), "total_steps": steps, "save_freq": steps, "val_freq": 0,
                 "dynamic_sampling": False}
    train(model, task, "ground_truth", seed, run_dir, recipe=RECIPES[recipe], overrides=overrides,
          data_root=root, threads=default_threads(), progress=progress, validate_before=False)
    return run_dir


def run_history(params_file: str | os.PathLike) -> None:
    """The runner's history step (``python -m mirage.study history PARAMS.json``)."""
    p = json.loads(Path(params_file).read_text(encoding="utf-8"))
    if p["backend"] != "local":
        raise NotImplementedError("history runs are for the CPU testbed; on verl the paper's published history "
                                  "(mirage data one-shot --history ...) selects the example")
    ensure_history(p["model"], p["task"], p["run_dir"], recipe=p["recipe"], recipe_overrides=p["recipe_overrides"],
                   pool=p["pool"], epochs=p["epochs"], seed=p["seed"])


def run_measure(params_file: str | os.PathLike) -> None:
    """The runner's alignment measurement of one model x task (``python -m mirage.study measure PARAMS.json``)."""
    p = json.loads(Path(params_file).read_text(encoding="utf-8"))
    measure_pair(p["model"], p["task"], p["out_dir"], p["eval"], p["backend"])


def accuracy_history(run_dir: str | os.PathLike) -> dict[str, list[float]]:
    """{example index: [training accuracy per epoch]} of a history run."""
    from mirage.train.local import accuracy_history as history

    return history(run_dir)


def one_shot_choice(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Which example a one-shot run trained on (as the trainer recorded it), with its dataset row."""
    from mirage.runs import read_manifest
    from mirage.tasks import get_task
    from mirage.train.local import load_rows

    manifest = read_manifest(run_dir)
    if manifest.get("backend") == "verl":  # trained on a prepared one-shot parquet: its rows are the example
        import pyarrow.parquet as pq

        train = manifest["data"]["train"]
        row = pq.read_table(train).slice(0, 1).to_pylist()[0]
        return {"index": str((row.get("extra_info") or {}).get("index")), "criterion": f"the one-shot set {train}",
                "history_run": "", "row": row}
    choice = manifest.get("one_shot")
    if not choice:
        raise KeyError(f"{run_dir}/manifest.json: no 'one_shot' record (not a one-shot run?)")
    rows = load_rows(get_task(manifest["task"]).train)
    row = next((r for i, r in enumerate(rows) if str((r.get("extra_info") or {}).get("index", i)) == choice["index"]),
               None)
    if row is None:
        raise KeyError(f"{run_dir}: one-shot example {choice['index']!r} not in the training set")
    return {**choice, "row": row}


# Metrics shown for RQ3: which samples carried a gradient, and the entropy.
POLARITY_METRICS = [
    ("train/kept_groups", "prompt groups with\nmixed rewards (kept)"),
    ("train/kept_responses", "share of responses\nkept in the batch"),
    ("train/acc/mean", "true accuracy of\ntraining samples"),
    ("actor/entropy", "policy entropy\n(nats / token)"),
]


def run_dynamics(run_dir: str | os.PathLike, **identity: Any):
    """A run's training metrics (``mirage.runs.load_metrics``), identity columns set from the caller."""
    from mirage.runs import load_metrics

    dyn = load_metrics(run_dir)
    if dyn.empty:
        raise ValueError(f"{run_dir}: no training metrics under logs/metrics-*.jsonl")
    return dyn.assign(**identity)


def cell_table(curves):
    """pass@k per dataset x k: the base model (step 0) and each evaluated checkpoint side by side."""
    t = curves.assign(column=["base" if s == 0 else f"step {int(s)}" for s in curves["step"]])
    t = t.pivot_table(index=["dataset", "k"], columns="column", values="pass_at_k", aggfunc="mean")
    steps = sorted((c for c in t.columns if c != "base"), key=lambda c: int(c.split()[1]))
    return t[(["base"] if "base" in t.columns else []) + steps]


# --- results ---------------------------------------------------------------------------------
RESULT_COLUMNS = ["preset", "backend", "model", "task", "condition", "rq", "seed", "step", "dataset", "k",
                  "pass_at_k", "ci_low", "ci_high", "n_problems", "n", "temperature", "top_p", "eval_seed",
                  "align_k", "align_pass_at_1", "align_pass_at_k"]


def collect(out: str | os.PathLike, steps: Sequence[Step], preset: Preset):
    """Build ``results`` and ``dynamics`` from the stored outputs of finished steps; write them atomically."""
    import pandas as pd

    from mirage.conditions import get_condition
    from mirage.evaluate import load_eval
    from mirage.runs import load_metrics, write_parquet_atomic

    out = Path(out)
    align_path = out / "alignment" / "alignment.parquet"
    if not align_path.exists():
        raise FileNotFoundError(f"{align_path}: the alignment step has not written its table")
    alignment = pd.read_parquet(align_path)
    base = alignment.assign(condition="base", rq="base", seed=pd.NA, step=0)
    frames, dyn = [base], []
    for s in steps:
        if s.kind != "cell" or not s.finished:
            continue
        c = s.cell
        ev = load_eval(s.dir / "eval")
        # identity from the plan, not from what a backend wrote (a model path vs its name)
        frames.append(ev[ev["step"] > 0].assign(model=c.model, task=c.task, condition=c.condition,
                                                 rq=get_condition(c.condition).rq, seed=c.seed))
        dyn.append(load_metrics(s.dir).assign(model=c.model, task=c.task, condition=c.condition, seed=c.seed))
    results = pd.concat(frames, ignore_index=True)
    results = results.join(alignment_columns(alignment, preset.eval.alignment_k), on=["model", "task", "dataset"])
    results = results.assign(preset=preset.name, backend=preset.backend)
    results["seed"] = results["seed"].astype("Int64")
    results = results[RESULT_COLUMNS].sort_values(["model", "task", "condition", "seed", "step", "dataset", "k"])
    results = results.reset_index(drop=True)
    dynamics = pd.concat(dyn, ignore_index=True) if dyn else pd.DataFrame(
        columns=["step", "metric", "value", "attempt", "backend", "model", "task", "condition", "seed", "run_dir"])
    write_parquet_atomic(out / "results.parquet", results)
    with _atomic(out / "results.csv") as tmp:
        results.to_csv(tmp, index=False)
    write_parquet_atomic(out / "dynamics.parquet", dynamics)
    return results, dynamics


def alignment_columns(alignment, k: int | None = None):
    """Per (model, task, dataset): align_k, align_pass_at_1, align_pass_at_k = base pass@k at ``k``
    (None: the largest k measured)."""
    import pandas as pd

    keys = ["model", "task", "dataset"]
    rows = []
    for key, g in alignment.groupby(keys):
        at = g[g["k"] == (k or g["k"].max())]
        if at.empty:
            raise KeyError(f"alignment table: no pass@{k} for {dict(zip(keys, key))} (k measured: {sorted(g['k'])})")
        rows.append((*key, int(at["k"].iloc[0]), float(g.loc[g["k"] == 1, "pass_at_k"].iloc[0]),
                     float(at["pass_at_k"].iloc[0])))
    return pd.DataFrame(rows, columns=keys + ["align_k", "align_pass_at_1", "align_pass_at_k"]).set_index(keys)


def _atomic(path: Path):
    from mirage.runs import atomic_path

    return atomic_path(path)


def load_results(study_dir: str | os.PathLike):
    """(results, dynamics, alignment) of a study directory, as stored."""
    import pandas as pd

    d = Path(study_dir)
    missing = [p for p in ("results.parquet", "dynamics.parquet", "alignment/alignment.parquet") if not (d / p).exists()]
    if missing:
        raise FileNotFoundError(f"{d}: missing {missing}; run `mirage study` on it first")
    return (pd.read_parquet(d / "results.parquet"), pd.read_parquet(d / "dynamics.parquet"),
            pd.read_parquet(d / "alignment" / "alignment.parquet"))


def gain_table(results, min_gt_gain: float = MIN_GT_GAIN):
    """One row per model x task x dataset x condition x seed: pass@1 gains over the base model.

    gain = pass@1(final checkpoint) - pass@1(base); gt_gain the same for ground truth
    (same seed; the mean over ground-truth seeds where that seed is missing);
    recovered = gain / gt_gain, NaN where gt_gain < ``min_gt_gain`` (the ratio of two
    noise-level numbers says nothing); alignment = the base model's pass@k at the
    preset's alignment k (``align_k``; the largest k measured when the preset names none).
    """
    import numpy as np
    import pandas as pd

    from mirage.plots import final_step_rows

    r1 = results[results["k"] == 1]
    keys = ["model", "task", "dataset"]
    base = r1[r1["condition"] == "base"].drop_duplicates(keys).set_index(keys)["pass_at_k"].rename("base_pass_at_1")
    final = final_step_rows(r1[r1["condition"] != "base"])
    g = final[keys + ["condition", "rq", "seed", "step", "pass_at_k", "align_k", "align_pass_at_k"]]
    g = g.rename(columns={"pass_at_k": "pass_at_1", "align_pass_at_k": "alignment"}).join(base, on=keys)
    gt = g[g["condition"] == "ground_truth"]
    gt_seed = gt.set_index(keys + ["seed"])["pass_at_1"].rename("gt_pass_at_1")
    gt_mean = gt.groupby(keys)["pass_at_1"].mean().rename("gt_mean")
    g = g.join(gt_seed, on=keys + ["seed"]).join(gt_mean, on=keys)
    g["gt_pass_at_1"] = g["gt_pass_at_1"].fillna(g["gt_mean"])
    g = g.drop(columns="gt_mean")
    g["gain"] = g["pass_at_1"] - g["base_pass_at_1"]
    g["gt_gain"] = g["gt_pass_at_1"] - g["base_pass_at_1"]
    g["recovered"] = np.where(g["gt_gain"] >= min_gt_gain, g["gain"] / g["gt_gain"], np.nan)
    g["alignment_label"] = [f"pass@{int(k)} of the base model" if pd.notna(k) else "alignment" for k in g["align_k"]]
    return g.sort_values(["condition", "alignment", "model", "task", "seed"]).reset_index(drop=True)


def summary_table(results):
    """pass@1 of the final checkpoint (mean over seeds) per model x task x dataset, one column per condition."""
    from mirage.plots import condition_order, final_step_rows

    r1 = results[results["k"] == 1]
    keys = ["model", "task", "dataset"]
    base = r1[r1["condition"] == "base"].drop_duplicates(keys).set_index(keys)
    final = final_step_rows(r1[r1["condition"] != "base"])
    table = final.pivot_table(index=keys, columns="condition", values="pass_at_k", aggfunc="mean")
    table = table[[c for c in condition_order(table.columns)]]
    table.insert(0, "base", base["pass_at_k"])
    table.insert(0, "alignment", base["align_pass_at_k"])
    table.columns.name = None
    return table


def claim_check(gains):
    """Per condition: does the pass@1 gain grow with alignment? (Spearman rho over points; weak vs strong halves.)"""
    import pandas as pd

    rows = []
    median = gains["alignment"].median()
    for cond, g in gains.groupby("condition"):
        weak, strong = g[g["alignment"] < median], g[g["alignment"] >= median]
        rows.append({"condition": cond, "points": len(g),
                     # Spearman = Pearson on ranks (pandas' method="spearman" needs scipy)
                     "spearman_rho(alignment, gain)": g["alignment"].rank().corr(g["gain"].rank())
                     if len(g) > 2 else float("nan"),
                     "mean gain, weak half": weak["gain"].mean(), "mean gain, strong half": strong["gain"].mean(),
                     "mean recovered, weak half": weak["recovered"].mean(),
                     "mean recovered, strong half": strong["recovered"].mean()})
    from mirage.plots import condition_order

    out = pd.DataFrame(rows).set_index("condition")
    return out.loc[condition_order(out.index)]


# --- the runner --------------------------------------------------------------------------------
def default_dirs(preset: Preset, out: str | os.PathLike | None = None,
                 figures_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(study dir, figures dir): study/<preset> and figures/<preset> under the current directory
    by default (so a checkout's README can show the figures); with --out, figures go inside it."""
    if out is None:
        out, default_figures = Path("study") / preset.name, Path("figures") / preset.name
    else:
        default_figures = Path(out) / "figures"
    return Path(out).resolve(), Path(figures_dir or default_figures).resolve()


STAGES = ("all", "alignment", "cells", "analysis")


def _stage_steps(steps: list[Step], stage: str) -> list[Step]:
    if stage == "all":
        return [s for s in steps if s.kind != "analysis"]
    if stage == "alignment":
        return [s for s in steps if s.kind in ("measure", "alignment")]
    if stage == "cells":
        return [s for s in steps if s.kind in ("history", "cell")]
    return []


def _digest(steps: Sequence[Step]) -> str:
    """Identity of the stored results: which steps finished, and when."""
    h = hashlib.sha256()
    for s in steps:
        if s.kind != "analysis" and s.finished:
            h.update(f"{s.id}\0{s.record().get('finished_at')}\n".encode())
    return h.hexdigest()[:16]


def run_study(preset: Preset, out: str | os.PathLike | None = None, jobs: int | None = None,
              only: Mapping[str, set[str]] | None = None, stage: str = "all", force_analysis: bool = False,
              figures_dir: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> int:
    """Run (or resume) a study. Returns 0 when every step finished, 1 otherwise."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    out, figures_dir = default_dirs(preset, out, figures_dir)
    jobs = jobs or preset.jobs
    lock = _Lock(out, suffix="" if not only and stage == "all" else
                 hashlib.sha256(f"{stage}{sorted((k, sorted(v)) for k, v in (only or {}).items())}".encode()
                                ).hexdigest()[:8])
    t0 = time.time()
    try:
        _check_study_file(out, preset)
        steps = plan(preset, out, only, figures_dir)
        n_cells = sum(s.kind == "cell" for s in steps)
        log(f"[study] preset {preset.name}: {n_cells} cells ({len(preset.models)} models x {len(preset.tasks)} tasks "
            f"x {len(preset.conditions)} conditions x {len(preset.seeds)} seeds{', filtered by --only' if only else ''}), "
            f"{jobs} at a time -> {out}")
        work = _stage_steps(steps, stage)
        status = run_steps(work, jobs=jobs, log=log)
        failed = [s for s in work if status[s.id] in ("failed", "blocked")]

        results = None
        if stage in ("all", "analysis"):
            every = plan(preset, out, None, figures_dir)  # results cover the whole grid, not just --only
            analysis = every[-1]
            if not (out / "alignment" / "alignment.parquet").exists() or not any(
                    s.kind == "cell" and s.finished for s in every):
                log("[study] no finished cell (or no alignment table) yet: nothing to analyse")
                if stage == "analysis":
                    failed.append(analysis)
            else:
                results, _ = collect(out, every, preset)
                analysis.params["results_digest"] = _digest(every)
                if force_analysis and analysis.record_path.exists():
                    analysis.record_path.unlink()
                if run_steps([analysis], jobs=1, log=log)[analysis.id] != "finished":
                    failed.append(analysis)
        _print_summary(out, preset, steps, failed, results, time.time() - t0, log)
        return 1 if failed else 0
    finally:
        lock.release()


def _print_summary(out: Path, preset: Preset, steps: list[Step], failed: list[Step], results,
                   seconds: float, log: Callable[[str], None]) -> None:
    cells = [s for s in steps if s.kind == "cell"]
    done = sum(s.finished for s in cells)
    log("")
    log(f"[study] {preset.name}: {done}/{len(cells)} cells finished, {len(failed)} step(s) failed, "
        f"wall time this invocation {_fmt_s(seconds)}; study dir {out}")
    if results is not None:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
            ks = sorted({int(k) for k in results["align_k"].dropna()})
            log("pass@1 on the test set: base model vs the final checkpoint of each condition (mean over seeds);"
                f" alignment = base pass@{'/'.join(map(str, ks)) or 'k'}")
            log(summary_table(results).to_string())
            gains = gain_table(results)
            rec = gains[gains["condition"] != "ground_truth"].pivot_table(
                index=["model", "task", "dataset"], columns="condition", values="recovered", aggfunc="mean")
            log(f"gain recovered relative to ground-truth RL, (cond - base) / (gt - base); "
                f"undefined where the ground-truth gain < {MIN_GT_GAIN}:")
            log(rec.to_string() if rec.size else "    (undefined everywhere: ground-truth RL gained too little)")
        figs = sorted(Path(steps[-1].params["figures_dir"]).glob("*.png"))
        log(f"results: {out / 'results.parquet'} ({len(results)} rows), {out / 'dynamics.parquet'}")
        log(f"figures ({len(figs)}): " + ", ".join(str(f) for f in figs))
    for s in failed:
        rec = s.record()
        log(f"[study] FAILED {s.id}: {rec.get('status', 'failed')}; notebook {rec.get('notebook')}; log {rec.get('log')}")
        err = [line for line in (rec.get("error") or "").splitlines() if line.strip()]
        for line in err[-6:]:
            log(f"    {line}")


# --- dry run: what would run, and the one-job-per-cell commands for a cluster ------------------------
def _shell(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    import shlex

    prefix = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in (env or {}).items())
    return (prefix + " " if prefix else "") + " ".join(shlex.quote(str(a)) for a in argv)


def _only_arg(cell: Cell) -> str:
    return f"model={cell.model},task={cell.task},condition={cell.condition},seed={cell.seed}"


def dry_run(preset: Preset, out: str | os.PathLike | None = None, only: Mapping[str, set[str]] | None = None,
            figures_dir: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> list[Step]:
    """Print every step (with its done/pending state) and, per cell, the commands it runs."""
    out, figures_dir = default_dirs(preset, out, figures_dir)
    steps = plan(preset, out, only, figures_dir)
    base = ["mirage", "study", "--preset", preset.name, "--out", str(out)]
    ev = dataclasses.replace(preset.eval, max_tokens=steps[0].params["eval"]["max_tokens"])  # resolved
    eval_opts = ["--n", str(ev.n), "--temperature", str(ev.temperature), "--top-p", str(ev.top_p),
                 "--max-tokens", str(ev.max_tokens), "--seed", str(ev.seed), "--no-base"]
    log(f"# preset {preset.name}: {preset.description}")
    log(f"# backend {preset.backend}, recipe {preset.recipe}"
        + (f" with {dict(preset.overrides)}" if preset.overrides else "") + f", eval {dataclasses.asdict(ev)}")
    log(f"# {sum(s.kind == 'cell' for s in steps)} cells. The runner runs every step below in order, --jobs at a "
        "time; on a cluster submit one job per '## step' line (its --stage/--only select it)")
    for s in steps:
        state = "done" if s.finished else "pending"
        if s.kind == "measure":
            continue  # listed under the alignment step, which runs them
        if s.kind == "alignment":
            log(f"\n## [{state}] alignment: base pass@k of {s.params['models']} x {s.params['tasks']}")
            log(_shell(base + ["--stage", "alignment"]))
            for m in (x for x in steps if x.kind == "measure"):
                log("#   runs: " + _shell(["mirage", "align", "--backend", sampler_backend(preset.backend),
                                             "--models", m.params["model"], "--tasks", m.params["task"],
                                             "--n", str(ev.align_n), "--temperature", str(ev.temperature),
                                             "--top-p", str(ev.top_p), "--max-tokens", str(ev.max_tokens),
                                             "--seed", str(ev.seed), "--out", str(m.dir)]))
            log(f"#   then notebooks/{ALIGNMENT_NOTEBOOK} assembles {s.dir / 'alignment.parquet'}")
        elif s.kind == "history":
            log(f"\n## [{state}] {s.id}: per-example accuracy history for one-shot selection")
            log(_shell(s.argv))
        elif s.kind == "cell":
            log(f"\n## [{state}] cell {s.id} ({s.cell.rq}, notebook {Path(s.argv[3]).name})")
            log(_shell(base + ["--stage", "cells", "--only", _only_arg(s.cell)]))
            if preset.backend == "verl":
                from mirage.recipes import RECIPES
                from mirage.train.verl import build_command

                recipe = RECIPES[preset.recipe].replace(**dict(preset.overrides))
                env, argv = build_command(s.cell.model, s.cell.task, s.cell.condition, s.cell.seed, s.dir,
                                          recipe=recipe)
                log("#   trains: " + _shell(argv, env))
            else:
                log("#   trains: " + _shell(["mirage", "train", "--backend", "local", "--model", s.cell.model,
                                             "--task", s.cell.task, "--condition", s.cell.condition,
                                             "--seed", str(s.cell.seed), "--run-dir", str(s.dir)]
                                            + [f"--set={k}={v}" for k, v in preset.overrides.items()])
                    + (f"   # example chosen from the history run {s.params['history_run']}"
                       if s.params["history_run"] else ""))
            log("#   evaluates: " + _shell(["mirage", "eval", "--backend", sampler_backend(preset.backend),
                                            "--run-dir", str(s.dir), *eval_opts]))
        else:
            log(f"\n## [{state if s.finished else 'after the cells'}] analysis: results tables + every figure")
            log(_shell(base + ["--stage", "analysis"]))
    return steps


# --- CLI ------------------------------------------------------------------------------------------
def configure_cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="testbed-quick",
                        help=f"a preset name ({', '.join(PRESETS)}) or a YAML/JSON file with Preset's fields "
                             "(default testbed-quick)")
    parser.add_argument("--out", default=None, help="study directory (default study/<preset> in the current directory)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="steps run at once, each with one torch thread (default: the preset's)")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=V[,KEY=V]",
                        help="restrict the cells: model=..,task=..,condition=a|b,seed=.. (repeatable)")
    parser.add_argument("--stage", choices=STAGES, default="all",
                        help="all (default); or one stage, for one job per step on a cluster: alignment, "
                             "cells (with --only: one cell), analysis (results tables + figures)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the steps and the commands each runs (verl + eval commands for the paper preset)")
    parser.add_argument("--force-analysis", action="store_true",
                        help="rebuild the results tables and rerun the analysis notebook even if nothing changed")
    parser.add_argument("--figures", default=None,
                        help="figures folder (default figures/<preset>; with --out: <out>/figures)")
    parser.add_argument("--list", action="store_true", help="list the presets and exit")
    parser.set_defaults(func=_cli_main)


def _cli_main(args: argparse.Namespace) -> int:
    if args.list:
        for p in PRESETS.values():
            print(f"{p.name:<14} {len(p.cells()):>4} cells  {p.backend:<5}  {p.description}")
        return 0
    preset = load_preset(args.preset)
    only = parse_only(args.only)
    if args.dry_run:
        dry_run(preset, args.out, only, args.figures)
        return 0
    return run_study(preset, args.out, jobs=args.jobs, only=only, stage=args.stage,
                     force_analysis=args.force_analysis, figures_dir=args.figures)


if __name__ == "__main__":
    _ENTRY = {"history": run_history, "measure": run_measure}
    if len(sys.argv) != 3 or sys.argv[1] not in _ENTRY:
        sys.exit(f"usage: python -m mirage.study {{{'|'.join(_ENTRY)}}} PARAMS.json")
    _ENTRY[sys.argv[1]](sys.argv[2])
