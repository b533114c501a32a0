import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from mirage.data.common import DataError
from mirage.data.math_data import INSTRUCTION, ONE_SHOT_SUFFIX
from mirage.data.prepare import prepare
from conftest import SHARED_DATA as SHARED

ONE_SHOT = SHARED / "deepscaler" / "one_shot_rlvr"


def test_ranking_by_population_std_with_stable_ties():
    from mirage.data.one_shot import historical_variance, select_by_historical_variance

    history = {"a": [0, 0, 0], "b": [0, 1, 0, 1], "c": [1, 0], "d": [0.5, 0.5]}
    ranking = historical_variance(history)
    assert ranking["id"].tolist() == ["b", "c", "a", "d"]  # b and c tie at 0.5: history order kept
    assert ranking["std"].iloc[0] == pytest.approx(0.5)  # ddof=0 (ddof=1 would give 0.577)
    assert select_by_historical_variance(history, 2) == "c"
    with pytest.raises(ValueError, match="rank must be in 1..4"):
        select_by_historical_variance(history, 5)


@pytest.mark.parametrize("bad", [[], "0.5", [0.1, None], [float("nan")], [True, False]])
def test_bad_history_entries_name_the_key(bad):
    from mirage.data.one_shot import historical_variance

    with pytest.raises(DataError, match="entry 'x7'"):
        historical_variance({"ok": [0, 1], "x7": bad})


def test_select_random_is_seeded():
    from mirage.data.one_shot import select_random

    ids = list(range(1000))
    picks = [select_random(ids, s) for s in range(20)]
    assert picks == [select_random(ids, s) for s in range(20)]
    assert len(set(picks)) > 15 and all(0 <= int(p) < 1000 for p in picks)
    with pytest.raises(ValueError):
        select_random([], 0)


def test_duplicate_to_batch():
    from mirage.data.one_shot import duplicate_to_batch

    row = {"data_source": "deepscaler", "prompt": [{"role": "user", "content": "q"}], "ability": "math",
           "reward_model": {"style": "rule", "ground_truth": "1"}, "extra_info": {"index": 3, "split": "train"}}
    df = duplicate_to_batch(row, 128)
    assert len(df) == 128 and all(r == row for r in df.to_dict("records"))
    with pytest.raises(ValueError):
        duplicate_to_batch(row, 0)


@pytest.mark.shared_data
@pytest.mark.parametrize("rank,index", [(1, "124"), (2, "267"), (13, "682")])
def test_published_pi_examples(rank, index):
    from mirage.data.one_shot import load_history, select_by_historical_variance

    history = load_history(ONE_SHOT / "acc_step_500.json")
    assert select_by_historical_variance(history, rank) == index


@pytest.mark.shared_data
def test_pi1_from_dsr_sub_equals_the_published_set():
    from mirage.data.one_shot import load_history, one_shot_set

    history = load_history(ONE_SHOT / "acc_step_500.json")
    rows, example = one_shot_set(ONE_SHOT / "dsr_sub.parquet", 128, history=history)
    assert example == "124"
    assert rows.to_dict("records") == pq.read_table(ONE_SHOT / "pi1_r128.parquet").to_pylist()


@pytest.mark.shared_data
def test_pi1_from_converted_dsr_sub_has_the_same_problem_and_label(tmp_path):
    from mirage.data.one_shot import load_history, one_shot_set

    path, _ = prepare("deepscaler_dsr_sub", ONE_SHOT / "dsr_sub.parquet", tmp_path, skip_empty_answers=True)
    rows, example = one_shot_set(path, 128, history=load_history(ONE_SHOT / "acc_step_500.json"))
    published = pq.read_table(ONE_SHOT / "pi1_r128.parquet").to_pylist()[0]
    mine = rows.iloc[0].to_dict()
    assert example == "124" and len(rows) == 128 and all(r == mine for r in rows.to_dict("records"))
    assert mine["reward_model"]["ground_truth"] == published["reward_model"]["ground_truth"] == "12.8"
    problem = published["prompt"][0]["content"][: -len(ONE_SHOT_SUFFIX)]
    assert mine["prompt"][0]["content"] == INSTRUCTION + "\n\n" + problem
    assert mine["extra_info"]["index"] == 124

    rnd, rnd_example = one_shot_set(path, 64, seed=3)
    again, _ = one_shot_set(path, 64, seed=3)
    assert len(rnd) == 64 and rnd.equals(again)
    assert all(str(e["index"]) == rnd_example for e in rnd["extra_info"])


def test_example_missing_from_source_is_an_error(tmp_path):
    from mirage.data.one_shot import load_history, one_shot_set

    import pandas as pd

    pd.DataFrame([{"prompt": [{"role": "user", "content": "q"}], "extra_info": {"index": 0}}]).to_parquet(
        tmp_path / "s.parquet")
    with pytest.raises(DataError, match=r"s\.parquet: 0 rows have extra_info\.index == '9'"):
        one_shot_set(tmp_path / "s.parquet", 4, history={"9": [0, 1]})
    with pytest.raises(ValueError, match="not both"):
        one_shot_set(tmp_path / "s.parquet", 4, history={"0": [0, 1]}, seed=1)
    (tmp_path / "h.json").write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match=r"h\.json: expected an object"):
        load_history(tmp_path / "h.json")


def test_history_std_matches_numpy_default():
    from mirage.data.one_shot import historical_variance

    rng = np.random.default_rng(0)
    history = {str(i): rng.random(rng.integers(2, 50)).tolist() for i in range(200)}
    ranking = historical_variance(history)
    assert ranking["id"].iloc[0] == max(history, key=lambda k: np.std(history[k]))
    assert np.all(np.diff(ranking["std"]) <= 0)
