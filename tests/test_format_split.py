"""The gain split: pass@1 gain = answers_better (change in format-free accuracy) + learned_format."""

from __future__ import annotations

from typing import TYPE_CHECKING

import math

import pytest

if TYPE_CHECKING:  # annotations only: the tests import it where they use it
    import pandas as pd


def rows(correct_fmt: list[tuple[int, int, int]], dataset: str = "d") -> pd.DataFrame:
    """Sample rows: one problem per tuple (format ok, answer right whatever the format, n)."""
    import pandas as pd

    out = []
    for pid, (fmt_ok, right, n) in enumerate(correct_fmt):
        for i in range(n):
            fmt, any_ok = i < fmt_ok, i < right  # the first ``right`` samples are right
            out.append({"dataset": dataset, "problem_id": str(pid), "sample_index": i, "format": float(fmt),
                        "acc": float(fmt and any_ok), "acc_any_format": float(any_ok),
                        "correct": bool(fmt and any_ok)})
    return pd.DataFrame(out)


def test_pure_format_learning_is_all_learned_format():
    # the base model is right 3 times in 4 but formats only 1; the final one formats all 4
    from mirage.study.format_split import SPLIT_COLUMNS, format_split

    base, final = rows([(1, 3, 4)] * 5), rows([(4, 3, 4)] * 5)
    s = format_split(base, final).iloc[0]
    assert list(format_split(base, final).columns) == SPLIT_COLUMNS
    assert s["gain"] == pytest.approx(0.5) and s["format_rate_change"] == pytest.approx(0.75)
    assert s["answers_better"] == pytest.approx(0.0) and s["learned_format"] == pytest.approx(0.5)


def test_pure_reasoning_gain_is_all_answers_better():
    from mirage.study.format_split import format_split

    base, final = rows([(4, 1, 4)] * 5), rows([(4, 3, 4)] * 5)
    s = format_split(base, final).iloc[0]
    assert s["gain"] == pytest.approx(0.5) and s["answers_better"] == pytest.approx(0.5)
    assert s["learned_format"] == pytest.approx(0.0) and s["format_rate_change"] == 0.0


def test_a_mix_adds_up_and_a_format_rate_rise_without_gain_is_not_counted():
    from mirage.study.format_split import format_split

    base, final = rows([(1, 1, 4), (2, 2, 4)]), rows([(4, 2, 4), (4, 3, 4)])
    s = format_split(base, final).iloc[0]
    # pass@1 and format-free accuracy both go (1+2)/8 -> (2+3)/8: every right answer is formatted
    assert s["gain"] == pytest.approx(s["answers_better"] + s["learned_format"])
    assert s["gain"] == pytest.approx(0.25) and s["answers_better"] == pytest.approx(0.25)
    # the format rate rose by 5/8, yet every formatted-newly answer was wrong: no format term
    assert s["format_rate_change"] == pytest.approx(5 / 8) and s["learned_format"] == pytest.approx(0.0)


def test_scalars_and_nan_and_bad_input():
    import pandas as pd

    from mirage.study.format_split import format_split, split_gain

    s = split_gain({"pass_at_1": 0.2, "format_rate": 0.3, "format_free_accuracy": 0.6},
                   {"pass_at_1": 0.5, "format_rate": 0.9, "format_free_accuracy": 0.6})
    assert s["learned_format"] == pytest.approx(0.3) and s["answers_better"] == pytest.approx(0.0)
    s = split_gain({"pass_at_1": 0.2, "format_rate": 0.3, "format_free_accuracy": float("nan")},
                   {"pass_at_1": 0.5, "format_rate": 0.9, "format_free_accuracy": 0.6})
    assert math.isnan(s["answers_better"]) and math.isnan(s["learned_format"]) and s["gain"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="pass_at_1 must be in"):
        split_gain({"pass_at_1": 1.2, "format_rate": 0.3, "format_free_accuracy": 0.6},
                   {"pass_at_1": 0.5, "format_rate": 0.9, "format_free_accuracy": 0.6})
    with pytest.raises(KeyError, match="format_free_accuracy"):
        format_split(pd.DataFrame({"dataset": ["d"], "pass_at_1": [0.1], "format_rate": [1.0]}), rows([(1, 1, 1)]))
    with pytest.raises(ValueError, match="no dataset in both"):
        format_split(rows([(1, 1, 1)], "a"), rows([(1, 1, 1)], "b"))
