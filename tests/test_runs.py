"""Atomic folder writes (checkpoints, pretrained models)."""

import pytest

from mirage.runs import atomic_dir


def test_atomic_dir_swaps_in_a_new_folder_and_a_failure_keeps_the_old(tmp_path):
    target = tmp_path / "models" / "m"
    with atomic_dir(target) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"

    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target) as tmp:
            tmp.mkdir()
            (tmp / "a.txt").write_text("half")
            raise KeyboardInterrupt("killed mid-save")
    assert (target / "a.txt").read_text() == "one"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]  # no temporary left behind

    with atomic_dir(target) as tmp:
        tmp.mkdir()
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # replaced, not merged
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]


def test_atomic_dir_puts_back_a_folder_left_aside_by_a_kill(tmp_path):
    target = tmp_path / "m"
    aside = tmp_path / ".m.old"  # a kill between "move the old aside" and "rename the new in"
    aside.mkdir()
    (aside / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target):
            assert (target / "a.txt").read_text() == "old"  # back in place before anything else
            raise RuntimeError("failed save")
    assert (target / "a.txt").read_text() == "old" and not aside.exists()
