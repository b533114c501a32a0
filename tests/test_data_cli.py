"""`mirage data` subcommands, atomic outputs, and verl reading what we write."""

import argparse
import hashlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mirage.data.cli import configure
from mirage.data.common import Conversion
from mirage.data.prepare import datasets, list_datasets, write_dataset
from mirage.tasks import dataset_path
from conftest import SHARED_DATA as SHARED


def run(*argv):
    parser = argparse.ArgumentParser(prog="mirage data")
    configure(parser)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.mark.parametrize("sub", ["prepare", "one-shot", "download", "list"])
def test_every_subcommand_has_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        run(sub, "--help")
    assert e.value.code == 0 and "usage: mirage data " + sub in capsys.readouterr().out


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.shared_data
def test_prepare_all_local_then_list(tmp_path, capsys):
    assert run("prepare", "--all-local", "--shared", SHARED, "--root", tmp_path) == 1  # DSR-sub row 265
    assert "deepscaler_dsr_sub: FAILED:" in capsys.readouterr().out
    assert run("prepare", "--all-local", "--shared", SHARED, "--root", tmp_path, "--skip-empty-answers") == 0
    out = capsys.readouterr().out
    assert "deepscaler: skipped" in out and "one_shot_pi1: example 124 x 128" in out
    rows = {d["name"]: d["rows"] for d in list_datasets(tmp_path)}
    assert rows["math500"] == 500 and rows["korbench_puzzle"] == 250 and rows["one_shot_pi1"] == 128
    assert rows["deepscaler_dsr_sub"] == 1208 and rows["deepscaler"] is None
    run("list", "--root", tmp_path)
    assert "synlogic_sample" in capsys.readouterr().out
    meta = dataset_path("deepscaler_dsr_sub", tmp_path).with_suffix(".meta.json").read_text()
    assert '"empty reward_model.ground_truth"' in meta and "row 265" in meta

    before = {p.name: sha(p) for p in (tmp_path / "verl").iterdir()}
    assert run("prepare", "--all-local", "--shared", SHARED, "--root", tmp_path, "--skip-empty-answers") == 0
    assert before == {p.name: sha(p) for p in (tmp_path / "verl").iterdir()}  # a rerun is identical


@pytest.mark.shared_data
def test_prepare_one_dataset_and_one_shot_cli(tmp_path, capsys):
    assert run("prepare", "--dataset", "amc23", "--source", SHARED / "amc23/test.jsonl", "--root", tmp_path) == 0
    assert pq.read_table(dataset_path("amc23", tmp_path)).num_rows == 40
    with pytest.raises(ValueError, match="--source"):
        run("prepare", "--dataset", "amc23", "--root", tmp_path)
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        run("prepare", "--dataset", "nope", "--source", "x", "--root", tmp_path)

    out = tmp_path / "pi2.parquet"
    run("one-shot", "--source", SHARED / "deepscaler/one_shot_rlvr/dsr_sub.parquet",
        "--history", SHARED / "deepscaler/one_shot_rlvr/acc_step_500.json", "--rank", 2, "--batch-size", 128,
        "--out", out)
    assert pq.read_table(out).to_pylist() == pq.read_table(SHARED / "deepscaler/one_shot_rlvr/pi2_r128.parquet").to_pylist()
    run("one-shot", "--source", SHARED / "deepscaler/one_shot_rlvr/dsr_sub.parquet", "--random", "--seed", 5,
        "--batch-size", 16, "--out", out)
    assert pq.read_table(out).num_rows == 16 and "x 16 ->" in capsys.readouterr().out


def test_download_dry_run_and_offline_error(tmp_path, capsys, monkeypatch):
    assert run("download", "--dry-run", "--root", tmp_path) == 0
    out = capsys.readouterr().out
    assert "hf download agentica-org/DeepScaleR-Preview-Dataset deepscaler.json --repo-type dataset" in out
    assert "MiniMaxAI/SynLogic synlogic_easy/validation.parquet" in out
    assert "git clone --quiet https://github.com/KOR-Bench/KOR-Bench" in out
    assert "--dataset korbench_cipher --source download" in out
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match="could not download deepscaler.json .* pass it with --source FILE"):
        run("download", "--root", tmp_path)
    assert not (tmp_path / "verl").exists()


def test_write_is_atomic_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    import pandas as pd

    rows = [{"data_source": "x", "prompt": [{"role": "user", "content": "q"}], "ability": "math",
             "reward_model": {"style": "rule", "ground_truth": "1"}, "extra_info": {"index": 0, "split": "test"}}]
    path = write_dataset("math500", Conversion(rows=rows, source="a", read=1), tmp_path)
    old = sha(path)

    def crash(self, target, *a, **k):
        Path(target).write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(KeyboardInterrupt):
        write_dataset("math500", Conversion(rows=rows * 5, source="b", read=5), tmp_path)
    assert sha(path) == old and sorted(p.name for p in path.parent.iterdir()) == ["math500.meta.json", "math500.parquet"]
    with pytest.raises(KeyboardInterrupt):
        write_dataset("aime24", Conversion(rows=rows, source="b", read=1), tmp_path)
    assert not dataset_path("aime24", tmp_path).exists()
    with pytest.raises(ValueError, match="produced no rows"):
        write_dataset("aime24", Conversion(rows=[], source="b"), tmp_path)


def test_registry_names_match_the_tasks():
    from mirage.tasks import TASKS

    # prepared paper tasks only: generated ones (reasoning-gym, which another test may have built from a
    # name) write their own datasets and are not in the prepare registry
    paper = [d for t in TASKS.values() if t.kind == "paper" and t.ensure is None for d in t.datasets]
    assert paper and set(paper) <= set(datasets())


@pytest.mark.verl
@pytest.mark.shared_data
def test_verl_reads_what_we_write(tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    run("prepare", "--dataset", "korbench_cipher", "--source", SHARED / "korbench/cipher", "--root", tmp_path)
    run("one-shot", "--source", SHARED / "deepscaler/one_shot_rlvr/dsr_sub.parquet", "--history",
        SHARED / "deepscaler/one_shot_rlvr/acc_step_500.json", "--out", tmp_path / "pi1.parquet")
    config = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp_path / "cache")})
    kor = RLHFDataset(str(dataset_path("korbench_cipher", tmp_path)), tokenizer=None, config=config)
    assert len(kor) == 250
    item = kor[0]
    assert item["data_source"] == "korbench/cipher" and item["reward_model"]["ground_truth"].startswith("[[")
    assert item["extra_info"]["category"] in ("Encryption", "Decryption")
    pi1 = RLHFDataset(str(tmp_path / "pi1.parquet"), tokenizer=None, config=config)
    assert len(pi1) == 128 and pi1[127]["reward_model"]["ground_truth"] == "12.8"
