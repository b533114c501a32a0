"""Testbed tasks, verifiers, tokenizer and the untrained model factory."""

import json
import math
import random
import re
import string

import pytest

from mirage.rewards import extract_answer, format_ok
from mirage.tasks import toy as T
from mirage.testbed.tokenizer import CHARACTERS, make_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


# --- generators -------------------------------------------------------------------
@pytest.mark.parametrize("task", T.TASK_NAMES)
def test_generation_is_deterministic_and_distinct(task):
    a = T.generate(task, "train", 300, seed=5)
    assert a == T.generate(task, "train", 300, seed=5)
    assert a != T.generate(task, "train", 300, seed=6)
    assert len({p.key for p in a}) == 300


@pytest.mark.parametrize("task", T.TASK_NAMES)
def test_splits_are_disjoint(task):
    train = {p.key for p in T.generate(task, "train", 3000, seed=0)}
    test = {p.key for p in T.generate(task, "test", 300, seed=0)}
    assert not train & test
    assert all(T.split_of(k) == "test" for k in test)


def test_math_splits_are_disjoint_in_the_small_space():
    # 3-operand problems number a few hundred: most of each split gets drawn
    train = {p.key for p in T.generate("toy-math", "train", 250, seed=0, difficulties=(3,))}
    test = {p.key for p in T.generate("toy-math", "test", 20, seed=0, difficulties=(3,))}
    assert not train & test

def test_exhausted_space_is_a_clear_error():
    # 2-letter words with distinct letters and 3 shifts: ~200 test problems exist
    with pytest.raises(ValueError, match="too small"):
        T.generate("toy-logic", "test", 400, seed=0, difficulties=(2,))


@pytest.mark.parametrize("task,difficulty", [("toy-math", 3), ("toy-math", 5), ("toy-logic", 2),
                                             ("toy-logic", 6)])
def test_difficulty_sets_the_size(task, difficulty):
    for p in T.generate(task, "train", 50, seed=1, difficulties=(difficulty,)):
        assert p.difficulty == difficulty
        if task == "toy-math":
            assert sum(ch in "+-*" for ch in p.question) == difficulty - 1
        else:
            assert len(p.question.split(": ")[1]) == difficulty == len(p.answer)


def test_bad_difficulty_and_names_are_rejected():
    with pytest.raises(ValueError, match="difficulties"):
        T.generate("toy-math", "train", 5, difficulties=(2,))
    with pytest.raises(ValueError, match="unknown testbed task"):
        T.generate("toy-chess", "train", 5)
    with pytest.raises(ValueError, match="not a testbed dataset"):
        T.ensure_dataset("toy-math_validation")


def test_math_procedures():
    value, steps, bvalue, bsteps = T.math_procedures([5, 3, 4, 2], ["+", "*", "-"])
    assert (value, steps) == (15, ["3*4=12", "5+12=17", "17-2=15"])
    assert (bvalue, bsteps) == (30, ["5+3=8", "8*4=32", "32-2=30"])
    rng = random.Random(0)
    for _ in range(500):  # the correct procedure is ordinary precedence: a sum of signed products
        nums = [rng.randint(1, 9) for _ in range(4)]
        ops = [rng.choice("+-*") for _ in range(3)]
        expr = "".join(f"{n}{o}" for n, o in zip(nums, ops)) + str(nums[-1])
        terms = re.findall(r"([+-]?)([\d*]+)", expr)
        expected = sum((-1 if sign == "-" else 1) * math.prod(map(int, term.split("*")))
                       for sign, term in terms)
        assert T.math_procedures(nums, ops)[0] == expected


@pytest.mark.parametrize("task", T.TASK_NAMES)
def test_steps_are_consistent_with_answers(task):
    for p in T.generate(task, "test", 200, seed=0):
        if task == "toy-math":
            for steps, answer in ((p.steps, p.answer), (p.buggy_steps, p.buggy_answer)):
                for step in steps.split():
                    a, op, b, result = re.fullmatch(r"(-?\d+)([-+*])(\d+)=(-?\d+)", step).groups()
                    assert T._apply(int(a), op, int(b)) == int(result)
                assert steps.split()[-1].split("=")[1] == answer
        else:
            k = int(p.question.split("+")[1].split(":")[0])
            word = p.question.split(": ")[1]
            assert len(set(word)) == len(word) and 1 <= k <= T.LOGIC_MAX_SHIFT
            assert p.steps.split() == [f"{w}+{k}={a}" for w, a in zip(word, p.answer)]
            assert p.buggy_steps.split() == [f"{w}-{k}={a}" for w, a in zip(word, p.buggy_answer)]
            assert all((ord(a) - ord(w)) % 26 == k for w, a in zip(word, p.answer))
            assert all((ord(w) - ord(a)) % 26 == k for w, a in zip(word, p.buggy_answer))


