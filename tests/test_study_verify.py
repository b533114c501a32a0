"""A study checks its own outputs: nothing lost, nothing silently wrong (issue 22).

Fast: the part-file check of ``mirage.runs``, the runner's read-back of a step that exited 0,
a preset name that would leave the study folder, a different preset into an existing study
folder, ``--stage analysis`` while a whole-study runner holds the folder.

Slow (one testbed-ci study per module, ~2.5 min on 2 cores, then restored from a pristine copy
at the same path for each test): ``mirage study --verify`` names a deleted samples part, a
corrupt parquet and a missing checkpoint evaluation without changing anything; a rerun redoes
exactly the damaged evaluation and ends with the undamaged study's bytes; damage a rerun cannot
repair (a checkpoint gone with its evaluation) is refused in one line, before any work.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mirage import study
from mirage.cli import main
from mirage.runs import FolderLock, check_parts, finished_in_parts
from mirage.study.preset import PresetError

PRESET = "testbed-ci"


# --- fast ------------------------------------------------------------------------------------------------
def _part(path: Path, ids: list[str], rows: int) -> Path:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"problem_id": [i for i in ids for _ in range(rows)]}).to_parquet(path)
    return path


def test_check_parts_names_every_damaged_part_and_resume_names_the_first(tmp_path):
    good = _part(tmp_path / "part-000000.parquet", ["a", "b"], 4)
    short = _part(tmp_path / "part-000002.parquet", ["c"], 3)
    again = _part(tmp_path / "part-000003.parquet", ["b"], 4)
    corrupt = tmp_path / "part-000004.parquet"
    corrupt.write_bytes(b"not a parquet file")
    done, damage = check_parts([good, short, again, corrupt], 4, unit="samples (n)")
    assert done == {"a", "b"}
    assert [(p, what.split(" ")[0]) for p, what in damage] == [(short, "problem"), (again, "problems"),
                                                                (corrupt, "unreadable")]
    assert "has 3 samples (n), expected 4" in damage[0][1] and "already in another part" in damage[1][1]
    # an evaluator resuming from these parts stops at the first, naming it and what to do (was: a pyarrow
    # error naming neither for the corrupt one)
    with pytest.raises(ValueError, match=rf"{corrupt}: unreadable .*move it aside"):
        finished_in_parts([good, corrupt], 4)


def test_a_step_that_exits_0_with_incomplete_outputs_is_failed_not_finished(tmp_path):
    from mirage.study.verify import Damage

    steps = [study.Step(sid, "cell", tmp_path / sid, [sys.executable, "-c", "pass"], {"id": sid})
             for sid in ("sound", "short")]
    lines: list[str] = []
    status = study.run_steps(steps, log=lines.append, check=lambda s: [] if s.id == "sound" else [
        Damage(s.id, s.dir / "eval", "sound samples for 168 of 200 problems")])
    assert status == {"sound": "finished", "short": "failed"}
    rec = json.loads((tmp_path / "short" / study.STEP_RECORD).read_text())
    assert rec["status"] == "failed" and "168 of 200 problems" in rec["error"]
    assert any("FAILED short" in line and "outputs are incomplete" in line for line in lines)


@pytest.mark.parametrize("name", ["../../esc", "/tmp/escaped-study", "a/b", ".hidden", ".."])
def test_a_preset_name_that_is_not_one_folder_name_is_refused(name, tmp_path, monkeypatch, capsys):
    preset = study.load_preset(PRESET).to_dict()
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps({**preset, "name": name}))  # JSON is YAML
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    with pytest.raises(PresetError, match=r"name must be one folder name"):
        study.load_preset(path)
    assert main(["study", "--preset", str(path), "--stage", "alignment"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "name must be one folder name" in err and repr(name) in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["here", "p.yaml", "work"]  # nothing written anywhere


def test_a_different_preset_into_an_existing_study_folder_is_one_line(tmp_path, capsys):
    preset = study.load_preset(PRESET)
    out = tmp_path / "study"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"preset": preset.to_dict()}))
    other = tmp_path / "other.yaml"
    other.write_text(json.dumps({**preset.to_dict(), "name": "other", "seeds": [0, 1]}))
    before = (out / "study.json").read_bytes()
    for stage in ("all", "analysis"):
        assert main(["study", "--preset", str(other), "--out", str(out), "--stage", stage]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"{out} holds a study of another preset ('testbed-ci'" in err
        assert "name: " in err and "seeds: [0] there, [0, 1] here" in err and "another --out" in err
    assert (out / "study.json").read_bytes() == before


def test_stage_analysis_while_a_whole_study_runner_holds_the_folder_says_so(tmp_path, capsys):
    out = tmp_path / "study"
    holder = subprocess.Popen([sys.executable, "-c", "import time; from mirage.runs import FolderLock; "
                               f"lock = FolderLock({str(out)!r}, 'study').acquire(); print('locked', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for stage in ("analysis", "cells"):
            assert main(["study", "--preset", PRESET, "--out", str(out), "--stage", stage]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1, err
            assert f"{out}: this study folder is locked by another mirage study runner (pid {holder.pid} " in err
            assert "None" not in err
    finally:
        holder.kill()
        holder.wait()
    # once it is gone, the same command runs (and finds nothing to analyse yet)
    assert main(["study", "--preset", PRESET, "--out", str(out), "--stage", "analysis"]) == 1
    summary = capsys.readouterr().out
    assert "notebook None" not in summary and "no finished cell (or no alignment table) to analyse yet" in summary
    with FolderLock(out, "study"):  # and it left no lock behind
        pass


# --- slow: one real study, damaged and repaired ---------------------------------------------------------
@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(the study folder, a pristine copy of it): testbed-ci run once for the module."""
    base = tmp_path_factory.mktemp("verify")
    out, pristine = base / "study", base / "pristine"
    lines: list[str] = []
    assert study.run_study(study.load_preset(PRESET), out, log=lines.append) == 0, "\n".join(lines)
    shutil.copytree(out, pristine, symlinks=True)
    return out, pristine


