"""The code checker and its sandbox: correct programs pass, wrong ones fail with their reason,
and hostile programs score 0 with theirs while the host stays unchanged.

Each hostile program is written so that it WOULD pass if the sandbox leaked what it goes for
(the expected output is what the leak would print), so a leak fails the test, not just a crash.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirage.rewards import compute_score
from mirage.rewards.checkers import code, register_source
from mirage.rewards import sandbox

REPO = Path(__file__).resolve().parents[1]
SOURCE = "test-code-sandbox"  # a data source routed to the code checker for these tests only
register_source(SOURCE, "code")
PLUGIN = "code_sandbox_plugin"  # registers SOURCE in the processes compute_scores starts
FAST = dict(code_timeout=0.5)  # per test: 0.5 s CPU, 2 s wall
RUNNER_MARK = "The inside of one sandbox"  # in every sandbox process's command line


def wrap(program: str) -> str:
    return f"<think>t</think> <answer>```python\n{program}\n```</answer>"


def score(program: str, gt: dict, **opts) -> tuple[dict, code.Verdict]:
    """compute_score's result and the checker's verdict (with details) for one program."""
    opts = {**FAST, **opts}
    result = compute_score(SOURCE, wrap(program), gt, **opts)
    tests = code.parse_tests(gt)
    acc, details, error = code.score_program(program, tests, code.CodeOptions(**opts).limits)
    assert bool(result["acc"]) == acc
    return result, details


ADD = {"inputs": [[1, 2], [3, 4], [10, -5]], "outputs": [3, 7, 5], "fn_name": "add"}
SUM_STDIN = {"inputs": ["1 2\n", "3 4\n", "10 -5\n"], "outputs": ["3\n", "7\n", "5\n"]}


def one_output(expected: str) -> dict:
    """A stdin/stdout problem with one test whose expected output is ``expected``."""
    return {"inputs": [""], "outputs": [expected]}


def sandbox_processes() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
            uid = int(Path(f"/proc/{pid}/status").read_text().split("\nUid:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
        if RUNNER_MARK in cmd or uid >= 1_000_000:
            out.append(f"{pid} uid={uid} {cmd[:60]!r}")
    return out


@pytest.fixture(scope="module", autouse=True)
def host_unchanged(tmp_path_factory):
    """Around the whole module: the repository's files, a marker file, no sandbox process left."""
    if sandbox.probe().error:
        pytest.skip(f"no namespaces here: {sandbox.probe().error}")
    marker = REPO / "tests" / "fixtures" / "code_sandbox_marker.txt"
    before_marker = marker.read_bytes()
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True).stdout
    before_tmp = {p.name for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("mirage-sandbox-*")}
    devnull = os.stat("/dev/null")
    yield marker
    assert (os.stat("/dev/null").st_mode, os.stat("/dev/null").st_mtime) == (devnull.st_mode, devnull.st_mtime)
    time.sleep(0.2)
    assert sandbox_processes() == []
    assert marker.read_bytes() == before_marker
    assert subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=all"],
                          capture_output=True, text=True).stdout == status
    assert not (REPO / "PWNED").exists() and not (REPO / "tests" / "PWNED").exists()
    after_tmp = {p.name for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("mirage-sandbox-*")}
    assert after_tmp <= before_tmp  # every run's temporary folder is removed


# --- correct and wrong programs ------------------------------------------------------------------
def test_correct_programs_pass_both_test_forms():
    result, details = score("def add(a, b):\n    return a + b", ADD)
    assert result["acc"] == 1.0 and result["score"] == 1.0 and details["share"] == 1.0
    assert details["isolation"] in ("namespaces", "user-namespaces") and details["seccomp"]
    result, details = score("import sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b)", SUM_STDIN)
    assert result["acc"] == 1.0 and details["reason"] == "passed"


