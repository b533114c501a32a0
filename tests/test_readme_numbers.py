"""Every number quoted in README.md's findings comes from a committed CSV under figures/.

The findings block is README.md from the heading "## What the testbed found" to the next "## " heading.
The rule, checked here:

- Checked: every number written with a sign (``+0.152``, ``-0.0704``) or a decimal point (``0.997``).
  A ``-`` or ``+`` counts as a sign only where it does not follow a letter, digit or dot, so ``dial-10``,
  ``1e-5`` and the ranges ``0.997-1.000`` / ``+0.064 to +0.853`` read as their plain numbers.
- Not checked: plain integers (counts such as "10 pairs", "3 seeds", "44 gains", step counts, k),
  arXiv identifiers, and the targets of Markdown links.
- A number shown with d decimals matches a CSV number x when it equals x rounded to d decimals (within
  half a unit of its last digit, so either rounding of a value stored with more digits passes). A signed
  number must match with its sign; an unsigned one may match |x| (prose quotes magnitudes: "costs 0.16").
- The CSV numbers are every numeric cell of every ``figures/**/*.csv`` (a cell may hold several numbers
  separated by spaces, as seed_summary.csv's per-seed ``values``).

This is a provenance check (the number exists in a committed table at the precision shown), not a
check that it is quoted for the right row: that is what review is for.
"""

from __future__ import annotations

import bisect
import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## What the testbed found"
NUMBER = re.compile(r"(?<![\w.])([+\-−]?)(\d+(?:\.\d+)?)")


def findings_block(readme: str) -> str:
    start = readme.find("\n" + HEADING + "\n")
    assert start >= 0, f"README.md has no '{HEADING}' heading"
    end = readme.find("\n## ", start + len(HEADING) + 1)
    return readme[start:end if end >= 0 else len(readme)]


def quoted_numbers(text: str) -> list[str]:
    """The signed or decimal numbers of ``text`` as written (rule in the module docstring)."""
    text = re.sub(r"\]\([^)]*\)", "]", text)            # Markdown link targets
    text = re.sub(r"arXiv\s+\d+\.\d+", "arXiv", text)   # arXiv identifiers
    out = []
    for m in NUMBER.finditer(text):
        sign, digits = m.groups()
        if sign or "." in digits:
            out.append(sign.replace("−", "-") + digits)
    return out


