"""Fuzz the command line: any mix of good and bad flag values ends in a clean exit (0, 1, or 2 with
a one-line message), never a traceback, and a bad value never starts any work.

Deterministic (a seeded generator); every command here is a dry run or carries at least one bad
value, so nothing trains or samples.
"""

import random

import pytest

from mirage.cli import main

GOOD_MODELS = ["dial-60", "Qwen/Qwen2.5-7B"]
BAD_MODELS = ["..", "", ".hidden", "x" * 300, "a/b/c/../../d", "/no/such/model", "nul\x00l"]
GOOD_TASKS = ["toy-math", "math", "rg:basic_arithmetic", "rg:basic_arithmetic@min_terms=3"]
BAD_TASKS = ["nope", "rg:", "rg:basic_arithmetic@nope=1", "rg:nope", "../x", "", "rg:basic_arithmetic@train_size=-1"]
GOOD_CONDITIONS = ["ground_truth", "nsr", "random_ungated", "majority_vote"]
BAD_CONDITIONS = ["", "nsr ", "NSR", "random;rm -rf", "x" * 200]
SET_KEYS = ["lr", "total_steps", "ppo_epochs", "clip_ratio_low", "policy_loss", "estimator_override", "top_p",
            "dynamic_sampling", "nope", "", "lr=1"]
SET_VALUES = ["0", "-1", "1e-5", "abc", "", "nan", "inf", "true", "maybe", "no_clip", "rloo", "2", "1e400", " "]
SEEDS = ["0", "-3", "x", "1.5", "", "99999999999999999999"]


def run(argv):
    """(exit status, stderr) of one in-process CLI call; any exception other than SystemExit fails the test."""
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors: status 2, one usage line
        return e.code


def pick(rng, good, bad, p_bad=0.4):
    return rng.choice(bad) if rng.random() < p_bad else rng.choice(good)


@pytest.mark.parametrize("case", range(120))
def test_train_flags(case, capsys, tmp_path):
    rng = random.Random(case)
    argv = ["train", "--backend", rng.choice(["local", "verl"]), "--model", pick(rng, GOOD_MODELS, BAD_MODELS),
            "--task", pick(rng, GOOD_TASKS, BAD_TASKS), "--condition", pick(rng, GOOD_CONDITIONS, BAD_CONDITIONS),
            "--seed", rng.choice(SEEDS), "--run-dir", str(tmp_path / "run"), "--data-root", str(tmp_path / "data"),
            "--dry-run"]
    for _ in range(rng.randint(0, 3)):
        argv += ["--set", f"{rng.choice(SET_KEYS)}={rng.choice(SET_VALUES)}"]
    code = run(argv)
    err = capsys.readouterr().err
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, argv
    if code == 2:
        assert err.strip(), argv  # a message, not silence
        assert len(err.strip().splitlines()) == 1, err  # one line, naming the flag or key
    assert not (tmp_path / "run").exists(), argv  # a dry run writes nothing


@pytest.mark.parametrize("case", range(60))
def test_eval_flags_with_a_bad_value_start_nothing(case, capsys, tmp_path, monkeypatch):
    import mirage.evaluate.core as core

    monkeypatch.setattr(core, "make_sampler", lambda *a, **k: pytest.fail("a bad flag value reached sampling"))
    rng = random.Random(1000 + case)
    bad = {"--n": ["0", "-4", "x", "1.5"], "--temperature": ["-1", "x"], "--top-p": ["0", "1.5", "x"],
           "--max-tokens": ["0", "-1", "x"], "--seed": ["-1", "x"], "--task": BAD_TASKS, "--model": BAD_MODELS[:4]}
    good = {"--n": ["2", "8"], "--temperature": ["0", "1.0"], "--top-p": ["1.0", "0.9"], "--max-tokens": ["8"],
            "--seed": ["0", "3"], "--task": ["toy-math"], "--model": ["dial-60"]}
    flags = list(bad)
    wrong = rng.choice(flags)  # at least one bad value, so nothing may run
    argv = ["eval", "--out", str(tmp_path / "out"), "--no-progress"]
    for flag in flags:
        argv += [flag, rng.choice(bad[flag]) if flag == wrong or rng.random() < 0.2 else rng.choice(good[flag])]
    code = run(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.strip(), (argv, code, err)
    assert not (tmp_path / "out" / "samples").exists()


@pytest.mark.parametrize("case", range(30))
def test_study_dry_run_flags(case, capsys, tmp_path):
    rng = random.Random(2000 + case)
    only = rng.choice(["", "model=dial-90", "task=toy-math,condition=nsr", "seed=x", "nope=1", "model", "=",
                       "condition=ground_truth|random", "regime=u16", "model=dial-90,,task=toy-logic"])
    preset = rng.choice(["testbed-ci", "testbed-quick", "testbed-mechanism", "nope", "../x.yaml",
                         str(tmp_path / "missing.yaml")])
    argv = ["study", "--preset", preset, "--out", str(tmp_path / "study"), "--dry-run"] + (["--only", only] if only else [])
    code = run(argv)
    err = capsys.readouterr().err
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, argv