def test_wrong_programs_fail_with_the_failing_test():
    result, details = score("def add(a, b):\n    return a + b if a < 5 else a - b", ADD)
    assert result["acc"] == 0.0 and result["score"] == 0.0
    assert details["reason"] == "wrong answer on test 2" and details["passed"] == 2
    assert details["share"] == pytest.approx(2 / 3)
    assert details["tests"] == ["passed", "passed", "wrong answer on test 2"]
    result, details = score("a, b = map(int, input().split())\nprint(a * b if a == 3 else a + b)", SUM_STDIN)
    assert result["acc"] == 0.0 and details["reason"] == "wrong answer on test 1"


def test_leetcode_style_and_livecodebench_tests():
    gt = {"fn_name": "Solution.twice",
          "tests": [{"input": "3", "output": "6", "testtype": "functional"},
                    {"input": "[1, 2]", "output": "[1, 2, 1, 2]", "testtype": "functional"}]}
    result, details = score("class Solution:\n    def twice(self, x):\n        return x * 2", gt)
    assert result["acc"] == 1.0, details
    gt = {"tests": [{"input": "2\n", "output": "4\n", "testtype": "stdin"}]}
    assert score("print(int(input()) ** 2)", gt)[0]["acc"] == 1.0


def test_comparison_rules():
    assert code.same_value((1, [2.0000000001]), [1, [2]])
    assert not code.same_value(True, 1) and not code.same_value(1, 1.5) and not code.same_value("1", 1)
    assert code.same_output("1 2  \n3\n\n", "1 2\n3") and code.same_output("0.3333333", "0.33333333")
    assert not code.same_output("1 2", "1 3") and not code.same_output("", "0")


def test_extraction():
    assert code.extract_program("", "```python\nx = 1\n```\ntext\n```py\ny = 2\n```") == "y = 2\n"
    assert code.extract_program("", "print(1)") == "print(1)"  # bare code in the answer
    assert code.extract_program("", "```text\nnot code\n```") is None
    assert code.extract_program("```python\nz = 3\n```", None) is None  # no <answer>: nothing
    assert code.extract_program("```python\nz = 3\n```", None, "last_block") == "z = 3\n"
    assert code.extract_program("", "   ") is None


def test_livecodebench_functional_inputs_are_one_json_value_per_line():
    tests = code.parse_tests(json.dumps({"fn_name": "f", "tests": [
        {"input": '[1, 2]\n"ab"\n', "output": '{"k": [1]}', "testtype": "functional"}]}))
    assert (tests.mode, tests.inputs, tests.outputs) == ("call", [[[1, 2], "ab"]], [{"k": [1]}])


def test_bad_rows_and_options_are_errors_naming_them(monkeypatch):
    monkeypatch.setenv("MIRAGE_SANDBOX_PROCS", "two")
    with pytest.raises(ValueError, match="MIRAGE_SANDBOX_PROCS"):
        sandbox.max_parallel()
    monkeypatch.delenv("MIRAGE_SANDBOX_PROCS")
    with pytest.raises(ValueError, match="mixes"):
        code.parse_tests({"fn_name": "f", "tests": [{"input": "1", "output": "1", "testtype": "stdin"},
                                                    {"input": "1", "output": "1", "testtype": "functional"}]})
    with pytest.raises(ValueError, match="inputs"):
        code.parse_tests({"outputs": [1]})
    with pytest.raises(ValueError, match="same length"):
        code.parse_tests({"inputs": [[1]], "outputs": []})
    with pytest.raises(ValueError, match="code_timeout"):
        compute_score(SOURCE, wrap("x = 1"), ADD, code_timeout=0)
    with pytest.raises(ValueError, match="code_isolation"):
        compute_score(SOURCE, wrap("x = 1"), ADD, code_isolation="none")


# --- hostile programs (each scores 0 with its reason) --------------------------------------------
def test_empty_answer_and_no_answer():
    for text in ("<think>t</think> <answer></answer>", "<think>t</think> <answer>```python\n```</answer>",
                 "no tags at all"):
        result = compute_score(SOURCE, text, ADD, **FAST)
        assert result["acc"] == 0.0 and result["pred"] is None and result["error"] is None
    assert code.score_program(None, code.parse_tests(ADD))[1]["reason"] == "no program"


