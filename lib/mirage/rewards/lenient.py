"""Format-free accuracy: the answer of a response scored whatever its format.

``compute_score``'s ``acc`` reads the answer from the ``<answer>`` block only, so a response
that states the right answer without the tags scores 0 there. ``format_free_acc`` (``mirage.rewards.format_free``) scores:

* a well-formatted response: its ``acc`` (the same answer, the same check);
* a response that breaks the format: the checker's ``check`` on the answer its family reads
  leniently from the whole text (``Checker.lenient_answer``: the ``<answer>`` block when there is
  one, else e.g. the last number); NaN when the family declares no lenient reading.

The families' lenient readings (declared on their registry entries):

    toy (toy-math / toy-logic)  the <answer> block, else the last number (toy-math) or the last
                                lowercase word (toy-logic) after the last </think> (the whole text
                                without one)
    math                        the <answer> block, else the inside of the last \\boxed{...}, else
                                the last number of the text; checked by math-verify as usual
    korbench                    the <answer> block, else the whole text (KOR-Bench's own first-[[..]]
                                extraction)
    synlogic, reasoning_gym, exact   none: NaN on a response that breaks the format

Pass@1, the format rate and this accuracy together split a gain into "learned the format" and
"answers better" (``mirage.study.format_split``; docs/evaluation.md).
"""

from __future__ import annotations

import re
from typing import Any

from mirage.rewards.response import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, extract_answer

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_TAGS = re.compile("|".join(re.escape(t) for t in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)))


def after_think(text: str) -> str:
    """The text after the last ``</think>`` (the whole text without one), tags removed."""
    cut = text.rfind(THINK_CLOSE)
    return _TAGS.sub(" ", text[cut + len(THINK_CLOSE):] if cut != -1 else text)


def last_number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    return found[-1] if found else None


def last_boxed(text: str) -> str | None:
    """The inside of the last-opened ``\\boxed{...}`` whose braces close, or None. One linear scan (model
    text is adversarial: thousands of unclosed boxes must not cost a quadratic search)."""
    opener = "\\boxed{"
    stack: list[int] = []  # per open brace: where a box's inside starts, or -1 for a plain brace
    best: tuple[int, int] | None = None
    i = 0
    while i < len(text):
        if text.startswith(opener, i):
            stack.append(i + len(opener))
            i += len(opener)
            continue
        ch = text[i]
        if ch == "{":
            stack.append(-1)
        elif ch == "}" and stack:
            start = stack.pop()
            if start >= 0 and (best is None or start > best[0]):
                best = (start, i)
        i += 1
    return text[best[0]:best[1]] if best else None


# --- the shipped families' lenient readings ----------------------------------------------------
def math_lenient(text: str, data_source: str, options: Any) -> str | None:
    """The <answer> block, else the inside of the last \\boxed{}, else the last number."""
    answer = extract_answer(text)
    if answer is not None:
        return answer
    boxed = last_boxed(text)
    return boxed if boxed is not None else last_number(text)


def korbench_lenient(text: str, data_source: str, options: Any) -> str | None:
    """The <answer> block, else the whole text (KOR-Bench's rules extract their first [[..]] from it)."""
    answer = extract_answer(text)
    return answer if answer is not None else text
