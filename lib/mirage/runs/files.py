"""Files a process writes: atomic writes, append-only JSON lines, and folder locks.

Every write that must survive a kill goes through here: ``atomic_path`` / ``atomic_dir``
(write next to the target, then rename), ``append_jsonl`` (whole lines, fsynced) with
``truncate_jsonl`` (a resumed process first forgets the lines after its resume point),
and ``FolderLock`` (one writer per folder, refused at once with the holder named). A full disk
while writing is ``DiskFull``, one line naming the path and the free space (the old file or folder
kept); ``check_link`` / ``resolve`` name a symlink loop or a dangling link instead of a traceback or
a silent "does not exist".
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


# --- a full disk, a broken link: one line naming the path ----------------------------------
class DiskFull(OSError):
    """No space left where a file was being written: the message names the path and the free space."""

    def __str__(self) -> str:  # the message alone (OSError's would be "[Errno 28] None: path")
        return str(self.args[0]) if self.args else super().__str__()


_FULL = (errno.ENOSPC, errno.EDQUOT)
# how the libraries that write files report a full disk without an errno (pyarrow's message; torch's
# PytorchStreamWriter says "file write failed" after an "enforce fail"; safetensors names the OS error's text)
_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "file write failed", "StorageFull")


def is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in _FULL:
        return True
    return isinstance(error, Exception) and any(t in str(error) for t in _FULL_TEXT)


def free_space(path: str | os.PathLike) -> str:
    """The free space of the file system holding ``path`` (its nearest existing folder), e.g. '1.2 MB'."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown"
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if free < 1000 or unit == "TB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1000
    return "unknown"


def disk_full(path: str | os.PathLike) -> DiskFull:
    error = DiskFull(f"{path}: no space left on the device ({free_space(path)} free there); nothing half-written "
                     "was kept: free some space (or use another folder) and run again, finished work is not redone")
    error.errno, error.filename = errno.ENOSPC, str(path)
    return error


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Report a full disk while writing ``path`` as ``DiskFull`` naming it (other errors pass through)."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as e:  # noqa: BLE001 - each library reports a full disk its own way
        if is_disk_full(e):
            raise disk_full(path) from e
        raise


def check_link(path: str | os.PathLike) -> None:
    """An error naming ``path`` when it is a symlink loop or a link to nothing (``exists()`` says False for both)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ValueError(f"{path}: a symlink loop (too many levels of symbolic links); remove or fix "
                                 "the link") from None
        raise FileNotFoundError(f"{path}: a symlink to {os.readlink(path)}, which does not exist; remove or fix "
                                "the link")


def resolve(path: str | os.PathLike) -> Path:
    """``Path(path).expanduser().resolve()``, with a symlink loop reported as an error naming the path
    (pathlib raises a bare RuntimeError)."""
    try:
        return Path(path).expanduser().resolve()
    except RuntimeError as e:
        if "Symlink loop" not in str(e):
            raise
        raise ValueError(f"{path}: a symlink loop ({e}); remove or fix the link") from None
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise ValueError(f"{path}: a symlink loop ({e.strerror}); remove or fix the link") from None


# --- atomic file writes ----------------------------------------------------------
def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: do that once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    A crash or kill leaves the old file (or none), never a half-written one.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with writing(path):  # a full disk: one error naming the file and the free space, the old file kept
            yield tmp_path
            # mkstemp creates 0600; give the file the mode a plain open() would (umask applies)
            os.chmod(tmp_path, 0o666 & ~_UMASK)
            os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder path next to ``path``; swap it in for ``path`` on success.

    The old folder is moved aside before the new one is renamed in, so a crash or
    kill leaves the old folder or the new one, never a half-written one; a kill
    between the two renames leaves the old one aside, and the next call puts it back.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = path.parent / f".{path.name}.tmp", path.parent / f".{path.name}.old"
    if old.exists() and not path.exists():
        os.replace(old, path)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with writing(path):  # a full disk: one error naming the folder and the free space, the old folder kept
            yield tmp
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet_atomic(path: str | os.PathLike, df: "pd.DataFrame") -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def finished_in_parts(parts: Iterable[Path], rows_per_problem: int, unit: str = "rows") -> set[str]:
    """The problem ids a resumable folder's part files hold, each checked complete (``rows_per_problem``
    rows) and in one part only: a part is written atomically with whole problems, so anything else is
    damage to report (naming the part), not to resume from."""
    done, damage = check_parts(parts, rows_per_problem, unit)
    if damage:
        part, what = damage[0]
        raise ValueError(f"{part}: {what}; move it aside to sample its problems again")
    return done


def check_parts(parts: Iterable[Path], rows_per_problem: int, unit: str = "rows",
                columns: Iterable[str] = ("problem_id",)) -> tuple[set[str], list[tuple[Path, str]]]:
    """(problem ids held by the sound parts, [(part, what is wrong)] for every damaged one): a part that
    cannot be read (or lacks ``columns``), holds a problem with other than ``rows_per_problem`` rows, or
    repeats a problem of an earlier part. Reads only ``columns``; raises nothing for damage."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    done: set[str] = set()
    damage: list[tuple[Path, str]] = []
    for part in parts:  # pyarrow, not pandas: ~8x faster per small part (a study reads every part it trusts)
        try:
            counted = pc.value_counts(pq.read_table(part, columns=list(columns))["problem_id"])
            counts = dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()))
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            first = (str(e).splitlines() or [""])[0].replace(f"'{part}'", "it").split(". ")[0][:160]
            damage.append((Path(part), f"unreadable ({type(e).__name__}: {first})"))
            continue
        bad = [(pid, c) for pid, c in counts.items() if c != rows_per_problem]
        if bad:
            damage.append((Path(part), f"problem {bad[0][0]!r} has {bad[0][1]} {unit}, expected {rows_per_problem}"))
            continue
        overlap = done & set(counts)
        if overlap:
            damage.append((Path(part), f"problems {sorted(overlap)[:5]} already in another part file"))
            continue
        done |= set(counts)
    return done, damage