def test_syntax_error():
    result, details = score("def add(a, b)\n    return a + b", ADD)
    assert result["acc"] == 0.0 and details["reason"].startswith("compile error: SyntaxError")


def test_non_utf8_bytes():
    bad = b"<think>t</think> <answer>```python\ndef add(a, b):\n    return a + b  # \xff\xfe\n```</answer>"
    assert compute_score(SOURCE, bad, ADD, **FAST)["acc"] == 1.0  # decoded with replacement: still runs
    surrogate = wrap("def add(a, b):\n    return '\udcff'")
    assert compute_score(SOURCE, surrogate, ADD, **FAST)["acc"] == 0.0
    # a program printing invalid UTF-8 where the expected output is those bytes' text
    result, details = score("import sys\nsys.stdout.buffer.write(b'\\xff\\xfe')", one_output("\udcff\udcfe"))
    assert result["acc"] == 0.0 and details["reason"] == "wrong answer on test 0"


def test_infinite_loop_times_out():
    result, details = score("def add(a, b):\n    while True:\n        pass", ADD)
    assert result["acc"] == 0.0 and details["reason"].startswith("timeout on test 0")
    assert details["tests"][1].startswith("not run")  # the rest are not run after a timeout


def test_sleeping_past_the_wall_limit():
    start = time.monotonic()
    result, details = score("import time\ndef add(a, b):\n    time.sleep(60)\n    return a + b", ADD)
    assert result["acc"] == 0.0 and details["reason"].startswith("timeout on test 0")
    assert time.monotonic() - start < 20  # killed at the 2 s wall limit (twice: compute_score and score_program)


def test_fork_bomb():
    bomb = ("import os\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n"
            "        except OSError:\n            pass")
    result, details = score(bomb, ADD)
    assert result["acc"] == 0.0 and details["reason"].startswith("timeout on test 0")
    bomb = "import os\nwhile True:\n    os.fork()"
    result, details = score(bomb, ADD)
    assert result["acc"] == 0.0 and "forbidden operation on test 0: BlockingIOError" in details["reason"]


def test_ten_gigabyte_allocation():
    result, details = score("x = bytearray(10 * 1024 ** 3)\ndef add(a, b):\n    return a + b", ADD)
    assert result["acc"] == 0.0 and details["reason"] == "memory limit on test 0"


def test_deep_recursion():
    result, details = score("def add(a, b):\n    return add(a, b) + 1", ADD)
    assert result["acc"] == 0.0 and details["reason"].startswith("crash on test 0: RecursionError")
    deep = "import sys\nsys.setrecursionlimit(10 ** 8)\ndef add(a, b):\n    return add(a, b) + 1"
    result, details = score(deep, ADD)
    # frames live on the heap in Python 3.11: memory, a crash, or the time limit, whichever comes first
    assert result["acc"] == 0.0 and details["reason"].startswith(("crash on test 0", "memory limit on test 0",
                                                                  "timeout on test 0"))


def test_ten_megabytes_of_output():
    result, details = score("print('x' * 10_000_000)", one_output("x" * 10_000_000))
    assert result["acc"] == 0.0 and details["reason"] == "output limit on test 0"
    result, details = score("def add(a, b):\n    print('x' * 10_000_000)\n    return a + b", ADD)
    assert result["acc"] == 0.0 and details["reason"] == "output limit on test 0"


