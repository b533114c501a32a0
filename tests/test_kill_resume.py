"""kill -9 at random points of training and of evaluation, then a rerun: the same bytes as an
uninterrupted run (timing fields aside), no duplicated log line; and a second writer on a busy
folder is refused at once, naming the holder, without disturbing the first."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirage import runs

pytestmark = pytest.mark.slow

MODEL = "dial-60"
TINY = {"total_steps": 4, "train_batch_size": 4, "rollout_n": 4, "ppo_mini_batch_size": 2, "max_response_length": 32,
        "val_freq": 2, "save_freq": 1}
ENV = {**os.environ, "MIRAGE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}


def train_code(run_dir: Path, data: Path) -> str:
    return ("from mirage.runs import RunConfig; from mirage.train.loop import train; "
            f"train(RunConfig({MODEL!r}, 'toy-math', 'ground_truth', seed=5, run_dir={str(run_dir)!r}, "
            f"overrides={TINY!r}, data_root={str(data)!r}, progress=False, dump_rollouts=True, val_problems=8))")


def eval_code(out: Path, data: Path) -> str:
    return ("import os; from mirage.evaluate import evaluate; "
            f"os.environ['MIRAGE_DATA'] = {str(data)!r}; "
            f"evaluate({MODEL!r}, 'toy-math_test', 4, max_tokens=24, seed=2, batch_size=4, score_processes=0, "
            f"out_dir={str(out)!r}, progress=False)")


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_state(run_dir: Path) -> dict:
    """Everything a run computed: metrics without timings (each step once), logs, rollouts, final weights."""
    lines = [rec for p in sorted((run_dir / "logs").glob("metrics-*.jsonl")) for rec in runs.read_jsonl(p)]
    steps = [rec["step"] for rec in lines]
    assert len(steps) == len(set(steps)), f"a step logged twice: {sorted(steps)}"
    metrics = {rec["step"]: {k: v for k, v in rec["data"].items() if not k.startswith("timing_s/")} for rec in lines}
    return {"metrics": metrics,
            "example_acc": (run_dir / "logs" / "example_acc.jsonl").read_bytes(),
            "rollouts": {p.name: p.read_bytes() for p in sorted((run_dir / "rollouts").glob("*.jsonl"))},
            "weights": {s: sha(hf / "model.safetensors") for s, hf in runs.list_checkpoints(run_dir)}}


def eval_state(out: Path) -> dict:
    import pandas as pd

    samples = pd.concat(pd.read_parquet(p) for p in sorted((out / "samples").rglob("part-*.parquet")))
    samples = samples.sort_values(["problem_id", "sample_index"]).reset_index(drop=True)
    return {"samples": samples.to_json(), "passk": sha(out / "passk.parquet"), "format": sha(out / "format.parquet")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from mirage.tasks.toy import ensure_dataset

    root = tmp_path_factory.mktemp("data")
    ensure_dataset("toy-math_train", root, n=32)
    ensure_dataset("toy-math_test", root, n=16)
    return root


def kill_at_random(code: str, rng: random.Random, until: float) -> None:
    proc = start(code)
    time.sleep(rng.uniform(0.5, until))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_training_killed_at_random_points_reruns_to_the_same_bytes(tmp_path, data):
    reference = tmp_path / "reference"
    t0 = time.time()
    finish(train_code(reference, data))
    whole = time.time() - t0
    want = train_state(reference)
    rng = random.Random(7)
    for attempt in range(2):
        run_dir = tmp_path / f"killed{attempt}"
        for _ in range(2):  # killed twice, at random points, before the rerun that completes it
            kill_at_random(train_code(run_dir, data), rng, whole)
        finish(train_code(run_dir, data))
        assert train_state(run_dir) == want, f"attempt {attempt} differs from the uninterrupted run"
        assert runs.read_manifest(run_dir)["status"] == "finished"


def test_evaluation_killed_at_random_points_reruns_to_the_same_bytes(tmp_path, data):
    reference = tmp_path / "reference"
    t0 = time.time()
    finish(eval_code(reference, data))
    whole = time.time() - t0
    want = eval_state(reference)
    rng = random.Random(11)
    for attempt in range(2):
        out = tmp_path / f"killed{attempt}"
        for _ in range(2):
            kill_at_random(eval_code(out, data), rng, whole)
        finish(eval_code(out, data))
        assert eval_state(out) == want, f"attempt {attempt} differs from the uninterrupted evaluation"
        assert json.loads((out / "eval_manifest.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("kind", ["train", "eval"])
def test_a_second_writer_is_refused_and_the_first_finishes(tmp_path, data, kind):
    folder = tmp_path / kind
    code = train_code(folder, data) if kind == "train" else eval_code(folder, data)
    first = start(code)
    deadline = time.time() + 120
    while not (folder / ".lock.holder").exists():  # the first writer holds the lock
        assert first.poll() is None and time.time() < deadline, first.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert second.returncode != 0 and "FolderBusy" in second.stderr
    assert f"being written by pid {first.pid}" in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-2000:]
    assert runs.read_manifest(folder, "manifest.json" if kind == "train" else "eval_manifest.json")["status"] \
        == "finished"