def csv_numbers(folder: Path) -> list[float]:
    values = set()
    for path in sorted(folder.rglob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                for cell in row:
                    for token in cell.split():
                        try:
                            v = float(token)
                        except ValueError:
                            continue
                        if v == v and abs(v) != float("inf"):
                            values.add(v)
    return sorted(values)


def found(shown: str, pool: list[float]) -> bool:
    """Whether ``shown`` equals a number of the sorted ``pool`` rounded to the decimals shown."""
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    half = 0.5 * 10.0 ** -decimals + 1e-9
    x = float(shown)
    targets = [x] if shown[0] in "+-" else [x, -x]
    for t in targets:
        i = bisect.bisect_left(pool, t - half)
        if i < len(pool) and pool[i] <= t + half:
            return True
    return False


def test_the_rule_flags_a_number_no_table_holds_and_reads_ranges_and_names_right():
    pool = sorted([0.15233, -0.0704, 0.9972, 0.9998, 0.5600])
    text = ("majority vote +0.152 [-0.070, +0.5600]; format rate 0.997-1.000 on dial-10 at lr 1e-5, "
            "10 pairs ([docs](docs/science.md#2-statistics)), arXiv 2506.10947")
    nums = quoted_numbers(text)
    assert nums == ["+0.152", "-0.070", "+0.5600", "0.997", "1.000"]
    assert all(found(n, pool) for n in nums)
    assert not found("+0.153", pool)        # one unit off in the last digit shown
    assert not found("+0.070", pool)        # wrong sign
    assert found("0.070", pool)             # a magnitude in prose
    assert not found("+9.876", pool) and not found("0.4", pool)


def test_every_number_in_the_readme_findings_is_in_a_committed_csv():
    block = findings_block((ROOT / "README.md").read_text(encoding="utf-8"))
    nums = quoted_numbers(block)
    assert len(nums) >= 20, f"the findings block quotes only {len(nums)} numbers: wrong block?"
    pool = csv_numbers(ROOT / "figures")
    missing = sorted({n for n in nums if not found(n, pool)})
    assert not missing, f"README findings quote numbers that no figures/**/*.csv holds: {missing}"


@pytest.mark.parametrize("preset", ["testbed-seeds", "testbed-mechanism", "testbed-predictors",
                                    "testbed-contamination", "testbed-quick"])
def test_each_preset_with_committed_tables_has_its_seed_interval_bounds(preset):
    """The bounds the README quotes (scripts/seed_ci_bounds.py --csv) are committed beside each seed summary,
    one row per gain of that summary."""
    folder = ROOT / "figures" / preset
    with open(folder / "seed_summary.csv", newline="", encoding="utf-8") as f:
        gains = [r for r in csv.DictReader(f) if r["statistic"].endswith("gain")]
    with open(folder / "seed_ci_bounds.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["task"], r["dataset"], r["condition"], r["regime"]) for r in rows] == \
        [(r["model"], r["task"], r["dataset"], r["condition"], r["regime"]) for r in gains]
    assert {r["verdict"] for r in rows} <= {"survives", "fails", "undetermined"}
    for r in rows:
        assert float(r["inner_low"]) <= float(r["mean"]) <= float(r["inner_high"])
        assert float(r["outer_low"]) <= float(r["inner_low"]) and float(r["inner_high"]) <= float(r["outer_high"])


def _bounds_script(*args, cwd=ROOT):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "seed_ci_bounds.py"), *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_the_committed_bounds_are_what_the_script_writes_from_the_committed_tables(tmp_path):
    """figures/testbed-contamination/seed_ci_bounds.csv is the script's output on the seed_summary.csv and
    results.csv beside it, byte for byte (a stale bounds file, or a script change that moves a quoted bound,
    fails here); the smallest preset, to stay fast."""
    out = tmp_path / "b.csv"
    r = _bounds_script("testbed-contamination", "--csv", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (ROOT / "figures" / "testbed-contamination" / "seed_ci_bounds.csv").read_bytes()
    assert "survives" in r.stdout and f"wrote {out}" in r.stdout


def test_the_bounds_script_refuses_bad_arguments_in_one_line_before_any_work(tmp_path):
    r = _bounds_script("no-such-preset", "--csv", str(tmp_path / "x.csv"))
    assert r.returncode == 2 and "PRESET 'no-such-preset': no figures/no-such-preset/seed_summary.csv" in r.stderr
    r = _bounds_script("testbed-seeds", "testbed-quick", "--csv", str(tmp_path / "x.csv"))
    assert r.returncode == 2 and "--csv: several presets need '{preset}' in PATH" in r.stderr
    assert not list(tmp_path.iterdir())


# --- the predictor paragraphs: provenance, and the right rows ------------------------------------------------
PREDICTOR_SECTION = "### Which measure of alignment predicts a technique's gain"
# (predictor, condition, outcome, stratum) of each "rho [low, high]" the README / docs/science.md quote
PREDICTOR_QUOTES = {
    "README.md": [("pass_at_half", "nsr", "fraction_recovered", "within-task"),
                  ("pass_at_half", "majority_vote", "fraction_recovered", "within-task"),
                  ("pass_at_half", "random", "fraction_recovered", "within-task"),
                  ("pass_at_half", "random", "fraction_recovered", "toy-logic"),
                  ("pass_at_n", "nsr", "fraction_recovered", "within-task")],
    "docs/science.md": [("pass_at_half", "nsr", "fraction_recovered", "within-task"),
                        ("pass_at_half", "majority_vote", "fraction_recovered", "within-task"),
                        ("pass_at_half", "one_shot", "fraction_recovered", "within-task"),
                        ("pass_at_half", "random", "fraction_recovered", "within-task"),
                        ("pass_at_half", "random", "fraction_recovered", "toy-logic"),
                        ("pass_at_n", "nsr", "fraction_recovered", "within-task")],
}


def section(text: str, heading: str) -> str:
    start = text.find(heading)
    assert start >= 0, f"no heading {heading!r}"
    end = text.find("\n#", start + len(heading))
    return text[start:end if end >= 0 else len(text)]


def _outcomes():
    with open(ROOT / "figures" / "testbed-predictors" / "predictor_outcomes.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _signed(v: str) -> str:
    x = round(float(v), 3)
    return "0.000" if x == 0 else f"{x:+.3f}"


@pytest.mark.parametrize("doc", ["README.md", "docs/science.md"])
def test_the_predictor_paragraphs_quote_committed_numbers_from_the_right_rows(doc):
    """Every signed or decimal number of the predictor section is in a committed CSV; each quoted rho with its
    interval is the row it names (predictor_outcomes.csv); the counts of wide intervals are the table's."""
    text = section((ROOT / doc).read_text(encoding="utf-8"), PREDICTOR_SECTION)
    pool = csv_numbers(ROOT / "figures")
    missing = sorted({n for n in quoted_numbers(text) if not found(n, pool)})
    assert not missing, f"{doc}'s predictor section quotes numbers no figures/**/*.csv holds: {missing}"
    rows = {(r["predictor"], r["condition"], r["outcome"], r["stratum"]): r for r in _outcomes()}
    flat = " ".join(text.split())
    for key in PREDICTOR_QUOTES[doc]:
        r = rows[key]
        quote = f"{_signed(r['rho'])} [{_signed(r['ci_low'])}, {_signed(r['ci_high'])}]"
        assert quote in flat, f"{doc}: {key} is {quote} in predictor_outcomes.csv, not quoted so"
    within = [r for r in rows.values() if r["stratum"] == "within-task"]
    wide = sum(float(r["ci_width"]) > 1 for r in within)
    assert f"{wide} of the {len(within)} within-task" in flat
    math_rows = [r for r in rows.values() if r["stratum"] == "toy-math"]
    assert f"{sum(float(r['ci_width']) > 1 for r in math_rows)} of {len(math_rows)}" in flat
    assert all(r["reading"] == "uninformative" for r in rows.values() if float(r["ci_width"] or "nan") > 1)


# --- the clipping-bias mechanism: the bandit table and the testbed sweep, from the rows they name ---------------
MECHANISM_CHAPTER = "## 4. The clipping-bias mechanism"
MECHANISM = ROOT / "figures" / "testbed-mechanism"
# docs/science.md's bandit table: row label -> variant of figures/testbed-mechanism/bandit.csv
BANDIT_ROWS = {"clipped, eps 0.2/0.2": "clip", "clipped, eps 0.1/0.1": "eps_0.1",
               "clip-higher, eps 0.2/0.28": "clip_higher", "no clipping (same loss, ratio unclipped)": "no_clip",
               "RLOO, on-policy (1 update per rollout)": "rloo_on_policy"}
PAIRS = [("dial-90", "toy-math"), ("dial-10", "toy-logic"), ("dial-10", "toy-math")]


def chapter(text: str, heading: str) -> str:
    """From ``heading`` to the next heading of the same level ("## ")."""
    start = text.find("\n" + heading)
    assert start >= 0, f"no heading {heading!r}"
    end = text.find("\n## ", start + len(heading) + 1)
    return text[start:end if end >= 0 else len(text)]


def _rows(name: str) -> list[dict]:
    with open(MECHANISM / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _bandit() -> dict:
    return {r["variant"]: r for r in _rows("bandit.csv")}


def _f3(v: str) -> str:
    return f"{float(v):.3f}"


def test_the_bandit_quotes_are_the_committed_bandit_table():
    """docs/science.md's bandit table and prose and README's bandit sentence quote figures/testbed-mechanism/
    bandit.csv, each number from the variant it names (the old table quoted ranges over base seeds no CSV held)."""
    bandit = _bandit()
    assert set(bandit) == set(BANDIT_ROWS.values())
    text = chapter((ROOT / "docs" / "science.md").read_text(encoding="utf-8"), MECHANISM_CHAPTER)
    for label, variant in BANDIT_ROWS.items():
        r = bandit[variant]
        c = float(r["clipfrac"])
        row = (f"| {label} | {_f3(r['median'])} | {_f3(r['mean'])} | {_f3(r['q25'])}-{_f3(r['q75'])} | "
               f"{f'{c:.3f}' if c else '0'} |")
        assert row in text, f"docs/science.md: the bandit row should read {row!r} (bandit.csv, {variant})"
        assert _f3(r["start"]) == "0.700"
    flat = " ".join(text.split())
    clip, eps, hi = bandit["clip"], bandit["eps_0.1"], bandit["clip_higher"]
    for quote in (f"rises 0.70 -> {_f3(clip['median'])} while the mean *falls* ({_f3(clip['mean'])})",
                  f"falls below the start ({_f3(hi['median'])})", f"(eps 0.1: {_f3(eps['median'])})"):
        assert quote in flat, f"docs/science.md: {quote!r} (bandit.csv)"
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    for quote in (f"0.70 -> {_f3(clip['median'])} with clip 0.2",
                  f"not without clipping ({_f3(bandit['no_clip']['median'])})",
                  f"on-policy RLOO ({_f3(bandit['rloo_on_policy']['median'])})", f"it reverses ({_f3(hi['median'])})"):
        assert quote in readme, f"README.md: {quote!r} (bandit.csv)"


def test_the_testbed_sweep_quotes_its_seed_summary_rows():
    """The sweep's table (median [CI] per regime x pair, random / random_ungated), the greedy medians and the
    means chains are the seed_summary.csv / seed_ci_bounds.csv rows they name; every signed or decimal number of
    the chapter is in a committed CSV; and nothing whose per-step table is not committed (clip fractions in %,
    procedure shares and entropies as "a -> b") is quoted in the sweep's subsection."""
    text = chapter((ROOT / "docs" / "science.md").read_text(encoding="utf-8"), MECHANISM_CHAPTER)
    pool = csv_numbers(ROOT / "figures")
    missing = sorted({n for n in quoted_numbers(text) if not found(n, pool)})
    assert not missing, f"docs/science.md section 4 quotes numbers no figures/**/*.csv holds: {missing}"
    summary = {(r["statistic"], r["model"], r["task"], r["condition"], r["regime"]): r
               for r in _rows("seed_summary.csv")}

    def old(model, task, condition, regime, statistic="pass@1 gain"):
        r = summary[(statistic, model, task, condition, regime)]
        return f"{_signed(r['median'])} [{_signed(r['ci_low'])}, {_signed(r['ci_high'])}]"

    for regime in ("u2", "u8", "u16", "u16_hi", "u16_noclip", "u16_rloo"):
        cells = " | ".join(f"{old(m, t, 'random', regime)} / {old(m, t, 'random_ungated', regime)}" for m, t in PAIRS)
        row = f"| {regime} | {cells} |"
        assert row in text, f"docs/science.md: the sweep row should read {row!r} (seed_summary.csv)"
    for regime in ("u2", "u16"):
        row = f"| ground truth, {regime} | " + " | ".join(old(m, t, "ground_truth", regime) for m, t in PAIRS) + " |"
        assert row in text, f"docs/science.md: {row!r} (seed_summary.csv)"
    for regime in ("steps300_clip", "steps300_noclip"):
        assert f"| {regime} (lr 1e-5) | {old('dial-90', 'toy-math', 'random', regime)} |" in text
    greedy = {g: _signed(summary[("greedy gain", "dial-90", "toy-math", "random", g)]["median"])
              for g in ("u2", "u16", "u16_noclip", "steps300_clip", "steps300_noclip")}
    flat = " ".join(text.split())
    assert (f"random: u2 {greedy['u2']}, u16 {greedy['u16']}, u16_noclip {greedy['u16_noclip']}, steps300 clip "
            f"{greedy['steps300_clip']} vs no-clip {greedy['steps300_noclip']})") in flat
    means = {(r["model"], r["task"], r["condition"], r["regime"]): r["mean"] for r in _rows("seed_ci_bounds.csv")
             if r["statistic"] == "pass@1 gain"}
    for m, t in PAIRS[:2]:
        chain = " -> ".join(_signed(means[(m, t, "random", g)]) for g in ("u2", "u8", "u16"))
        assert f"{m} x {t} {chain}" in flat, f"docs/science.md: the means chain of {m} x {t} should read {chain}"
    sweep = section(text, "### The testbed sweep")
    percents = [m for m in re.findall(r"(?<![\d.])\d+(?:\.\d+)?%", sweep) if m != "95%"]  # 95% CIs are settings
    assert not percents, f"clip fractions quoted ({percents}): their per-step table is not committed"
    assert not re.findall(r"(?<![\w.+\-])\d\.\d+ -> \d\.\d+", sweep), \
        "a share or entropy 'a -> b' quoted: its per-step table is not committed"


def _bandit_script(*args):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "bandit_table.py"), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


@pytest.mark.slow  # ~25 s of one core: the five bandit variants
def test_the_committed_bandit_table_is_what_the_script_writes(tmp_path):
    out = tmp_path / "bandit.csv"
    r = _bandit_script("--csv", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (MECHANISM / "bandit.csv").read_bytes()
    assert f"wrote {out}" in r.stdout


def test_the_bandit_script_refuses_a_missing_folder_in_one_line_before_any_work(tmp_path):
    r = _bandit_script("--csv", str(tmp_path / "no" / "b.csv"))
    assert r.returncode == 2 and f"--csv: no folder {tmp_path / 'no'}" in r.stderr
    assert not list(tmp_path.iterdir())