def test_writing_outside_its_folder(host_unchanged):
    marker = host_unchanged
    for target in (marker, REPO / "PWNED", REPO / "tests" / "PWNED", Path("/usr/PWNED"), Path("/PWNED")):
        program = (f"with open({str(target)!r}, 'w') as f:\n    f.write('pwned')\n"
                   "print('written')")
        result, details = score(program, one_output("written\n"))
        assert result["acc"] == 0.0, target
        assert details["reason"].startswith(("forbidden operation on test 0", "crash on test 0: FileNotFoundError"))
    # its own folder is writable, and a huge file is refused
    assert score("open('f', 'w').write('ok')\nprint(open('/tmp/f').read())", one_output("ok"))[0]["acc"] == 1.0
    result, details = score("open('f', 'wb').write(b'x' * (100 << 20))\nprint('ok')", one_output("ok"))
    assert result["acc"] == 0.0 and details["reason"].startswith("forbidden operation on test 0")


def test_reading_host_secrets(tmp_path, monkeypatch):
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    assert score("print(open('/etc/passwd').readline(), end='')", one_output(passwd + "\n"))[0]["acc"] == 0.0
    home = sorted(os.listdir(Path.home()))
    result, _ = score(f"import os\nprint(sorted(os.listdir({str(Path.home())!r})))", one_output(f"{home}\n"))
    assert result["acc"] == 0.0
    monkeypatch.setenv("MIRAGE_TEST_SECRET", "s3cret-value")
    result, details = score("import os\nprint(os.environ.get('MIRAGE_TEST_SECRET'))", one_output("s3cret-value\n"))
    assert result["acc"] == 0.0 and details["reason"] == "wrong answer on test 0"
    # the expected outputs on disk (a data file, the repository) are not there to read
    answers = tmp_path / "expected.json"
    answers.write_text(json.dumps(SUM_STDIN["outputs"]))
    cheat = (f"import json\nout = json.load(open({str(answers)!r}))\n"
             "import sys\nprint(out[{'1 2': 0, '3 4': 1}.get(sys.stdin.read().strip(), 2)], end='')")
    result, details = score(cheat, SUM_STDIN)
    assert result["acc"] == 0.0 and details["reason"].startswith("crash on test 0: FileNotFoundError")
    assert score(f"print(open({str(REPO / 'README.md')!r}).read()[:5])", one_output("# mir"))[0]["acc"] == 0.0


def test_network_is_unreachable():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        program = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                   "print('connected')")
        result, details = score(program, one_output("connected\n"))
        assert result["acc"] == 0.0 and details["reason"].startswith("forbidden operation on test 0")
        with pytest.raises(socket.timeout):
            server.accept()  # nothing reached the host's loopback
    finally:
        server.close()


def test_killing_the_parent_and_siblings():
    killer = ("import os, signal\nfor pid in (os.getppid(), 1, -1, 0):\n    try:\n        os.kill(pid, 9)\n"
              "    except OSError:\n        pass\nprint('3')")
    jobs = [dict(program=killer, inputs=[""], mode="stdio", limits=sandbox.Limits(cpu_s=0.5))] * 2 + \
           [dict(program="import time\ntime.sleep(0.5)\nprint(int(input()) * 2)", inputs=["4"], mode="stdio",
                 limits=sandbox.Limits(cpu_s=0.5))] * 2
    results = sandbox.run_many(jobs, parallel=4)
    for r in results[:2]:  # the killer killed itself (kill 0 / -1), nothing else
        assert r.error is None and r.tests[0].status == "exited" and r.tests[0].stdout == ""
    for r in results[2:]:  # its siblings, running at the same time, finished untouched
        assert r.error is None and r.tests[0].stdout == "8\n"
    assert code.same_output(results[2].tests[0].stdout, "8")


def test_exiting_before_the_tests():
    for program in ("import sys\nsys.exit(0)", "import os\nos._exit(0)", "raise SystemExit(0)",
                    "import os\ndef add(a, b):\n    os._exit(0)", "def add(a, b):\n    raise SystemExit(0)"):
        result, details = score(program, ADD)
        assert result["acc"] == 0.0, program
        assert details["reason"].startswith("crash on test 0"), (program, details)
    for program in ("import sys\nsys.exit(0)", "import os\nos._exit(0)", "exit()"):  # stdin/stdout: no output
        result, details = score(program, SUM_STDIN)
        assert result["acc"] == 0.0 and details["reason"] == "wrong answer on test 0", (program, details)


