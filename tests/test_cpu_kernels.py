"""The testbed's numbers do not depend on which CPU kernels torch would pick (mirage.cpu_kernels).

Another machine is simulated by ATEN_CPU_CAPABILITY in the parent's environment: torch reads it
where it would otherwise read the CPU. Under the pin, a tiny training and an evaluation of its
checkpoint give the same bytes whatever torch would have chosen, and the same bytes as torch's
own AVX2 kernels (what an AVX2-only machine computes); without the pin the kernel set changes
them (so the comparison can fail)."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from mirage import cpu_kernels

needs_avx2 = pytest.mark.skipif(not cpu_kernels.cpu_has_avx2(), reason="the pin applies to x86-64 CPUs with AVX2")
CLEAN = {k: v for k, v in os.environ.items() if k not in (*cpu_kernels.PINNED, cpu_kernels.MODE_ENV)}


def child(code: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env={**CLEAN, "MIRAGE_TORCH_THREADS": "1",
                                                               "OMP_NUM_THREADS": "1", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


CAPABILITY = "import mirage, torch; print(torch.backends.cpu.get_cpu_capability())"


@needs_avx2
def test_import_pins_the_avx2_kernels_whatever_torch_would_pick():
    cases = {"default": {"ATEN_CPU_CAPABILITY": "default"},
             "native": {"MIRAGE_CPU_KERNELS": "native", "ATEN_CPU_CAPABILITY": "default"}}
    procs = {name: child(CAPABILITY, **env) for name, env in cases.items()}  # at once: each pays torch's import
    got = {}
    for name, proc in procs.items():
        out, err = proc.communicate()
        assert proc.returncode == 0, err[-2000:]
        got[name] = out.split()[-1]
    # pinned whatever torch would pick; "native" leaves torch its choice (here, what ATEN_CPU_CAPABILITY says)
    assert got == {"default": "AVX2", "native": "DEFAULT"}


def test_pin_sets_the_variables_only_where_avx2_runs(monkeypatch):
    for name in (*cpu_kernels.PINNED, cpu_kernels.MODE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx512")
    monkeypatch.setattr(cpu_kernels, "cpu_has_avx2", lambda: True)
    assert cpu_kernels.pin() == cpu_kernels.PINNED
    assert {k: os.environ[k] for k in cpu_kernels.PINNED} == cpu_kernels.PINNED  # overrides what was set
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx512")
    monkeypatch.setenv(cpu_kernels.MODE_ENV, "native")
    assert cpu_kernels.pin() == {} and os.environ["ATEN_CPU_CAPABILITY"] == "avx512"
    monkeypatch.delenv(cpu_kernels.MODE_ENV)
    monkeypatch.setattr(cpu_kernels, "cpu_has_avx2", lambda: False)  # ARM, or no AVX2: an AVX2 kernel would crash
    assert cpu_kernels.pin() == {} and os.environ["ATEN_CPU_CAPABILITY"] == "avx512"


def test_a_bad_mode_is_one_line_naming_the_variable():
    proc = child("import mirage", MIRAGE_CPU_KERNELS="avx9")
    _, err = proc.communicate()
    assert proc.returncode != 0
    assert err.strip().splitlines()[-1] == ("ValueError: $MIRAGE_CPU_KERNELS='avx9': must be one of "
                                                    "avx2, native")


def test_cpu_has_avx2_reads_the_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_kernels.platform, "machine", lambda: "x86_64")
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n")
    assert cpu_kernels.cpu_has_avx2(str(info))
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 bmi2\n")  # no FMA: torch would not use AVX2
    assert not cpu_kernels.cpu_has_avx2(str(info))
    assert not cpu_kernels.cpu_has_avx2(str(tmp_path / "missing"))
    monkeypatch.setattr(cpu_kernels.platform, "machine", lambda: "arm64")
    info.write_text("flags\t\t: avx2 fma\n")
    assert not cpu_kernels.cpu_has_avx2(str(info))


TINY = {"total_steps": 3, "train_batch_size": 4, "rollout_n": 4, "ppo_mini_batch_size": 2, "max_response_length": 32,
        "val_freq": 0, "save_freq": 3}

TRAIN_AND_EVALUATE = """
import hashlib, json, sys
from pathlib import Path
import pandas as pd
from mirage import runs
from mirage.evaluate import evaluate
from mirage.runs import RunConfig
from mirage.train.loop import train
import torch

root, data = Path(sys.argv[1]), sys.argv[2]
run_dir = root / "run"
train(RunConfig("dial-60", "toy-logic", "ground_truth", seed=3, run_dir=str(run_dir), overrides={tiny!r},
                data_root=data, progress=False))
