"""reasoning-gym as a task family (rg:<dataset>): names, generated splits, its own scorer, the CLI."""

import json

import pytest

from mirage.rewards import compute_score
from mirage.tasks import get_task
from mirage.tasks import reasoning_gym as rgt


def test_names_parse_and_bad_ones_are_clear_errors():
    task = get_task("rg:basic_arithmetic")
    assert task.kind == "paper" and task.train == "rg-basic_arithmetic_train"
    assert task.evals == ("rg-basic_arithmetic_test",) and task.checkers == ("reasoning_gym",)
    custom = get_task("rg:basic_arithmetic@min_terms=3,max_terms=4,train_size=50")
    assert custom.options["config"] == {"min_terms": 3, "max_terms": 4} and custom.options["train_size"] == 50
    assert custom.train.startswith("rg-basic_arithmetic-") and custom.train != task.train  # its own files
    with pytest.raises(KeyError, match="unknown reasoning-gym dataset 'no_such_generator'"):
        get_task("rg:no_such_generator")
    with pytest.raises(KeyError, match=r"unknown option 'min_term'.*basic_arithmetic's config: min_terms"):
        get_task("rg:basic_arithmetic@min_term=3")
    with pytest.raises(KeyError, match="train_size must be a positive integer"):
        get_task("rg:basic_arithmetic@train_size=0")
    with pytest.raises(KeyError, match="is not KEY=VALUE"):
        get_task("rg:basic_arithmetic@min_terms")
    assert len(rgt.generators()) > 50 and "basic_arithmetic" in rgt.generators()


def test_splits_are_generated_disjoint_and_regenerated_when_the_spec_changes(tmp_path):
    import pandas as pd

    name = "rg:basic_arithmetic@train_size=40,test_size=10,seed=3"
    task = get_task(name)
    train = pd.read_parquet(task.dataset_file(task.train, tmp_path))
    test = pd.read_parquet(task.dataset_file(task.evals[0], tmp_path))
    assert (len(train), len(test)) == (40, 10)
    questions = lambda df: {e["question"] for e in df["extra_info"]}  # noqa: E731
    assert not questions(train) & questions(test)
    assert train["prompt"].iloc[0][0]["content"].startswith("Solve the following problem step by step.")
    path = tmp_path / "verl" / f"{task.train}.parquet"
    meta = path.with_suffix(".meta.json")
    assert json.loads(meta.read_text())["task"] == name
    mtime = path.stat().st_mtime_ns
    task.dataset_file(task.train, tmp_path)  # same spec: reused
    assert path.stat().st_mtime_ns == mtime
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "reasoning_gym": "0.0.0"}))
    task.dataset_file(task.train, tmp_path)  # another reasoning-gym version wrote it: regenerated
    assert path.stat().st_mtime_ns != mtime
    pd.testing.assert_frame_equal(pd.read_parquet(path), train)  # deterministic in the seed


def test_scored_by_reasoning_gyms_own_function_behind_the_worker(tmp_path):
    import pandas as pd

    task = get_task("rg:basic_arithmetic@train_size=20,test_size=5")
    row = pd.read_parquet(task.dataset_file(task.evals[0], tmp_path)).iloc[0]
    gold, info = row["reward_model"]["ground_truth"], row["extra_info"]
    score = lambda text: compute_score(row["data_source"], text, gold, info)  # noqa: E731
    assert score(f"<think>x</think> <answer>{gold}</answer>")["score"] == 1.0
    assert score(f"<think>x</think> <answer> {gold} </answer>")["acc"] == 1.0  # rg's own normalisation
    assert score("<think>x</think> <answer>12345678</answer>")["score"] == 0.0
    assert score("no answer at all")["acc"] == 0.0
    odd = score("<think>x</think> <answer>" + "9" * 5000 + "**99</answer>")
    assert odd["acc"] == 0.0  # adversarial text scores 0, never raises
    tampered = {**info, "question": "something else"}
    out = compute_score(row["data_source"], f"<think>x</think> <answer>{gold}</answer>", gold, tampered)
    assert out["acc"] == 0.0 and "differs from the dataset row" in out["error"]
    with pytest.raises(KeyError, match="lacks extra_info"):
        compute_score(row["data_source"], "<answer>1</answer>", gold, {"index": 0})


def test_eval_cli_on_a_testbed_model(tmp_path, monkeypatch, capsys):
    """`mirage eval --backend hf --task rg:...` runs on CPU with a small model whose context holds the prompts
    (an untrained one: it scores ~0); the shipped testbed models' 160 positions do not, which is one line."""
    import pandas as pd

    from mirage.cli import main
    from mirage.testbed.models import make_model
    from mirage.testbed.tokenizer import make_tokenizer

    monkeypatch.setenv("MIRAGE_DATA", str(tmp_path / "data"))
    out = tmp_path / "eval"
    task = "rg:basic_arithmetic@test_size=6"
    assert main(["eval", "--model", "dial-60", "--task", task, "--n", "4", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "rg-basic_arithmetic" in err and "160 positions" in err and not out.exists(), err
    model = tmp_path / "long-context"
    tokenizer = make_tokenizer()
    make_model(tokenizer, hidden=32, layers=1, heads=2, max_positions=1024).save_pretrained(model)
    tokenizer.save_pretrained(model)
    assert main(["eval", "--backend", "hf", "--model", str(model), "--task", task, "--n", "4", "--max-tokens", "16",
                 "--out", str(out), "--no-progress"]) == 0
    table = pd.read_parquet(out / "passk.parquet")
    assert table["k"].tolist() == [1, 2, 4] and table["n_problems"].unique().tolist() == [6]
    manifest = json.loads((out / "eval_manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["config"]["task"] == "rg:basic_arithmetic@test_size=6"
