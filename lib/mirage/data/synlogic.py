"""SynLogic-Easy (MiniMaxAI/SynLogic, config "easy"), kept as the paper's converter keeps it.

Input: rows in the HF shape (a local parquet or jsonl; ``mirage data download``
fetches ``synlogic_easy/{train,validation}.parquet``). Output per row:
``data_source`` unchanged (the verifier key; validation rows may carry a
``val/`` prefix, which the reward strips), the single prompt message unchanged
(it already asks for <think>/<answer>), ``ability`` unchanged, an empty
``reward_model.ground_truth`` (the gold answer lives in the task state), and
``extra_info = {split, index, game_data_str}``. When ``game_data_str`` is null it is
built from ``original_question`` / ``original_answer`` as
``{question, answer, difficulty: 1, metadata: {}}``, as the paper does.
"""

from __future__ import annotations

import json
from pathlib import Path

from mirage.data.common import Conversion, DataError, get_field, read_records, verl_row


def _game_data_str(extra: dict, where: str) -> str:
    raw = extra.get("game_data_str")
    if raw is None:
        question = get_field(extra, "original_question", f"{where} extra_info (game_data_str is null)")
        answer = get_field(extra, "original_answer", f"{where} extra_info (game_data_str is null)")
        return json.dumps({"question": question, "answer": answer, "difficulty": 1, "metadata": {}})
    raw = get_field(extra, "game_data_str", f"{where} extra_info")
    try:
        state = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: extra_info.game_data_str is not valid JSON ({e})") from None
    if not isinstance(state, dict) or "question" not in state or "answer" not in state:
        raise DataError(f"{where}: extra_info.game_data_str must be a JSON object with 'question' and "
                        f"'answer' (SynLogic's Data); got {raw[:80]!r}")
    return raw


def convert_synlogic(path: str | Path, split: str) -> Conversion:
    """split: "train" for the train file, "test" for validation (the paper's names)."""
    records = read_records(path)
    conv = Conversion(rows=[], source=str(path), read=len(records))
    for i, (where, rec) in enumerate(records):
        data_source = get_field(rec, "data_source", where)
        prompt = get_field(rec, "prompt", where, (list,))
        if len(prompt) != 1 or not isinstance(prompt[0], dict):
            raise DataError(f"{where}: field 'prompt' must hold exactly one message, got {len(prompt)}")
        content = get_field(prompt[0], "content", f"{where} prompt[0]")
        ability = get_field(rec, "ability", where)
        extra = get_field(rec, "extra_info", where, (dict,))
        row = verl_row(data_source, content, ability, "",
                       {"split": split, "index": i, "game_data_str": _game_data_str(extra, where)})
        conv.rows.append(row)
    return conv
