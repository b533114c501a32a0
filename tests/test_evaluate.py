"""mirage.evaluate: sample rows, pass@k curves, resume after a kill, determinism, sweeps, alignment.

The HF tests run a real testbed model (a shipped one from data/models when present,
else a tiny untrained Llama with the testbed's char tokenizer). The fake sampler
gives exact, known correct counts so the curves can be checked against the
unbiased estimator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mirage.sample.base import Completion, Sampler
from mirage.tasks import toy as toy

if TYPE_CHECKING:  # annotations only: the tests import it where they use it
    import pandas as pd

N_PROBLEMS = 6


class FakeSampler(Sampler):
    """Problem i gets exactly ``correct[i]`` right answers among its n samples (positions seeded)."""

    backend = "fake"

    def __init__(self, frame: pd.DataFrame, correct, unformatted_odd: bool = False):
        contents = [p[-1]["content"] for p in frame["prompt"]]
        self.answers = dict(zip(contents, frame["reward_model"].map(lambda r: r["ground_truth"])))
        self.correct = dict(zip(contents, correct))
        self.unformatted_odd = unformatted_odd
        self.calls = 0

    def generate(self, prompts, params, seeds):
        self.calls += 1
        out = []
        for messages, seed in zip(prompts, seeds):
            content = messages[-1]["content"]
            hits = set(np.random.default_rng(seed).choice(params.n, self.correct[content], replace=False).tolist())
            samples = []
            for j in range(params.n):
                answer = self.answers[content] + ("" if j in hits else "0")
                text = f"<answer>{answer}</answer>" if self.unformatted_odd and j % 2 else \
                    f"<think>s</think> <answer>{answer}</answer>"
                samples.append(Completion(text, "stop", len(text)))
            out.append(samples)
        return out

    def describe(self):
        return {"backend": "fake", "correct": list(self.correct.values())}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "toy.parquet"
    toy.problems_frame("toy-math", "test", N_PROBLEMS, seed=5).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """A shipped testbed model if there is one, else a tiny untrained Llama (same tokenizer)."""
    from mirage.models import list_models

    shipped = list_models()
    if shipped:
        return shipped[0]["path"]
    from mirage.testbed.models import make_model
    from mirage.testbed.tokenizer import make_tokenizer

    folder = tmp_path_factory.mktemp("tiny")
    tokenizer = make_tokenizer()
    make_model(tokenizer, hidden=32, layers=1, heads=2).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


HF = dict(n=8, max_tokens=48, seed=3, progress=False, sampler_kwargs={"threads": 1})


@pytest.fixture(scope="module")
def reference(model_dir, dataset, tmp_path_factory) -> Path:
    """One uninterrupted HF evaluation (chunks of 4 problems, scored in a process pool)."""
    from mirage import evaluate as ev

    out = tmp_path_factory.mktemp("ref")
    ev.evaluate(model_dir, str(dataset), sampler="hf", out_dir=out, batch_size=4, score_processes=1, **HF)
    return out


def rows(out: Path) -> pd.DataFrame:
    from mirage import evaluate as ev

    return ev.read_samples(out).sort_values(["problem_id", "sample_index"]).reset_index(drop=True)


# --- curves -------------------------------------------------------------------------------
def test_passk_curve_matches_unbiased_estimator(dataset, tmp_path):
    import pandas as pd

    from mirage import evaluate as ev
    from mirage.passk import bootstrap_ci, default_ks, pass_at_k

    frame = pd.read_parquet(dataset)
    correct = [0, 1, 2, 4, 7, 8]
    table = ev.evaluate("fake", str(dataset), 8, sampler=FakeSampler(frame, correct), out_dir=tmp_path,
                        batch_size=4, score_processes=0, progress=False)
    samples = rows(tmp_path)
    assert len(samples) == N_PROBLEMS * 8 and list(samples.columns) == ev.core.SAMPLE_COLUMNS
    assert samples.groupby("problem_id")["acc"].sum().sort_index().tolist() == \
        [correct[int(i)] for i in sorted(samples["problem_id"].unique(), key=str)]
    assert table["k"].tolist() == [1, 2, 4, 8]
    n = np.full(N_PROBLEMS, 8)
    expected = [pass_at_k(n, np.array(correct), k).mean() for k in (1, 2, 4, 8)]
    np.testing.assert_allclose(table["pass_at_k"], expected)
    ci = bootstrap_ci(n, np.array(correct), ks=default_ks(8), seed=0)
    np.testing.assert_allclose(table[["ci_low", "ci_high"]], ci[["ci_low", "ci_high"]])
    assert (table["n_problems"] == N_PROBLEMS).all()
    on_disk = pd.read_parquet(tmp_path / "passk.parquet")
    pd.testing.assert_frame_equal(on_disk, table)
    assert len(pd.read_csv(tmp_path / "passk.csv")) == 4
    manifest = json.loads((tmp_path / "eval_manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["kind"] == "eval"
    assert manifest["summary"]["toy"]["pass@1"] == pytest.approx(sum(correct) / 48)


def test_format_gated_counts_the_training_reward(dataset, tmp_path):
    import pandas as pd

    from mirage import evaluate as ev

    frame = pd.read_parquet(dataset)
    plain = ev.evaluate("fake", str(dataset), 8, sampler=FakeSampler(frame, [8] * 6, unformatted_odd=True),
                        out_dir=tmp_path / "acc", score_processes=0, progress=False)
    gated = ev.evaluate("fake", str(dataset), 8, sampler=FakeSampler(frame, [8] * 6, unformatted_odd=True),
                        out_dir=tmp_path / "gated", format_gated=True, score_processes=0, progress=False)
    assert plain.loc[plain.k == 1, "pass_at_k"].item() == 1.0  # acc ignores the format
    assert gated.loc[gated.k == 1, "pass_at_k"].item() == 0.5  # half the samples lack <think>
    assert rows(tmp_path / "gated")["score"].sum() == 24


# --- HF backend end to end ------------------------------------------------------------
def test_hf_end_to_end_records_everything(reference, model_dir):
    import pandas as pd

    from mirage.passk import pass_at_k

    samples = rows(reference)
    assert len(samples) == N_PROBLEMS * 8
    assert not samples.duplicated(["problem_id", "sample_index"]).any()
    assert set(samples["finish_reason"]) <= {"stop", "length"}
    assert (samples["num_tokens"] <= 48).all()
    assert (samples.loc[samples.finish_reason == "length", "num_tokens"] == 48).all()
    table = pd.read_parquet(reference / "passk.parquet")
    counts = samples.groupby("problem_id")["correct"].agg(["size", "sum"])
    expected = [pass_at_k(counts["size"].to_numpy(), counts["sum"].to_numpy(), k).mean() for k in (1, 2, 4, 8)]
    np.testing.assert_allclose(table["pass_at_k"], expected)
    assert (np.diff(table["pass_at_k"]) >= 0).all()
    m = json.loads((reference / "eval_manifest.json").read_text())
    assert m["config"]["n"] == 8 and m["config"]["max_tokens"] == 48 and m["config"]["seed"] == 3
    assert m["prompt_template"]["rendered"].endswith("<|assistant|>")
    assert toy.INSTRUCTION in m["prompt_template"]["rendered"]
    assert m["sampler"]["backend"] == "hf" and m["versions"]["torch"] and m["hardware"]["cpu_count"]
    assert m["attempts"][0]["samples"] == N_PROBLEMS * 8


def test_hf_deterministic_whatever_the_chunking(reference, model_dir, dataset, tmp_path):
    import pandas as pd

    from mirage import evaluate as ev

    ev.evaluate(model_dir, str(dataset), sampler="hf", out_dir=tmp_path, batch_size=5, score_processes=0, **HF)
    pd.testing.assert_frame_equal(rows(tmp_path), rows(reference))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "passk.parquet"),
                                  pd.read_parquet(reference / "passk.parquet"))
    assert len(list((tmp_path / "samples" / "toy").glob("part-*.parquet"))) == 2  # 5 + 1 problems


KILLED_RUN = """
import sys, time
from mirage.evaluate import evaluate
from mirage.sample.hf import HFSampler

