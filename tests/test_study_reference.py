"""A study never writes over the checkout's committed tables unless told to, and reports how its own
tables compare with them (issue 22.3; mirage.study.reference)."""

import shutil
from pathlib import Path

import pytest

from mirage.study import default_dirs, load_preset
from mirage.study.reference import TOLERANCE, compare, committed_dir, log_comparison

CHECKOUT = Path(__file__).resolve().parents[1]
QUICK = CHECKOUT / "figures" / "testbed-quick"


def test_default_figures_go_inside_the_study_folder_not_into_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    preset = load_preset("testbed-quick")
    out, figures = default_dirs(preset)
    assert out == tmp_path / "study" / "testbed-quick"
    assert figures == out / "figures"  # not figures/testbed-quick, the committed folder
    assert default_dirs(preset, "elsewhere") == (tmp_path / "elsewhere", tmp_path / "elsewhere" / "figures")
    # publishing is a choice: naming the committed folder writes there
    assert default_dirs(preset, None, "figures/testbed-quick")[1] == tmp_path / "figures" / "testbed-quick"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def tables(tmp_path):
    ref, new = tmp_path / "ref", tmp_path / "new"
    ref.mkdir()
    for name in ("results.csv", "seed_summary.csv"):
        shutil.copy(QUICK / name, ref / name)
    shutil.copytree(ref, new)
    return ref, new


def test_identical_tables_are_identical(tables):
    ref, new = tables
    assert [(c.name, c.status) for c in compare(new, ref)] == [("results.csv", "identical"),
                                                               ("seed_summary.csv", "identical")]


def _pass1(path: Path, prefix: str) -> str:
    """The committed pass@1 of a row starting with ``prefix`` (``,1,`` = k 1 follows it): read, not written in."""
    line = next(line for line in path.read_text(encoding="utf-8").splitlines() if prefix in line)
    return line.split(prefix)[1].split(",")[0]


MAJ = "dial-10,toy-logic,majority_vote,RQ1,,0,40,toy-logic_test,,1,"
ONE = "dial-60,toy-logic,one_shot,RQ2,,0,40,toy-logic_test,,1,"
ONE_SUMMARY = "pass@1,dial-60,toy-logic,toy-logic_test,one_shot,,1,"


def test_the_other_machines_numbers_are_within_tolerance(tables):
    # what another kernel path wrote (issue 22.3: AVX-512 vs AVX2 moved these two cells by 1e-4 and 3e-4)
    ref, new = tables
    maj, one = _pass1(ref / "results.csv", MAJ), _pass1(ref / "results.csv", ONE)
    other_maj, other_one = f"{float(maj) - 1e-4:.4f}", f"{float(one) + 3e-4:.4f}"
    _edit(new / "results.csv", MAJ + maj, MAJ + other_maj)
    _edit(new / "results.csv", ONE + one, ONE + other_one)
    row = next(line for line in (ref / "seed_summary.csv").read_text().splitlines() if line.startswith(ONE_SUMMARY))
    cells = row.split(",")
    assert cells[7] == cells[8] == cells[-2] == one  # values, mean, median of a one-seed cell
    cells[7] = cells[8] = cells[-2] = other_one
    _edit(new / "seed_summary.csv", row, ",".join(cells))
    results, summary = compare(new, ref)
    assert results.status == summary.status == "within"
    assert results.changed == 2 and results.max_diff == pytest.approx(3e-4)
    assert summary.changed == 3 and summary.max_diff == pytest.approx(3e-4)  # values, mean, median


def test_beyond_tolerance_and_text_changes_are_named(tables):
    ref, new = tables
    one = _pass1(ref / "results.csv", ONE)
    far = f"{float(one) + 0.02:.4f}"
    _edit(new / "results.csv", ONE + one, ONE + far)
    _edit(new / "seed_summary.csv", "pass@1,dial-10,toy-logic,toy-logic_test,ground_truth,",
          "pass@1,dial-10,toy-logic,toy-logic_test,ground_truth_x,")
    results, summary = compare(new, ref)
    assert results.status == "differs" and results.max_diff == pytest.approx(0.02) and TOLERANCE < 0.02
    assert len(results.beyond) == 1 and f"pass_at_k: {far} (committed {one})" in results.beyond[0]
    assert summary.status == "differs" and "'ground_truth_x' (committed 'ground_truth')" in summary.beyond[0]
    (new / "results.csv").write_text((ref / "results.csv").read_text().rsplit("\n", 2)[0] + "\n")  # a row lost
    assert "rows" in compare(new, ref)[0].beyond[0]
    (new / "seed_summary.csv").unlink()
    assert compare(new, ref)[1].status == "missing"


def test_the_study_logs_the_comparison_and_never_compares_the_committed_folder_with_itself(tables, tmp_path):
    ref, new = tables
    home = tmp_path / "checkout"
    shutil.copytree(ref, home / "figures" / "testbed-quick")
    assert committed_dir("testbed-quick", home) == home / "figures" / "testbed-quick"
    assert committed_dir("testbed-seeds", home) is None
    lines = []
    checks = log_comparison("testbed-quick", new, lines.append, home=home)
    assert [c.status for c in checks] == ["identical", "identical"]
    assert lines[0].startswith(f"[study] compared with the committed tables in {home / 'figures' / 'testbed-quick'}")
    assert lines[1:] == ["    results.csv: identical bytes", "    seed_summary.csv: identical bytes"]
    assert log_comparison("testbed-quick", home / "figures" / "testbed-quick", lines.append, home=home) is None
    assert log_comparison("testbed-seeds", new, lines.append, home=home) is None and len(lines) == 3