@pytest.fixture
def fresh(made):
    """The module's study folder as it was made (the same path: its records and manifests name it)."""
    out, pristine = made
    shutil.rmtree(out)
    shutil.copytree(pristine, out, symlinks=True)
    return out


CELL = "runs/dial-90/toy-math/ground_truth/seed0"
PART = f"{CELL}/eval/step_4/samples/toy-math_test/part-{{:06d}}.parquet"
PAIR_PART = "alignment/pairs/dial-90/toy-math/evals/dial-90/toy-math/n4_T1_p1_len48_seed0/samples/toy-math_test/" \
    "part-000096.parquet"  # the base model's measurement (a measure step)


def _damage(out: Path) -> dict[str, Path]:
    """In one cell: a deleted samples part, a corrupt samples part, a corrupt pass@k table, a missing checkpoint
    evaluation; and a deleted part of the base model's alignment measurement."""
    hurt = {"deleted part": out / PART.format(32), "corrupt part": out / PART.format(64),
            "corrupt passk": out / CELL / "eval/step_4/passk.parquet", "missing eval": out / CELL / "eval/step_2",
            "pair part": out / PAIR_PART}
    hurt["deleted part"].unlink()
    hurt["pair part"].unlink()
    hurt["corrupt part"].write_bytes(b"\0garbage\0" * 100)
    hurt["corrupt passk"].write_bytes(hurt["corrupt passk"].read_bytes()[:-40])  # truncated: no footer
    shutil.rmtree(hurt["missing eval"])
    return hurt


def _snapshot(out: Path) -> dict[str, tuple[int, str]]:
    """Every file's mtime and content hash (the runner's lock files aside)."""
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(out.rglob("*")) if p.is_file() and not p.name.startswith(".lock")}


@pytest.mark.slow
def test_verify_names_every_damage_and_changes_nothing(fresh, capsys):
    assert main(["study", "--preset", PRESET, "--out", str(fresh), "--verify"]) == 0
    assert "0 inconsistencies" in capsys.readouterr().out
    hurt = _damage(fresh)
    before = _snapshot(fresh)
    assert main(["study", "--preset", PRESET, "--out", str(fresh), "--verify"]) == 1
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert any(f"{hurt['deleted part'].parent}: sound samples for 136 of 200 problems" in line for line in lines), out
    assert any(f"{hurt['corrupt part']}: unreadable" in line for line in lines), out
    assert any(f"{hurt['corrupt passk']}: unreadable" in line for line in lines), out
    assert any(f"{hurt['missing eval']}: missing" in line for line in lines), out
    assert any(line.startswith(f"alignment/dial-90/toy-math: {hurt['pair part'].parent}: sound samples for 168 "
                               "of 200 problems") for line in lines), out
    assert all(line.startswith(("dial-90/toy-math/ground_truth/seed0: ", "alignment/dial-90/toy-math: "))
               for line in lines[:-1])
    assert "5 inconsistencies (5 a rerun redoes)" in lines[-1]
    assert _snapshot(fresh) == before  # nothing changed, nothing locked
    assert not (fresh / ".damaged").exists()


