"""KOR-Bench: five categories of rule-based questions, prompted as the benchmark does.

Input: a category folder of the benchmark (``data/<category>/``) holding
``sample.jsonl`` (questions: idx, question, answer, rule_id, ...) and
``rule.jsonl`` (idx, rule_content, ...). A question joins its rule by
``rule_id == rule.idx``. The prompt is KOR-Bench's zero-shot template (shipped
verbatim in ``korbench_zero_shot.yaml``) filled with the rule and the question.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from mirage.data.common import Conversion, DataError, get_field, read_records, verl_row

CATEGORIES = ("operation", "logic", "cipher", "puzzle", "counterfactual")
# Category-specific question fields the scorers or analyses need.
EXTRA_FIELDS = {"cipher": ("category",), "puzzle": ("trick",), "counterfactual": ("real_life_answer",)}
_ANSWER = re.compile(r"\[\[.*\]\]", re.DOTALL)
TEMPLATE_FILE = Path(__file__).with_name("korbench_zero_shot.yaml")


@lru_cache(maxsize=None)
def templates() -> dict[str, str]:
    import yaml

    raw = yaml.safe_load(TEMPLATE_FILE.read_text(encoding="utf-8"))
    return {c: raw[f"{c}_prompt_format"][0] for c in CATEGORIES}


def korbench_prompt(category: str, rule_content: str, question: str) -> str:
    # str.format substitutes once: braces inside the rule or question are left alone
    return templates()[category].format(rule_content, question)


def convert_korbench(folder: str | Path, category: str) -> Conversion:
    if category not in CATEGORIES:
        raise ValueError(f"unknown KOR-Bench category {category!r}; known: {', '.join(CATEGORIES)}")
    folder = Path(folder)
    rules: dict[str, str] = {}
    for where, rec in read_records(folder / "rule.jsonl"):
        idx = get_field(rec, "idx", where)
        if idx in rules:
            raise DataError(f"{where}: duplicate rule idx {idx!r}")
        rules[idx] = get_field(rec, "rule_content", where)

    records = read_records(folder / "sample.jsonl")
    conv = Conversion(rows=[], source=str(folder), read=len(records))
    for i, (where, rec) in enumerate(records):
        question = get_field(rec, "question", where)
        answer = get_field(rec, "answer", where)
        if not _ANSWER.fullmatch(answer.strip()):
            raise DataError(f"{where}: field 'answer' is not in KOR-Bench's [[...]] form: {answer[:80]!r}")
        rule_id = get_field(rec, "rule_id", where)
        if rule_id not in rules:
            raise DataError(f"{where}: rule_id {rule_id!r} has no rule in {folder / 'rule.jsonl'}")
        extra = {"index": i, "split": "test", "idx": get_field(rec, "idx", where), "rule_id": rule_id}
        for key in EXTRA_FIELDS.get(category, ()):
            extra[key] = get_field(rec, key, where)
        conv.rows.append(verl_row(f"korbench/{category}", korbench_prompt(category, rules[rule_id], question),
                                  "logic", answer, extra))
    return conv