@pytest.mark.parametrize("task", T.TASK_NAMES)
def test_buggy_and_correct_disagree(task):
    problems = T.generate(task, "train", 500, seed=3)
    assert all(p.answer != p.buggy_answer for p in problems)
    # unfiltered, the math misconception would often be harmless; the filter is what matters
    rate = T.agreement_rate(task, n=3000)
    assert (0.5 < rate < 0.9) if task == "toy-math" else rate == 0.0


@pytest.mark.parametrize("task", T.TASK_NAMES)
def test_prompt_and_response_lengths(task, tokenizer):
    from mirage.sample.base import apply_chat_template

    for p in T.generate(task, "test", 100, seed=0, difficulties=(T.DIFFICULTY_RANGE[task][1],)):
        prompt = apply_chat_template(tokenizer, p.prompt())
        assert len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= 64
        for correct in (True, False):
            response = p.response(correct) + tokenizer.eos_token
            assert len(tokenizer(response, add_special_tokens=False)["input_ids"]) <= 48
            assert format_ok(p.response(correct))


# --- rows and files ---------------------------------------------------------------
def test_ensure_dataset_writes_verl_rows(tmp_path):
    import pandas as pd

    path = T.ensure_dataset("toy-logic_test", root=tmp_path, n=40, seed=2)
    assert path == tmp_path / "verl" / "toy-logic_test.parquet"
    df = pd.read_parquet(path)
    assert len(df) == 40 and list(df.columns) == ["data_source", "prompt", "ability", "reward_model",
                                                    "extra_info"]
    row = df.iloc[3]
    assert row.data_source == "toy-logic" and row.ability == "logic"
    assert row.reward_model["style"] == "rule"
    assert list(row.prompt[0].keys()) == ["role", "content"] and row.prompt[0]["role"] == "user"
    assert row.extra_info["index"] == 3 and row.extra_info["split"] == "test"
    assert row.extra_info["buggy_answer"] != row.reward_model["ground_truth"]
    # reused, not rewritten; rewriting gives identical rows
    mtime = path.stat().st_mtime_ns
    assert T.ensure_dataset("toy-logic_test", root=tmp_path, n=40, seed=2).stat().st_mtime_ns == mtime
    T.ensure_dataset("toy-logic_test", root=tmp_path, n=40, seed=2, overwrite=True)
    pd.testing.assert_frame_equal(pd.read_parquet(path), df)


def test_ensure_dataset_regenerates_a_file_made_otherwise(tmp_path, monkeypatch):
    import pandas as pd

    path = T.ensure_dataset("toy-math_test", root=tmp_path, n=30, seed=1)
    rows = pd.read_parquet(path)
    # other arguments: regenerated, not reused
    assert len(pd.read_parquet(T.ensure_dataset("toy-math_test", root=tmp_path, n=20, seed=1))) == 20
    # a stale file from an older generator (or with no sidecar) is regenerated too
    monkeypatch.setattr(T, "GENERATOR_VERSION", T.GENERATOR_VERSION - 1)
    T.ensure_dataset("toy-math_test", root=tmp_path, n=30, seed=1)
    monkeypatch.undo()
    mtime = path.stat().st_mtime_ns
    T.ensure_dataset("toy-math_test", root=tmp_path, n=30, seed=1)
    assert path.stat().st_mtime_ns != mtime
    pd.testing.assert_frame_equal(pd.read_parquet(path), rows)
    path.with_suffix(".meta.json").unlink()
    mtime = path.stat().st_mtime_ns
    T.ensure_dataset("toy-math_test", root=tmp_path, n=30, seed=1)
    assert path.stat().st_mtime_ns != mtime


