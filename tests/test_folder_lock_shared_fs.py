"""Issue 21 item 7: folder locks where the filesystem has no flock (Lustre mounted without it).

filelock then degrades to a soft lock that a killed job leaves behind, refusing every resubmission. FolderLock
detects the missing flock, locks with a marker file, takes over a marker whose holder is dead (or past its time
limit) and refuses a live one with the command that clears it."""

from __future__ import annotations

import errno
import fcntl
import json
import socket
import subprocess
import sys
import time

import pytest

from mirage.runs import FolderBusy, FolderLock, files


@pytest.fixture
def no_flock(monkeypatch):
    def flock(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(files, "_FLOCK_BY_DEVICE", {}, raising=False)  # (raising=False: runs on older code too)
    monkeypatch.setattr(fcntl, "flock", flock)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _marker(folder, **holder):
    record = {"pid": 1, "host": socket.gethostname(), "since": "2026-01-01T00:00:00", "since_epoch": time.time(),
              "max_age_h": 72.0, "command": "mirage train ..."}
    record.update(holder)
    (folder / ".lock.soft").write_text(json.dumps(record))


def test_flock_missing_is_detected(tmp_path, no_flock):
    assert files.flock_supported(tmp_path) is False
    lock = FolderLock(tmp_path / "run", "training run")
    assert lock.soft
    with lock:
        assert (tmp_path / "run" / ".lock.soft").exists()
        with pytest.raises(FolderBusy, match=r"rm .*\.lock\.soft"):  # a second writer in this process: refused
            FolderLock(tmp_path / "run", "training run").acquire()
    assert not (tmp_path / "run" / ".lock.soft").exists()  # released
    assert not list((tmp_path / "run").glob(".lock-probe-*"))


def test_flock_present_keeps_the_os_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_FLOCK_BY_DEVICE", {})
    assert files.flock_supported(tmp_path) is True and not FolderLock(tmp_path / "r").soft


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path, no_flock):
    folder = tmp_path / "run"
    folder.mkdir()
    dead = _dead_pid()
    _marker(folder, pid=dead)
    said: list[str] = []
    with FolderLock(folder, "training run", log=said.append):
        holder = json.loads((folder / ".lock.soft").read_text())
        assert holder["pid"] != dead
    assert said and f"holder pid {dead}" in said[0] and "is dead" in said[0] and "stale" in said[0]


def test_a_holder_past_its_time_limit_is_taken_over(tmp_path, no_flock):
    folder = tmp_path / "run"
    folder.mkdir()
    _marker(folder, host="another-node", pid=12345, since_epoch=time.time() - 5 * 3600, max_age_h=4.0)
    said: list[str] = []
    with FolderLock(folder, "training run", log=said.append):
        pass
    assert "past its holder's time limit of 4 h" in said[0]


def test_a_live_holder_is_still_refused(tmp_path, no_flock):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _marker(folder, pid=holder.pid)
        with pytest.raises(FolderBusy, match=rf"pid {holder.pid} on .* marker lock.*rm {folder}/\.lock\.soft"):
            FolderLock(folder, "training run").acquire()
        # another host's holder within its time limit: refused too (its pid cannot be checked from here)
        _marker(folder, host="another-node", pid=12345, max_age_h=72.0)
        with pytest.raises(FolderBusy, match="another-node"):
            FolderLock(folder, "training run").acquire()
    finally:
        holder.kill()
        holder.wait()
    assert (folder / ".lock.soft").exists()  # the refused writer left the holder's marker alone


def test_max_age_from_the_environment(tmp_path, no_flock, monkeypatch):
    monkeypatch.setenv(files.MAX_AGE_ENV, "2.5")
    with FolderLock(tmp_path / "r") as lock:
        assert lock.max_age_h == 2.5
        assert json.loads((tmp_path / "r" / ".lock.soft").read_text())["max_age_h"] == 2.5


def test_an_earlier_attempt_of_the_same_requeued_slurm_job_is_taken_over(tmp_path, no_flock, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    _marker(folder, host="node-a", pid=4242, slurm_job="777", slurm_restart=0)
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    with pytest.raises(FolderBusy):  # the same attempt (say, another task of it): still refused
        FolderLock(folder).acquire()
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # the job was requeued: its first attempt is gone
    said: list[str] = []
    with FolderLock(folder, log=said.append):
        assert json.loads((folder / ".lock.soft").read_text())["slurm_restart"] == 1
    assert "earlier attempt of this SLURM job 777" in said[0]


def test_without_flock_a_second_writer_is_refused_and_a_killed_holder_does_not_block(tmp_path, no_flock):
    """End to end, two processes on a filesystem without flock: filelock's silent fallback let the second writer
    in while the first held the folder (measured with filelock 4.3.2); now it is refused, and after the holder is
    killed (kill -9) a rerun takes the folder over."""
    folder = tmp_path / "run"
    code = ("import errno, fcntl, time\n"
            "def flock(fd, op): raise OSError(errno.ENOSYS, 'Function not implemented')\n"
            "fcntl.flock = flock\n"
            "from mirage.runs import FolderLock\n"
            f"FolderLock({str(folder)!r}, 'training run').acquire()\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-W", "ignore", "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusy, match=rf"pid {holder.pid} "):
            FolderLock(folder, "training run").acquire()
    finally:
        holder.kill()
        holder.wait()
    said: list[str] = []
    with FolderLock(folder, "training run", log=said.append):
        pass
    assert "is dead" in said[0]
