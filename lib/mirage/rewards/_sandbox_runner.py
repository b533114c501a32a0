"""The inside of one sandbox: isolates itself, then runs a program against test inputs.

Started by ``mirage.rewards.sandbox`` as ``python -I -S -c <this file's text>`` with an
empty environment, so it imports nothing but the standard library (never mirage). It reads
one JSON job from stdin (the program, the test INPUTS, the limits, a per-run nonce; never the
expected outputs), then:

1. isolates itself: new mount, network, PID, IPC and UTS namespaces (as root directly; as any
   other user inside a new user namespace); a new root on a tmpfs holding read-only binds of
   the system and Python folders and one writable tmpfs, ``/sandbox``; no ``/etc``, ``/home``,
   ``/root``, ``/proc``, repository or data folder; then it forks the runner proper, which is
   PID 1 of the new PID namespace, switches to an unprivileged user id, drops every
   capability, sets no-new-privileges and is not dumpable (no ptrace, no fd stealing);
2. runs each test in its own forked child (the only processes that run model code), whose
   stdin is the test's input, stdout/stderr pipes to the runner, with CPU, address-space,
   stack, file-size and process-count limits and no other file descriptor (the result
   channel to the harness is closed there); after each test every other process of the
   namespace is killed (``kill(-1)`` from PID 1);
3. writes one JSON line per test to its stdout (the harness's channel), tagged with the nonce:
   the return value (function-call tests) or the captured stdout (stdin/stdout tests), never a
   verdict: the harness compares with the expected outputs, which never enter the sandbox.

Where namespaces are unavailable (``isolation: rlimits``) only the rlimits, the clean
environment, the temporary working folder and process groups remain; the harness refuses that
level unless asked for it, and reports it in every verdict.
"""

import ctypes
import errno
import json
import os
import resource
import select
import signal
import sys
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (5.12+)
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 1, 2, 4
INNER_UID = 1000  # the program's user id inside a user namespace
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("null", "zero", "random", "urandom")

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.syscall.restype = ctypes.c_long


def _check(ret, what):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _b(path):
    return None if path is None else os.fsencode(path)


def mount(src, target, fstype, flags, data=None):
    _check(libc.mount(_b(src), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def make_read_only(target, nodev=True):
    """Read-only, nosuid, nodev (unless a device), the bind and everything mounted below it."""
    attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | (MOUNT_ATTR_NODEV if nodev else 0), 0, 0, 0)
    ret = libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, _b(target), AT_RECURSIVE, ctypes.byref(attr),
                       ctypes.sizeof(attr))
    if ret == 0:
        return
    if ctypes.get_errno() != errno.ENOSYS:
        _check(-1, f"mount_setattr {target}")
    # an older kernel: remount the top bind only, keeping the atime flags a user namespace locks
    keep = os.statvfs(target).f_flag & (MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (MS_NODEV if nodev else 0) | keep)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def bind(src, root, device=False):
    """Bind host ``src`` at the same path under ``root``, read-only (a device stays usable: its node
    cannot be changed, chmod or touched, but reading and writing it work)."""
    dst = root + src
    if os.path.islink(src):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.lexists(dst):
            os.symlink(os.readlink(src), dst)
        return
    if not os.path.exists(src):
        return
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    mount(src, dst, None, MS_BIND | MS_REC)
    make_read_only(dst, nodev=not device)


