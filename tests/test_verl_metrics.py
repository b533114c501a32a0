"""Training dynamics of a verl run dir load into the same tidy frame as a testbed run's.

The sample under tests/fixtures/verl/run/ was written by verl 0.9.1's own metric
functions and file logger (make_metrics_sample.py); the test regenerates it to
show it is exactly that.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mirage.runs import METRICS, append_jsonl, load_metrics, write_json_atomic

pytestmark = pytest.mark.verl

FIXTURE = Path(__file__).parent / "fixtures" / "verl"
RUN = FIXTURE / "run"


def _lines(name):
    return [json.loads(line) for line in (RUN / "logs" / name).read_text().splitlines()]


def test_sample_is_verls_own_output(tmp_path):
    spec = importlib.util.spec_from_file_location("make_metrics_sample", FIXTURE / "make_metrics_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    for name in ("metrics-000.jsonl", "metrics-001.jsonl"):
        fresh = [json.loads(line) for line in (tmp_path / "logs" / name).read_text().splitlines()]
        recorded = _lines(name)
        assert [r["step"] for r in fresh] == [r["step"] for r in recorded]
        for new, old in zip(fresh, recorded):  # same names and values (up to float summation order)
            assert set(new["data"]) == set(old["data"])  # verl builds some names from a set
            assert new["data"] == pytest.approx(old["data"], rel=1e-5, abs=1e-9)


def test_verl_run_dir_loads_tidy_with_later_attempts_winning():
    df = load_metrics(RUN)
    assert list(df.columns) == ["step", "metric", "value", "attempt", "backend", "model", "task", "condition",
                                "seed", "run_dir"]
    assert (df.backend == "verl").all() and (df.condition == "ground_truth").all()
    assert not df.duplicated(["step", "metric"]).any()
    assert sorted(df.step.unique()) == list(range(7))
    # steps 4 and 5 were logged by both attempts: the resumed one wins
    for step in (4, 5):
        want = next(r["data"]["critic/score/mean"] for r in _lines("metrics-001.jsonl") if r["step"] == step)
        got = df[(df.step == step) & (df.metric == "critic/score/mean")]
        assert got.value.tolist() == [want] and got.attempt.tolist() == [1]
    got = df[(df.step == 3) & (df.metric == "critic/score/mean")]
    want = next(r["data"]["critic/score/mean"] for r in _lines("metrics-000.jsonl") if r["step"] == 3)
    assert got.value.tolist() == [want] and got.attempt.tolist() == [0]
    val = df[df.metric == "val-core/math500/acc/mean@1"]
    assert val.step.tolist() == [0, 2, 4, 6]


def test_every_documented_metric_is_in_a_verl_log():
    logged = set(load_metrics(RUN).metric)
    assert set(METRICS) <= logged, sorted(set(METRICS) - logged)


def test_same_schema_as_a_testbed_run(tmp_path):
    import pandas as pd

    write_json_atomic(tmp_path / "manifest.json", {"backend": "local", "model": "toy", "task": "toy-math",
                                                   "condition": "random", "seed": 1})
    append_jsonl(tmp_path / "logs" / "metrics-000.jsonl",
                 [{"step": s, "data": {"critic/score/mean": 0.1 * s, "actor/entropy": 1.0}} for s in (1, 2)])
    testbed, verl = load_metrics(tmp_path), load_metrics(RUN)
    assert list(testbed.columns) == list(verl.columns)
    assert testbed.dtypes.equals(verl.dtypes)
    both = pd.concat([testbed, verl])
    assert set(both.backend) == {"local", "verl"}