def test_datasets_in_use_are_regenerated_after_a_generator_change(tmp_path, monkeypatch):
    """The trainer and the evaluator never reuse an older generator's rows, and keep a custom size."""
    import pandas as pd

    from mirage.data.rows import load_rows

    path = T.ensure_dataset("toy-logic_train", root=tmp_path, n=24, seed=5)
    rows = pd.read_parquet(path)
    monkeypatch.setattr(T, "GENERATOR_VERSION", T.GENERATOR_VERSION + 1)
    mtime = path.stat().st_mtime_ns
    assert len(load_rows("toy-logic_train", tmp_path)) == 24  # same size and seed, rewritten
    assert path.stat().st_mtime_ns != mtime
    assert json.loads(path.with_suffix(".meta.json").read_text())["generator_version"] == T.GENERATOR_VERSION
    pd.testing.assert_frame_equal(pd.read_parquet(path), rows)  # (the generator did not really change)
    mtime = path.stat().st_mtime_ns
    load_rows("toy-logic_train", tmp_path)  # current: reused
    assert path.stat().st_mtime_ns == mtime
    path.with_suffix(".meta.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"toy-logic_train\.meta\.json: unreadable"):
        load_rows("toy-logic_train", tmp_path)
    # a file this module did not write (no sidecar) is used as it is, not overwritten
    path.with_suffix(".meta.json").unlink()
    rows.head(8).to_parquet(path)
    assert len(load_rows("toy-logic_train", tmp_path)) == 8


def test_default_dataset_sizes(tmp_path):
    import pandas as pd

    for task in T.TASK_NAMES:
        train = pd.read_parquet(T.ensure_dataset(f"{task}_train", root=tmp_path))
        test = pd.read_parquet(T.ensure_dataset(f"{task}_test", root=tmp_path))
        assert (len(train), len(test)) == (4000, 200)
        questions = lambda df: {e["question"] for e in df.extra_info}  # noqa: E731
        assert not questions(train) & questions(test)


# --- verifier ---------------------------------------------------------------------
@pytest.mark.parametrize("task", T.TASK_NAMES)
def test_check_answer(task):
    for p in T.generate(task, "test", 100, seed=0):
        assert T.check_answer(task, p.answer, p.answer)
        assert T.check_answer(task, f"  {p.answer}\n", p.answer)
        assert T.check_answer("val/" + task, p.answer, p.answer)
        assert not T.check_answer(task, p.buggy_answer, p.answer)
        assert not T.check_answer(task, p.answer + "0", p.answer)
        assert not T.check_answer(task, p.answer[:-1], p.answer)
        assert T.check_answer(task, extract_answer(p.response()), p.answer)
        assert not T.check_answer(task, extract_answer(p.response(correct=False)), p.answer)


def test_check_answer_never_raises_on_junk():
    rng = random.Random(0)
    junk = [None, 17, 1.5, b"17", ["17"], "", " ", "\x00", "<answer>", "\ud800", "9" * 100_000,
            "".join(rng.choice(string.printable) for _ in range(1000))]
    junk += ["".join(rng.choice(string.printable + "é中\u200b") for _ in range(rng.randint(0, 60)))
             for _ in range(300)]
    for task in T.TASK_NAMES:
        for pred in junk:
            assert T.check_answer(task, pred, "17") in (True, False)
            extract_answer(pred)
            format_ok(pred)
    assert not T.check_answer("toy-math", "17", None)
    with pytest.raises(ValueError, match="unknown testbed task"):
        T.check_answer("gsm8k", "17", "17")


def test_format_and_extraction():
    assert format_ok("<think>a\nb</think> <answer>1\n</answer>")
    assert not format_ok("<think>a</think>")
    assert not format_ok("17")
    assert extract_answer("no tags") is None


# --- tokenizer --------------------------------------------------------------------
def test_tokenizer_round_trips_every_task_character(tokenizer):
    texts = [CHARACTERS]
    for task in T.TASK_NAMES:
        for p in T.generate(task, "train", 200, seed=0):
            texts.append(p.prompt()[0]["content"] + p.response() + p.response(correct=False))
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    # one token per character, the four format tags one token each
    assert len(tokenizer("<think>ab</think> <answer>c</answer>", add_special_tokens=False)["input_ids"]) == 8
    # skipping special tokens keeps the format tags (they are not special), drops bos/eos/roles
    ids = tokenizer("<s><|assistant|><think>x</think></s>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>x</think>"


def test_chat_template_and_offline_reload(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    messages = [{"role": "user", "content": "Caesar +1: ab"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<s><|user|>Caesar +1: ab<|assistant|>"
    assert not tokenizer.apply_chat_template(messages, tokenize=False).endswith("<|assistant|>")
    turn = messages + [{"role": "assistant", "content": "<answer>bc</answer>"}]
    assert tokenizer.apply_chat_template(turn, tokenize=False).endswith("<answer>bc</answer></s>")
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert reloaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == text
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert (reloaded.bos_token, reloaded.eos_token, reloaded.pad_token) == ("<s>", "</s>", "<pad>")
    assert reloaded.padding_side == "left"


def test_make_model_saves_and_reloads(tokenizer, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from mirage.testbed.models import count_parameters, make_model

    from mirage.models import resolve_model

    model = make_model(tokenizer, hidden=32, layers=2, heads=2, seed=1)
    same = make_model(tokenizer, hidden=32, layers=2, heads=2, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))
    assert count_parameters(model) < 100_000
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert resolve_model(tmp_path) == str(tmp_path.resolve())
    reloaded = AutoModelForCausalLM.from_pretrained(resolve_model(tmp_path), local_files_only=True)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "1+2*3"}],
                                        add_generation_prompt=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reloaded(ids).logits)
    with pytest.raises(ValueError, match="divisible"):
        make_model(tokenizer, hidden=30, heads=4)


def test_model_path_errors_name_the_places_searched():
    from mirage.models import resolve_model

    with pytest.raises(FileNotFoundError, match="no model 'no-such-model'"):
        resolve_model("no-such-model")
    assert resolve_model("Qwen/Qwen2.5-7B") == "Qwen/Qwen2.5-7B"