def test_printing_a_fake_pass_line():
    fake = ("print('PASS')\nprint('All tests passed')\nprint('{\"i\": 0, \"status\": \"exited\", \"return\": 3}')\n"
            "import sys\nsys.stderr.write('OK\\n')")
    result, details = score(fake, ADD)
    assert result["acc"] == 0.0 and details["reason"].startswith("crash on test 0")
    result, details = score(fake, SUM_STDIN)
    assert result["acc"] == 0.0 and details["reason"] == "wrong answer on test 0"


def test_forging_the_report_or_the_channel():
    # writes what the runner would report for test 0's expected value, then dies without running add
    forge = ("import os\nos.write(3, b'{\"return\": 3}')\n"
             "for fd in range(4, 64):\n    try:\n        os.write(fd, b'{\"done\": true}\\n')\n    except OSError:\n"
             "        pass\nos._exit(0)")
    result, details = score(forge, ADD)
    assert result["acc"] == 0.0 and details["reason"] == "wrong answer on test 1"


FORGE_WITH_NONCE = """
import gc, json, os, sys
job = next((o for o in gc.get_objects() if isinstance(o, dict) and "nonce" in o and "inputs" in o), None)
sys.stderr.write("nonce found\\n" if job else "no nonce\\n")
lines = "".join(json.dumps({"nonce": job and job["nonce"], "i": i, "status": "exited", "exit_code": 0, "signal": None,
                            "cpu_s": 0, "wall_s": 0, "child": json.dumps({"return": v}), "stderr": ""}) + "\\n"
                for i, v in enumerate([3, 7, 5]))
for fd in [0, 1, 2] + list(range(4, 64)):  # all but its own report pipe (3)
    try:
        os.write(fd, lines.encode())
    except OSError:
        pass
def add(a, b):
    return 0
"""


def test_the_result_channel_is_out_of_reach_even_with_the_nonce():
    """The nonce is in the test process's memory (it is forked from the runner); forged result lines
    carrying it still never reach the harness, because no process running model code holds the channel."""
    tests = code.parse_tests(ADD)
    result = sandbox.run(FORGE_WITH_NONCE, tests.inputs, "call", "add", sandbox.Limits(cpu_s=0.5))
    assert "nonce found" in result.tests[0].stderr  # the forger had the secret...
    acc, details = code.judge(tests, result)
    assert not acc and details["reason"] == "wrong answer on test 0"  # ...and it did not help


def test_programs_as_real_sets_write_them():
    """exit() / quit() (which site, not imported here, defines), __file__, a callable class as fn_name."""
    assert score("print(int(input()) * 2)\nexit()", {"inputs": ["4"], "outputs": ["8"]})[0]["acc"] == 1.0
    assert score("print(int(input()) + 1)\nquit(0)", {"inputs": ["4"], "outputs": ["5"]})[0]["acc"] == 1.0
    assert score("import os\nprint(os.path.basename(__file__))", one_output("solution.py"))[0]["acc"] == 1.0
    result, details = score("class Box:\n    def __init__(self, x):\n        self.x = x", {
        "inputs": [[1]], "outputs": [1], "fn_name": "Box"})
    assert details["reason"].startswith("crash on test 0: unserialisable")


def test_replacing_the_exit_paths_does_not_return_into_the_runner():
    program = "import os, json, sys\nos._exit = lambda code: None\njson.dumps = None\nprint(3)\nsys.exit(0)"
    r = sandbox.run(program, ["", ""], "stdio", limits=sandbox.Limits(cpu_s=0.5))
    assert [(t.status, t.exit_code) for t in r.tests] == [("exited", 120)] * 2 and r.error is None


