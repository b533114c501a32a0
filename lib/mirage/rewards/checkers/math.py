"""Is a math answer correct? Checkers: math_verify (default), exact, release.

* ``math_verify``: HF math-verify (``parse`` both, ``verify(gold, pred)``), run in a
  guarded worker process (see ``worker.py``). A cheap fast path decides the
  common cases without IPC: answers equal after light normalisation (``\\boxed{}``
  / ``$`` removed, whitespace dropped, plain numbers compared as exact rationals
  so ``27.0`` equals ``27``) are correct; two different plain integers are wrong.
* ``exact``: stripped string equality.
* ``release``: the released code's check, ``pred == ground_truth`` with no
  normalisation at all (used by ``release_faithful=True``).

A check that times out or crashes scores 0 and says why in ``error``.

Options (``compute_score`` keywords): ``math_checker`` (default ``math_verify``; with
``release_faithful`` and no explicit checker, ``release``) and ``math_timeout`` (seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from mirage.rewards import worker
from mirage.rewards.checkers import Checker, Verdict, register_checker
from mirage.rewards.lenient import math_lenient

CHECKERS = ("math_verify", "exact", "release")
TIMEOUT_S = 1.0
ROLE = "mirage.rewards.checkers.math:worker_handlers"  # the guarded worker that runs math-verify
MAX_ANSWER_CHARS = 2000  # longer "answers" skip math-verify (its parser is super-linear)

_PLAIN_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)")
_PLAIN_INT = re.compile(r"[-+]?\d+")


def _unwrap_boxed(s: str) -> str:
    """``\\boxed{x}`` -> ``x`` when the box spans the whole string."""
    if not (s.startswith("\\boxed{") and s.endswith("}")):
        return s
    depth = 0
    for i, ch in enumerate(s[len("\\boxed"):], start=len("\\boxed")):
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return s[len("\\boxed{"):-1] if i == len(s) - 1 else s
    return s


def strip_currency(text: str) -> str:
    """``\\$`` is a dollar SIGN in MATH answers (``\\$36``), not a math delimiter: drop it, so the
    parser does not read the rest as LaTeX math mode (``\\$36`` vs ``36`` scored 0 before)."""
    return text.replace("\\$", "")


def normalise(answer: str) -> str:
    s = strip_currency(answer).strip()
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s.strip("$")
    s = _unwrap_boxed(s.strip())
    return "".join(s.split())


def fast_verdict(pred: str, gold: str) -> bool | None:
    """True / False when decidable without math-verify, else None."""
    p, g = normalise(pred), normalise(gold)
    if p == g:
        return True
    if max(len(p), len(g)) <= 100 and _PLAIN_NUMBER.fullmatch(p) and _PLAIN_NUMBER.fullmatch(g):
        if Fraction(p) == Fraction(g):
            return True
        if _PLAIN_INT.fullmatch(p) and _PLAIN_INT.fullmatch(g):
            return False
    return None


def is_correct(pred: str | None, gold: str, checker: str = "math_verify",
               timeout: float = TIMEOUT_S) -> tuple[bool, str | None]:
    """(correct, error). ``error`` is None unless the check itself failed."""
    if pred is None:
        return False, None
    if checker == "release":
        return pred == gold, None
    if checker == "exact":
        return pred.strip() == gold.strip(), None
    if checker != "math_verify":
        raise ValueError(f"unknown math_checker {checker!r}; known: {CHECKERS[:2]}")
    verdict = fast_verdict(pred, gold)
    if verdict is not None:
        return verdict, None
    if len(pred) > MAX_ANSWER_CHARS:
        return False, f"answer longer than {MAX_ANSWER_CHARS} chars: not sent to math-verify"
    try:
        return bool(worker.call(ROLE, "math_equal", {"gold": gold, "pred": pred}, timeout)), None
    except (worker.WorkerTimeout, worker.WorkerDied) as e:
        return False, f"math-verify: {e}"


def cluster(answers: list[str], checker: str = "math_verify", timeout: float = TIMEOUT_S) -> list[int]:
    """Label answers so that equivalent ones share a label (the first member's index).

    Answers are first grouped by normalised string; only the distinct groups go
    to math-verify. If that times out the string groups are kept.
    """
    if checker == "release":
        keys = list(answers)
    elif checker == "exact":
        keys = [a.strip() for a in answers]
    elif checker == "math_verify":
        keys = [normalise(a) for a in answers]
    else:
        raise ValueError(f"unknown math_checker {checker!r}; known: {CHECKERS[:2]}")
    first_of: dict[str, int] = {}
    labels = [first_of.setdefault(k, i) for i, k in enumerate(keys)]
    reps = sorted(set(labels))
    if checker != "math_verify" or len(reps) < 2:
        return labels
    sendable = [i for i in reps if len(answers[i]) <= MAX_ANSWER_CHARS]
    try:  # each parse / verify has its own limit inside; the request's covers them all
        params = {"answers": [answers[i] for i in sendable], "step_timeout": timeout}
        merged = worker.call(ROLE, "math_cluster", params, timeout * (1 + 2 * len(sendable)))
    except (worker.WorkerTimeout, worker.WorkerDied):
        return labels
    rep_label = {sendable[j]: sendable[m] for j, m in enumerate(merged)}
    return [rep_label.get(label, label) for label in labels]


# --- the checker ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MathOptions:
    math_checker: str | None = field(default=None, metadata={  # None: math_verify (release_faithful: release)
        "choices": CHECKERS[:2], "help": "math answer check (default: math_verify; release-faithful: the release's)"})
    math_timeout: float = TIMEOUT_S

    def __post_init__(self):
        if self.math_checker is not None and self.math_checker not in CHECKERS[:2]:
            raise ValueError(f"unknown math_checker {self.math_checker!r}; known: {CHECKERS[:2]}")
        if not self.math_timeout > 0:
            raise ValueError(f"math_timeout must be > 0, got {self.math_timeout}")

    def checker(self, release_faithful: bool) -> str:
        return self.math_checker or ("release" if release_faithful else "math_verify")


def check(data_source, text, answer, ground_truth, extra_info, options: MathOptions, release_faithful: bool) -> Verdict:
    if ground_truth is None:
        raise ValueError(f"math row ({data_source}) has no ground_truth")
    acc, error = is_correct(answer, str(ground_truth), options.checker(release_faithful), options.math_timeout)
    return Verdict(acc, answer, error)


def cluster_answers(answers, data_source, options: MathOptions, release_faithful: bool) -> list[int]:
    return cluster(list(answers), options.checker(release_faithful), options.math_timeout)


register_checker(Checker("math", check, MathOptions, cluster=cluster_answers, release_incorrect_is_ground_truth=True,
                         lenient_answer=math_lenient,
                         summary="math answers: math-verify equivalence (or exact / the release's string match)"))


# --- inside the worker process -----------------------------------------------------------
def worker_handlers() -> dict:
    import functools
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout disabled" notices
    gold_cache: dict[str, list] = {}

    def parse_answer(text: str) -> list:
        text = strip_currency(text)
        # Bare LaTeX is only found inside math delimiters; without them math-verify
        # may pick a fragment (``3\sqrt{13}`` -> 3).
        delimited = any(d in text for d in ("$", "\\boxed", "\\(", "\\["))
        # Timeouts are the worker's (math-verify's own use SIGALRM and would cancel ours).
        parsed = parse(text if delimited else f"${text}$", parsing_timeout=None)
        return parsed or parse(text, parsing_timeout=None)

    def gold_parsed(gold: str) -> list:
        if gold not in gold_cache:
            if len(gold_cache) > 50_000:
                gold_cache.clear()
            gold_cache[gold] = parse_answer(gold)
        return gold_cache[gold]

    @functools.lru_cache(maxsize=1 << 16)  # a group's wrong answers often repeat
    def math_equal(gold: str, pred: str) -> bool:
        return bool(verify(gold_parsed(gold), parse_answer(pred), timeout_seconds=None))

    def bounded(seconds, thunk):
        """thunk(), or None if it takes longer than ``seconds``: one bad answer must not sink the group."""
        try:
            with worker.time_limit(seconds):
                return thunk()
        except worker.SoftTimeout:
            return None

    def math_cluster(answers: list[str], step_timeout: float) -> list[int]:
        parsed = [bounded(step_timeout, lambda: parse_answer(a)) for a in answers]
        labels = list(range(len(answers)))
        for i in range(len(answers)):
            for j in range(i):
                if labels[j] == j and parsed[i] and parsed[j] and \
                        bounded(step_timeout, lambda: verify(parsed[j], parsed[i], timeout_seconds=None)):
                    labels[i] = j
                    break
        return labels

    math_equal("1", "1")  # warm up sympy's lazy imports before reporting ready
    return {"math_equal": math_equal, "math_cluster": math_cluster}
