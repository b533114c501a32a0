"""The forced-procedure probe: a model that takes the buggy route unforced but continues a correct prefix
correctly is scored capable when forced; one that cannot continue it is scored incapable (the probe can
fail); bad input is refused before any work; the folder resumes; a shipped testbed model runs through it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import json
from pathlib import Path

import pytest

from mirage.sample.base import Completion, RawText, Sampler
from mirage.tasks import toy

if TYPE_CHECKING:  # annotations only: the tests import it where they use it
    import pandas as pd


class HabitSampler(Sampler):
    """Unforced: always the buggy procedure. Forced: ``capable`` continues the correct prefix correctly,
    otherwise it ignores the prefix and finishes on the buggy route."""

    backend = "fake"

    def __init__(self, frame: pd.DataFrame, capable: bool):
        self.problems = {p[-1]["content"]: e for p, e in zip(frame["prompt"], frame["extra_info"])}
        self.truth = {p[-1]["content"]: r["ground_truth"] for p, r in zip(frame["prompt"], frame["reward_model"])}
        self.capable, self.raw_prompts = capable, []

    @staticmethod
    def render_prompt(messages) -> str:
        return f"<|user|>{messages[-1]['content']}<|assistant|>"

    def generate(self, prompts, params, seeds):
        from mirage.probe.forced import split_steps

        out = []
        for prompt in prompts:
            if isinstance(prompt, RawText):
                self.raw_prompts.append(prompt.text)
                content = next(c for c in self.problems if self.render_prompt([{"content": c}]) in prompt.text)
                e, given = self.problems[content], prompt.text.split("<think>")[-1].split()
                if self.capable:
                    rest = split_steps(e["steps"])[len(given):]
                    text = f"{' '.join(rest)}</think> <answer>{self.truth[content]}</answer>"
                else:
                    text = f"{e['buggy_steps']}</think> <answer>{e['buggy_answer']}</answer>"
            else:
                e = self.problems[prompt[-1]["content"]]
                text = f"<think>{e['buggy_steps']}</think> <answer>{e['buggy_answer']}</answer>"
            out.append([Completion(text, "stop", 8) for _ in range(params.n)])
        return out

    def describe(self):
        return {"backend": "fake", "capable": self.capable}


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "toy.parquet"
    frame = toy.problems_frame("toy-math", "test", 8, seed=3, difficulties=(4, 5))
    frame.to_parquet(path)
    return path, frame


def test_a_buggy_habit_model_that_can_continue_is_scored_capable_when_forced(dataset, tmp_path):
    from mirage.probe.forced import forced_prefix, probe_forced, read_rows, split_steps

    path, frame = dataset
    sampler = HabitSampler(frame, capable=True)
    summary = probe_forced("fake", str(path), sampler=sampler, out_dir=tmp_path / "p", progress=False).iloc[0]
    assert summary["unforced_acc"] == 0.0 and summary["unforced_buggy"] == 1.0
    assert summary["forced_acc"] == 1.0 and summary["forced_gain"] == 1.0 and summary["forced_format"] == 1.0
    # the forced prompt is the rendered chat prompt, <think> and the first correct step
    e = frame["extra_info"].iloc[0]
    assert sampler.raw_prompts[0].endswith(f"<|assistant|><think>{split_steps(e['steps'])[0]} ")
    rows = read_rows(tmp_path / "p")
    assert len(rows) == 8 and (rows["forced_procedure"] == "correct").all()
    assert rows["forced_text"].iloc[0].startswith(forced_prefix(e["steps"], 1))


def test_a_model_that_cannot_continue_is_scored_incapable(dataset, tmp_path):
    from mirage.probe.forced import probe_forced

    path, frame = dataset
    summary = probe_forced("fake", str(path), sampler=HabitSampler(frame, capable=False), out_dir=tmp_path / "p",
                           progress=False).iloc[0]
    assert summary["unforced_acc"] == 0.0 and summary["forced_acc"] == 0.0 and summary["forced_buggy"] == 1.0


def test_more_prefix_steps_and_resume_and_other_settings_refused(dataset, tmp_path):
    from mirage.probe.forced import probe_forced

    path, frame = dataset
    out = tmp_path / "p"
    first = probe_forced("fake", str(path), prefix_steps=2, sampler=HabitSampler(frame, True), out_dir=out,
                         batch_size=3, progress=False)
    assert first["prefix_steps"].item() == 2 and first["forced_acc"].item() == 1.0
    parts = sorted((out / "rows").rglob("part-*.parquet"))
    assert len(parts) == 3
    parts[-1].unlink()  # lost in a kill: the rerun redoes only that chunk
    again = HabitSampler(frame, True)
    second = probe_forced("fake", str(path), prefix_steps=2, sampler=again, out_dir=out, batch_size=3, progress=False)
    assert len(again.raw_prompts) == 2 and second.equals(first)
    assert json.loads((out / "forced_manifest.json").read_text())["status"] == "finished"
    with pytest.raises(ValueError, match="other settings"):
        probe_forced("fake", str(path), prefix_steps=1, sampler=HabitSampler(frame, True), out_dir=out, progress=False)


def test_bad_input_is_refused_before_any_work(dataset, tmp_path):
    from mirage.probe.forced import probe_forced

    path, frame = dataset
    sampler = HabitSampler(frame, True)
    with pytest.raises(ValueError, match=r"--prefix-steps 4: .* has \d step"):
        probe_forced("fake", str(path), prefix_steps=4, sampler=sampler, out_dir=tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="prefix_steps"):
        probe_forced("fake", str(path), prefix_steps=0, sampler=sampler, out_dir=tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="--n 2: greedy"):
        probe_forced("fake", str(path), n=2, sampler=sampler, out_dir=tmp_path / "c", progress=False)
    assert sampler.raw_prompts == [] and not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_a_task_without_worked_solutions_is_refused(tmp_path):
    import pandas as pd

    from mirage.probe.forced import probe_forced

    path = tmp_path / "m.parquet"
    pd.DataFrame([{"data_source": "math500", "prompt": [{"role": "user", "content": "1+1?"}], "ability": "math",
                   "reward_model": {"style": "rule", "ground_truth": "2"},
                   "extra_info": {"index": 0}}]).to_parquet(path)
    with pytest.raises(ValueError, match="testbed tasks only"):
        probe_forced("fake", str(path), sampler=HabitSampler(pd.read_parquet(path), True), out_dir=tmp_path / "p",
                     progress=False)


def test_a_shipped_testbed_model_runs_through_the_probe(tmp_path):
    from mirage.probe.forced import probe_forced, read_rows

    from mirage.models import resolve_model

    model = Path(resolve_model("dial-90"))
    if not (model / "config.json").is_file():
        pytest.skip("dial-90 is not built here")
    summary = probe_forced("dial-90", "toy-math", limit=4, out_dir=tmp_path / "p", progress=False,
                           sampler_kwargs={"threads": 1}).iloc[0]
    rows = read_rows(tmp_path / "p")
    assert summary["problems"] == 4 and len(rows) == 4
    assert rows["forced_text"].str.startswith("<think>").all()
    assert 0.0 <= summary["unforced_acc"] <= 1.0 and 0.0 <= summary["forced_acc"] <= 1.0


def test_the_cli_refuses_bad_flags_in_one_line_and_runs_a_testbed_model(tmp_path, capsys):
    from mirage.cli import main

    def run(argv):
        try:
            return main(argv)
        except SystemExit as e:
            return e.code

    out = tmp_path / "p"
    for bad in (["--prefix-steps", "0"], ["--prefix-steps", "9"], ["--n", "2"], ["--temperature", "-1"]):
        code = run(["probe", "forced", "--model", "dial-90", "--task", "toy-math", "--out", str(out), *bad])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (bad, err)
        assert not out.exists()
    assert run(["probe", "forced", "--model", "dial-90", "--task", "toy-logic", "--limit", "3", "--threads", "1",
                "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "forced_acc" in printed and "toy-logic_test" in printed