def isolate(job):
    """Enter new namespaces and a new root; returns the isolation level reached."""
    if job["isolation"] == "rlimits":
        return "rlimits"
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    level = "namespaces"
    uid, gid = os.getuid(), os.getgid()
    simulate = job.get("simulate")  # tests: take the unprivileged path as root, or find no namespaces
    if os.geteuid() != 0 or simulate in ("userns", "no-namespaces") or libc.unshare(flags) != 0:
        if simulate == "no-namespaces" or libc.unshare(flags | CLONE_NEWUSER) != 0:
            e = ctypes.get_errno() if simulate != "no-namespaces" else errno.EPERM
            if job["isolation"] == "namespaces":  # required: never run the program less isolated
                raise OSError(e, f"no namespaces (unshare: {os.strerror(e)})")
            return f"rlimits (namespaces unavailable: {os.strerror(e)})"
        try:
            write("/proc/self/setgroups", "deny")
            write("/proc/self/uid_map", f"{INNER_UID} {uid} 1\n")
            write("/proc/self/gid_map", f"{INNER_UID} {gid} 1\n")
        except OSError as e:  # e.g. root without capabilities may not map uid 0 (CAP_SETFCAP)
            raise OSError(e.errno, f"user namespace id maps: {e.strerror}") from None
        level = "user-namespaces"
    if SYS_PIVOT_ROOT is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unknown architecture {os.uname().machine}")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = job["root"]  # an empty host folder made for this run; the tmpfs hides it from the host
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for d in SYSTEM_DIRS:
        bind(d, root)
    bind("/etc/ld.so.cache", root)
    for d in sys.path:  # the standard library (-I -S: nothing else), at the paths Python knows
        if os.path.isdir(d):
            os.makedirs(root + d, exist_ok=True)
            mount(d, root + d, None, MS_BIND | MS_REC)
            make_read_only(root + d)
    os.makedirs(root + "/dev")
    for name in DEVICES:
        bind("/dev/" + name, root, device=True)
    os.makedirs(root + "/sandbox")
    mount("tmpfs", root + "/sandbox", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={job['limits']['disk_bytes']},mode=0777")
    os.symlink("sandbox", root + "/tmp")
    os.makedirs(root + "/.old")
    _check(libc.syscall(SYS_PIVOT_ROOT, _b(root), _b(root + "/.old")), "pivot_root")
    os.chdir("/")
    _check(libc.umount2(b"/.old", MNT_DETACH), "umount old root")
    os.rmdir("/.old")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return level


def drop_privileges(level, sandbox_uid):
    if level == "namespaces":  # real root in new namespaces: become a user id of our own
        os.setgroups([])
        os.setresgid(sandbox_uid, sandbox_uid, sandbox_uid)
        os.setresuid(sandbox_uid, sandbox_uid, sandbox_uid)  # clears every capability
    elif level == "user-namespaces":  # a non-root user id already; drop what unshare granted
        for cap in range(64):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        _check(libc.capset(header, data), "capset")
    elif os.geteuid() == 0:  # no namespaces, but root: at least stop being root
        try:
            os.chown(".", sandbox_uid, sandbox_uid)
            os.setgroups([])
            os.setresgid(sandbox_uid, sandbox_uid, sandbox_uid)
            os.setresuid(sandbox_uid, sandbox_uid, sandbox_uid)
        except OSError as e:  # root without CAP_SETUID: say so in the level
            level += f"; still uid 0: {e.strerror}"
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    return level


# --- seccomp: a second wall that holds without namespaces too ----------------------------------------
# Refused (EPERM unless noted): sockets other than AF_UNIX (EACCES), new namespaces (unshare, setns,
# clone with a CLONE_NEW* flag; clone3 answers ENOSYS so libc falls back to clone), mounting, ptrace
# and reading or writing other processes' memory or descriptors, io_uring (it can open sockets past this filter),
# BPF, perf events, userfaultfd, keyrings, kernel modules and kexec. Any other ABI (x32, i386) is refused.
ARCH = {"x86_64": (0xC000003E, {
    "socket": 41, "ptrace": 101, "mount": 165, "umount2": 166, "pivot_root": 155, "unshare": 272, "setns": 308,
    "clone": 56, "clone3": 435, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
    "perf_event_open": 298, "userfaultfd": 323, "process_vm_readv": 310, "process_vm_writev": 311,
    "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "chroot": 161}),
        "aarch64": (0xC00000B7, {
    "socket": 198, "ptrace": 117, "mount": 40, "umount2": 39, "pivot_root": 41, "unshare": 97, "setns": 268,
    "clone": 220, "clone3": 435, "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280,
    "perf_event_open": 241, "userfaultfd": 282, "process_vm_readv": 270, "process_vm_writev": 271,
    "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "chroot": 51})}
COMMON_SYSCALLS = {"io_uring_setup": 425, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
                   "fsmount": 432, "fspick": 433, "pidfd_getfd": 438, "mount_setattr": 442}
CLONE_NAMESPACES = 0x7E020000 | 0x80  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET, NEWTIME
AF_UNIX = 1


def seccomp_program():
    """The filter as (code, jt, jf, k) tuples, or None on an architecture it does not know."""
    arch = ARCH.get(os.uname().machine)
    if arch is None:
        return None
    audit_arch, nrs = arch
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000

    def errno_(e):
        return 0x00050000 | e

    prog = [(ld, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, kill), (ld, 0, 0, 0)]
    if os.uname().machine == "x86_64":
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, errno_(errno.ENOSYS))]  # the x32 ABI
    prog += [(jeq, 0, 4, nrs["socket"]), (ld, 0, 0, 16), (jeq, 0, 1, AF_UNIX), (ret, 0, 0, allow),
             (ret, 0, 0, errno_(errno.EACCES))]
    prog += [(jeq, 0, 4, nrs["clone"]), (ld, 0, 0, 16), (jset, 0, 1, CLONE_NAMESPACES),
             (ret, 0, 0, errno_(errno.EPERM)), (ret, 0, 0, allow)]
    prog += [(jeq, 0, 1, nrs["clone3"]), (ret, 0, 0, errno_(errno.ENOSYS))]
    for name, nr in sorted({**nrs, **COMMON_SYSCALLS}.items()):
        if name not in ("socket", "clone", "clone3"):
            prog += [(jeq, 0, 1, nr), (ret, 0, 0, errno_(errno.EPERM))]
    prog.append((ret, 0, 0, allow))
    return prog


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def install_seccomp():
    """True when the filter is in place (for this process and every process it starts)."""
    prog = seccomp_program()
    if prog is None:
        return False
    filters = (SockFilter * len(prog))(*[SockFilter(*f) for f in prog])
    fprog = SockFprog(len(prog), ctypes.cast(filters, ctypes.POINTER(SockFilter)))
    PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0


CLEAN_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/sandbox", "TMPDIR": "/sandbox", "LANG": "C.UTF-8"}


def run_test(job, i, test_input, ns_init, channel):
    limits = job["limits"]
    mode = job["mode"]
    stdin_fd = os.memfd_create("stdin")
    if mode == "stdio":
        os.write(stdin_fd, test_input.encode("utf-8", "surrogateescape"))
        os.lseek(stdin_fd, 0, 0)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    start = time.monotonic()
    if not ns_init:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pid = os.fork()
    if pid == 0:  # the test child: model code runs only here, and it never returns into the runner's code
        exit_now = os._exit  # held before the program runs (it may replace os._exit)
        try:
            os.dup2(stdin_fd, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.dup2(res_w, 3)
            os.closerange(4, 1 << 16)  # the harness's channel among them
            if not ns_init:
                os.setpgid(0, 0)
            cpu = max(1, int(limits["cpu_s"] + 0.999))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
            stack = min(limits["stack_bytes"], limits["memory_bytes"])
            resource.setrlimit(resource.RLIMIT_STACK, (stack, stack))
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            run_program(job, test_input)  # exits
        finally:
            exit_now(120)  # also when the program made the exit paths of run_program raise
    if not ns_init:
        try:
            os.setpgid(pid, pid)  # also here: no window in which the group does not exist yet
        except OSError:
            pass
        ORPHANS["pgid"] = pid
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    for fd in (stdin_fd, out_w, err_w, res_w):
        os.close(fd)
    out, err, res = bytearray(), bytearray(), bytearray()
    caps = {out_r: (out, limits["output_bytes"]), err_r: (err, 4096), res_r: (res, limits["output_bytes"])}
    open_fds = [out_r, err_r, res_r]
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    deadline = start + limits["wall_s"]
    status, over, rusage, wstatus, waited = None, False, None, None, 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            status = "timeout"
            break
        watch = open_fds + ([pidfd] if pidfd is not None else [])
        ready = select.select(watch, [], [], min(remaining, 0.05 if pidfd is None else remaining))[0]
        for fd in ready:
            if fd == pidfd:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.remove(fd)
                continue
            buf, cap = caps[fd]
            if len(buf) + len(chunk) > cap:
                if fd == err_r:
                    buf.extend(chunk[: cap - len(buf)])  # stderr: keep the head, ignore the rest
                else:
                    over = True
            else:
                buf.extend(chunk)
        if over:
            status = "output_limit"
            break
        waited, wstatus, rusage = os.wait4(pid, os.WNOHANG)
        if waited == pid:
            break
    wall = time.monotonic() - start
    if waited != pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, wstatus, rusage = os.wait4(pid, 0)
    # everything the test started dies with it
    if ns_init:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        ORPHANS["pgid"] = None
    for fd in open_fds:  # drain what is left without blocking (writers are dead)
        os.set_blocking(fd, False)
        try:
            while len(caps[fd][0]) <= caps[fd][1]:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                caps[fd][0].extend(chunk)
        except BlockingIOError:
            pass
    for fd in (out_r, err_r, res_r) + ((pidfd,) if pidfd is not None else ()):
        os.close(fd)
    cpu = rusage.ru_utime + rusage.ru_stime
    signum = os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None
    code = os.WEXITSTATUS(wstatus) if os.WIFEXITED(wstatus) else None
    if status is None:
        if cpu > limits["cpu_s"] or signum == signal.SIGXCPU:
            status = "timeout"
        elif len(out) > limits["output_bytes"]:
            status = "output_limit"
        else:
            status = "exited"
    report = {"nonce": job["nonce"], "i": i, "status": status, "exit_code": code, "signal": signum,
              "cpu_s": round(cpu, 4), "wall_s": round(wall, 4),
              "child": bytes(res).decode("utf-8", "replace"),
              "stderr": bytes(err[-2000:]).decode("utf-8", "replace")}
    if mode == "stdio":
        report["stdout"] = bytes(out).decode("utf-8", "replace")
    channel.write(json.dumps(report) + "\n")
    channel.flush()
    return status


def run_program(job, test_input):
    """In the test child: run the program; report (on fd 3) its return value or what stopped it."""
    import builtins
    import io

    def report(obj):
        try:
            data = json.dumps(obj).encode() + b"\n"
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            data = json.dumps({"error": "unserialisable", "detail": f"{type(e).__name__}: {e}"[:300]}).encode()
            data += b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(3, view):]

    try:
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8",
                                     errors="surrogateescape")
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8",
                                      errors="surrogateescape")
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                      write_through=True)
        sys.argv = ["solution.py"]
        if not hasattr(builtins, "exit"):  # site (not imported: -S) defines exit() and quit(); programs call them
            builtins.exit = builtins.quit = sys.exit
        os.environ.clear()
        os.environ.update(CLEAN_ENV)
        call = job["mode"] == "call"
        scope = {"__name__": "solution" if call else "__main__", "__builtins__": builtins,
                 "__file__": "/sandbox/solution.py"}
        code = compile(job["program"], "solution.py", "exec")
        exec(code, scope)
        if call:
            fn = scope
            parts = job["fn_name"].split(".")
            for k, part in enumerate(parts):
                fn = fn[part] if isinstance(fn, dict) else getattr(fn, part)
                if isinstance(fn, type) and k < len(parts) - 1:
                    fn = fn()  # LeetCode style: Solution().method
            value = fn(*test_input)
            sys.stdout.flush()
            report({"return": value})
        else:
            sys.stdout.flush()
            report({"exit": 0})
        os._exit(0)
    except SystemExit as e:
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        report({"error": "SystemExit", "detail": repr(e.code)[:200],
                "exit": e.code if isinstance(e.code, int) else None})
        os._exit(0 if e.code in (0, None) else 1)
    except BaseException as e:
        name = type(e).__name__
        number = getattr(e, "errno", None)
        try:
            report({"error": name, "errno": number, "detail": str(e)[:300]})
        except BaseException:
            pass
        os._exit(1)


# What to kill when the harness dies (PR_SET_PDEATHSIG sends SIGTERM): the namespace's PID 1 (which
# ignores a parent-death signal of its own, as every namespace init ignores signals it has no handler
# for), or without namespaces the running test's process group.
ORPHANS = {"pid": None, "pgid": None}


def on_harness_death(signum, frame):
    for key, kill in (("pid", os.kill), ("pgid", os.killpg)):
        if ORPHANS[key]:
            try:
                kill(ORPHANS[key], signal.SIGKILL)
            except OSError:
                pass
    os._exit(4)


def main():
    raw = sys.stdin.buffer.read()
    job = json.loads(raw)
    del raw
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    channel = os.fdopen(os.dup(1), "w")
    signal.signal(signal.SIGTERM, on_harness_death)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != job["parent"]:
        os._exit(3)  # the harness died before we could tie our fate to it
    for name, value in (("RLIMIT_CORE", 0), ("RLIMIT_FSIZE", job["limits"]["file_bytes"]),
                        ("RLIMIT_NOFILE", 256)):
        resource.setrlimit(getattr(resource, name), (value, value))
    sandbox_uid = 1_000_000 + os.getpid() % 1_000_000  # its own user id: its own process count
    try:
        level = isolate(job)
    except OSError as e:
        channel.write(json.dumps({"nonce": job["nonce"], "fatal": f"sandbox setup failed: {e}"}) + "\n")
        channel.flush()
        os._exit(2)
    ns_init = not level.startswith("rlimits")
    if ns_init:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        pid = os.fork()  # the child is PID 1 of the new PID namespace
        if pid:
            ORPHANS["pid"] = pid
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            _, wstatus = os.waitpid(pid, 0)
            os._exit(os.waitstatus_to_exitcode(wstatus) & 0xFF)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        os.chdir("/sandbox")
    else:
        os.chdir(job["root"])
    try:
        level = drop_privileges(level, sandbox_uid)
    except OSError as e:
        channel.write(json.dumps({"nonce": job["nonce"], "fatal": f"dropping privileges failed: {e}"}) + "\n")
        channel.flush()
        os._exit(2)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)  # a change of user id cleared it
    if not ns_init and os.getppid() != job["parent"]:
        os._exit(3)
    nproc = job["limits"]["processes"]
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    seccomp = install_seccomp()  # reported; the namespaces hold without it
    channel.write(json.dumps({"nonce": job["nonce"], "isolation": level, "seccomp": seccomp}) + "\n")
    channel.flush()
    for i, test_input in enumerate(job["inputs"]):
        status = run_test(job, i, test_input, ns_init, channel)
        if status == "timeout" and job["stop_after_timeout"]:
            break
    channel.write(json.dumps({"nonce": job["nonce"], "done": True}) + "\n")
    channel.flush()
    os._exit(0)


main()
