"""Where a study's wall time goes: alignment, each cell (kernel start, imports, data, training,
evaluation, figures, writing), analysis, with the parts summing to the wall time.

    python benchmarks/bench_study.py [--preset testbed-quick] [--jobs N] [--out DIR] [--keep]
    python benchmarks/bench_study.py --smoke        # testbed-ci (3 cells, ~1.5 min on 2 cores)
    python benchmarks/bench_study.py --install      # also time `make install` in a fresh clone (minutes)

It runs the study from an empty folder (``mirage.study.runner.run_study``, the code ``mirage
study`` runs, same scheduling) and times it three ways, none of which changes what the study
computes or writes:

* the runner's own log calls (each step's start and end, to the microsecond);
* papermill's per-cell timestamps in each executed notebook;
* a ``sitecustomize`` module put first on the steps' PYTHONPATH that records when each step
  process (papermill, its kernel, ``python -m mirage.study``) starts and exits, and wraps a few
  library functions (training, its data/model loading, steps, validation, checkpoints;
  evaluation; figure saving) with timers. The wrappers return what the functions return.

A cell's wall time (the runner's, spawn to exit) is split into: interpreter start; papermill's
imports and starting the kernel process; kernel start (kernel process to its first cell);
parameters; imports (the notebook's first code cell up to ``cell.run``, plus the first imports
of torch, transformers, pandas, matplotlib and seaborn wherever ``cell.run`` triggers them);
training (data + model loading, steps, validation, checkpoints, the rest: config, lock,
manifest, optimizer); evaluation; results (``cell.run`` outside training and evaluation:
metrics, tables); figures (the code cells after the run cell: drawing, saving, inline PNGs);
papermill between cells; after the last cell (the final save, kernel shutdown: the kernel's
interpreter teardown is ~1 s of CPU with torch loaded); interpreter exit and the runner's
polling (<= 0.2 s). Install time is separate (``--install``): ``make install`` in a fresh
``git clone`` of this checkout's HEAD.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_DIR = "MIRAGE_BENCH_TIMING_DIR"

# Written to a temporary folder that goes first on every step's PYTHONPATH. Only active when
# MIRAGE_BENCH_TIMING_DIR is set; it records, never changes, what a wrapped function returns.
SITECUSTOMIZE = r'''
import atexit, functools, importlib.abc, importlib.util, json, os, sys, time

_DIR = os.environ.get("MIRAGE_BENCH_TIMING_DIR")
_TARGETS = {
    "mirage.study.cell": ("run", "train", "evaluate", "measure_pair", "measure_alignment", "ensure_history",
                          "run_dynamics", "base_curves", "one_shot_choice", "accuracy_history"),
    "mirage.train.loop": ("_load_policy", "load_rows", "validate", "train_step", "save_checkpoint",
                          "select_one_shot"),
    "mirage.evaluate.core": ("make_sampler", "read_samples", "passk_table"),
    "mirage.plots": ("save",),
}
# heavy third-party imports, timed as a whole (their first import in the process)
_IMPORTS = ("torch", "transformers", "matplotlib.pyplot", "pandas", "seaborn", "papermill", "nbformat")


def _write(record):
    with open(os.path.join(_DIR, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _wrap(module, name, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        t0, c0 = time.time(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _write({"pid": os.getpid(), "call": f"{module}.{name}", "t0": t0, "t1": time.time(), "c0": c0,
                    "c1": time.process_time()})
    return timed


class _Loader(importlib.abc.Loader):
    def __init__(self, inner, name):
        self.inner, self.name = inner, name

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        t0 = time.time()
        try:
            self.inner.exec_module(module)
        finally:
            if self.name in _IMPORTS:
                _write({"pid": os.getpid(), "call": f"import {self.name}", "t0": t0, "t1": time.time()})
        for attr in _TARGETS.get(self.name, ()):
            fn = getattr(module, attr, None)
            if callable(fn):
                setattr(module, attr, _wrap(self.name, attr, fn))


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _TARGETS and name not in _IMPORTS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader, name)
                return spec
        return None


if _DIR:
    _write({"pid": os.getpid(), "ppid": os.getppid(), "start": time.time(), "argv": sys.argv[:4] or [sys.executable],
            "orig_argv": list(getattr(sys, "orig_argv", []))[:6], "cwd": os.getcwd()})
    atexit.register(lambda: _write({"pid": os.getpid(), "exit": time.time(), "cpu": time.process_time()}))
    sys.meta_path.insert(0, _Finder())
'''


def _utc(stamp: str) -> float:
    """papermill's cell timestamps: ISO 8601 in UTC (naive or with an offset)."""
    t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def read_processes(folder: Path) -> dict[int, dict]:
    procs: dict[int, dict] = {}
    for path in folder.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            p = procs.setdefault(rec["pid"], {"calls": []})
            if "call" in rec:
                p["calls"].append(rec)
            else:
                p.update({k: v for k, v in rec.items() if k != "pid"})
    return procs