def test_redefining_builtins_assert_and_the_test_function():
    cheat = """
import builtins, json
builtins.isinstance = lambda *a: True
builtins.len = lambda *a: 0
builtins.AssertionError = type('Never', (Exception,), {})
json.dumps = lambda *a, **k: '{"return": 3}'
class Anything(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__
def add(a, b):
    assert False
    return Anything(0)
"""
    result, details = score(cheat, ADD)
    assert result["acc"] == 0.0 and details["passed"] < 3
    cheat2 = "class Anything:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Anything()"
    result, details = score(cheat2, ADD)
    assert result["acc"] == 0.0 and details["passed"] == 0


# --- isolation levels, concurrency, the host --------------------------------------------------------
def test_user_namespace_path_gives_the_same_refusals():
    """The unprivileged user's path (a user namespace), taken here as root."""
    def run(program, inputs=("",)):
        return sandbox.run(program, list(inputs), "stdio", limits=sandbox.Limits(cpu_s=0.5), simulate="userns")

    r = run("import os\nprint(os.getuid(), sorted(os.listdir('/')))")
    assert r.isolation == "user-namespaces" and r.error is None
    assert r.tests[0].stdout.startswith("1000 ") and "work" not in r.tests[0].stdout
    for program in ("open('/etc/passwd')", "open('/usr/PWNED', 'w')", "import os\nos.chmod('/dev/null', 0o600)",
                    "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)",
                    "import ctypes\nassert ctypes.CDLL(None).mount(b'x', b'/usr', None, 32, None) == 0"):
        t = run(program).tests[0]
        assert t.exit_code == 1 and t.report.get("error") in (
            "FileNotFoundError", "OSError", "PermissionError", "AssertionError"), (program, t)


def test_no_namespaces_is_refused_by_default_and_reported_when_allowed():
    r = sandbox.run("print(1)", [""], "stdio", simulate="no-namespaces")
    assert r.isolation is None and "no namespaces" in r.error and r.tests[0].status == "not_run"
    r = sandbox.run("import os\nprint(os.getuid())", [""], "stdio", isolation="any", simulate="no-namespaces")
    assert r.isolation.startswith("rlimits") and r.error is None
    assert int(r.tests[0].stdout) >= 1_000_000  # root is still dropped
    acc, details, error = code.score_program("def add(a, b):\n    return a + b", code.parse_tests(ADD))
    assert acc and details["isolation"] in ("namespaces", "user-namespaces")


SYSCALLS = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(ret):
    return ctypes.get_errno() if ret == -1 else 0