def dataset_chunks(todo: list, size: int) -> Iterator[list]:
    """Consecutive items of one dataset (``item[0]``), at most ``size`` per chunk: the unit a resumable
    folder writes as one part file (evaluation samples, probe rows)."""
    chunk: list = []
    for item in todo:
        if chunk and (len(chunk) == size or item[0] != chunk[0][0]):
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append whole lines and fsync: a kill loses at most the line being written."""
    path = Path(path)
    with writing(path):  # a partial last line is what a kill leaves too: the readers skip it
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, default=float) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read JSON lines; a truncated last line (a kill mid-write) is skipped, any other bad line is an error."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines):
                break
            raise ValueError(f"{path}:{i}: not valid JSON ({e})") from None
    return out


def truncate_jsonl(path: str | os.PathLike, keep: Callable[[dict], bool]) -> int:
    """Rewrite ``path`` (atomically) with only the records ``keep`` accepts; returns how many were dropped.

    Append-only logs are truncated to the resume point on every start, so a rerun
    never duplicates a line (a kill between a log line and its checkpoint included).
    """
    path = Path(path)
    if not path.exists():
        return 0
    records = read_jsonl(path)
    kept = [r for r in records if keep(r)]
    if len(kept) != len(records) or path.read_bytes()[-1:] not in (b"", b"\n"):
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in kept), encoding="utf-8")
    return len(records) - len(kept)


def first_missing(path: str | os.PathLike) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None when ``path`` exists): what a process
    creates, and removes again when it is refused before writing anything (``holds_only_locks``)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


def holds_only_locks(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds nothing but (sub)folders and ``FolderLock`` files."""
    return all(p.is_dir() or p.name in (".lock", ".lock.holder") for p in Path(folder).rglob("*"))


# --- one writer per folder -------------------------------------------------------------
class FolderBusy(RuntimeError):
    """Another process holds the folder's lock."""


# flock unsupported (Lustre or NFS mounted without it): these errnos from fcntl.flock on a probe file
_NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
_FLOCK_BY_DEVICE: dict[int, bool] = {}  # st_dev -> flock works there (probed once per filesystem and process)
MAX_AGE_ENV = "MIRAGE_LOCK_MAX_AGE_H"  # the holder's time limit in hours (a SLURM job sets it from timeout_min)
DEFAULT_MAX_AGE_H = 168.0  # without it: a week, longer than any preset's cell limit


