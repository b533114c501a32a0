"""The local GRPO engine: every condition runs, rewards really change, determinism, resume.

Runs are tiny (4 prompts x 4 samples, 2-3 steps) on a shipped testbed model, so
every check below looks at real rollouts of a real model.
"""

import argparse
import collections
import json

import numpy as np
import pytest

from mirage import runs
from mirage.conditions import CONDITIONS
from mirage.data.rows import load_rows
from mirage.runs import RunConfig

MODEL = "dial-60"  # shipped testbed model: solves toy-math about half the time (mixed groups)
TINY = dict(total_steps=2, train_batch_size=4, rollout_n=4, ppo_mini_batch_size=4, max_response_length=40,
            val_freq=2, save_freq=1, lr=1e-4, max_num_gen_batches=2)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from mirage.tasks.toy import ensure_dataset

    root = tmp_path_factory.mktemp("data")
    ensure_dataset("toy-math_train", root, n=64)
    ensure_dataset("toy-math_test", root, n=16)
    return root


def _config(run_dir, condition, data_root, seed=0, **kw):
    overrides = {**TINY, **kw.pop("overrides", {})}
    if kw.get("history_run") is not None:
        kw["history_run"] = str(kw["history_run"])
    return RunConfig(MODEL, "toy-math", condition, seed=seed, run_dir=str(run_dir), overrides=overrides,
                     data_root=str(data_root), progress=False, dump_rollouts=True, val_problems=8, **kw)


def _train(run_dir, condition, data_root, seed=0, **kw):
    from mirage.train import loop

    return loop.train(_config(run_dir, condition, data_root, seed, **kw))


def _metrics(run_dir, timing=False):
    """{step: metrics} with the later attempt winning; wall-clock timings left out unless asked for."""
    out = {}
    for path in sorted((run_dir / "logs").glob("metrics-*.jsonl")):
        for rec in runs.read_jsonl(path):
            out[rec["step"]] = {k: v for k, v in rec["data"].items() if timing or not k.startswith("timing_s/")}
    return out


def _dump(run_dir, step=1):
    return runs.read_jsonl(run_dir / "rollouts" / f"{step}.jsonl")


@pytest.fixture(scope="module")
def gt_run(tmp_path_factory, data_root):
    return _train(tmp_path_factory.mktemp("runs") / "ground_truth" / "seed0", "ground_truth", data_root)


@pytest.fixture(scope="module")
def condition_runs(tmp_path_factory, data_root, gt_run):
    root = tmp_path_factory.mktemp("runs")
    out = {"ground_truth": gt_run}
    for name in CONDITIONS:
        if name != "ground_truth":
            out[name] = _train(root / name / "seed0", name, data_root, history_run=gt_run)
    return out


