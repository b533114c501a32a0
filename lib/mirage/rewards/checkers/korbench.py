"""KOR-Bench scoring, reimplemented from the benchmark's ``eval/eval_utils.py``.

KOR-Bench (github KOR-Bench/KOR-Bench, Apache-2.0) scores a response by the
FIRST ``[[...]]`` in it (falling back to ``$\\boxed{...}$``, then ``[...]``),
with per-category rules:

* cipher, counterfactual and most operation items: that bracket with quotes,
  newlines, spaces and inner brackets removed must equal the raw gold string;
* logic: both sides cleaned the same way ("." also removed); rule 5 compares
  the ``;``-separated parts as sorted lists;
* operation: inequality items (idx 178, 179), rule 18 (sorted characters),
  rules 23-25 (the list of integers), symbolic items (a fixed list of idx:
  ``sympy.parse_latex`` + ``simplify``, else string equality after LaTeX
  cleaning), answers containing ``or`` (alternatives as sorted lists);
* puzzle: the text inside ``[[...]]``, compared by a rule-specific method.

``mode="published"`` (default) is what the published verdicts used: sympy's
LaTeX parser unavailable (math-verify's antlr 4.13 disables it), so symbolic
items fall back to string equality. ``mode="documented"`` parses LaTeX with
sympy, which needs antlr4-python3-runtime 4.11 (it raises a clear error
otherwise); it runs in the guarded math worker because ``simplify`` can hang.

Which text is scored (``korbench_extract``): ``"answer"`` (default) scores the
``<answer>`` block when it holds a ``[[...]]``, else the whole response, so a
model that restates the format inside ``<think>`` is not penalised; ``"raw"`` is
KOR-Bench's own rule, the first ``[[...]]`` of the raw response (``<think>`` not
stripped), for numbers comparable with published KOR-Bench results.

Where KOR-Bench calls ``eval`` on model text (two puzzle rules), this uses
``safe_arith.evaluate`` (Python semantics, bounded). Every scan here is linear
in the response length: KOR's regexes are quadratic on adversarial text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from mirage.rewards import safe_arith, worker
from mirage.rewards.checkers import Checker, Verdict, register_checker
from mirage.rewards.lenient import korbench_lenient

CATEGORIES = ("operation", "logic", "cipher", "puzzle", "counterfactual")
MODES = ("published", "documented")
EXTRACTIONS = ("answer", "raw")
ROLE = "mirage.rewards.checkers.korbench:worker_handlers"  # sympy's LaTeX parsing, in a guarded worker
SYMPY_TIMEOUT_S = 2.0
NULL = "NULL"  # KOR's "nothing extracted"; kept as a string because its rules compare it

# Operation items that KOR-Bench compares symbolically (by question idx).
SYMBOLIC_OPERATION_IDX = frozenset(
    [18, 73, 74, 77, 94, 115, 116, 117, 121, 122, 123, 125, 131, 132, 134, 135, 136,
     141, 143, 149, 145, 146, 147, 151, 152, 153, 154, 155, 156, 160, 161, 162,
     164, 165, 166, 170, 206, 209, 211, 212, 213, 214, 215, 217, 218])


# --- extraction --------------------------------------------------------------------------
def _span(text: str, open_: str, close: str) -> str | None:
    """Inside of the leftmost ``open_ ... close`` (shortest), or None.

    Equals the first match of ``re.escape(open_) + '(.*?)' + re.escape(close)``
    with DOTALL: if the first opener has no closer after it, no later one has.
    """
    start = text.find(open_)
    if start == -1:
        return None
    end = text.find(close, start + len(open_))
    return None if end == -1 else text[start + len(open_):end]


def first_bracket(text: str) -> str | None:
    """KOR's basic extraction: stripped inside of the first ``[[..]]`` / ``$\\boxed{..}$`` / ``[..]``."""
    for open_, close in (("[[", "]]"), ("$\\boxed{", "}$"), ("[", "]")):
        inner = _span(text, open_, close)
        if inner is not None:
            return inner.strip()
    return None


def _drop(s: str, chars: str) -> str:
    return s.translate({ord(c): None for c in chars})


def _strip_text_macros(s: str) -> str:
    """Remove every ``\\text{...}`` (shortest; s holds no newline)."""
    out, pos = [], 0
    while True:
        start = s.find("\\text{", pos)
        end = -1 if start == -1 else s.find("}", start + 6)
        if end == -1:
            out.append(s[pos:])
            return "".join(out)
        out.append(s[pos:start])
        pos = end + 1


def _clean_latex(s: str) -> str:
    if "=" in s:
        s = s.rsplit("=", 1)[1]
    s = re.sub(r"\\[()\[\]]", "", s)
    s = _strip_text_macros(s)
    s = re.sub(r"\\(left|right|displaystyle)", "", s)
    return s.replace("\\\\", "\\")