def _outermost(calls: list[dict], name: str) -> list[dict]:
    return [c for c in calls if c["call"] == name]


def _total(calls: list[dict], name: str) -> float:
    """Seconds in ``name`` (calls of it nested in another call of it counted once)."""
    spans = sorted((c["t0"], c["t1"]) for c in calls if c["call"] == name)
    total, end = 0.0, float("-inf")
    for t0, t1 in spans:
        if t1 > end:
            total += t1 - max(t0, end)
            end = t1
    return total


def _within(calls: list[dict], prefix: str, outer: tuple[str, ...]) -> float:
    """Seconds of calls named ``prefix...`` (outermost ones) that started inside a call named in ``outer``."""
    spans = [(c["t0"], c["t1"]) for c in calls if c["call"] in outer]
    inner = sorted((c["t0"], c["t1"]) for c in calls if c["call"].startswith(prefix)
                   and any(a <= c["t0"] <= b for a, b in spans))
    total, end = 0.0, float("-inf")
    for t0, t1 in inner:
        if t1 > end:
            total += t1 - max(t0, end)
            end = t1
    return total


def _is_papermill(proc: dict) -> bool:
    """papermill's process: ``python -m papermill`` or the study's ``python -m mirage.study.nbexec``."""
    argv = proc.get("orig_argv") or proc.get("argv") or []
    return any(a in ("papermill", "mirage.study.nbexec") for a in argv)


def _warm_kernel(start: float, end: float, procs: dict[int, dict]) -> dict | None:
    """The warm kernel (``mirage.study.nbworker``) that ran a cell's notebook between start and end."""
    return next((p for p in procs.values() if any(c["call"] == "mirage.study.cell.run" and start <= c["t0"] <= end
                                                  for c in p["calls"])), None)


