"""Every example in README.md and docs/*.md works: Python blocks run, `mirage` command lines parse.

* Each fenced ```python block runs (``exec``) in a fresh temporary folder (its relative paths land there;
  a generated dataset goes to the data root, as any command's does). A block that needs a GPU or the
  network starts with the line ``# doc-test: skip (<reason>)``: it is then only compiled. Keep examples
  small (tiny settings).
* Each ``mirage ...`` command line (in a ```bash block or an inline code span) names a subcommand that
  exists and only flags that subcommand's parser knows (``...``, ``[...]`` and ``a / b`` alternatives
  are read as the docs mean them).
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = "# doc-test: skip"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[tuple[str, str]]:
    """(file:line, code) of every fenced block in ``lang``."""
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if m.group(1) == lang:
                out.append((f"{doc.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}", m.group(2)))
    return out


PYTHON = blocks("python")


def test_the_docs_have_python_examples():
    assert len(PYTHON) >= 2, PYTHON  # the extraction itself works (docs/engine.md, docs/rewards.md)


@pytest.mark.parametrize("where,code", PYTHON, ids=[w for w, _ in PYTHON])
def test_python_example_runs(where, code, tmp_path, monkeypatch):
    compiled = compile(code, where, "exec")
    if code.lstrip().startswith(SKIP):
        return
    monkeypatch.chdir(tmp_path)
    exec(compiled, {"__name__": "__doc_example__"})


# --- mirage command lines --------------------------------------------------------------------------
def command_lines() -> list[tuple[str, str]]:
    """(file:line, the text from `mirage` on) of every command line in bash blocks and inline code spans."""
    out = []
    for where, code in blocks("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            m = re.search(r"(?:^|[\s;&|(])(mirage\s.*)", line)
            if m:
                out.append((where, m.group(1)))
    for doc in DOCS:
        for i, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for span in re.findall(r"`(mirage\s[^`]*)`", line):
                out.append((f"{doc.relative_to(ROOT)}:{i}", span.replace("\\|", "|")))
    return out


def invocations(text: str) -> list[list[str]]:
    """The argument lists a documented line stands for: `a / b` alternatives expanded, `...` and brackets
    dropped, comments cut."""
    tokens = [t.strip("[]") for t in shlex.split(text, comments=True)[1:]]
    tokens = [t for t in tokens if t and t != "..."]
    if "/" not in tokens:
        return [tokens]
    parts, current = [], []
    for t in tokens:
        if t == "/":
            parts.append(current)
            current = []
        else:
            current.append(t)
    parts.append(current)
    first = parts[0]
    return [first] + [first[:-1] + p for p in parts[1:]]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def unknown(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """What in ``args`` the CLI does not know: a subcommand or a flag."""
    path = []
    for token in args:
        if token.startswith("-"):
            break
        subs = _subparsers(parser)
        if not subs:
            break
        if token not in subs:
            return [f"subcommand {' '.join(path + [token])!r}"]
        parser = subs[token]
        path.append(token)
    flags = {s for a in parser._actions for s in a.option_strings}
    return [f"flag {t.split('=')[0]} of `mirage {' '.join(path)}`" for t in args
            if t.startswith("--") and t.split("=")[0] not in flags]


def test_every_documented_mirage_command_and_flag_exists():
    from mirage.cli import build_parser

    parser = build_parser()
    lines = command_lines()
    assert len(lines) > 50
    bad = [f"{where}: {text!r}: {', '.join(problems)}" for where, text in lines for args in invocations(text)
           if (problems := unknown(parser, args))]
    assert not bad, "\n".join(bad)


def test_the_checker_catches_a_wrong_flag_and_subcommand():
    from mirage.cli import build_parser

    parser = build_parser()
    assert unknown(parser, ["train", "--modle", "M"]) == ["flag --modle of `mirage train`"]
    assert unknown(parser, ["testbed", "pretrian"]) == ["subcommand 'testbed pretrian'"]
    assert invocations("mirage testbed models / pretrain --all") == [["testbed", "models"],
                                                                     ["testbed", "pretrain", "--all"]]
    assert not unknown(parser, ["eval", "--run-dir", "R", "--n", "16"])


# --- one measured figure for the quick study ---------------------------------------------------------------
def test_the_quick_study_time_is_the_latest_measured_one():
    """README's `make study` time and `mirage study --list`'s description of testbed-quick are the same
    figure: the latest fresh-clone `make study` of docs/timings.md, rounded to the minute."""
    from mirage.study.preset import load_preset

    rows = [line for line in (ROOT / "docs" / "timings.md").read_text(encoding="utf-8").splitlines()
            if re.match(r"\| \d{4}-\d\d-\d\d", line)]
    measured = [re.search(r"(\d+) min (\d+) s", row.split("|")[4]) for row in rows]
    minutes, seconds = (int(g) for g in [m for m in measured if m][-1].groups())
    figure = round(minutes + seconds / 60)
    readme = re.search(r"make study .*\(~(\d+) min", (ROOT / "README.md").read_text(encoding="utf-8"))
    listed = re.search(r"~(\d+) min", load_preset("testbed-quick").description)
    assert (int(readme.group(1)), int(listed.group(1))) == (figure, figure)