def extract(text: str, level: str = "basic") -> str:
    """KOR's ``extract_text_from_brackets``: ``[[...]]``-wrapped (``math``: bare), or "NULL"."""
    inner = first_bracket(text)
    if inner is None:
        return NULL
    if level == "clean":
        inner = _drop(inner, '"\n []')
    elif level == "logic":
        inner = _drop(inner, '"\n .')
    elif level == "math":
        return _clean_latex(_drop(inner, '"\n[]$'))
    return f"[[{inner}]]"


def inner_text(text: str) -> str:
    """KOR's ``extract_inner_text_from_brackets``: unstripped inside of the first ``[[..]]``."""
    inner = _span(text, "[[", "]]")
    return NULL if inner is None else inner


# --- per-rule comparisons ----------------------------------------------------------------
def _letters_lower(s: str) -> str:
    return re.sub(r"[^A-Za-z]", "", s).lower()


def _arith_equals(expression: str, target) -> bool:
    value = safe_arith.evaluate(expression)  # Python semantics, as KOR's eval
    return value is not None and value == target


def _puzzle_rule9(response: str, answer: str) -> bool:
    # Same operators in the same order on the left of "=", and the left side evaluates to the answer's value.
    response = response.replace("×", "*").replace("−", "-")
    answer = answer.replace("×", "*").replace("−", "-")
    ops = lambda s: re.findall(r"[+\-*/]", s.split("=")[0])  # noqa: E731
    if ops(response) != ops(answer):
        return False
    m = re.search(r"=\s*(-?\d+)", answer)
    return m is not None and _arith_equals(response.split("=")[0], int(m.group(1)))


def _puzzle_rule10(response: str, answer: str) -> bool:
    # The same numbers/characters as the answer's left side, evaluating to 24.
    response = response.replace("×", "*").replace("−", "-").split("=")[0]
    answer = answer.split("\n")[0].split("=")[0]
    if sorted(re.sub(r"\W+", "", response)) != sorted(re.sub(r"\W+", "", answer)):
        return False
    return _arith_equals(response, 24)


PUZZLE_RULES = {
    "1": lambda r, a: _letters_lower(r) == _letters_lower(a),
    "2": lambda r, a: _letters_lower(r) in a.split(","),
    "3": lambda r, a: sorted(w for w in re.split(r"\W+", r.lower()) if w) == sorted(a.split(" ")),
    "4": lambda r, a: _letters_lower(r) in a,  # substring test, as KOR-Bench does
    "5": lambda r, a: sorted(re.sub(r"\s+", "", r).split(",")) == sorted(a.split(",")),
    "9": _puzzle_rule9,
    "10": _puzzle_rule10,
    "18": lambda r, a: re.sub(r"[,\s\[\]]+", "", r) == re.sub(r"[,\s\[\]]+", "", a),
}


def _puzzle_general(r: str, a: str) -> bool:
    return re.sub(r"\W+", "", r) == re.sub(r"\W+", "", a)


def _inequalities(s: str) -> list[str]:
    return sorted("".join(m) for m in re.findall(r"(≥|≤)\s*([-]?\d+\.?\d*)", s))


def _or_alternatives(response: str, answer: str) -> bool:
    r = re.sub(r"\\text\{or\}", "or", extract(response, "clean"))
    if r == NULL:
        return False
    a = extract(answer, "clean")
    parts = lambda s: sorted(x.strip() for x in s.strip("[]").split("or"))  # noqa: E731
    return parts(r) == parts(a)


def _symbolic(response: str, answer: str, mode: str, timeout: float) -> tuple[bool, str | None]:
    r, a = extract(response, "math"), extract(answer, "math")
    if r == NULL:
        return False, None
    if mode == "published":
        return r == a, None  # parse_latex unavailable -> KOR's string fallback
    try:
        return bool(worker.call(ROLE, "kor_sympy_equal", {"response": r, "answer": a}, timeout)), None
    except (worker.WorkerTimeout, worker.WorkerDied) as e:
        return False, f"sympy: {e}"


