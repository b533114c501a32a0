"""Format-free accuracy (``acc_any_format``): the answer scored whatever the format, beside pass@1 and the
format rate, per sample, per evaluation (format.csv, the manifest's summary) and in the predictors table;
an evaluation folder written before the column still loads."""

from __future__ import annotations

import json
import math

import pytest

from mirage.rewards import compute_score
from mirage.rewards.format_free import format_free_acc
from mirage.rewards.lenient import last_boxed
from mirage.sample.base import Completion, Sampler
from mirage.tasks import toy


def scored(source, text, truth, extra=None):
    from mirage.evaluate.scoring import score_samples

    return score_samples([(source, text, truth, extra)], False, {})[0]


# --- one response ----------------------------------------------------------------------------------
def test_a_format_broken_but_correct_response_is_format_free_correct_but_not_pass():
    # the answer stated after the scratchpad, without the answer tags
    r = scored("toy-math", "<think>3*4=12 5+12=17</think> 17", "17")
    assert r["format"] == 0.0 and r["acc"] == 0.0 and not r["correct"]  # pass@1 counts it wrong
    assert r["acc_any_format"] == 1.0  # format-free accuracy counts it right
    # toy-logic: the last word; a wrong one stays wrong
    assert scored("toy-logic", "<think>c+1=d</think> the answer is dbc", "dbc")["acc_any_format"] == 1.0
    assert scored("toy-logic", "<think>c+1=d</think> the answer is dbd", "dbc")["acc_any_format"] == 0.0
    # no answer at all after the scratchpad: no answer is read from the steps inside it
    assert scored("toy-math", "<think>3*4=12 5+12=17</think>", "17")["acc_any_format"] == 0.0
    # no think block either: the last number of the whole text
    assert scored("toy-math", "3*4=12 5+12=17", "17")["acc_any_format"] == 1.0


def test_a_well_formatted_response_scores_the_same_as_pass():
    for text, truth in [("<think>3*4=12 5+12=17</think> <answer>17</answer>", "17"),
                        ("<think>3*4=12 5+12=17</think> <answer>16</answer>", "17")]:
        r = scored("toy-math", text, truth)
        assert r["format"] == 1.0 and r["acc_any_format"] == r["acc"] == float(r["correct"])
    # the answer block wins over a later number when the think tags alone are broken
    r = scored("toy-math", "<answer>17</answer> 3", "17")
    assert r["format"] == 0.0 and r["acc"] == 1.0 and r["acc_any_format"] == 1.0


def test_math_reads_the_last_box_or_the_last_number():
    assert last_boxed(r"so \boxed{1} then \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{unclosed") is None
    assert last_boxed(r"\boxed{\boxed{1}}") == "1" and last_boxed(r"\boxed{2} \boxed{open") == "2"
    assert last_boxed("\\boxed{" * 50_000 + "1") is None  # adversarial text: one linear scan
    assert format_free_acc("math500", r"the answer is \boxed{42}.", "42") == 1.0
    assert format_free_acc("math500", "so x = 41, hence 42", "42") == 1.0
    assert format_free_acc("math500", "so x = 42, hence 41", "42") == 0.0
    assert compute_score("math500", r"the answer is \boxed{42}.", "42")["acc"] == 0.0  # the strict reading


def test_a_family_without_a_lenient_reading_gives_nan_on_a_broken_format():
    from mirage.rewards.routing import route

    assert route("rg/leg_counting").lenient_answer is None
    assert math.isnan(format_free_acc("rg/leg_counting", "the answer is 4", "4"))
    assert route("toy-math").lenient_answer is toy.lenient_answer  # declared on the registry entry


# --- one evaluation ------------------------------------------------------------------------------
class TaglessSampler(Sampler):
    """Every sample answers correctly; ``broken`` of every 4 samples states it without the answer tags."""

    backend = "fake"

    def __init__(self, answers: dict[str, str], broken: int):
        self.answers, self.broken = answers, broken

    def generate(self, prompts, params, seeds):
        out = []
        for messages in prompts:
            a = self.answers[messages[-1]["content"]]
            out.append([Completion(f"<think>s</think> {a}" if j % 4 < self.broken else
                                   f"<think>s</think> <answer>{a}</answer>", "stop", 4) for j in range(params.n)])
        return out


