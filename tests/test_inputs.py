"""Bad inputs and bad machines: each is one line naming the flag, file or path, before any work, losing nothing.

Prompts longer than the model's context, datasets read in bounded batches, a full disk (simulated at the
layer that writes files, and through the CLI), symlink loops, a run given by a relative then an absolute
path, the one-shot history run, ``mirage smoke`` without vLLM, ``mirage doctor``'s suggested fixes, an
empty checkpoint folder in an evaluation sweep, and a refused ``train`` that must leave no folder behind.
Runs are tiny (the shipped dial-90 model, 1 step of 2 x 2 samples; evaluations of 3 problems).
"""

from __future__ import annotations

import errno
import json
import re
import shutil
from pathlib import Path

import pytest

from mirage import runs
from mirage.cli import main
from mirage.tasks import toy

MODEL = "dial-90"  # shipped testbed model, 160 positions
TINY = ["--set", "total_steps=1", "--set", "train_batch_size=2", "--set", "rollout_n=2", "--set",
        "ppo_mini_batch_size=2", "--set", "max_response_length=8", "--set", "val_freq=0", "--set", "save_freq=1"]
ENOSPC = OSError(errno.ENOSPC, "No space left on device")
TORCH_FULL = RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0; "
                          "PytorchStreamWriter failed writing file data/0: file write failed")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from mirage.tasks.toy import ensure_dataset

    root = tmp_path_factory.mktemp("data")
    ensure_dataset("toy-math_train", root, n=16)
    ensure_dataset("toy-math_test", root, n=4)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ds") / "three.parquet"
    toy.problems_frame("toy-math", "test", 3, seed=5).to_parquet(path)
    return path