(step, hf), = runs.list_checkpoints(run_dir)
import os; os.environ["MIRAGE_DATA"] = data
evaluate(str(hf), "toy-logic_test", 8, max_tokens=32, seed=1, batch_size=8, score_processes=0, out_dir=str(root / "ev"),
         progress=False)
sha = lambda b: hashlib.sha256(b).hexdigest()
metrics = [{{k: v for k, v in rec["data"].items() if not k.startswith("timing_s/")}}
           for p in sorted((run_dir / "logs").glob("metrics-*.jsonl")) for rec in runs.read_jsonl(p)]
samples = pd.concat(pd.read_parquet(p) for p in sorted((root / "ev" / "samples").rglob("part-*.parquet")))
print(json.dumps({{"capability": torch.backends.cpu.get_cpu_capability(),
                  "metrics": sha(json.dumps(metrics, sort_keys=True).encode()),
                  "weights": sha((hf / "model.safetensors").read_bytes()),
                  "samples": sha(samples.sort_values(["problem_id", "sample_index"]).to_json().encode()),
                  "passk": sha((root / "ev" / "passk.parquet").read_bytes())}}))
""".format(tiny=TINY)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from mirage.tasks.toy import ensure_dataset

    root = tmp_path_factory.mktemp("data")
    ensure_dataset("toy-logic_train", root, n=32)
    ensure_dataset("toy-logic_test", root, n=8)
    return root


@pytest.mark.slow
@needs_avx2
def test_training_and_evaluation_are_the_same_bytes_whatever_kernels_torch_would_pick(data, tmp_path):
    def outputs(name: str, **env: str) -> dict:
        done = subprocess.run([sys.executable, "-c", TRAIN_AND_EVALUATE, str(tmp_path / name), str(data)],
                              env={**CLEAN, "MIRAGE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1", **env},
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    machine = outputs("machine")  # pinned, on whatever this CPU is
    plain = outputs("plain", ATEN_CPU_CAPABILITY="default")  # pinned, where torch would use no vector kernels
    avx2 = outputs("avx2", MIRAGE_CPU_KERNELS="native", ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="AVX2")
    unpinned = outputs("unpinned", MIRAGE_CPU_KERNELS="native", ATEN_CPU_CAPABILITY="default")
    assert machine["capability"] == plain["capability"] == avx2["capability"] == "AVX2"
    assert machine == plain == avx2
    # the control: other kernels do change these bytes, so the equalities above could have failed
    assert unpinned["capability"] == "DEFAULT"
    assert unpinned["weights"] != machine["weights"]


TABLES = """
import hashlib
import numpy as np
from mirage.passk import bootstrap_ci
from mirage.study.seeds import two_level_bootstrap

rng = np.random.default_rng(7)
parts = []
for n in (16, 32, 64):
    c = rng.binomial(n, rng.beta(0.6, 0.6, 200))
    parts.append(bootstrap_ci(np.full(200, n), c).to_numpy().tobytes())
    parts.append(np.array(two_level_bootstrap((c / n)[None, :] - rng.integers(0, 2, (3, 200)) / n)).tobytes())
print(hashlib.sha256(b"".join(parts)).hexdigest())
"""


def test_pass_at_k_tables_are_the_same_bytes_whatever_numpy_and_openblas_pick():
    """numpy dispatches log1p/expm1 by instruction set and OpenBLAS its matrix kernels by CPU; the
    study's pass@k, CIs and seed CIs must not depend on either (numpy's AVX-512 vs AVX2 did)."""
    from numpy._core._multiarray_umath import __cpu_features__

    wide = [f for f in ("X86_V4", "AVX512_ICL", "AVX512_SPR", "AVX512_SKX") if __cpu_features__.get(f)]
    if not wide:
        pytest.skip("no AVX-512 here: numpy has no other vector path to compare with")
    cases = {"machine": {}, "avx2": {"NPY_DISABLE_CPU_FEATURES": " ".join(wide), "OPENBLAS_CORETYPE": "Haswell"},
             "sse": {"NPY_DISABLE_CPU_FEATURES": " ".join(["X86_V3", *wide]), "OPENBLAS_CORETYPE": "Sandybridge"}}
    procs = {name: child(TABLES, **env) for name, env in cases.items()}
    got = {}
    for name, proc in procs.items():
        out, err = proc.communicate()
        assert proc.returncode == 0, err[-2000:]
        got[name] = out.split()[-1]
    assert got["machine"] == got["avx2"] == got["sse"], got