def _groups(recs):
    groups = collections.defaultdict(list)
    for r in recs:
        groups[(r["rid"] // 16, r["group"])].append(r)  # (generation batch, group)
    return groups.values()


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_every_condition_runs_and_logs_verl_schema(condition_runs, name):
    import torch

    run_dir = condition_runs[name]
    manifest = runs.read_manifest(run_dir)
    assert manifest["status"] == "finished" and manifest["condition"] == name
    assert manifest["condition_spec"]["estimator"] == CONDITIONS[name].estimator
    assert manifest["threads"] == 1 and manifest["versions"]["torch"] == torch.__version__
    metrics = _metrics(run_dir, timing=True)
    assert sorted(metrics) == [0, 1, 2]
    val = runs.VAL_ACC.format(data_source="toy-math", n=1)
    assert set(metrics[0]) == {val} and val in metrics[2]
    for step in (1, 2):
        assert set(runs.METRICS) <= set(metrics[step]), set(runs.METRICS) - set(metrics[step])
        assert all(np.isfinite(v) for k, v in metrics[step].items() if k != "actor/entropy")
    assert [s for s, _ in runs.list_checkpoints(run_dir)] == [1, 2]
    assert (runs.list_checkpoints(run_dir)[-1][1] / "model.safetensors").exists()
    frame = runs.load_metrics(run_dir)  # the analysis code reads it like a verl run
    assert set(frame["condition"]) == {name} and (frame["metric"] == "critic/score/mean").any()


def test_pg_loss_uses_the_token_mean_of_the_kept_responses(condition_runs):
    """One mini-batch per step: the ratio is 1, so pg_loss = -sum(adv * tokens) / tokens of the kept responses.

    This proves which responses enter the normaliser: +-1 estimators drop the
    unselected ones (NSR's loss is exactly +1), masked ones keep them (zero advantage).
    """
    checked = 0
    for name, run_dir in condition_runs.items():
        metrics = _metrics(run_dir)
        for step in (1, 2):
            used = [r for r in _dump(run_dir, step) if r["used"]]
            if not used:
                continue
            want = -sum(r["advantage"] * r["length"] for r in used) / sum(r["length"] for r in used)
            assert metrics[step]["actor/pg_loss"] == pytest.approx(want, rel=1e-4, abs=1e-6), (name, step)
            checked += 1
            if name == "nsr_pm1":
                assert metrics[step]["actor/pg_loss"] == pytest.approx(1.0, abs=1e-5)
            if name == "psr_pm1":
                assert metrics[step]["actor/pg_loss"] == pytest.approx(-1.0, abs=1e-5)
    assert checked >= 20


def test_reward_variants_change_the_rewards_seen(condition_runs):
    gt = _dump(condition_runs["ground_truth"])
    for r in gt:
        assert r["score"] == r["format"] * r["acc"]
    for name in ("random", "incorrect", "format", "entropy_min", "majority_vote", "nsr", "nsr_pm1"):
        assert [r["text"] for r in _dump(condition_runs[name])][:16] == [r["text"] for r in gt][:16], name
    by_rid = {r["rid"]: r for r in gt}
    shared = lambda name: [(r, by_rid[r["rid"]]) for r in _dump(condition_runs[name]) if r["rid"] in by_rid]  # noqa

    random = shared("random")
    assert all(r["score"] in (0.0, 1.0) and r["score"] <= r["format"] for r, _ in random)
    assert any(r["score"] != g["score"] for r, g in random)  # a coin, not the answer
    assert all(r["score"] == g["format"] - g["score"] for r, g in shared("incorrect"))  # incorrect = format - gt
    fmt = shared("format")
    assert all(r["score"] == r["format"] for r, _ in fmt)
    assert any(r["score"] == 1 and r["acc"] == 0 for r, _ in fmt)  # a wrong answer still earns the reward
    for r, _ in shared("entropy_min"):
        assert r["score"] == pytest.approx(r["mean_logprob"], abs=1e-5) and r["score"] < 0
    agreeing = 0
    for step in (1, 2):
        for group in _groups(_dump(condition_runs["majority_vote"], step)):
            votes = collections.Counter(r["pred"] for r in group if r["format"] and r["pred"] is not None)
            if not votes:
                assert all(r["score"] == 0 for r in group)
                continue
            top = votes.most_common(1)[0][1]
            winners = {r["pred"] for r in group if r["score"] == 1}
            # exactly one answer wins, one of the most frequent (a tie is broken deterministically)
            assert len(winners) == 1 and votes[next(iter(winners))] == top
            for r in group:
                assert r["score"] == float(bool(r["format"]) and r["pred"] in winners)
                agreeing += r["score"] == 1
    assert agreeing > 0


def test_advantages_of_the_estimators(condition_runs):
    for name in ("nsr", "psr", "nsr_pm1", "psr_pm1", "w_reinforce"):
        for step in (1, 2):
            groups = list(_groups(_dump(condition_runs[name], step)))
            # dynamic sampling trains on the first train_batch_size (4) groups whose scores vary
            trained = [g for g in groups if len({r["score"] for r in g}) > 1][:4]
            for group in groups:
                varied = any(group is g for g in trained)
                for r in group:
                    correct = r["score"] > 0
                    if name == "nsr_pm1":
                        assert r["used"] == (varied and not correct)
                        assert r["advantage"] == (-1.0 if r["used"] else None)
                    elif name == "psr_pm1":
                        assert r["used"] == (varied and correct)
                        assert r["advantage"] == (1.0 if r["used"] else None)
                    elif name == "w_reinforce":
                        assert r["used"] == varied
                        if varied:
                            assert r["advantage"] == pytest.approx(0.1 if correct else -1.0)
                    else:  # masked: all responses of kept groups stay, the masked ones at 0
                        assert r["used"] == varied
                        masked = correct if name == "nsr" else not correct
                        if varied:
                            assert (r["advantage"] == 0) == masked
        kept = _metrics(condition_runs[name])[1]["train/kept_responses"]
        assert (kept < 1) if name.endswith("pm1") else (kept == 1)


def test_nothing_to_train_on_is_a_step_without_update(tmp_path, data_root):
    # 3 tokens cannot hold an answer: every response is wrong, so +-1 PSR selects none
    run_dir = _train(tmp_path / "none", "psr_pm1", data_root,
                     overrides=dict(dynamic_sampling=False, max_response_length=3, total_steps=1, val_freq=0))
    metrics = _metrics(run_dir)[1]
    assert runs.read_manifest(run_dir)["status"] == "finished"
    assert metrics["train/acc/mean"] == 0 and metrics["train/kept_responses"] == 0
    assert metrics["actor/grad_norm"] == 0 and metrics["actor/pg_loss"] == 0
    assert not any(r["used"] for r in _dump(run_dir))


def test_dynamic_sampling_keeps_varied_groups_and_draws_more(condition_runs):
    more = 0
    for step in (1, 2):
        recs = _dump(condition_runs["ground_truth"], step)
        groups = list(_groups(recs))
        varied = [g for g in groups if len({r["score"] for r in g}) > 1]
        metrics = _metrics(condition_runs["ground_truth"])[step]
        assert metrics["train/kept_groups"] == min(4, len(varied))
        assert metrics["train/num_gen_batches"] == len(groups) // 4 <= 2
        more += metrics["train/num_gen_batches"] > 1
        assert metrics["train/acc/mean"] == pytest.approx(np.mean([r["acc"] for r in recs]))
        trained = [g for g in groups if len({r["score"] for r in g}) > 1][:4]
        for g in groups:
            assert all(r["used"] for r in g) if any(g is t for t in trained) else not any(r["used"] for r in g)
    assert more > 0  # the model solves some prompts every time: dynamic sampling had to draw again


def test_one_shot_duplicates_one_example(condition_runs, gt_run, data_root):
    from mirage.train import loop

    history = loop.accuracy_history(gt_run)
    records = runs.read_jsonl(gt_run / "logs" / "example_acc.jsonl")
    assert len(records) == sum(int(m["train/num_gen_batches"]) * 4 for s, m in _metrics(gt_run).items() if s)
    assert set(history) == {str(r["index"]) for r in records}
    for name in ("one_shot", "one_shot_random"):
        chosen = runs.read_manifest(condition_runs[name])["one_shot"]
        for step in (1, 2):
            assert {str(r["index"]) for r in _dump(condition_runs[name], step)} == {chosen["index"]}
    selected = runs.read_manifest(condition_runs["one_shot"])["one_shot"]
    assert selected["index"] in history and "historical variance" in selected["criterion"]
    from mirage.data.one_shot import select_random

    rows = load_rows("toy-math_train", data_root)
    assert runs.read_manifest(condition_runs["one_shot_random"])["one_shot"]["index"] == select_random(
        [r["extra_info"]["index"] for r in rows], 0)


def test_accuracy_history_per_epoch_and_per_sample(tmp_path):
    from mirage.train import loop

    logs = tmp_path / "logs"
    runs.append_jsonl(logs / "example_acc.jsonl", [
        {"step": 1, "epoch": 0, "index": 3, "acc": 0.25, "n": 4}, {"step": 5, "epoch": 1, "index": 3, "acc": 1.0, "n": 4},
        {"step": 1, "epoch": 0, "index": 7, "acc": 0.5, "n": 4}])
    assert loop.accuracy_history(tmp_path) == {"3": [0.25, 1.0], "7": [0.5]}
    assert loop.accuracy_history(tmp_path, per="sample")["7"] == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(FileNotFoundError, match="example_acc"):
        loop.accuracy_history(tmp_path / "nothing")


def test_same_seed_same_metrics_and_resume_matches(tmp_path, data_root):
    from mirage.train import loop

    steps = dict(total_steps=3, ppo_mini_batch_size=2, save_freq=2)  # two PPO mini-batches per step
    a = _train(tmp_path / "a", "ground_truth", data_root, seed=1, overrides=steps)
    b = _train(tmp_path / "b", "ground_truth", data_root, seed=1, overrides=steps)
    assert _metrics(a) == _metrics(b)
    c = _train(tmp_path / "c", "ground_truth", data_root, seed=2, overrides=steps)
    assert _metrics(c)[1] != _metrics(a)[1]
    # interrupted after 2 steps (checkpoint at 2), then rerun: continues at step 3
    d = _train(tmp_path / "d", "ground_truth", data_root, seed=1, overrides=steps, stop_after=2)
    assert runs.read_manifest(d)["status"] == "stopped" and sorted(_metrics(d)) == [0, 1, 2]
    _train(tmp_path / "d", "ground_truth", data_root, seed=1, overrides=steps)
    manifest = runs.read_manifest(d)
    assert manifest["status"] == "finished" and [a["resumed_from_step"] for a in manifest["attempts"]] == [0, 2]
    assert [a["status"] for a in manifest["attempts"]] == ["stopped", "finished"]
    assert _metrics(d) == _metrics(a)
    assert len(list((d / "logs").glob("metrics-*.jsonl"))) == 2
    # the history of the resumed run has no duplicated step
    recs = runs.read_jsonl(d / "logs" / "example_acc.jsonl")
    assert recs == runs.read_jsonl(a / "logs" / "example_acc.jsonl")
    # only the latest checkpoint keeps its optimizer state; every one keeps its weights
    assert [s for s, _ in runs.list_checkpoints(d)] == [2, 3]
    assert [(hf.parent / loop.TRAINER_STATE).exists() for _, hf in runs.list_checkpoints(d)] == [False, True]
    # a finished run is not rerun
    before = (d / "manifest.json").read_text()
    _train(tmp_path / "d", "ground_truth", data_root, seed=1, overrides=steps)
    assert (d / "manifest.json").read_text() == before


def test_resume_after_a_kill(tmp_path, data_root):
    """SIGKILL a training process mid-run; the rerun finishes with the metrics of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    steps = dict(total_steps=5, save_freq=1)
    code = (f"from mirage.runs import RunConfig; from mirage.train import loop; loop.train(RunConfig({MODEL!r}, "
            f"'toy-math', 'ground_truth', seed=3, run_dir={str(tmp_path / 'killed')!r}, "
            f"overrides={ {**TINY, **steps}!r}, data_root={str(data_root)!r}, progress=False, dump_rollouts=True, "
            "val_problems=8))")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "MIRAGE_TORCH_THREADS": "1"})
    deadline = time.time() + 300
    while not (tmp_path / "killed" / "checkpoints" / "global_step_2").exists():
        assert proc.poll() is None and time.time() < deadline, "training process ended or stalled before step 2"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert runs.read_manifest(tmp_path / "killed")["status"] == "running"  # killed: nothing could record it
    resumed = _train(tmp_path / "killed", "ground_truth", data_root, seed=3, overrides=steps)
    reference = _train(tmp_path / "whole", "ground_truth", data_root, seed=3, overrides=steps)
    assert runs.read_manifest(resumed)["status"] == "finished"
    assert runs.read_manifest(resumed)["attempts"][-1]["resumed_from_step"] >= 2
    assert _metrics(resumed) == _metrics(reference)
    assert not list((resumed / "checkpoints").glob(".tmp_*"))
    # no log line twice: each step is in exactly one attempt's file, the per-example records match
    steps_logged = [rec["step"] for p in sorted((resumed / "logs").glob("metrics-*.jsonl")) for rec in runs.read_jsonl(p)]
    assert sorted(steps_logged) == sorted(set(steps_logged)) == [0, 1, 2, 3, 4, 5]
    assert runs.read_jsonl(resumed / "logs" / "example_acc.jsonl") == runs.read_jsonl(reference / "logs" /
                                                                                      "example_acc.jsonl")


def test_run_dir_of_another_run_is_refused(gt_run, data_root):
    with pytest.raises(ValueError, match="different run"):
        _train(gt_run, "random", data_root)


def test_bad_recipe_overrides_are_clear_errors(tmp_path, data_root):
    with pytest.raises(KeyError, match="unknown recipe key 'total_step'"):
        _train(tmp_path / "x", "ground_truth", data_root, overrides={"total_step": 3})
    with pytest.raises(ValueError, match="train_batch_size.*expected int"):
        _config(tmp_path / "x", "ground_truth", data_root, overrides={"train_batch_size": "many"}).resolved()
    with pytest.raises(ValueError, match="total_steps.*>= 1"):
        _config(tmp_path / "x", "ground_truth", data_root, overrides={"total_steps": "0"}).resolved()
    with pytest.raises(ValueError, match="reference model"):
        _train(tmp_path / "x", "ground_truth", data_root, overrides={"use_kl_loss": "true"})
    with pytest.raises(ValueError, match="seed"):
        _config(tmp_path / "x", "ground_truth", data_root, seed=-1).resolved()
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_bad_dataset_rows_name_the_file_and_row(tmp_path):
    from mirage.train import loop

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mirage.tasks import dataset_path

    path = dataset_path("broken", tmp_path)
    path.parent.mkdir(parents=True)
    good = {"data_source": "toy-math", "prompt": [{"role": "user", "content": "1+1"}],
            "reward_model": {"style": "rule", "ground_truth": "2"}, "extra_info": {"index": 0}}
    pq.write_table(pa.Table.from_pylist([good, {**good, "reward_model": {"style": "rule"}}]), path)
    with pytest.raises(ValueError, match=r"broken.parquet row 1: reward_model has no 'ground_truth'"):
        load_rows("broken", tmp_path)
    pq.write_table(pa.Table.from_pylist([good, {**good, "prompt": [{"role": "user"}]}]), path)
    with pytest.raises(ValueError, match=r"broken.parquet row 1: prompt message 0 needs string 'role' and 'content'"):
        load_rows("broken", tmp_path)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_rows("missing", tmp_path)
    with pytest.raises(ValueError, match="makes? no batch"):
        loop.PromptStream(3, 4, seed=0, name="tiny set")


def test_cli_main(tmp_path, data_root):
    from mirage.train import cli

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    run_dir = tmp_path / "cli"
    args = parser.parse_args(["--model", MODEL, "--task", "toy-math", "--condition", "format", "--run-dir",
                              str(run_dir), "--data-root", str(data_root), "--set", "total_steps=1",
                              "--set", "train_batch_size=4", "--set", "rollout_n=2", "--set", "val_freq=0",
                              "--set", "max_response_length=32"])
    assert args.func(args) == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["recipe"]["rollout_n"] == 2
    assert [s for s, _ in runs.list_checkpoints(run_dir)] == [1]


def test_cli_dry_run_and_verl_only_flags(tmp_path, capsys):
    from mirage.train import cli

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    base = ["--model", MODEL, "--task", "toy-math", "--condition", "nsr", "--run-dir", str(tmp_path / "r")]
    args = parser.parse_args(base + ["--dry-run", "--set", "lr=3e-5"])
    assert args.func(args) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["recipe"]["lr"] == 3e-5 and plan["condition"]["estimator"] == "masked_nsr"
    assert not (tmp_path / "r").exists()
    args = parser.parse_args(base + ["--nnodes", "2"])
    with pytest.raises(ValueError, match="--nnodes only apply to --backend verl"):
        args.func(args)


@pytest.mark.parametrize("micro_batch_size", [None, 3])
def test_old_logprobs_are_the_policy_before_any_update(monkeypatch, micro_batch_size):
    """Every mini-batch, micro-batch and epoch is given the log-probs of the policy as it was
    before the first optimizer step (the first mini-batch takes them from its own forward)."""
    import torch

    from mirage.train import engine

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mirage.conditions import get_condition
    from mirage.models import resolve_model
    from mirage.recipes import TESTBED_RECIPE
    from mirage.tasks.toy import problems_frame

    path = resolve_model(MODEL)
    policy = engine.Policy(AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path))
    recipe = TESTBED_RECIPE.replace(train_batch_size=4, rollout_n=4, ppo_mini_batch_size=2, ppo_epochs=2,
                                    max_response_length=16, lr=1e-2)
    rows = problems_frame("toy-math", "train", 4, seed=0).to_dict("records")
    batch = engine.rollout(policy, rows, get_condition("ground_truth"), recipe, 0, 1, "t", False)
    with torch.no_grad():
        before, _ = engine.response_logprobs(policy.model, batch, torch.arange(16), 1.0, policy.pad_token_id)
    seen, policy_loss = [], engine.policy_loss

    def spy(old, logp, *args, **kw):
        seen.append((old.clone(), logp.detach().clone()))
        return policy_loss(old, logp, *args, **kw)

    monkeypatch.setattr(engine, "policy_loss", spy)
    advantages = torch.randn(16, batch.responses.shape[1])
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=recipe.lr)
    engine.update_policy(policy.model, optimizer, batch, advantages, recipe, policy.pad_token_id, micro_batch_size)
    per_epoch = 2 * (1 if micro_batch_size is None else 3)  # 2 mini-batches of 8 responses
    assert len(seen) == 2 * per_epoch
    order = [mb[m] for _ in range(2) for mb in engine._chunks(16, 8) for m in engine._chunks(8, micro_batch_size or 8)]
    for (old, logp), rows in zip(seen, order):
        width = old.shape[1]
        torch.testing.assert_close(old, before[rows, :width], rtol=0, atol=1e-5)
    # the policy did move: later forwards differ from the old log-probs
    assert max(float((logp - old).abs().max()) for old, logp in seen[per_epoch // 2:]) > 1e-3


# --- the run folder: one writer, settings kept, damage named -------------------------------
def test_finished_run_with_other_settings_is_refused_and_restart_starts_over(tmp_path, data_root):
    steps = dict(total_steps=1, val_freq=0)
    run_dir = _train(tmp_path / "r", "ground_truth", data_root, overrides=steps)
    with pytest.raises(ValueError, match=r"other settings.*'lr'"):
        _train(tmp_path / "r", "ground_truth", data_root, overrides={**steps, "lr": 3e-4})
    assert runs.read_manifest(run_dir)["recipe"]["lr"] == TINY["lr"]  # untouched
    _train(tmp_path / "r", "ground_truth", data_root, overrides={**steps, "lr": 3e-4}, restart=True)
    manifest = runs.read_manifest(run_dir)
    assert manifest["status"] == "finished" and manifest["recipe"]["lr"] == 3e-4 and len(manifest["attempts"]) == 1


def test_a_second_writer_is_refused_at_once(tmp_path, data_root):
    run_dir = tmp_path / "busy"
    with runs.FolderLock(run_dir, "training run"):
        with pytest.raises(runs.FolderBusy, match=r"busy.*being written by pid \d+"):
            _train(run_dir, "ground_truth", data_root)
    assert not (run_dir / "manifest.json").exists()


def test_damaged_checkpoints_are_errors_naming_them(tmp_path, data_root):
    from mirage.train import loop

    steps = dict(total_steps=2, save_freq=1, val_freq=0)
    run_dir = _train(tmp_path / "r", "ground_truth", data_root, overrides=steps, stop_after=1)
    state = run_dir / "checkpoints" / "global_step_1" / "actor" / loop.TRAINER_STATE
    state.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"global_step_1/actor/trainer_state.pt: unreadable"):
        _train(run_dir, "ground_truth", data_root, overrides=steps)
    state.unlink()  # weights without optimizer state: not resumable, and not silently restarted from 0
    with pytest.raises(ValueError, match="none with loadable weights and optimizer state"):
        _train(run_dir, "ground_truth", data_root, overrides=steps)


def test_switchboard_no_clip_rloo_and_procedure_shares(tmp_path, data_root):
    """The recipe picks the loss and the estimator; more updates per rollout make the ratio move and clip."""
    many = dict(ppo_mini_batch_size=1, ppo_epochs=2, total_steps=2, val_freq=0, lr=3e-4)  # 8 updates per rollout
    clipped = _metrics(_train(tmp_path / "clip", "random", data_root, overrides=many))
    free = _metrics(_train(tmp_path / "free", "random", data_root, overrides={**many, "policy_loss": "no_clip"}))
    rloo = _train(tmp_path / "rloo", "random", data_root, overrides={**many, "estimator_override": "rloo"})
    assert max(m["actor/pg_clipfrac"] for m in clipped.values()) > 0
    for m in clipped.values():
        assert m["actor/pg_clipfrac"] == pytest.approx(m["actor/pg_clipfrac_high"] + m["actor/pg_clipfrac_low"])
    assert all(m["actor/pg_clipfrac"] == 0 and m["actor/abs_log_ratio"] > 0 for m in free.values())
    # RLOO's advantages: each score minus the mean of its group's others (no std normalisation)
    for group in _groups(_dump(rloo)):
        used = [r for r in group if r["used"]]
        for r in used:
            others = [o["score"] for o in group if o is not r]
            assert r["advantage"] == pytest.approx(r["score"] - np.mean(others), abs=1e-6)
    # which procedure each training answer follows (the testbed knows both)
    for m in clipped.values():
        shares = [m[f"train/procedure/{p}"] for p in ("correct", "buggy", "neither")]
        assert sum(shares) == pytest.approx(1.0) and m["train/procedure/correct"] == pytest.approx(m["train/acc/mean"])