@pytest.mark.slow
def test_a_rerun_redoes_exactly_the_damaged_units_and_gives_the_undamaged_bytes(fresh, made):
    pristine = made[1]
    before = _snapshot(fresh)
    _damage(fresh)
    lines: list[str] = []
    assert study.run_study(study.load_preset(PRESET), fresh, log=lines.append) == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "[study] redo dial-90/toy-math/ground_truth/seed0" in text
    assert "[study] redo alignment/dial-90/toy-math" in text
    starts = [line.split("  (")[0] for line in lines if line.startswith("[study] start ")]
    assert starts == ["[study] start measure alignment/dial-90/toy-math",
                      "[study] start cell dial-90/toy-math/ground_truth/seed0", "[study] start analysis analysis"]
    after = _snapshot(fresh)
    # the results are the undamaged study's, to the byte; so are the redone samples and tables
    for rel in ["results.parquet", "results.csv", "problems.parquet", "dynamics.parquet",
                PART.format(32), PART.format(64), f"{CELL}/eval/step_4/passk.parquet",
                f"{CELL}/eval/step_2/passk.parquet", f"{CELL}/eval/step_2/samples/toy-math_test/part-000000.parquet",
                PAIR_PART, "alignment/pairs/dial-90/toy-math/alignment.parquet", "alignment/alignment.parquet"]:
        assert after[rel][1] == hashlib.sha256((pristine / rel).read_bytes()).hexdigest(), rel
    # exactly the damaged units were redone: the sound parts of that evaluation, the training run and every
    # other step are untouched (same mtime)
    untouched = [PART.format(0), PART.format(96), f"{CELL}/manifest.json", f"{CELL}/logs/metrics-000.jsonl",
                 f"{CELL}/checkpoints/global_step_4/actor/huggingface/model.safetensors",
                 "alignment/study_step.json", "history/dial-90/toy-math/study_step.json",
                 "runs/dial-90/toy-math/nsr/seed0/study_step.json",
                 "runs/dial-90/toy-math/one_shot/seed0/study_step.json",
                 "runs/dial-90/toy-math/nsr/seed0/eval/step_4/passk.parquet"]
    assert {rel: after[rel] for rel in untouched} == {rel: before[rel] for rel in untouched}
    # the damaged files were moved aside, not deleted
    aside = sorted(p.relative_to(fresh) for p in (fresh / ".damaged").rglob("*.parquet"))
    assert [p.parts[2:] for p in aside] == [Path(f"{CELL}/eval/step_4/passk.parquet").parts,
                                            Path(PART.format(64)).parts]
    assert (fresh / aside[1]).read_bytes() == b"\0garbage\0" * 100
    assert main(["study", "--preset", PRESET, "--out", str(fresh), "--verify"]) == 0


@pytest.mark.slow
def test_damage_a_rerun_cannot_repair_is_refused_in_one_line_before_any_work(fresh, capsys):
    shutil.rmtree(fresh / CELL / "checkpoints" / "global_step_2")
    shutil.rmtree(fresh / CELL / "eval" / "step_2")
    (fresh / PART.format(0)).unlink()  # repairable, but the runner does nothing while it refuses
    before = _snapshot(fresh)
    assert main(["study", "--preset", PRESET, "--out", str(fresh)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{fresh / CELL / 'eval' / 'step_2'}: missing" in err and "checkpoint global_step_2" in err
    assert f"fix: move {fresh / CELL} aside (or delete it) and rerun mirage study" in err
    assert "(and 1 more: `mirage study --preset testbed-ci" in err and "--verify` lists them)" in err
    assert _snapshot(fresh) == before
    # --stage analysis reads every cell: it refuses the repairable damage too, naming the command that redoes it
    shutil.rmtree(fresh)
    shutil.copytree(fresh.parent / "pristine", fresh, symlinks=True)
    (fresh / PART.format(0)).unlink()
    assert main(["study", "--preset", PRESET, "--out", str(fresh), "--stage", "analysis"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sound samples for 168 of 200 problems" in err
    assert f"fix: run `mirage study --preset testbed-ci --out {fresh}`" in err
