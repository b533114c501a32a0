"""SynLogic plugin: loading, isolation, timeouts and the game-of-24 fix, on a fake checkout;
the real verifiers on the shared sample rows when MIRAGE_SYNLOGIC_PATH is set."""

import json
import os
import sys
import textwrap
import threading
import time

import pytest

from mirage.rewards import compute_score
from mirage.rewards.checkers import synlogic
from conftest import SHARED_DATA

DATA = SHARED_DATA / "synlogic"

FAKE_TASK2VERIFIER = '''
import os, re, sys, threading, time
print("importing the fake SynLogic")           # SynLogic prints at import
sys.path.append(os.path.dirname(os.path.abspath(__file__)))
from base.data import Data

class Exact:                                    # gold answer in data.answer
    def verify(self, data, answer):
        print("checking", answer)
        return answer == data.answer

class NumbersOnly:                              # the upstream game-of-24 defect: value never checked
    def verify(self, data, answer):
        m = re.search(r"```python(.*?)```", answer, re.S)
        expr = m.group(1).strip() if m else ""
        used = sorted(re.findall(r"\\d+", expr))
        if used != sorted(str(n) for n in data.metadata["numbers"]):
            return False
        result = eval(expr)                     # as upstream: may hang on towers
        return abs(result - result) < 1e-10

class Spin:
    def verify(self, data, answer):
        while True:
            pass

class SwallowsEverything:                       # upstream style: a bare except around a long computation
    def verify(self, data, answer):
        try:
            while True:
                pass
        except:  # noqa: E722
            return False

class Sleeps:                                   # hangs without computing: only the wall-clock kill stops it
    def verify(self, data, answer):
        time.sleep(1000)

class Crash:
    def verify(self, data, answer):
        os._exit(3)

class MainThread:
    def verify(self, data, answer):
        return 1.0 if threading.current_thread() is threading.main_thread() else 0

verifier_classes = {"sudoku": Exact, "mathador": NumbersOnly, "campsite": Spin, "survo": Sleeps,
                    "futoshiki": Crash, "web_of_lies": MainThread, "kukurasu": SwallowsEverything}
'''

FAKE_DATA = '''
import json

class Data:
    def __init__(self, question, answer, difficulty=1, metadata=None, **kwargs):
        self.question, self.answer, self.difficulty, self.metadata = question, answer, difficulty, metadata

    @classmethod
    def from_json_str(cls, s):
        return cls(**json.loads(s))
'''


@pytest.fixture(scope="module")
def fake_checkout(tmp_path_factory):
    root = tmp_path_factory.mktemp("SynLogic")
    (root / "task2verifier.py").write_text(textwrap.dedent(FAKE_TASK2VERIFIER))
    (root / "base").mkdir()
    (root / "base" / "__init__.py").write_text("")
    (root / "base" / "data.py").write_text(textwrap.dedent(FAKE_DATA))
    return str(root)


def row(answer="", metadata=None, index=0):
    game = {"question": "q", "answer": answer, "difficulty": 1, "metadata": metadata}
    return {"index": index, "split": "train", "game_data_str": json.dumps(game)}


def score(source, answer_text, extra_info, path, **kw):
    return compute_score(source, f"<think>thinking, not {answer_text}</think><answer>{answer_text}</answer>", "",
                         extra_info, synlogic_path=path, **kw)


def test_missing_checkout_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.delenv(synlogic.ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match="git clone https://github.com/MiniMax-AI/SynLogic"):
        compute_score("sudoku", "<answer>x</answer>", "", row("x"))
    with pytest.raises(FileNotFoundError, match="not a SynLogic checkout"):
        compute_score("sudoku", "<answer>x</answer>", "", row("x"), synlogic_path=str(tmp_path))


def test_verifier_gets_only_the_answer_text_and_val_prefix_is_stripped(fake_checkout, monkeypatch):
    monkeypatch.setenv(synlogic.ENV_VAR, fake_checkout)
    assert compute_score("sudoku", "<think>a</think><answer>42</answer>", "", row("42"))["acc"] == 1.0
    assert score("val/sudoku", "42", row("42"), fake_checkout)["score"] == 1.0
    assert score("sudoku", "41", row("42"), fake_checkout)["acc"] == 0.0
    assert compute_score("sudoku", "42", "", row("42"), synlogic_path=fake_checkout)["acc"] == 0.0  # no <answer>


def test_import_is_isolated_from_the_caller(fake_checkout, capfd):
    path_before, modules_before = list(sys.path), set(sys.modules)
    assert score("sudoku", "7", row("7"), fake_checkout)["acc"] == 1.0
    assert sys.path == path_before
    assert not {"base", "task2verifier", "base.data"} & (set(sys.modules) - modules_before)
    out, _ = capfd.readouterr()
    assert "importing the fake SynLogic" not in out and "checking" not in out


def test_runs_in_a_main_thread_even_from_caller_threads(fake_checkout):
    results = []
    threads = [threading.Thread(target=lambda: results.append(score("web_of_lies", "x", row(), fake_checkout)["acc"]))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1.0] * 4


