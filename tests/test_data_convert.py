"""Converters on the real files of ../shared/data and on broken copies of them."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mirage.data.common import DataError, answer_text
from mirage.data.korbench import CATEGORIES, convert_korbench, korbench_prompt, templates
from mirage.data.math_data import INSTRUCTION, ONE_SHOT_SUFFIX, convert_deepscaler, convert_math_eval
from mirage.data.synlogic import convert_synlogic
from conftest import SHARED_DATA as SHARED

pytestmark = pytest.mark.shared_data


def lines(path):
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]


def write_lines(path, records):
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


# --- math ---------------------------------------------------------------------------
def test_instruction_is_the_papers():
    assert INSTRUCTION.startswith("Solve the following problem step by step. First, think about")
    assert INSTRUCTION.endswith("i.e., <think> reasoning process here </think> <answer> answer here</answer>.")
    assert "  " not in INSTRUCTION


def test_deepscaler_from_components_json():
    src = json.loads((SHARED / "deepscaler/components/aime.json").read_text())
    conv = convert_deepscaler(SHARED / "deepscaler/components/aime.json")
    assert len(conv.rows) == len(src) == 975 and not conv.dropped
    row = conv.rows[0]
    assert row["data_source"] == "deepscaler" and row["ability"] == "math"
    assert row["prompt"] == [{"role": "user", "content": INSTRUCTION + "\n\n" + src[0]["problem"]}]
    assert row["reward_model"] == {"style": "rule", "ground_truth": "60"}
    assert row["extra_info"] == {"index": 0, "split": "train", "solution": src[0]["solution"]}
    assert [r["extra_info"]["index"] for r in conv.rows] == list(range(975))


def test_deepscaler_empty_answers_fail_or_are_dropped_and_reported():
    path = SHARED / "deepscaler/components/math.json"
    with pytest.raises(DataError, match=r"math\.json row 886: field 'answer' is null"):
        convert_deepscaler(path)
    conv = convert_deepscaler(path, skip_empty_answers=True)
    assert len(conv.rows) == 7470 and conv.read == 7474
    assert [w.rsplit(" ", 1)[1] for w in conv.dropped["empty answer"]] == ["886", "1009", "5328", "5330"]
    assert "dropped 4 (empty answer)" in conv.summary()
    # the source position survives as the index, so histories keyed by it stay valid
    assert 887 not in {r["extra_info"]["index"] for r in conv.rows[:886]}
    assert conv.rows[886]["extra_info"]["index"] == 887


def test_deepscaler_from_dsr_sub_strips_the_one_shot_suffix():
    src = pq.read_table(SHARED / "deepscaler/one_shot_rlvr/dsr_sub.parquet").to_pylist()
    conv = convert_deepscaler(SHARED / "deepscaler/one_shot_rlvr/dsr_sub.parquet", skip_empty_answers=True)
    assert len(conv.rows) == 1208 and list(conv.dropped) == ["empty reward_model.ground_truth"]
    assert "stripped the One-Shot-RLVR suffix from 1209 prompts" in conv.notes
    by_index = {r["extra_info"]["index"]: r for r in conv.rows}
    pi1 = by_index[124]
    problem = src[124]["prompt"][0]["content"][: -len(ONE_SHOT_SUFFIX)]
    assert pi1["prompt"][0]["content"] == INSTRUCTION + "\n\n" + problem
    assert pi1["reward_model"]["ground_truth"] == "12.8"
    assert not any("Let's think step by step" in r["prompt"][0]["content"] for r in conv.rows)


def test_deepscaler_reconverting_its_own_output_is_idempotent(tmp_path):
    first = convert_deepscaler(SHARED / "deepscaler/components/aime.json")
    pq.write_table(pa.Table.from_pylist(first.rows), tmp_path / "out.parquet")
    again = convert_deepscaler(tmp_path / "out.parquet")
    assert [r["prompt"] for r in again.rows] == [r["prompt"] for r in first.rows]


@pytest.mark.parametrize("name,rows,first_answer", [("math500", 500, "\\left( 3, \\frac{\\pi}{2} \\right)"),
                                                   ("aime24", 30, "204"), ("amc23", 40, "27")])
def test_math_eval_sets(name, rows, first_answer):
    src = lines(SHARED / name / "test.jsonl")
    conv = convert_math_eval(SHARED / name / "test.jsonl", name)
    assert len(conv.rows) == rows
    row = conv.rows[0]
    assert row["data_source"] == name
    assert row["prompt"][0]["content"] == INSTRUCTION + "\n\n" + src[0]["problem"]
    assert row["reward_model"]["ground_truth"] == first_answer
    assert row["extra_info"]["split"] == "test"


def test_amc_float_answers_become_integers_as_text():
    conv = convert_math_eval(SHARED / "amc23/test.jsonl", "amc23")
    answers = [r["reward_model"]["ground_truth"] for r in conv.rows]
    assert all(a.lstrip("-").isdigit() for a in answers) and "-1" in answers
    assert answer_text(27.0, "x") == "27" and answer_text(0.5, "x") == "0.5" and answer_text("1/2", "x") == "1/2"


# --- broken copies: missing field, wrong type, empty answer -> file, row, field ----------------
def test_broken_jsonl_names_file_line_and_field(tmp_path):
    records = lines(SHARED / "aime24/test.jsonl")
    path = tmp_path / "test.jsonl"
    for mutate, message in [
        (lambda r: r.pop("problem"), r"test\.jsonl:3: field 'problem' is missing"),
        (lambda r: r.update(answer=[204]), r"test\.jsonl:3: field 'answer' has type list"),
        (lambda r: r.update(answer="  "), r"test\.jsonl:3: field 'answer' is empty"),
        (lambda r: r.update(problem=17), r"test\.jsonl:3: field 'problem' has type int, expected str"),
    ]:
        broken = [dict(r) for r in records]
        mutate(broken[2])
        write_lines(path, broken)
        with pytest.raises(DataError, match=message):
            convert_math_eval(path, "aime24")
    path.write_text(path.read_text().replace('"id"', '{"id"', 1))
    with pytest.raises(DataError, match=r"test\.jsonl:1: not valid JSON"):
        convert_math_eval(path, "aime24")


def test_broken_json_and_parquet_name_the_row(tmp_path):
    items = json.loads((SHARED / "deepscaler/components/aime.json").read_text())
    items[5]["problem"] = 5
    (tmp_path / "aime.json").write_text(json.dumps(items))
    with pytest.raises(DataError, match=r"aime\.json row 5: field 'problem' has type int"):
        convert_deepscaler(tmp_path / "aime.json")
    (tmp_path / "obj.json").write_text(json.dumps({"problem": "x"}))
    with pytest.raises(DataError, match="expected a JSON list"):
        convert_deepscaler(tmp_path / "obj.json")

    rows = pq.read_table(SHARED / "deepscaler/one_shot_rlvr/dsr_sub.parquet").to_pylist()
    rows[7]["prompt"] = []
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "dsr.parquet")
    with pytest.raises(DataError, match=r"dsr\.parquet row 7: field 'prompt' must hold exactly one message"):
        convert_deepscaler(tmp_path / "dsr.parquet", skip_empty_answers=True)
    (tmp_path / "x.csv").write_text("problem,answer\n")
    with pytest.raises(DataError, match="unsupported file type"):
        convert_deepscaler(tmp_path / "x.csv")


# --- KOR-Bench ------------------------------------------------------------------------
@pytest.mark.parametrize("category", CATEGORIES)
def test_korbench_prompts_as_the_benchmark_builds_them(category):
    folder = SHARED / "korbench" / category
    samples = lines(folder / "sample.jsonl")
    rules = {r["idx"]: r["rule_content"] for r in lines(folder / "rule.jsonl")}
    conv = convert_korbench(folder, category)
    assert len(conv.rows) == 250
    header = {"cipher": "Cipher", "counterfactual": "Story", "logic": "Logic", "operation": "Operation",
              "puzzle": "Puzzle"}[category]
    for s, row in zip(samples[::50], conv.rows[::50]):
        text = row["prompt"][0]["content"]
        rule_at = text.index(f"### {header} Rule:\n\n{rules[s['rule_id']]}\n\n### Question:\n{s['question']}")
        assert text.index("### Instructions:\n\n1. ") < rule_at
        assert text.endswith("\n\n### Answer:\n")
        assert row["data_source"] == f"korbench/{category}"
        assert row["reward_model"]["ground_truth"] == s["answer"]
        assert row["extra_info"]["idx"] == s["idx"] and row["extra_info"]["rule_id"] == s["rule_id"]
        assert row["extra_info"]["question"] == s["question"]  # the contamination probe's statement
    extra = {"cipher": "category", "puzzle": "trick", "counterfactual": "real_life_answer"}.get(category)
    if extra:
        assert [r["extra_info"][extra] for r in conv.rows] == [s[extra] for s in samples]


def test_korbench_template_comes_from_the_given_file_and_braces_in_text_survive(tmp_path):
    from conftest import STANDIN_ROLE

    assert set(templates()) == set(CATEGORIES)
    assert templates()["operation"].startswith(STANDIN_ROLE)  # the file named by MIRAGE_KORBENCH_TEMPLATE
    text = korbench_prompt("logic", "rule {x}", "q {}")
    assert "rule {x}\n\n### Question:\nq {}\n\n### Answer:" in text


def test_korbench_template_missing_or_broken_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="mirage data download"):
        templates(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("logic_prompt_format: [x]\n", encoding="utf-8")
    with pytest.raises(DataError, match="operation_prompt_format"):
        templates(bad)


def test_korbench_uses_the_template_of_the_checkout_it_reads(tmp_path, monkeypatch):
    from conftest import _standin_yaml

    checkout = tmp_path / "KOR-Bench"
    shutil.copytree(SHARED / "korbench/logic", checkout / "data" / "logic")
    (checkout / "config" / "prompt").mkdir(parents=True)
    (checkout / "config" / "prompt" / "zero-shot.yaml").write_text(
        _standin_yaml().replace("STAND-IN", "CHECKOUT"), encoding="utf-8")
    monkeypatch.delenv("MIRAGE_KORBENCH_TEMPLATE")
    conv = convert_korbench(checkout / "data" / "logic", "logic")
    assert conv.rows[0]["prompt"][0]["content"].startswith("CHECKOUT TEMPLATE")


def test_korbench_broken_copies(tmp_path):
    folder = tmp_path / "operation"
    shutil.copytree(SHARED / "korbench/operation", folder)
    samples = lines(folder / "sample.jsonl")
    samples[9]["rule_id"] = "99"
    write_lines(folder / "sample.jsonl", samples)
    with pytest.raises(DataError, match=r"sample\.jsonl:10: rule_id '99' has no rule"):
        convert_korbench(folder, "operation")
    samples[9]["rule_id"] = "1"
    samples[9]["answer"] = "24"
    write_lines(folder / "sample.jsonl", samples)
    with pytest.raises(DataError, match=r"sample\.jsonl:10: field 'answer' is not in KOR-Bench's \[\[\.\.\.\]\] form"):
        convert_korbench(folder, "operation")
    rules = lines(folder / "rule.jsonl")
    del rules[3]["rule_content"]
    write_lines(folder / "rule.jsonl", rules)
    with pytest.raises(DataError, match=r"rule\.jsonl:4: field 'rule_content' is missing"):
        convert_korbench(folder, "operation")


# --- SynLogic -------------------------------------------------------------------------
def test_synlogic_sample_rows_are_kept_as_the_paper_does():
    src = lines(SHARED / "synlogic/sample_rows.jsonl")
    conv = convert_synlogic(SHARED / "synlogic/sample_rows.jsonl", "train")
    assert conv.rows == src  # already in the converted shape: a fixed point
    val = convert_synlogic(SHARED / "synlogic/sample_rows.jsonl", "test")
    assert {r["extra_info"]["split"] for r in val.rows} == {"test"}


def test_synlogic_builds_game_data_str_and_rejects_bad_rows(tmp_path):
    rows = lines(SHARED / "synlogic/sample_rows.jsonl")[:3]
    rows[0]["data_source"] = "val/sudoku"
    rows[1]["extra_info"] = {"index": 1, "game_data_str": None, "original_question": "Q?", "original_answer": "42"}
    write_lines(tmp_path / "rows.jsonl", rows)
    conv = convert_synlogic(tmp_path / "rows.jsonl", "test")
    assert conv.rows[0]["data_source"] == "val/sudoku"  # unchanged; the reward strips the prefix
    assert json.loads(conv.rows[1]["extra_info"]["game_data_str"]) == {
        "question": "Q?", "answer": "42", "difficulty": 1, "metadata": {}}
    assert conv.rows[1]["reward_model"] == {"style": "rule", "ground_truth": ""}

    for mutate, message in [
        (lambda r: r.pop("data_source"), r"rows\.jsonl:2: field 'data_source' is missing"),
        (lambda r: r["extra_info"].update(game_data_str="{not json"),
         r"rows\.jsonl:2: extra_info\.game_data_str is not valid JSON"),
        (lambda r: r["extra_info"].update(game_data_str='["a list"]'),
         r"rows\.jsonl:2: extra_info\.game_data_str must be a JSON object"),
        (lambda r: r.update(extra_info={"index": 1, "game_data_str": None}),
         r"rows\.jsonl:2 extra_info \(game_data_str is null\): field 'original_question' is missing"),
        (lambda r: r.update(prompt="text"), r"rows\.jsonl:2: field 'prompt' has type str, expected list"),
    ]:
        broken = json.loads(json.dumps(rows))
        mutate(broken[1])
        write_lines(tmp_path / "rows.jsonl", broken)
        with pytest.raises(DataError, match=message):
            convert_synlogic(tmp_path / "rows.jsonl", "train")


def test_converted_rows_are_valid_parquet_in_the_shared_schema(tmp_path):
    import pandas as pd

    conv = convert_korbench(SHARED / "korbench/cipher", "cipher")
    pd.DataFrame(conv.rows).to_parquet(tmp_path / "k.parquet", index=False)
    back = pq.read_table(tmp_path / "k.parquet").to_pylist()
    assert back == conv.rows
    assert set(back[0]) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
