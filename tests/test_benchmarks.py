"""Every benchmark runs: ``benchmarks/bench_*.py --smoke`` (tiny sizes) exits 0 and prints figures.

Parametrised over the files found in benchmarks/, so a new benchmark is covered (and must
accept ``--smoke``) without editing this file. The figures are not checked: a speed is a
measurement, not a test (docs/timings.md); this only keeps the scripts from rotting when
the library they call changes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("bench_*.py"))
# more than ~20 s on 2 cores even at smoke sizes (bench_study runs the testbed-ci study)
SLOW = {"bench_study.py"}
# a number with a unit: "0.193 s", "47.3 completions/s", "1.99x", "76.2 ms/step", "12/s"
FIGURE = re.compile(r"\d(\.\d+)?\s*(s|ms|x|%|/s)\b|\d+(\.\d+)?\s+\w+/s\b")


def _params():
    for path in BENCHMARKS:
        marks = [pytest.mark.slow] if path.name in SLOW else []
        yield pytest.param(path, id=path.stem, marks=marks)


def test_benchmarks_found():
    assert len(BENCHMARKS) >= 8, [p.name for p in BENCHMARKS]


@pytest.mark.parametrize("script", list(_params()))
def test_benchmark_smoke(script: Path, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")]),
           "MIRAGE_TORCH_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(script), "--smoke"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=540)
    tail = f"\n--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{script.name} --smoke exited {done.returncode}{tail}"
    assert FIGURE.search(done.stdout), f"{script.name} --smoke printed no figure{tail}"
    assert not list(tmp_path.iterdir()), f"{script.name} --smoke left files in its working folder"