def is_correct(category: str, response: str, answer: str, rule_id, idx, mode: str = "published",
               timeout: float = SYMPY_TIMEOUT_S) -> tuple[bool, str | None]:
    """(correct, error) for one KOR-Bench response; ``answer`` is the raw gold ``[[...]]`` string."""
    if category not in CATEGORIES:
        raise KeyError(f"unknown KOR-Bench category {category!r}; known: {CATEGORIES}")
    if mode not in MODES:
        raise ValueError(f"unknown korbench_mode {mode!r}; known: {MODES}")
    if mode == "documented":
        require_latex_parser()
    rule_id, idx = str(rule_id), str(idx)
    if category == "logic":
        r = extract(response, "logic")
        if rule_id == "5":
            return sorted(r.split(";")) == sorted(answer.split(";")), None
        return r == extract(answer, "logic"), None
    if category == "operation":
        if idx in ("178", "179"):
            return _inequalities(extract(response, "clean")) == _inequalities(answer), None
        if rule_id == "18":
            chars = lambda s: "".join(sorted(re.sub(r"\W+", "", s)))  # noqa: E731
            return chars(extract(response, "clean")) == chars(inner_text(answer)), None
        if rule_id in ("23", "24", "25"):
            ints = lambda s: [int(x) for x in re.findall(r"\d+", s)]  # noqa: E731
            return ints(extract(response, "clean")) == ints(answer), None
        if idx.isdigit() and int(idx) in SYMBOLIC_OPERATION_IDX:
            return _symbolic(response, answer, mode, timeout)
        if "or" in answer:  # a substring test in KOR-Bench (so "world" counts too)
            return _or_alternatives(response, answer), None
    if category == "puzzle":
        method = PUZZLE_RULES.get(rule_id, _puzzle_general)
        return method(inner_text(response), inner_text(answer)), None
    return extract(response, "clean") == answer, None


# --- the checker ---------------------------------------------------------------------------
@dataclass(frozen=True)
class KorbenchOptions:
    korbench_mode: str = field(default="published", metadata={  # what the published verdicts used | as documented
        "choices": MODES, "help": "KOR-Bench scoring: published-compatible or as documented (docs/rewards.md)"})
    korbench_extract: str = field(default="answer", metadata={  # <answer> when it holds [[..]] | KOR's first [[..]]
        "choices": EXTRACTIONS, "help": "KOR-Bench answer: the <answer> block when it holds [[...]], or KOR's first "
                                        "[[...]] of the raw response"})

    def __post_init__(self):
        if self.korbench_mode not in MODES:
            raise ValueError(f"unknown korbench_mode {self.korbench_mode!r}; known: {MODES}")
        if self.korbench_extract not in EXTRACTIONS:
            raise ValueError(f"unknown korbench_extract {self.korbench_extract!r}; known: {EXTRACTIONS}")


def category(data_source: str) -> str | None:
    """``korbench/<category>`` -> the category, else None."""
    head, _, cat = str(data_source).partition("/")
    return cat if head == "korbench" and cat in CATEGORIES else None


def check(data_source, text, answer, ground_truth, extra_info, options: KorbenchOptions,
          release_faithful: bool) -> Verdict:
    use_answer = options.korbench_extract == "answer" and answer is not None and inner_text(answer) != NULL
    scored = answer if use_answer else text
    info = extra_info or {}
    missing = [k for k in ("rule_id", "idx") if k not in info]
    if missing:
        raise KeyError(f"KOR-Bench row ({data_source}) lacks extra_info {missing} (KOR-Bench's rule_id / idx)")
    acc, error = is_correct(category(data_source), scored, str(ground_truth), info["rule_id"], info["idx"],
                            options.korbench_mode)
    pred = extract(scored)
    return Verdict(acc, None if pred == NULL else pred, error)


register_checker(Checker("korbench", check, KorbenchOptions, lenient_answer=korbench_lenient,
                         # two scoring modes: every result and every evaluation's settings say which was used
                         result_columns={"korbench_mode": lambda options, verdict: options.korbench_mode},
                         recorded_options=("korbench_mode",),
                         summary="KOR-Bench's per-category rules (first [[...]], cleaned), reimplemented"))


# --- "documented" mode: sympy's LaTeX parser ---------------------------------------------
@functools.lru_cache(maxsize=1)
def latex_parser_problem() -> str | None:
    """Why sympy's LaTeX parser is unusable here, or None when it works."""
    from importlib import metadata

    try:
        version = metadata.version("antlr4-python3-runtime")
    except metadata.PackageNotFoundError:
        version = None
    if version is None or not version.startswith("4.11"):
        return (f"korbench_mode='documented' needs sympy's LaTeX parser, which needs "
                f"antlr4-python3-runtime 4.11 (installed: {version}). It conflicts with hydra-core's "
                f"antlr 4.9 pin, so use a separate environment with "
                f"`pip install antlr4-python3-runtime==4.11.0`, or use korbench_mode='published'.")
    return None


def require_latex_parser():
    problem = latex_parser_problem()
    if problem:
        raise RuntimeError(problem)


def worker_handlers() -> dict:
    """Run inside the math worker (``worker.py``)."""

    def kor_sympy_equal(response: str, answer: str) -> bool:
        import sympy
        from sympy.parsing.latex import parse_latex

        def canon(s):
            return sympy.simplify(parse_latex(s))

        # As KOR-Bench: any parse/simplify failure falls back to string equality.
        try:
            if "or" in answer:
                return {canon(p.strip()) for p in response.split("or")} == \
                    {canon(p.strip()) for p in answer.split("or")}
            return canon(response) == canon(answer)
        except Exception:
            return response == answer

    return {"kor_sympy_equal": kor_sympy_equal}