@pytest.fixture
def problems(tmp_path):
    path = tmp_path / "toy.parquet"
    frame = toy.problems_frame("toy-math", "test", 6, seed=2)
    frame.to_parquet(path)
    answers = dict(zip([p[-1]["content"] for p in frame["prompt"]], [r["ground_truth"] for r in frame["reward_model"]]))
    return path, answers


def test_an_evaluation_reports_format_rate_and_format_free_accuracy_beside_pass(problems, tmp_path):
    import pandas as pd

    from mirage import evaluate as ev
    from mirage.evaluate import predictors as pr

    path, answers = problems
    out = tmp_path / "eval"
    table = ev.evaluate("fake", str(path), 4, sampler=TaglessSampler(answers, broken=3), out_dir=out,
                        score_processes=0, progress=False)
    assert table.loc[table.k == 1, "pass_at_k"].item() == pytest.approx(0.25)
    fmt = pd.read_csv(out / "format.csv")
    assert list(fmt.columns) == ev.core.FORMAT_COLUMNS and len(fmt) == 1
    row = fmt.iloc[0]
    assert row["pass_at_1"] == pytest.approx(0.25) and row["format_rate"] == pytest.approx(0.25)
    assert row["format_free_accuracy"] == 1.0 and row["format_free_accuracy_samples"] == 1.0
    assert row["format_free_defined"] == 1.0
    summary = json.loads((out / ev.core.MANIFEST).read_text())["summary"]["toy"]
    assert summary["format_rate"] == pytest.approx(0.25) and summary["format_free_accuracy"] == 1.0
    assert summary["pass@1"] == pytest.approx(0.25)
    preds = pr.predictor_table(ev.read_samples(out))
    assert preds["format_free_accuracy"].item() == 1.0 and preds["pass_at_1"].item() == pytest.approx(0.25)


def test_an_old_folder_without_the_column_loads_and_resumes_with_nan(problems, tmp_path):
    import pandas as pd

    from mirage import evaluate as ev
    from mirage.evaluate import predictors as pr

    path, answers = problems
    out = tmp_path / "eval"
    kw = dict(out_dir=out, batch_size=2, score_processes=0, progress=False)
    ev.evaluate("fake", str(path), 4, sampler=TaglessSampler(answers, broken=0), **kw)
    parts = sorted((out / "samples").rglob("part-*.parquet"))
    for part in parts[:2]:  # as written before the column existed
        pd.read_parquet(part).drop(columns="acc_any_format").to_parquet(part)
    parts[2].unlink()
    old = ev.read_samples(out)
    assert list(old.columns) == ev.core.SAMPLE_COLUMNS and old["acc_any_format"].isna().all()
    assert math.isnan(pr.predictor_table(old)["format_free_accuracy"].item())
    ev.evaluate("fake", str(path), 4, sampler=TaglessSampler(answers, broken=0), **kw)  # resumes the lost chunk
    mixed = ev.read_samples(out)
    assert len(mixed) == 24 and mixed["acc_any_format"].notna().sum() == 8
    row = pd.read_csv(out / "format.csv").iloc[0]
    assert math.isnan(row["format_free_accuracy"]) and row["format_free_defined"] == pytest.approx(1 / 3)
    assert row["pass_at_1"] == 1.0 and row["format_rate"] == 1.0
    assert json.loads((out / ev.core.MANIFEST).read_text())["summary"]["toy"]["format_free_accuracy"] is None


def test_the_gain_split_reads_two_evaluation_folders(problems, tmp_path):
    from mirage import evaluate as ev

    from mirage.study.format_split import format_split

    path, answers = problems
    for name, broken in (("base", 3), ("final", 0)):
        ev.evaluate("fake", str(path), 4, sampler=TaglessSampler(answers, broken), out_dir=tmp_path / name,
                    score_processes=0, progress=False)
    s = format_split(tmp_path / "base", tmp_path / "final").iloc[0]
    assert s["dataset"] == "toy" and s["gain"] == pytest.approx(0.75)
    assert s["learned_format"] == pytest.approx(0.75) and s["answers_better"] == 0.0
    with pytest.raises(FileNotFoundError, match="not an evaluation folder"):
        format_split(tmp_path / "nowhere", tmp_path / "final")