print(errno_of(libc.socket(2, 1, 0)), errno_of(libc.socket(10, 2, 0)))  # AF_INET, AF_INET6
print(errno_of(libc.unshare(0x10000000)), errno_of(libc.unshare(0x40000000)))  # CLONE_NEWUSER, CLONE_NEWNET
print(errno_of(libc.ptrace(16, 1, 0, 0)), errno_of(libc.syscall(425, 8, 0)))  # PTRACE_ATTACH, io_uring_setup
print(errno_of(libc.socket(1, 1, 0)))  # AF_UNIX stays allowed
"""


@pytest.mark.parametrize("simulate", [None, "userns", "no-namespaces"])
def test_seccomp_refuses_network_namespaces_ptrace_io_uring(simulate):
    """The syscall filter: the network refusal that holds where namespaces do not."""
    r = sandbox.run(SYSCALLS, [""], "stdio", limits=sandbox.Limits(cpu_s=1.0), isolation="any", simulate=simulate)
    assert r.error is None and r.seccomp, r
    assert r.tests[0].stdout.split("\n")[:4] == ["13 13", "1 1", "1 1", "0"], r.tests[0]


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists(), reason="needs root and setpriv")
def test_root_without_capabilities_is_refused_not_weakened():
    """Root in a container without capabilities: no namespace of its own, and the kernel refuses to map
    uid 0 into a user namespace (CAP_SETFCAP): the run is refused with that reason at both settings."""
    script = ("from mirage.rewards.sandbox import run\n"
              "for iso in ('namespaces', 'any'):\n"
              "    r = run('print(1)', [''], 'stdio', isolation=iso)\n"
              "    print(iso, r.isolation, r.error, r.tests[0].status)\n")
    done = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all",
                           sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO / "lib")})
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 2, done.stderr
    for line in lines:
        assert " None sandbox setup failed: " in line and "user namespace id maps" in line and line.endswith("not_run")


def test_one_slow_program_does_not_block_the_others():
    slow = dict(program="import time\ntime.sleep(60)", inputs=[""], mode="stdio", limits=sandbox.Limits(cpu_s=1.0))
    fast = dict(program="print(input())", inputs=["hi"], mode="stdio", limits=sandbox.Limits(cpu_s=1.0))
    start = time.monotonic()
    results = sandbox.run_many([slow, fast, fast, fast], parallel=2)
    assert results[0].tests[0].status == "timeout" and results[0].tests[0].wall_s >= 3.0
    assert all(r.tests[0].stdout == "hi\n" for r in results[1:])
    assert max(r.wall_s for r in results[1:]) < 2.5  # each fast one ran beside the slow one
    assert time.monotonic() - start < 10


def test_results_stream_in_order_and_the_checker_drops_outputs():
    seen = []
    program = ("import sys\nn = int(input())\nif n == 2:\n    while True:\n        pass\n"
               "sys.stdout.write('y' * n * 100000)")
    result = sandbox.run(program, ["1", "3", "2", "4"], "stdio", limits=sandbox.Limits(cpu_s=0.3),
                         on_test=lambda i, t: seen.append((i, t.status, len(t.stdout or ""))))
    assert seen == [(0, "exited", 100000), (1, "exited", 300000), (2, "timeout", 0), (3, "not_run", 0)]
    assert [len(t.stdout or "") for t in result.tests] == [100000, 300000, 0, 0]
    tests = code.Tests("stdio", ["1", "3"], ["y" * 100000, "y" * 300001])
    acc, details, error = code.score_program(program, tests, sandbox.Limits(cpu_s=0.3))
    assert (acc, details["tests"], error) == (False, ["passed", "wrong answer on test 1"], None)


@pytest.mark.parametrize("isolation", ["namespaces", "rlimits"])
def test_killing_the_harness_leaves_no_sandbox_process(isolation):
    """kill -9 of the scoring process mid-run: its sandbox (the namespace's PID 1, which ignores its own
    parent-death signal, or the test's process group without namespaces) goes with it."""
    script = ("from mirage.rewards import sandbox\n"
              f"sandbox.run('import time\\ntime.sleep(60)', [''] * 3, 'stdio', isolation={isolation!r},\n"
              "            limits=sandbox.Limits(cpu_s=1.0, wall_s=30.0))\n")
    harness = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO / "lib")})
    try:
        deadline = time.monotonic() + 30
        while len(sandbox_processes()) < 2 and time.monotonic() < deadline:  # the runner and the test
            time.sleep(0.1)
        assert len(sandbox_processes()) >= 2
    finally:
        harness.kill()
        harness.wait()
    deadline = time.monotonic() + 5
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandbox_processes() == []
    # its temporary folder stayed behind (nobody was left to remove it); the next scoring process sweeps it
    assert [Path(p).name.split("-")[2] for p in sandbox.sweep()] == [str(harness.pid)]


def test_many_at_once_through_compute_scores(monkeypatch):
    from mirage.rewards import compute_scores

    monkeypatch.setenv("MIRAGE_PLUGINS", PLUGIN)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    items = [(SOURCE, wrap("def add(a, b):\n    return a + b"), ADD),
             (SOURCE, wrap("def add(a, b):\n    return a - b"), ADD)] * 3
    results = compute_scores(items, processes=2, **FAST)
    assert [r["acc"] for r in results] == [1.0, 0.0] * 3


def test_the_harness_survives_and_still_scores():
    assert os.getppid() > 0
    assert score("def add(a, b):\n    return a + b", ADD)[0]["acc"] == 1.0
    assert sys.modules["mirage.rewards.sandbox"] is sandbox