def one_line_error(capsys, code: int) -> str:
    """The error line (a progress bar may precede it on stderr: it is not an error line)."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = [line for line in err.splitlines() if not re.search(r"\d+/\d+ \[", line)]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("mirage "), err
    return lines[0]


def train(tmp_path, data_root, *args: str) -> int:
    return main(["train", "--model", MODEL, "--task", "toy-math", "--data-root", str(data_root), *TINY, *args])


# --- 1. prompts longer than the context; datasets read in batches ------------------------------------------
def test_eval_refuses_a_prompt_longer_than_the_model_context(dataset, tmp_path, capsys):
    import pandas as pd

    frame = pd.read_parquet(dataset)
    frame.at[1, "prompt"] = [{"role": "user", "content": "1+2*3=? " * 100}]  # 800 characters > 160 positions
    path = tmp_path / "long.parquet"
    frame.to_parquet(path)
    out = tmp_path / "eval"
    code = main(["eval", "--model", MODEL, "--task", str(path), "--n", "1", "--max-tokens", "4", "--out", str(out),
                 "--no-progress"])
    err = one_line_error(capsys, code)
    assert str(path) in err and "problem '1'" in err and "160 positions" in err, err
    assert not out.exists()  # refused before anything was written


def test_datasets_are_read_in_bounded_batches(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from mirage.data import rows as rows_mod

    frame = toy.problems_frame("toy-math", "test", 10, seed=1)
    frame["blob"] = ["x" * 1000] * 10  # a column no reader needs: never read
    path = tmp_path / "ten.parquet"
    frame.to_parquet(path)
    batches = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        assert "blob" not in kwargs.get("columns", ["blob"])
        for batch in original(self, *args, **kwargs):
            batches.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: pytest.fail("the whole table was read at once"))
    monkeypatch.setattr(rows_mod, "BATCH_ROWS", 3)
    rows = rows_mod.load_rows(path, unique_ids=True)
    assert batches == [3, 3, 3, 1]
    assert [r["problem_id"] for r in rows] == [str(i) for i in frame["extra_info"].map(lambda e: e["index"])]
    assert "blob" not in rows[0]
    bad = frame.copy()
    bad.at[7, "reward_model"] = {"style": "rule"}  # the row number still counts across batches
    bad.to_parquet(path)
    with pytest.raises(ValueError, match=r"row 7: reward_model has no 'ground_truth'"):
        rows_mod.load_rows(path)


# --- 2. a full disk -----------------------------------------------------------------------------------------
def test_atomic_file_on_a_full_disk_names_the_path_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "sub" / "table.json"
    runs.write_json_atomic(target, {"old": 1})
    with pytest.raises(runs.DiskFull, match=r"table\.json: no space left on the device \(.* free there\)"):
        with runs.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ENOSPC
    assert json.loads(target.read_text()) == {"old": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.json"]  # no temporary file left


def test_parquet_and_jsonl_on_a_full_disk(tmp_path, monkeypatch):
    import pandas as pd

    def full(self, path, *a, **k):
        Path(path).write_bytes(b"PAR1 half")
        raise OSError("[errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(runs.DiskFull, match=r"part-000000\.parquet: no space left"):
        runs.write_parquet_atomic(tmp_path / "part-000000.parquet", pd.DataFrame({"a": [1]}))
    assert list(tmp_path.iterdir()) == []

    def no_space(*a, **k):
        raise ENOSPC

    monkeypatch.setattr("os.fsync", no_space)
    with pytest.raises(runs.DiskFull, match=r"metrics-000\.jsonl: no space left"):
        runs.append_jsonl(tmp_path / "metrics-000.jsonl", [{"step": 1}])


def test_checkpoint_folder_on_a_full_disk_keeps_the_old_one(tmp_path, monkeypatch):
    import torch

    final = tmp_path / "global_step_2"
    with runs.atomic_dir(final) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("old")
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(TORCH_FULL))
    with pytest.raises(runs.DiskFull, match=r"global_step_2: no space left on the device"):
        with runs.atomic_dir(final) as tmp:
            tmp.mkdir(parents=True)
            (tmp / "weights").write_text("new, half")
            torch.save({}, tmp / "state.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["global_step_2"]
    assert (final / "weights").read_text() == "old"


def test_train_on_a_full_disk_is_one_line_and_a_rerun_is_identical(tmp_path, data_root, monkeypatch, capsys):
    import torch

    clean = tmp_path / "clean"
    assert train(tmp_path, data_root, "--condition", "ground_truth", "--run-dir", str(clean)) == 0
    full = tmp_path / "full"
    with monkeypatch.context() as m:
        m.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(TORCH_FULL))
        capsys.readouterr()
        err = one_line_error(capsys, train(tmp_path, data_root, "--condition", "ground_truth",
                                           "--run-dir", str(full)))
    assert "global_step_1: no space left on the device" in err and "free there" in err, err
    assert not (full / "checkpoints" / "global_step_1").exists()
    assert not list((full / "checkpoints").glob(".global_step_1.*"))  # nothing half-written left behind
    assert train(tmp_path, data_root, "--condition", "ground_truth", "--run-dir", str(full)) == 0  # space freed
    weights = "checkpoints/global_step_1/actor/huggingface/model.safetensors"
    assert (full / weights).read_bytes() == (clean / weights).read_bytes()


def test_eval_on_a_full_disk_is_one_line(dataset, tmp_path, monkeypatch, capsys):
    import pandas as pd

    def full(self, path, *a, **k):
        raise OSError("[errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    out = tmp_path / "eval"
    code = main(["eval", "--model", MODEL, "--task", str(dataset), "--n", "1", "--max-tokens", "4", "--out", str(out),
                 "--threads", "1", "--no-progress"])
    err = one_line_error(capsys, code)
    assert re.search(r"samples/three/part-000000\.parquet: no space left on the device \(.* free there\)", err), err
    assert not list(out.rglob("*.parquet")) and not list(out.rglob("*.tmp"))


# --- 3. symlink loops -----------------------------------------------------------------------------------------
def test_a_symlink_loop_is_one_line_naming_it(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    err = one_line_error(capsys, train(tmp_path, data_root, "--condition", "ground_truth", "--run-dir", "loop"))
    assert "loop" in err and "symlink loop" in err, err
    err = one_line_error(capsys, main(["eval", "--run-dir", "loop", "--n", "1"]))
    assert "loop" in err and "symlink loop" in err, err
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").symlink_to("manifest.json")
    with pytest.raises(ValueError, match=r"run/manifest\.json: a symlink loop"):
        runs.read_manifest(run)
    inside = tmp_path / "inside"
    (inside / "checkpoints").mkdir(parents=True)
    (inside / "checkpoints" / "global_step_3").symlink_to("global_step_3")
    runs.update_manifest(inside, model=MODEL, task="toy-math", condition="ground_truth", seed=0)
    err = one_line_error(capsys, main(["eval", "--run-dir", str(inside), "--n", "1"]))
    assert "checkpoints/global_step_3: a symlink loop" in err, err


# --- 4. one run, named relative then absolute -----------------------------------------------------------------
def test_a_run_named_relative_then_absolute_is_the_same_run(dataset, tmp_path, monkeypatch):
    import pandas as pd

    from mirage import evaluate as ev

    from mirage.models import resolve_model

    run = tmp_path / "run"
    shutil.copytree(resolve_model(MODEL), run / "checkpoints" / "global_step_1" / "actor" / "huggingface")
    runs.update_manifest(run, model=MODEL, task=str(dataset), condition="ground_truth", seed=0)
    kw = dict(task=str(dataset), max_tokens=4, score_processes=0, progress=False, include_base=False)
    monkeypatch.chdir(tmp_path)
    first = ev.evaluate_run("run", 1, **kw)
    monkeypatch.setattr(ev.core, "make_sampler", lambda *a, **k: pytest.fail("the finished step was sampled again"))
    again = ev.evaluate_run(run.resolve(), 1, **kw)
    pd.testing.assert_frame_equal(again.drop(columns="eval_dir"), first.drop(columns="eval_dir"))


# --- 5. the one-shot history run; 9. a refused train leaves nothing --------------------------------------------
def test_one_shot_names_its_history_run_and_a_refusal_leaves_no_folder(tmp_path, data_root, capsys):
    run = tmp_path / "new" / "deeper" / "one_shot"
    err = one_line_error(capsys, train(tmp_path, data_root, "--condition", "one_shot", "--run-dir", str(run)))
    assert "--history-run" in err and "example_acc.jsonl" in err, err
    assert not (tmp_path / "new").exists()  # no empty run folder with a lock left behind
    missing = tmp_path / "no-such-run"
    err = one_line_error(capsys, train(tmp_path, data_root, "--condition", "one_shot", "--run-dir", str(run),
                                       "--history-run", str(missing)))
    assert f"{missing}/logs/example_acc.jsonl" in err and "--history-run" in err, err
    assert not (tmp_path / "new").exists()
    history = tmp_path / "history"
    assert train(tmp_path, data_root, "--condition", "ground_truth", "--run-dir", str(history)) == 0
    assert train(tmp_path, data_root, "--condition", "one_shot", "--run-dir", str(run),
                 "--history-run", str(history)) == 0
    choice = runs.read_manifest(run)["one_shot"]
    assert choice["history_run"] == str(history) and choice["criterion"].startswith("historical variance")


def test_a_refused_train_into_an_existing_folder_keeps_it(tmp_path, data_root, capsys):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "notes.txt").write_text("keep me")
    one_line_error(capsys, train(tmp_path, data_root, "--condition", "one_shot", "--run-dir", str(run)))
    assert (run / "notes.txt").read_text() == "keep me"


# --- 6. smoke without vLLM ------------------------------------------------------------------------------------
def test_smoke_without_vllm_says_how_to_install(tmp_path, monkeypatch, capsys):
    import importlib.util

    from mirage import smoke

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    monkeypatch.setattr(smoke, "build_model", lambda *a, **k: pytest.fail("work started before the check"))
    err = one_line_error(capsys, main(["smoke", "--out", str(tmp_path / "smoke")]))
    assert "vllm" in err and 'pip install -e ".[gpu]"' in err, err


# --- 7. doctor's fixes are valid -------------------------------------------------------------------------------
def _alternatives(fix: str) -> list[dict]:
    """The recipe overrides of each alternative a fix offers ("A, or B"), the flags of one applied together."""
    out = []
    for text in fix.split(", or "):
        overrides = dict(re.findall(r"--set (\w+)=(\S+)", text))
        cap = re.search(r"--max-model-len (\d+)", text)
        if cap:
            overrides["max_model_len"] = cap.group(1)
        out.append(overrides)
    return out


@pytest.mark.parametrize("recipe_overrides", [{}, {"max_prompt_length": 100}, {"max_prompt_length": 150},
                                              {"max_model_len": 4096}, {"max_model_len": 4096,
                                                                        "max_prompt_length": 100}])
def test_every_fix_doctor_suggests_is_a_valid_recipe(recipe_overrides):
    from mirage.doctor import check_context
    from mirage.recipes import PAPER_RECIPE

    recipe = PAPER_RECIPE.with_overrides(recipe_overrides).check()
    findings = [f for f in check_context(MODEL, recipe) if f.fix]
    assert findings and all(f.level == "error" for f in findings)
    for f in findings:
        for alternative in _alternatives(f.fix):
            assert alternative, f.fix
            fixed = PAPER_RECIPE.with_overrides({**recipe_overrides, **alternative}).check()
            assert not [g for g in check_context(MODEL, fixed) if g.level == "error"], (f.fix, alternative)


# --- 8. an empty checkpoint folder is named ----------------------------------------------------------------
def test_a_sweep_names_an_empty_checkpoint_folder(dataset, tmp_path, monkeypatch):
    from mirage import evaluate as ev

    from mirage.models import resolve_model

    run = tmp_path / "run"
    shutil.copytree(resolve_model(MODEL), run / "checkpoints" / "global_step_1" / "actor" / "huggingface")
    (run / "checkpoints" / "global_step_2").mkdir()
    runs.update_manifest(run, model=MODEL, task=str(dataset), condition="ground_truth", seed=0)
    monkeypatch.setattr(ev.core, "make_sampler", lambda *a, **k: pytest.fail("sampled before naming the folder"))
    with pytest.raises(FileNotFoundError, match=r"global_step_2: not a checkpoint .*delete it"):
        ev.evaluate_run(run, 1, task=str(dataset), max_tokens=4, progress=False)
    assert not (run / "eval").exists()


def test_a_sweep_names_the_model_merger_for_fsdp_shards_without_hf_weights(dataset, tmp_path, monkeypatch):
    """A checkpoint saved without hf_model (LoRA, another save_contents) holds FSDP shards only: the sweep prints
    the exact merger command instead of skipping it or saying only 'delete it'."""
    from mirage import evaluate as ev

    from mirage.models import resolve_model

    run = tmp_path / "run"
    shutil.copytree(resolve_model(MODEL), run / "checkpoints" / "global_step_1" / "actor" / "huggingface")
    actor = run / "checkpoints" / "global_step_5" / "actor"
    actor.mkdir(parents=True)
    (actor / "model_world_size_8_rank_0.pt").write_bytes(b"")
    runs.update_manifest(run, model=MODEL, task=str(dataset), condition="ground_truth", seed=0)
    monkeypatch.setattr(ev.core, "make_sampler", lambda *a, **k: pytest.fail("sampled before naming the folder"))
    with pytest.raises(FileNotFoundError, match=r"global_step_5: FSDP shards but no HF weights .*-m verl\.model_merger "
                                                r"merge --backend fsdp --local_dir \S+global_step_5/actor "
                                                r"--target_dir \S+global_step_5/actor/huggingface"):
        ev.evaluate_run(run, 1, task=str(dataset), max_tokens=4, progress=False)