def cell_breakdown(start: float, end: float, step_dir: Path, procs: dict[int, dict]) -> dict[str, float]:
    """The parts of one notebook step's wall time [start, end] (runner clock); they sum to end - start."""
    papermill = next((pid for pid, p in procs.items() if p.get("cwd") == str(step_dir) and _is_papermill(p)), None)
    kernel = next((p for p in procs.values() if papermill and p.get("ppid") == papermill), None)
    warm = kernel is None and _warm_kernel(start, end, procs)
    if warm:
        kernel = {**warm, "calls": [c for c in warm["calls"] if start <= c["t0"] <= end]}
    papermill = procs.get(papermill, {})
    nb = json.loads((step_dir / "notebook.ipynb").read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if c["cell_type"] == "code" and c["metadata"].get("papermill", {}).get("start_time")]
    if kernel is None or not cells:
        return {"other": end - start}
    spans = [(_utc(c["metadata"]["papermill"]["start_time"]), _utc(c["metadata"]["papermill"]["end_time"]),
              "parameters" in (c["metadata"].get("tags") or []) or "injected-parameters" in
              (c["metadata"].get("tags") or []), "".join(c["source"])) for c in cells]
    calls = kernel["calls"]
    parts: dict[str, float] = defaultdict(float)
    if warm:  # the worker's kernel was there already (or started for this cell: then it is in here)
        parts["warm kernel: reset, papermill to the first cell"] = spans[0][0] - start
    else:
        parts["interpreter start"] = papermill["start"] - start
        parts["papermill import, kernel launch"] = kernel["start"] - papermill["start"]
        parts["kernel start"] = spans[0][0] - kernel["start"]
    run_call = (_outermost(calls, "mirage.study.cell.run") or _outermost(calls, "mirage.study.cell.measure_alignment"))
    run_cell = next((i for i, s in enumerate(spans) if run_call and s[0] <= run_call[0]["t0"] <= s[1]), None)
    for i, (t0, t1, is_param, _) in enumerate(spans):
        if is_param:
            parts["parameters"] += t1 - t0
        elif i == run_cell:
            call = run_call[0]
            parts["imports"] += call["t0"] - t0
            train = _total(calls, "mirage.study.cell.train")
            loading = _total(calls, "mirage.train.loop._load_policy") + _total(calls, "mirage.train.loop.load_rows")
            steps = _total(calls, "mirage.train.loop.train_step")
            validation = _total(calls, "mirage.train.loop.validate")
            checkpoints = _total(calls, "mirage.train.loop.save_checkpoint")
            # first imports of torch / transformers inside cell.run count as imports, not as what triggered them
            imp_loading = _within(calls, "import ", ("mirage.train.loop._load_policy", "mirage.train.loop.load_rows"))
            imp_train = _within(calls, "import ", ("mirage.study.cell.train",))
            evaluation = _total(calls, "mirage.study.cell.evaluate") + _total(calls, "mirage.study.cell.measure_alignment")
            imp_eval = _within(calls, "import ", ("mirage.study.cell.evaluate", "mirage.study.cell.measure_alignment"))
            imp_run = _within(calls, "import ", ("mirage.study.cell.run", "mirage.study.cell.measure_alignment"))
            parts["imports"] += imp_run
            parts["data + model load"] += loading - imp_loading
            parts["training steps"] += steps
            parts["validation"] += validation
            parts["checkpoints"] += checkpoints
            parts["training, rest"] += train - loading - steps - validation - checkpoints - (imp_train - imp_loading)
            parts["evaluation"] += evaluation - imp_eval
            parts["results (metrics, tables)"] += (call["t1"] - call["t0"]) - train - evaluation - (
                imp_run - imp_train - imp_eval)
            parts["figures"] += t1 - call["t1"]  # the rest of the run cell (a describe() print)
        elif run_cell is None:  # the analysis notebook: no cell.run
            parts["notebook cells"] += t1 - t0
        elif i > run_cell:
            parts["figures"] += t1 - t0
        else:
            parts["imports"] += t1 - t0
    parts["between cells (papermill, notebook saves)"] = sum(spans[i + 1][0] - spans[i][1]
                                                            for i in range(len(spans) - 1))
    if warm:
        parts["after the last cell (save, reply, runner polling)"] = end - spans[-1][1]
    else:
        parts["after the last cell (save, kernel shutdown)"] = papermill.get("exit", end) - spans[-1][1]
        parts["interpreter exit, runner polling"] = end - papermill.get("exit", end)
    return dict(parts)


def cpu_split(procs: dict[int, dict], cell_windows: list[tuple[float, float]], steps_cpu: float,
              children_cpu: float) -> dict[str, float]:
    """CPU seconds of the cells, split: training steps and evaluation (timed where they run) vs the rest.

    ``children_cpu``: every step process's CPU (the runner's children, waited for: papermill, kernels,
    workers, ``python -m mirage.study``); ``steps_cpu``: that of the steps other than cells (their exit
    records). The cells' share is the difference, whether each ran in a process of its own or in a warm
    kernel (whose CPU is only known at the end)."""
    calls = [c for p in procs.values() for c in p["calls"] if "c0" in c
             and any(a <= c["t0"] <= b for a, b in cell_windows)]

    def cpu(name: str) -> float:
        spans = sorted((c["t0"], c["t1"], c["c1"] - c["c0"]) for c in calls if c["call"] == name)
        total, end = 0.0, float("-inf")
        for t0, t1, c in spans:  # nested calls of the same name once
            if t0 >= end:
                total += c
                end = t1
        return total

    train, evaluation = cpu("mirage.train.loop.train_step"), cpu("mirage.study.cell.evaluate")
    cells = children_cpu - steps_cpu
    return {"cells": cells, "training steps": train, "evaluation": evaluation,
            "everything else": cells - train - evaluation}


