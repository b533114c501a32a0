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


# --- a study's split (format.csv, format_summary.csv) -----------------------------------------------
def study_problems(base: list[tuple[int, int]], seeds: dict[int, list[tuple[int, int]]],
                   condition: str = "random") -> pd.DataFrame:
    """A per-problem table (problems.parquet's schema) from (f, a) per problem, n = 4 samples each; as in
    ``rows``, the first samples are the right ones and the formatted ones, so c = min(f, a)."""
    import pandas as pd
    out = []
    for cond, seed, step, problems in [("base", pd.NA, 0, base)] + [(condition, s, 20, p) for s, p in seeds.items()]:
        for pid, (f, a) in enumerate(problems):
            out.append(dict(model="m", task="toy-math", condition=cond, regime="", seed=seed, step=step,
                            dataset="toy-math_test", eval_tag="", problem_id=f"p{pid}", n=4, c=min(f, a), f=f, a=a))
    return pd.DataFrame(out)


def test_study_split_matches_the_split_of_the_same_samples():
    from mirage.study.format_split import SPLIT_COLUMNS, STUDY_SPLIT_COLUMNS, format_split, study_split

    base = [(1, 3), (2, 2), (4, 1)]  # (format ok, right whatever the format) of 4 samples
    seeds = {0: [(4, 3), (4, 2), (4, 1)], 1: [(1, 4), (2, 4), (3, 4)]}
    split = study_split(study_problems(base, seeds))
    assert list(split.columns) == STUDY_SPLIT_COLUMNS and list(split["seed"]) == [0, 1]
    for seed, problems in seeds.items():
        want = format_split(rows([(f, a, 4) for f, a in base]), rows([(f, a, 4) for f, a in problems])).iloc[0]
        got = split[split["seed"] == seed].iloc[0]
        for column in SPLIT_COLUMNS[1:]:
            assert got[column] == pytest.approx(want[column]), column
    # seed 0 only learned the format; seed 1 answers better and formats no better
    s0, s1 = split.iloc[0], split.iloc[1]
    assert s0["answers_better"] == pytest.approx(0) and s0["learned_format"] == pytest.approx(s0["gain"]) == 2 / 12
    assert s1["answers_better"] == pytest.approx(1 - 0.5) and s1["format_rate_change"] == pytest.approx(-1 / 12)


def test_format_summary_gives_every_statistic_an_interval_and_holm_per_family():
    from mirage.study.format_split import SUMMARY_STATISTICS, format_summary

    base = [(2, 3)] * 30
    # the format learnt (more in each later seed), the answers the same: pass@1 gains only through the format
    seeds = {s: [(4, 3)] * (20 + s) + [(2, 3)] * (10 - s) for s in range(3)}
    summary = format_summary(study_problems(base, seeds))
    assert list(summary["statistic"]) == [name for name, _, _ in SUMMARY_STATISTICS]
    row = summary.set_index("statistic")
    assert row.loc["pass@1 gain", "mean"] == pytest.approx(81 / 120 - 0.5)
    assert row.loc["pass@1 gain", "values"] == " ".join(f"{(80 + s) / 120 - 0.5:.4f}" for s in range(3))
    assert row.loc["learned format", "mean"] == pytest.approx(row.loc["pass@1 gain", "mean"])
    assert row.loc["answers better", "mean"] == pytest.approx(0) and row.loc["answers better", "p"] == "1"
    assert row.loc["format rate change", "mean"] == pytest.approx(102 / 120 - 0.5)
    assert bool(row.loc["pass@1 gain", "holm_survives"]) and not bool(row.loc["answers better", "holm_survives"])
    assert row.loc["format rate", "base"] == pytest.approx(0.5) and row.loc["format-free accuracy", "mean"] == 0.75
    assert (summary["ci_low"] <= summary["mean"]).all() and (summary["mean"] <= summary["ci_high"]).all()


def test_a_study_without_format_counts_is_not_split():
    from mirage.study.format_split import has_format_counts, study_split

    old = study_problems([(4, 1)] * 3, {0: [(4, 1)] * 3}).drop(columns=["f", "a"])  # analysed before f, a
    assert not has_format_counts(old)
    with pytest.raises(KeyError, match="--force-analysis"):
        study_split(old)
    undefined = study_problems([(4, 1)] * 3, {0: [(4, 1)] * 3}).astype({"a": "float64"})
    undefined.loc[1, "a"] = float("nan")  # a family without a lenient reading
    assert not has_format_counts(undefined)


def test_problem_counts_count_the_formatted_and_the_format_free_correct():
    from mirage.study.results import format_counts

    samples = rows([(1, 3, 4), (4, 2, 4)])
    counts = format_counts(samples)
    assert counts["f"].tolist() == [1, 4] and counts["a"].tolist() == [3, 2]
    samples.loc[0, "acc_any_format"] = float("nan")
    assert math.isnan(format_counts(samples)["a"].iloc[0]) and format_counts(samples)["a"].iloc[1] == 2
    assert format_counts(samples.drop(columns=["acc_any_format"]))["a"].isna().all()


def test_the_format_split_figure_draws_every_panel_and_marks_holm(tmp_path):
    import pandas as pd
    from mirage.plots import save
    from mirage.plots.format_channel import SPLIT_PANELS, plot_format_split
    from mirage.study.format_split import format_dial_labels, format_summary

    seeds = {s: [(4, 3)] * (20 + s) + [(2, 3)] * (10 - s) for s in range(3)}
    problems = pd.concat([study_problems([(2, 3)] * 30, seeds, "format"),
                          study_problems([(2, 3)] * 30, {s: [(2, 3)] * 30 for s in range(3)}, "random_ungated")
                          .query("condition != 'base'")], ignore_index=True)
    summary = format_summary(problems)
    assert format_dial_labels(["fmt-60", "m"]) == {"fmt-60": "fmt-60\nF = 0.6", "m": "m"}
    fig = plot_format_split(summary, {"m": "m (F = 0.5)"})
    assert [ax.get_title() for ax in fig.axes] == [title for _, title in SPLIT_PANELS]
    gain = fig.axes[0]
    filled = [c for c in gain.collections if c.get_label() == "format"]
    assert filled and filled[0].get_offsets()[0][1] == pytest.approx(81 / 120 - 0.5)  # survives Holm: filled
    assert [t.get_text() for t in gain.get_xticklabels()] == ["m (F = 0.5)"]
    assert all(p.exists() for p in save(fig, "format_split", tmp_path))
    with pytest.raises(ValueError, match="no row"):
        plot_format_split(summary[summary["statistic"] == "pass@1"])