def flock_supported(folder: str | os.PathLike) -> bool:
    """Whether ``fcntl.flock`` works on ``folder``'s filesystem (a probe file locked and unlocked there)."""
    try:
        import fcntl
    except ImportError:  # not a Unix
        return False
    dev = os.stat(folder).st_dev
    if dev not in _FLOCK_BY_DEVICE:
        fd, probe = tempfile.mkstemp(prefix=".lock-probe-", dir=folder)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            _FLOCK_BY_DEVICE[dev] = True
        except OSError as e:
            if e.errno not in _NO_FLOCK:
                raise
            _FLOCK_BY_DEVICE[dev] = False
        finally:
            os.close(fd)
            os.unlink(probe)
    return _FLOCK_BY_DEVICE[dev]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _restart_count() -> int:
    """SLURM_RESTART_COUNT: how often this job was requeued (0 outside SLURM)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    except ValueError:
        return 0


class FolderLock:
    """An exclusive lock on a folder (``<folder>/.lock``, via the filelock library).

    Taken without waiting: a second writer is refused at once with a message naming
    the holder (pid, host, command, since when). The OS releases it when the holder
    dies, however it dies (kill -9 included), so a rerun after a crash just works.

    Where the filesystem has no flock (Lustre or NFS mounted without it; filelock would silently
    fall back to a soft lock that a killed job leaves behind), the lock is a marker file
    ``<folder>/.lock.soft`` created exclusively, holding the holder record (pid, host, since, its
    maximum age). A marker whose holder is a dead pid on this host, or older than its maximum age
    (``max_age_h``, else ``$MIRAGE_LOCK_MAX_AGE_H``, else ``DEFAULT_MAX_AGE_H``: the job's time limit,
    after which SLURM has killed it), or whose holder was an earlier attempt of the same requeued SLURM job
    (``SLURM_JOB_ID``, ``SLURM_RESTART_COUNT``), is taken over with a message; a live one is refused with the
    command that clears it once its holder is known to be gone.
    """

    def __init__(self, folder: str | os.PathLike, what: str = "folder", max_age_h: float | None = None,
                 log: Callable[[str], None] | None = None):
        from filelock import FileLock

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.what = what
        self.holder_file = self.folder / ".lock.holder"
        self.soft_file = self.folder / ".lock.soft"
        env = os.environ.get(MAX_AGE_ENV, "").strip()
        self.max_age_h = float(max_age_h if max_age_h is not None else env or DEFAULT_MAX_AGE_H)
        self.log = log or (lambda m: print(m, file=sys.stderr))
        self.soft = not flock_supported(self.folder)
        self._lock = None if self.soft else FileLock(str(self.folder / ".lock"), timeout=0)
        self._held = False

    def _record(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "since_epoch": time.time(), "max_age_h": self.max_age_h, "command": " ".join(sys.argv)[:500],
                "slurm_job": os.environ.get("SLURM_JOB_ID"), "slurm_restart": _restart_count()}

    @staticmethod
    def _who(holder: dict[str, Any] | None) -> str:
        if not holder:
            return "another process"
        return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}: {holder.get('command')}"

    def _stale(self, holder: dict[str, Any] | None) -> str:
        """Why the soft lock's holder is gone ('' if it may be alive)."""
        if holder is None:
            return ""
        pid, host = holder.get("pid"), holder.get("host")
        job = os.environ.get("SLURM_JOB_ID")
        if job and holder.get("slurm_job") == job and _restart_count() > (holder.get("slurm_restart") or 0):
            return f"its holder was an earlier attempt of this SLURM job {job}, since requeued"
        if host == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid):
            return f"its holder pid {pid} on {host} is dead"
        since, limit = holder.get("since_epoch"), holder.get("max_age_h", self.max_age_h)
        if isinstance(since, (int, float)) and isinstance(limit, (int, float)):
            age_h = (time.time() - since) / 3600
            if age_h > limit:
                return f"it is {age_h:.1f} h old, past its holder's time limit of {limit:g} h"
        return ""

    def _read_soft(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.soft_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _acquire_soft(self) -> None:
        record = json.dumps(self._record())
        for _ in range(2):
            try:
                fd = os.open(self.soft_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._read_soft()
                why = self._stale(holder)
                if not why:
                    raise FolderBusy(
                        f"{self.folder}: this {self.what} is being written by {self._who(holder)} (a marker lock: "
                        f"this filesystem has no flock); wait for it to finish or stop it, or if that process is "
                        f"gone: rm {self.soft_file}") from None
                self.log(f"[lock] {self.folder}: taking over a stale lock ({why}; {self._who(holder)})")
                if self._read_soft() == holder:  # nobody took it over meanwhile
                    self.soft_file.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(record)
                f.flush()
                os.fsync(f.fileno())
            return
        raise FolderBusy(f"{self.folder}: this {self.what} was just locked by {self._who(self._read_soft())}")

    def acquire(self) -> "FolderLock":
        from filelock import Timeout

        if self.soft:
            self._acquire_soft()
        else:
            try:
                self._lock.acquire()
            except Timeout:
                try:
                    who = self._who(json.loads(self.holder_file.read_text(encoding="utf-8")))
                except (OSError, ValueError):
                    who = "another process"
                raise FolderBusy(f"{self.folder}: this {self.what} is being written by {who}; wait for it to "
                                 "finish or stop it") from None
        self._held = True
        write_json_atomic(self.holder_file, self._record())
        return self

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        self.holder_file.unlink(missing_ok=True)
        if self.soft:
            self.soft_file.unlink(missing_ok=True)
        else:
            self._lock.release()

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
