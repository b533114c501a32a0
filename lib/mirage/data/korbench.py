"""KOR-Bench: five categories of rule-based questions, prompted as the benchmark does.

Input: a category folder of the benchmark (``data/<category>/``) holding
``sample.jsonl`` (questions: idx, question, answer, rule_id, ...) and
``rule.jsonl`` (idx, rule_content, ...). A question joins its rule by
``rule_id == rule.idx``. The prompt is KOR-Bench's own zero-shot template
(``config/prompt/zero-shot.yaml`` of a KOR-Bench checkout) filled with the rule and
the question. mirage does not redistribute the template: it reads it from the
checkout that ``mirage data download`` clones (or ``$MIRAGE_KORBENCH_TEMPLATE``).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from mirage.data.common import Conversion, DataError, get_field, read_records, verl_row
from mirage.tasks import data_root

CATEGORIES = ("operation", "logic", "cipher", "puzzle", "counterfactual")
# Category-specific question fields the scorers or analyses need.
EXTRA_FIELDS = {"cipher": ("category",), "puzzle": ("trick",), "counterfactual": ("real_life_answer",)}
_ANSWER = re.compile(r"\[\[.*\]\]", re.DOTALL)
KORBENCH_REPO = "https://github.com/KOR-Bench/KOR-Bench"
KORBENCH_COMMIT = "bb8194dff8e51e2e2247cf62aa9932c3d57d53d7"  # the snapshot the shared data comes from


def template_path() -> Path:
    """``$MIRAGE_KORBENCH_TEMPLATE``, else the template of the checkout under the data root."""
    env = os.environ.get("MIRAGE_KORBENCH_TEMPLATE")
    return Path(env) if env else data_root() / "raw" / "KOR-Bench" / "config" / "prompt" / "zero-shot.yaml"


@lru_cache(maxsize=None)
def _load_templates(path: Path) -> dict[str, str]:
    import yaml

    if not path.is_file():
        raise DataError(
            f"KOR-Bench's zero-shot prompt template is not at {path}. Get it with `mirage data download "
            f"--dataset korbench` (clones {KORBENCH_REPO} at {KORBENCH_COMMIT[:7]}), or clone it yourself and set "
            f"MIRAGE_KORBENCH_TEMPLATE=<checkout>/config/prompt/zero-shot.yaml")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = {}
    for c in CATEGORIES:
        entry = raw.get(f"{c}_prompt_format") if isinstance(raw, dict) else None
        if not (isinstance(entry, list) and entry and isinstance(entry[0], str)):
            raise DataError(f"{path}: key '{c}_prompt_format' missing or not a list holding one template string")
        out[c] = entry[0]
    return out


def templates(path: str | Path | None = None) -> dict[str, str]:
    return _load_templates(Path(path) if path else template_path())


def korbench_prompt(category: str, rule_content: str, question: str, template: str | Path | None = None) -> str:
    # str.format substitutes once: braces inside the rule or question are left alone
    return templates(template)[category].format(rule_content, question)


def convert_korbench(folder: str | Path, category: str, template: str | Path | None = None) -> Conversion:
    if category not in CATEGORIES:
        raise ValueError(f"unknown KOR-Bench category {category!r}; known: {', '.join(CATEGORIES)}")
    folder = Path(folder)
    if template is None and "MIRAGE_KORBENCH_TEMPLATE" not in os.environ:
        # a checkout's data/<category> folder: use that checkout's own template
        beside = folder.resolve().parents[1] / "config" / "prompt" / "zero-shot.yaml"
        template = beside if beside.is_file() else None
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
        # the question alone (without template and rule) is what the contamination probe cuts
        extra = {"index": i, "split": "test", "idx": get_field(rec, "idx", where), "rule_id": rule_id,
                 "question": question}
        for key in EXTRA_FIELDS.get(category, ()):
            extra[key] = get_field(rec, key, where)
        conv.rows.append(verl_row(f"korbench/{category}", korbench_prompt(category, rules[rule_id], question, template),
                                  "logic", answer, extra))
    return conv
