"""The study runner: presets, the plan, and the scheduler's resume / failure semantics.

The end-to-end study (real notebooks, real training, kill -9 and resume) is in
tests/test_study_e2e.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import wait_for_exit
from mirage import study
from mirage.conditions import CONDITIONS, PAPER_CONDITIONS


def test_presets_cover_the_grid_they_promise():
    full = study.PRESETS["testbed-full"]
    assert set(full.conditions) == set(CONDITIONS) and len(full.seeds) == 3
    assert set(full.tasks) == {"toy-math", "toy-logic"} and len(full.models) == 5
    assert len(full.cells()) == 5 * 2 * len(CONDITIONS) * 3
    paper = study.PRESETS["paper"]
    assert paper.backend == "verl" and set(paper.conditions) == set(PAPER_CONDITIONS)
    assert set(paper.models) == {"Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B-Instruct"}
    assert study.PRESETS["paper"].recipe_dict()["rollout_n"] == 16
    quick = study.PRESETS["testbed-quick"]
    rqs = {CONDITIONS[c].rq for c in quick.conditions}
    assert rqs == {"RQ1", "RQ2", "RQ3"} and len(quick.models) >= 3  # a curve needs several alignment levels


def test_preset_validation_names_the_bad_key(tmp_path):
    with pytest.raises(KeyError, match="no_such_condition"):
        study.Preset("x", "", "local", ("dial-90",), ("toy-math",), ("no_such_condition",))
    with pytest.raises(KeyError, match="total_stepz"):
        study.Preset("x", "", "local", ("dial-90",), ("toy-math",), ("random",), overrides={"total_stepz": 3})
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\ndescription: ''\nbackend: local\nmodels: [a]\ntasks: [toy-math]\n"
                   "conditions: [random]\neval: {n: 4, nn: 3}\n")
    with pytest.raises(KeyError, match=r"p\.yaml.*nn"):
        study.load_preset(str(bad))
    good = tmp_path / "q.yaml"
    good.write_text("name: mine\ndescription: mine\nbackend: local\nmodels: [dial-90]\ntasks: [toy-math]\n"
                    "conditions: [random, nsr]\nseeds: [0, 1]\neval: {n: 4, align_n: 8}\n")
    p = study.load_preset(str(good))
    assert p.eval.n == 4 and p.eval.align_n == 8 and len(p.cells()) == 4
    with pytest.raises(KeyError, match="unknown preset"):
        study.load_preset("no-such-preset")


def test_parse_only():
    assert study.parse_only(["model=a,task=toy-math", "condition=random|nsr,seed=0"]) == {
        "model": {"a"}, "task": {"toy-math"}, "condition": {"random", "nsr"}, "seed": {"0"}}
    with pytest.raises(ValueError, match="colour"):
        study.parse_only("colour=red")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        study.parse_only("random")


def test_plan_orders_alignment_history_cells_analysis(tmp_path):
    preset = study.PRESETS["testbed-quick"]
    steps = study.plan(preset, tmp_path)
    kinds = [s.kind for s in steps]
    pairs = [(m, t) for m in preset.models for t in preset.tasks]
    assert kinds[:len(pairs) + 1] == ["measure"] * len(pairs) + ["alignment"] and kinds[-1] == "analysis"
    assert steps[len(pairs)].deps == [f"alignment/{m}/{t}" for m, t in pairs]  # the table waits for every pair
    cells = [s for s in steps if s.kind == "cell"]
    assert len(cells) == len(preset.cells())
    histories = {s.id: s for s in steps if s.kind == "history"}
    assert set(histories) == {f"history/{m}/{t}" for m in preset.models for t in preset.tasks}
    for s in cells:
        nb = Path(s.argv[3]).name
        assert nb == study.RQ_NOTEBOOKS[CONDITIONS[s.cell.condition].rq]
        assert s.dir == s.cell.run_dir(tmp_path.resolve())
        pair = f"alignment/{s.cell.model}/{s.cell.task}"  # the base curve comes from its own pair
        assert s.params["alignment_table"].endswith(f"pairs/{s.cell.model}/{s.cell.task}/alignment.parquet")
        if s.cell.condition == "one_shot":  # the selected example needs its history run first
            assert s.deps == [pair, f"history/{s.cell.model}/{s.cell.task}"] and s.params["history_run"]
        else:
            assert s.deps == [pair] and not s.params["history_run"]
    # --only narrows cells, the alignment step and the history steps to what is selected
    only = study.parse_only("model=dial-90,condition=random|one_shot")
    steps = study.plan(preset, tmp_path, only)
    cells = [s for s in steps if s.kind == "cell"]
    assert {(s.cell.model, s.cell.condition) for s in cells} == {("dial-90", "random"), ("dial-90", "one_shot")}
    assert [s.id for s in steps if s.kind == "measure"] == ["alignment/dial-90/toy-math", "alignment/dial-90/toy-logic"]
    assert next(s for s in steps if s.kind == "alignment").params["models"] == ["dial-90"]
    assert {s.id for s in steps if s.kind == "history"} == {"history/dial-90/toy-math", "history/dial-90/toy-logic"}
    with pytest.raises(ValueError, match="selects no cell"):
        study.plan(preset, tmp_path, study.parse_only("model=nobody"))


def _step(tmp_path, sid, code, deps=()):
    d = tmp_path / sid
    return study.Step(sid, "cell", d, [sys.executable, "-c", code], {"id": sid}, deps=list(deps))


def test_run_steps_records_failures_blocks_dependants_and_skips_finished(tmp_path):
    counter = tmp_path / "runs.txt"
    ok = f"open({str(counter)!r}, 'a').write('x')"
    steps = [_step(tmp_path, "a", ok), _step(tmp_path, "bad", "raise SystemExit('boom: bad input')"),
             _step(tmp_path, "needs_bad", ok, deps=["bad"]), _step(tmp_path, "c", ok, deps=["a"])]
    lines = []
    status = study.run_steps(steps, jobs=2, log=lines.append)
    assert status == {"a": "finished", "bad": "failed", "needs_bad": "blocked", "c": "finished"}
    rec = json.loads((tmp_path / "bad" / study.STEP_RECORD).read_text())
    assert rec["status"] == "failed" and "boom: bad input" in rec["error"] and rec["returncode"] == 1
    assert counter.read_text() == "xx"
    assert any("FAILED bad" in line for line in lines)
    # rerun: finished steps are not rerun, the failed one is retried (and fails again)
    status = study.run_steps(steps, jobs=1, log=lines.append)
    assert status["a"] == status["c"] == "finished" and status["bad"] == "failed"
    assert counter.read_text() == "xx"
    # a step whose parameters changed is not "finished" any more
    steps[0].params["id"] = "changed"
    assert not steps[0].finished


def test_gain_table_guards_tiny_ground_truth_gains():
    rows = []

    def add(model, cond, step, p1, seed=0):
        rows.append(dict(model=model, task="toy-math", dataset="toy-math_test", condition=cond, rq="RQ1",
                         seed=seed, step=step, k=1, pass_at_k=p1, align_k=64, align_pass_at_k=0.9))

    add("strong", "base", 0, 0.50, seed=pd.NA)
    add("strong", "ground_truth", 20, 0.60)
    add("strong", "ground_truth", 40, 0.70)
    add("strong", "random", 40, 0.60)
    add("weak", "base", 0, 0.10, seed=pd.NA)
    add("weak", "ground_truth", 40, 0.11)  # gain 0.01 < MIN_GT_GAIN: no ratio
    add("weak", "random", 40, 0.05)
    g = study.gain_table(pd.DataFrame(rows)).set_index(["model", "condition"])
    assert g.loc[("strong", "random"), "gain"] == pytest.approx(0.10)  # final step (40), not step 20
    assert g.loc[("strong", "random"), "recovered"] == pytest.approx(0.5)
    assert g.loc[("strong", "ground_truth"), "recovered"] == pytest.approx(1.0)
    assert pd.isna(g.loc[("weak", "random"), "recovered"]) and g.loc[("weak", "random"), "gain"] == pytest.approx(-0.05)


@pytest.mark.verl
def test_paper_dry_run_prints_one_verl_job_and_eval_per_cell(tmp_path):
    from mirage.objectives import ESTIMATORS

    lines: list[str] = []
    steps = study.dry_run(study.PRESETS["paper"], tmp_path, log=lines.append)
    cells = [s for s in steps if s.kind == "cell"]
    assert len(cells) == 2 * 2 * len(PAPER_CONDITIONS) and not any(s.kind == "history" for s in steps)
    text = "\n".join(lines)
    for s in cells:
        block = text.split(f"cell {s.id} ")[1].split("\n## ")[0]
        job, trains, evaluates = block.splitlines()[1:4]
        assert job.startswith("mirage study --preset paper") and f"condition={s.cell.condition}" in job
        assert "-m verl.trainer.main_ppo" in trains and f"actor_rollout_ref.model.path={s.cell.model}" in trains
        assert f"algorithm.adv_estimator={ESTIMATORS[CONDITIONS[s.cell.condition].estimator].verl_name}" in trains
        assert f"trainer.default_local_dir={s.dir}/checkpoints" in trains
        assert evaluates.startswith("#   evaluates: mirage eval --backend vllm") and "--n 256" in evaluates
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_a_step_dies_with_its_runner_even_on_kill_9_of_the_runner_alone(tmp_path):
    import os
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    runner = (f"from pathlib import Path; from mirage import study; "
              f"study.run_steps([study.Step('s', 'cell', Path({str(tmp_path / 's')!r}), "
              f"[{sys.executable!r}, '-c', {child!r}], {{}})])")
    proc = subprocess.Popen([sys.executable, "-c", runner], start_new_session=True)
    t0 = time.time()
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() - t0 < 60 and proc.poll() is None
        time.sleep(0.1)
    pid = int(pid_file.read_text())
    os.kill(proc.pid, signal.SIGKILL)  # the runner only, not its process group
    proc.wait()
    if wait_for_exit([pid], timeout=10):
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the step outlived its runner")


def test_a_copied_study_directory_is_still_finished_where_it_was(tmp_path):
    """Results moved from a cluster to a laptop: the analysis can rerun there without retraining."""
    import shutil

    preset = study.PRESETS["testbed-ci"]
    here = tmp_path / "cluster" / "study"
    cell = next(s for s in study.plan(preset, here) if s.kind == "cell")
    cell.dir.mkdir(parents=True)
    cell.record_path.write_text(json.dumps({"status": "finished", "params": cell.params}))
    assert cell.finished
    there = tmp_path / "laptop" / "study"
    shutil.copytree(here, there)
    moved = next(s for s in study.plan(preset, there) if s.id == cell.id)
    assert moved.params["run_dir"].startswith(str(there.resolve())) and moved.finished
    # a path outside the study directory, or any other value, still has to match
    moved.params["eval"] = {**moved.params["eval"], "n": moved.params["eval"]["n"] + 1}
    assert not moved.finished