class Slow(HFSampler):  # sampling slow enough to be killed mid-run
    def generate(self, *a):
        time.sleep(0.4)
        return super().generate(*a)

if __name__ == "__main__":
    model, dataset, out = sys.argv[1:]
    evaluate(model, dataset, sampler=Slow(model, threads=1), out_dir=out, batch_size=1, score_processes=0,
             n=8, max_tokens=48, seed=3, progress=False)
"""


def test_resume_after_kill_completes_without_duplicates(reference, model_dir, dataset, tmp_path):
    import pandas as pd

    from mirage import evaluate as ev

    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(KILLED_RUN))
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), model_dir, str(dataset), str(out)], env=env)
    parts = out / "samples" / "toy"
    deadline = time.time() + 120
    while len(list(parts.glob("part-*.parquet"))) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(parts.glob("part-*.parquet")))
    assert 2 <= done_before < N_PROBLEMS, "the run was not killed mid-way"
    assert json.loads((out / "eval_manifest.json").read_text())["status"] == "running"
    assert not list(parts.glob(".*.tmp"))  # atomic writes leave no half-written part behind

    ev.evaluate(model_dir, str(dataset), sampler="hf", out_dir=out, batch_size=2, score_processes=0, **HF)
    resumed = rows(out)
    assert not resumed.duplicated(["problem_id", "sample_index"]).any()
    pd.testing.assert_frame_equal(resumed, rows(reference))
    m = json.loads((out / "eval_manifest.json").read_text())
    assert m["status"] == "finished" and m["attempts"][-1]["problems"] == N_PROBLEMS - done_before


def test_rerun_with_other_settings_is_refused(reference, model_dir, dataset):
    from mirage import evaluate as ev

    with pytest.raises(ValueError, match="temperature"):
        ev.evaluate(model_dir, str(dataset), sampler="hf", out_dir=reference, **HF, temperature=0.5)


def test_finished_evaluation_reruns_without_a_sampler(reference, model_dir, dataset, monkeypatch):
    import pandas as pd

    from mirage import evaluate as ev

    monkeypatch.setattr(ev.core, "make_sampler", lambda *a, **k: pytest.fail("a finished evaluation built a sampler"))
    before = rows(reference)
    ev.evaluate(model_dir, str(dataset), sampler="hf", out_dir=reference, batch_size=4, **HF)
    pd.testing.assert_frame_equal(rows(reference), before)


# --- sweeps and the tidy frame --------------------------------------------------------
def test_evaluate_run_sweeps_base_and_checkpoints(model_dir, dataset, tmp_path, monkeypatch):
    import pandas as pd

    from mirage import evaluate as ev

    run = tmp_path / "run"
    for step in (10, 20):
        shutil.copytree(model_dir, run / "checkpoints" / f"global_step_{step}" / "actor" / "huggingface")
    (run / "manifest.json").write_text(json.dumps({"model": model_dir, "task": "toy-math",
                                                   "condition": "ground_truth", "seed": 1}))
    from mirage.cli import main

    main(["eval", "--run-dir", str(run), "--task", str(dataset), "--n", "4", "--max-tokens", "16",
          "--score-processes", "0", "--threads", "1", "--no-progress"])
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["step_0", "step_10", "step_20"]
    frame = ev.load_eval(run)
    assert sorted(frame["step"].unique()) == [0, 10, 20]
    assert set(frame["condition"]) == {"ground_truth"} and set(frame["seed"]) == {1}
    assert set(frame["model"]) == {model_dir} and set(frame["dataset"]) == {"toy"}
    assert frame.groupby("step")["k"].apply(list).map(tuple).unique().tolist() == [(1, 2, 4)]
    assert list(frame.columns[:11]) == ["model", "task", "dataset", "condition", "seed", "step", "k", "pass_at_k",
                                        "ci_low", "ci_high", "n_problems"]
    monkeypatch.setattr(ev.core, "make_sampler", lambda *a, **k: pytest.fail("finished steps were sampled again"))
    again = ev.evaluate_run(run, 4, task=str(dataset), max_tokens=16, score_processes=0, progress=False)
    pd.testing.assert_frame_equal(again, frame)


def test_alignment_table_and_cache(dataset, tmp_path, monkeypatch):
    import pandas as pd

    from mirage import evaluate as ev
    from mirage.passk import pass_at_k

    frame = pd.read_parquet(dataset)
    correct = {"weak": [0, 0, 0, 1, 0, 2], "strong": [3, 8, 5, 8, 6, 7]}
    built = []

    def fake_make_sampler(backend, model, **kwargs):
        built.append(model)
        return FakeSampler(frame, correct[model])

    monkeypatch.setattr(ev.core, "make_sampler", fake_make_sampler)
    monkeypatch.setattr(ev.core, "resolve_model", lambda name: name)  # the fake models have no folder
    table = ev.align(["weak", "strong"], [str(dataset)], n=8, out=tmp_path, score_processes=0, progress=False)
    assert built == ["weak", "strong"]
    for model, c in correct.items():
        t = table[table.model == model]
        assert t["k"].tolist() == [1, 2, 4, 8]
        assert t["alignment"].unique().item() == pytest.approx(pass_at_k(np.full(6, 8), np.array(c), 8).mean())
        assert t["pass_at_1"].unique().item() == pytest.approx(sum(c) / 48)
        assert (t["k_max"] == 8).all()
    weak, strong = (table[table.model == m]["alignment"].iloc[0] for m in ("weak", "strong"))
    assert strong > weak
    stored = pd.read_parquet(tmp_path / "alignment.parquet")
    pd.testing.assert_frame_equal(stored, table)
    assert len(pd.read_csv(tmp_path / "alignment.csv")) == len(table)
    # the predictors beside it, from the same samples (mirage.evaluate.predictors; tested in test_predictors.py)
    predictors = pd.read_parquet(tmp_path / "predictors.parquet").set_index("model")
    assert sorted(predictors.index) == ["strong", "weak"] and len(pd.read_csv(tmp_path / "predictors.csv")) == 2
    for model, c in correct.items():
        assert predictors.loc[model, "pass_at_n"] == pytest.approx(table[table.model == model]["alignment"].iloc[0])
        assert predictors.loc[model, "procedure_correct"] == pytest.approx(sum(c) / 48)  # a toy dataset
    assert predictors["mean_token_entropy"].isna().all()  # the fake sampler gives no log-probs
    again = ev.align(["weak", "strong"], [str(dataset)], n=8, out=tmp_path, score_processes=0, progress=False)
    assert built == ["weak", "strong"]  # cached: no sampler built, nothing sampled
    pd.testing.assert_frame_equal(again, table)


# --- inputs ---------------------------------------------------------------------------------
def test_bad_datasets_fail_clearly(dataset, tmp_path):
    import pandas as pd

    from mirage import evaluate as ev

    frame = pd.read_parquet(dataset)
    frame.drop(columns=["reward_model"]).to_parquet(tmp_path / "noreward.parquet")
    with pytest.raises(ValueError, match=r"noreward\.parquet row 0: no 'reward_model'"):
        ev.load_problems("noreward", tmp_path / "noreward.parquet")
    dup = pd.concat([frame.head(2), frame.head(1)])
    dup.to_parquet(tmp_path / "dup.parquet")
    with pytest.raises(ValueError, match="duplicate extra_info.index"):
        ev.load_problems("dup", tmp_path / "dup.parquet")
    with pytest.raises(FileNotFoundError, match="nope"):
        ev.eval_datasets("nope")


def test_task_defaults():
    from mirage import evaluate as ev

    assert ev.default_n("toy-math") == 64 and ev.default_n("math") == 256
    # evaluation allows the response length training allowed
    from mirage.recipes import PAPER_RECIPE, TESTBED_RECIPE

    assert ev.default_max_tokens("toy-logic") == TESTBED_RECIPE.max_response_length
    assert ev.default_max_tokens("math500") == PAPER_RECIPE.max_response_length == 8192


def test_default_out_dir_names(tmp_path):
    ckpt = tmp_path / "seed0" / "checkpoints" / "global_step_50" / "actor" / "huggingface"
    ckpt.mkdir(parents=True)
    from mirage.runs import eval_dir

    assert eval_dir(str(ckpt), "toy-math") == Path("runs/eval/seed0--global_step_50/toy-math")
    assert eval_dir("Qwen/Qwen2.5-7B", "math") == Path("runs/eval/Qwen__Qwen2.5-7B/math")
    with pytest.raises(ValueError, match="cannot name a folder"):
        eval_dir("..", "math")


def test_defaults_of_a_parquet_follow_its_data_sources(dataset, tmp_path):
    import pandas as pd

    from mirage import evaluate as ev

    assert ev.task_kind(str(dataset)) == "testbed"
    from mirage.recipes import TESTBED_RECIPE

    assert ev.default_max_tokens(str(dataset)) == TESTBED_RECIPE.max_response_length
    frame = pd.read_parquet(dataset).assign(data_source="math500")
    frame.to_parquet(tmp_path / "other.parquet")
    other = str(tmp_path / "other.parquet")
    assert ev.task_kind(other) == "paper" and ev.default_n(other) == 256


def test_sweep_with_a_tag_and_a_damaged_checkpoint(model_dir, dataset, tmp_path):
    """A second, tagged evaluation of the same checkpoints (greedy) sits beside the first; a checkpoint
    whose weights are damaged is recorded as failed, the others are evaluated, the error names it."""
    from mirage import evaluate as ev

    import shutil

    from mirage.runs import update_manifest

    run = tmp_path / "run"
    for step in (1, 2):
        shutil.copytree(model_dir, run / "checkpoints" / f"global_step_{step}" / "actor" / "huggingface")
    update_manifest(run, model=str(model_dir), task=str(dataset), condition="ground_truth", seed=0)
    kw = dict(task=str(dataset), max_tokens=8, score_processes=0, progress=False, include_base=False)
    sampled = ev.evaluate_run(run, 2, **kw)
    greedy = ev.evaluate_run(run, 1, temperature=0.0, tag="greedy", **kw)
    assert set(sampled["eval_tag"]) == {""} and set(greedy["eval_tag"]) == {"greedy"}
    assert set(greedy["temperature"]) == {0.0} and sorted(set(greedy["step"])) == [1, 2]
    assert (run / "eval" / "greedy" / "step_2" / "passk.parquet").exists()
    both = ev.load_eval(run / "eval")
    assert set(both["eval_tag"]) == {"", "greedy"} and set(both["condition"]) == {"ground_truth"}
    weights = run / "checkpoints" / "global_step_1" / "actor" / "huggingface" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.raises(ev.scoring.CheckpointError, match=r"1 of 2 evaluations failed: .*global_step_1"):
        ev.evaluate_run(run, 2, tag="after", **kw)
    assert (run / "eval" / "after" / "step_2" / "passk.parquet").exists()  # the sweep went on
    failed = json.loads((run / "eval" / "after" / "step_1" / "eval_manifest.json").read_text())
    assert failed["status"] == "failed" and "global_step_1" in failed["error"]