@pytest.mark.timeout(120)
@pytest.mark.parametrize("task", ["campsite", "survo"])  # CPU-time soft timeout; wall-clock kill
def test_hanging_verifier_times_out_and_scores_zero(fake_checkout, task):
    start = time.monotonic()
    r = score(task, "x", row(), fake_checkout, synlogic_timeout=0.5)
    assert time.monotonic() - start < 10
    assert r["acc"] == 0.0 and "synlogic" in r["error"]
    assert score("sudoku", "1", row("1"), fake_checkout)["acc"] == 1.0  # the pool recovers


def test_crashing_verifier_scores_zero_and_pool_recovers(fake_checkout):
    r = score("futoshiki", "x", row(), fake_checkout)
    assert r["acc"] == 0.0 and "exited" in r["error"]
    assert score("sudoku", "1", row("1"), fake_checkout)["acc"] == 1.0


def test_bad_rows_and_tasks_are_clear_errors(fake_checkout):
    with pytest.raises(KeyError, match="zebra_puzzle"):
        score("zebra_puzzle", "x", row(), fake_checkout)  # a SynLogic task this checkout lacks
    with pytest.raises(KeyError, match="game_data_str"):
        score("sudoku", "x", {"index": 1}, fake_checkout)
    with pytest.raises(ValueError, match="index 9"):
        score("sudoku", "x", {"index": 9, "game_data_str": "{not json"}, fake_checkout)


@pytest.mark.timeout(120)
def test_game_of_24_value_is_checked_unless_release_faithful(fake_checkout):
    meta = {"numbers": [3, 3, 8, 8], "result": 24, "operators": ["+", "-", "*", "/"]}
    right = "```python 8/(3-8/3) ```"  # exactly 24 (23.999... in floats)
    wrong_value = "```python 3+3+8+8 ```"  # uses the numbers, equals 22
    for release in (False, True):
        assert score("mathador", right, row(metadata=meta), fake_checkout, release_faithful=release)["acc"] == 1.0
    assert score("mathador", wrong_value, row(metadata=meta), fake_checkout)["acc"] == 0.0
    assert score("mathador", wrong_value, row(metadata=meta), fake_checkout, release_faithful=True)["acc"] == 1.0
    # An exponent tower is refused before the verifier's eval is reached.
    tower = {"numbers": [9, 9, 9, 9], "result": 24}
    start = time.monotonic()
    assert score("mathador", "```python 9**9**9**9 ```", row(metadata=tower), fake_checkout)["acc"] == 0.0
    assert time.monotonic() - start < 1.0
    with pytest.raises(KeyError, match="result"):
        score("mathador", right, row(metadata={"numbers": [3, 3, 8, 8]}), fake_checkout)
    # The rules allow + - * / and parentheses: ** and // are refused even where the value is right.
    for forbidden in ("```python (8-3-3)**3*3 ```", "```python 8*3+8//3-3+3-2 ```", "```python 3*8+8%8*3 ```"):
        assert score("mathador", forbidden, row(metadata=meta), fake_checkout)["acc"] == 0.0, forbidden


@pytest.mark.timeout(120)
@pytest.mark.parametrize("release", [False, True])
def test_a_timeout_swallowed_by_the_verifier_is_still_a_timeout(fake_checkout, release):
    """SynLogic verifiers wrap their work in bare `except:`, which catches the worker's timer: the
    verdict they return after the time limit is reported as a timeout in `error`, not as an answer."""
    got = score("kukurasu", "x", row(), fake_checkout, release_faithful=release, synlogic_timeout=0.5)
    assert got["acc"] == 0.0 and "timed out" in (got["error"] or "")


@pytest.mark.shared_data
@pytest.mark.skipif(not os.environ.get(synlogic.ENV_VAR),
                    reason=f"set {synlogic.ENV_VAR} to a SynLogic checkout to run the real verifiers")
def test_real_verifiers_on_shared_sample_rows():
    rows = {}
    for line in open(DATA / "sample_rows.jsonl"):
        r = json.loads(line)
        rows[(r["data_source"], r["extra_info"]["index"])] = r
    checks = [json.loads(line) for line in open(DATA / "verifier_checks.jsonl")]
    assert len(checks) == 69
    for c in checks:
        r = rows[(c["data_source"], c["index"])]
        response = f"<think>solving</think>\n<answer>{c['answer_tested']}</answer>"
        got = compute_score(r["data_source"], response, r["reward_model"]["ground_truth"], r["extra_info"])
        assert got["acc"] == float(c["expected"]) and got["error"] is None, c  # mathador fixed
        # Release-faithful: SynLogic's own verdicts ("got", mathador defect included) on one-line answers.
        one_line = f"<think>solving</think><answer>{c['answer_tested'].replace(chr(10), ' ')}</answer>"
        release = compute_score(r["data_source"], one_line, "", r["extra_info"], release_faithful=True)
        if "\n" not in c["answer_tested"] or c["data_source"] == "mathador":
            assert release["acc"] == float(c["got"]), c