def cell_cpu(step_dir: Path, procs: dict[int, dict]) -> tuple[float, float]:
    """CPU seconds of a notebook step's papermill process and of its kernel (NaN where not recorded)."""
    papermill = next((pid for pid, p in procs.items() if p.get("cwd") == str(step_dir) and _is_papermill(p)), None)
    kernel = next((p for p in procs.values() if papermill and p.get("ppid") == papermill), {})
    return procs.get(papermill, {}).get("cpu", float("nan")), kernel.get("cpu", float("nan"))


def _step_processes(step_dir: Path, procs: dict[int, dict]) -> list[dict]:
    """A step's own processes: the one started in its folder, and (papermill's) kernel started by it."""
    own = {pid for pid, p in procs.items() if p.get("cwd") == str(step_dir) and "start" in p}
    return [p for pid, p in procs.items() if pid in own or p.get("ppid") in own]


def install_time(keep: Path) -> float:
    """``make install`` in a fresh clone of this checkout's HEAD; seconds."""
    clone = keep / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    t = time.perf_counter()
    subprocess.run(["make", "install"], cwd=clone, check=True)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="testbed-quick")
    ap.add_argument("--jobs", type=int, default=None, help="steps at a time (default: the preset's)")
    ap.add_argument("--out", default=None, help="study folder (default: a temporary one, deleted unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the study folder")
    ap.add_argument("--install", action="store_true", help="also time `make install` in a fresh clone of HEAD")
    ap.add_argument("--smoke", action="store_true", help="the testbed-ci preset (3 cells): checks that it runs")
    ap.add_argument("--fresh-kernels", action="store_true",
                    help="a papermill process and kernel per cell (mirage study --fresh-kernels), as before warm kernels")
    args = ap.parse_args()
    if args.smoke:
        args.preset = "testbed-ci"

    from mirage.study.plan import plan
    from mirage.study.preset import load_preset
    from mirage.study.runner import run_study

    preset = load_preset(args.preset)
    work = Path(tempfile.mkdtemp(prefix="bench-study-"))
    out = Path(args.out).resolve() if args.out else work / "study"
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"--out {out}: not empty; the benchmark times a study from an empty folder")
    timing = work / "timing"
    timing.mkdir()
    hooks = work / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    os.environ[ENV_DIR] = str(timing)
    os.environ["PYTHONPATH"] = os.pathsep.join(x for x in [str(hooks), os.environ.get("PYTHONPATH", "")] if x)
    events: list[tuple[float, str]] = []

    def log(message: str) -> None:
        events.append((time.time(), message))
        print(message, flush=True)

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    t0 = time.time()
    code = run_study(preset, out, jobs=args.jobs, figures_dir=out / "figures", log=log, warm=not args.fresh_kernels)
    t1 = time.time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = usage.ru_utime + usage.ru_stime
    load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())

    steps = {s.id: s for s in plan(preset, out, None, out / "figures")}
    spans: dict[str, list[float]] = {}
    for t, message in events:
        words = message.split()
        if message.startswith("[study] start "):
            spans[words[3]] = [t, t]
        elif message.startswith(("[study] done ", "[study] FAILED ")) and words[2] in spans:
            spans[words[2]][1] = t
    procs = read_processes(timing)

    print(f"\n=== study breakdown: preset {preset.cli_name}, {sum(s.kind == 'cell' for s in steps.values())} cells, "
          f"jobs {args.jobs or preset.jobs}, {'fresh kernels' if args.fresh_kernels else 'warm kernels'}, exit status "
          f"{code}; load average before {load}, after {load_after}; {os.cpu_count()} CPUs")
    phases: dict[str, list[str]] = defaultdict(list)
    for sid in spans:
        phases[{"measure": "alignment", "alignment": "alignment", "history": "cells", "cell": "cells",
                "analysis": "analysis"}[steps[sid].kind]].append(sid)
    wall = t1 - t0
    accounted = 0.0
    cursor = t0
    rows = []
    for phase in ("alignment", "cells", "analysis"):
        ids = phases.get(phase, [])
        if not ids:
            continue
        a, b = min(spans[i][0] for i in ids), max(spans[i][1] for i in ids)
        if a > cursor:
            rows.append(("runner (plan, records, results tables, summary)", a - cursor))
        # phases overlap (history runs start beside the alignment measurements): the overlap counts
        # in the earlier phase, so that the rows add up to the wall time
        rows.append((f"{phase} ({len(ids)} steps, {sum(spans[i][1] - spans[i][0] for i in ids):.1f} s of step time)",
                     max(0.0, b - max(a, cursor))))
        cursor = max(cursor, b)
    rows.append(("runner (plan, records, results tables, summary)", t1 - cursor))
    merged: dict[str, float] = {}
    for name, seconds in rows:
        merged[name] = merged.get(name, 0.0) + seconds
    for name, seconds in merged.items():
        accounted += seconds
        print(f"  {name:<62} {seconds:8.1f} s")
    print(f"  {'sum':<62} {accounted:8.1f} s   wall {wall:.1f} s")

    per_step = {}
    for sid in spans:
        if steps[sid].notebook is not None and (steps[sid].dir / "notebook.ipynb").exists():
            per_step[sid] = cell_breakdown(spans[sid][0], spans[sid][1], steps[sid].dir, procs)
    names = list(dict.fromkeys(k for parts in per_step.values() for k in parts))
    cells = [sid for sid in per_step if steps[sid].kind == "cell"]
    if cells:
        print(f"\nper cell (median [min-max] over {len(cells)} cells, seconds of wall time)")
        for name in names:
            values = [per_step[sid].get(name, 0.0) for sid in cells]
            print(f"  {name:<44} {statistics.median(values):7.2f}  [{min(values):6.2f}-{max(values):6.2f}]")
        totals = [sum(per_step[sid].values()) for sid in cells]
        walls = [spans[sid][1] - spans[sid][0] for sid in cells]
        print(f"  {'sum of the parts':<44} {statistics.median(totals):7.2f}  [{min(totals):6.2f}-{max(totals):6.2f}]"
              f"   (cell wall {statistics.median(walls):.2f} [{min(walls):.2f}-{max(walls):.2f}])")
        overhead = [w - per_step[sid].get("training steps", 0) - per_step[sid].get("validation", 0)
                    - per_step[sid].get("evaluation", 0) for sid, w in zip(cells, walls)]
        print(f"  per-cell overhead (wall minus training steps, validation, evaluation): "
              f"median {statistics.median(overhead):.2f} s")
        if args.fresh_kernels:
            cpu = [cell_cpu(steps[sid].dir, procs) for sid in cells]
            both = [a + b for a, b in cpu]
            print(f"  CPU time of a cell: median {statistics.median(both):.2f} s [{min(both):.2f}-{max(both):.2f}] "
                  f"(papermill process {statistics.median(a for a, _ in cpu):.2f}, kernel "
                  f"{statistics.median(b for _, b in cpu):.2f}), {sum(both):.1f} s over all cells")
        others_cpu = sum(p.get("cpu", 0.0) for sid in spans if steps[sid].kind != "cell"
                         for p in _step_processes(steps[sid].dir, procs))
        split = cpu_split(procs, [tuple(spans[sid]) for sid in cells], others_cpu, children_cpu)
        print(f"  CPU of the cells (every step process's CPU {children_cpu:.1f} s minus the other steps' "
              f"{others_cpu:.1f} s): {split['cells']:.1f} s = training steps {split['training steps']:.1f} + "
              f"evaluation {split['evaluation']:.1f} + everything else {split['everything else']:.1f}; "
              f"per cell {split['cells'] / len(cells):.2f} s, of which everything else "
              f"{split['everything else'] / len(cells):.2f} s")
    others = [sid for sid in per_step if steps[sid].kind != "cell"]
    for sid in others:
        parts = per_step[sid]
        print(f"\n{sid} ({spans[sid][1] - spans[sid][0]:.1f} s): " +
              ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    for sid in spans:
        if steps[sid].notebook is None:
            cpu = sum(p.get("cpu", 0.0) for p in _step_processes(steps[sid].dir, procs))
            print(f"{sid}: {spans[sid][1] - spans[sid][0]:.1f} s wall, {cpu:.1f} s CPU (python -m mirage.study)")

    if args.install:
        print(f"\nmake install in a fresh clone of HEAD: {install_time(work):.1f} s")
    if args.keep:
        print(f"\nkept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
