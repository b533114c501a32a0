"""Math data: DeepScaleR (training) and MATH500 / AIME24 / AMC23 (evaluation).

Every prompt is the paper's instruction, a blank line, then the problem (one user
message; the chat template is applied later by the tokenizer).

DeepScaleR input: a .json list / .jsonl / .parquet of records with ``problem``,
``answer`` and optionally ``solution`` (the HF file ``deepscaler.json``), or
verl rows like One-Shot-RLVR's DSR-sub, whose prompt is the problem plus a
"Let's think step by step ..." suffix; that suffix is stripped so the problem gets
the paper's instruction instead. ``extra_info.index`` is the row's position in
the source (DSR-sub: its own index), so accuracy histories keyed by it stay valid.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mirage.data.common import Conversion, DataError, answer_text, get_field, is_blank, read_records, verl_row

# The paper's instruction (hkust-nlp/model-task-align-rl, src/math_data_process.py).
INSTRUCTION = (
    "Solve the following problem step by step. First, think about the reasoning process in the mind "
    "and then provide the answer. The reasoning process is enclosed within <think> </think> and the "
    "final answer is enclosed within <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here</answer>."
)
# One-Shot-RLVR's prompt suffix on DSR-sub and its pi*_r128 sets.
ONE_SHOT_SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."

# Eval sets: data_source -> extra fields copied into extra_info when present.
EVAL_SETS = {
    "math500": ("unique_id", "subject", "level", "solution"),
    "aime24": ("id", "url", "solution"),
    "amc23": ("id", "url"),
}


def math_prompt(problem: str) -> str:
    return f"{INSTRUCTION}\n\n{problem}"


def _from_verl_row(rec: dict, where: str) -> tuple[str, object, int | None, bool]:
    """(problem, answer, index, suffix stripped?) of a verl-format row such as DSR-sub."""
    prompt = get_field(rec, "prompt", where, (list,))
    if len(prompt) != 1 or not isinstance(prompt[0], dict):
        raise DataError(f"{where}: field 'prompt' must hold exactly one message, got {len(prompt)}")
    content = get_field(prompt[0], "content", f"{where} prompt[0]")
    reward_model = get_field(rec, "reward_model", where, (dict,))
    if "ground_truth" not in reward_model:
        raise DataError(f"{where}: field 'reward_model.ground_truth' is missing")
    extra = get_field(rec, "extra_info", where, (dict,), required=False) or {}
    index = get_field(extra, "index", f"{where} extra_info", (int,), required=False)
    had_suffix = content.endswith(ONE_SHOT_SUFFIX)
    if had_suffix:
        content = content[: -len(ONE_SHOT_SUFFIX)]
    if content.startswith(INSTRUCTION + "\n\n"):  # an already converted file: do not prefix twice
        content = content[len(INSTRUCTION) + 2:]
    return content, reward_model["ground_truth"], index, had_suffix


def convert_deepscaler(path: str | Path, *, skip_empty_answers: bool = False) -> Conversion:
    """DeepScaleR (or a verl-format subset of it) -> verl rows with data_source "deepscaler".

    An empty or null answer is an error naming file and row, unless
    ``skip_empty_answers``: then such rows are dropped and reported (rllm's own
    DeepScaleR pipeline drops unparseable answers; the MATH component has 4).
    """
    records = read_records(path)
    conv = Conversion(rows=[], source=str(path), read=len(records))
    stripped = 0
    for i, (where, rec) in enumerate(records):
        if "prompt" in rec and "reward_model" in rec:
            problem, answer, index, had_suffix = _from_verl_row(rec, where)
            stripped += had_suffix
            solution, answer_key = None, "reward_model.ground_truth"
        else:
            problem = get_field(rec, "problem", where)
            if "answer" not in rec:
                raise DataError(f"{where}: field 'answer' is missing")
            answer, index, answer_key = rec["answer"], None, "answer"
            solution = get_field(rec, "solution", where, required=False, nonempty=False)
        if not problem.strip():
            raise DataError(f"{where}: the problem text is empty")
        if is_blank(answer):
            if not skip_empty_answers:
                raise DataError(f"{where}: field {answer_key!r} is {'null' if answer is None else 'empty'} "
                                "(skip_empty_answers / --skip-empty-answers drops such rows, reported)")
            conv.drop(f"empty {answer_key}", where)
            continue
        extra = {"index": i if index is None else index, "split": "train"}
        if solution is not None:
            extra["solution"] = solution
        conv.rows.append(verl_row("deepscaler", math_prompt(problem), "math",
                                  answer_text(answer, where, answer_key), extra))
    if stripped:
        conv.notes.append(f"stripped the One-Shot-RLVR suffix from {stripped} prompts")
    dupes = sum(n - 1 for n in Counter(r["prompt"][0]["content"] for r in conv.rows).values() if n > 1)
    if dupes:
        conv.notes.append(f"{dupes} rows repeat an earlier problem (kept, as the paper does)")
    return conv


def convert_math_eval(path: str | Path, name: str) -> Conversion:
    """MATH500 / AIME24 / AMC23 test.jsonl -> verl rows (same prompt as training)."""
    if name not in EVAL_SETS:
        raise ValueError(f"unknown math eval set {name!r}; known: {', '.join(EVAL_SETS)}")
    records = read_records(path)
    conv = Conversion(rows=[], source=str(path), read=len(records))
    for i, (where, rec) in enumerate(records):
        problem = get_field(rec, "problem", where)
        answer = answer_text(get_field(rec, "answer", where, (str, int, float)), where)
        extra = {"index": i, "split": "test"}
        for key in EVAL_SETS[name]:
            if rec.get(key) is not None:
                extra[key] = rec[key]
        conv.rows.append(verl_row(name, math_prompt(problem), "math", answer, extra))
    return conv
