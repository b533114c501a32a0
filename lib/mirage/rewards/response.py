"""The response format ``<think>...</think> <answer>...</answer>`` and answer extraction.

Two behaviours:

* corrected (default): newlines are allowed inside both tags; the extracted
  answer is stripped of surrounding whitespace.
* ``release_faithful=True``: exactly what the released reward code does. It
  matches ``^<think>.*?</think>\\s*<answer>.*?</answer>$`` on the stripped
  response and takes the first ``<answer>(.*?)</answer>``, both without DOTALL,
  so a newline inside either tag fails the format and hides that answer; the
  answer is not stripped.

Both are written as linear scans instead of regexes: the release's regex
backtracks quadratically on adversarial text (e.g. many ``</think><answer>``
pairs in one long line), and model text is adversarial. Tests check the scans
against the regexes on fuzzed strings.
"""

from __future__ import annotations

import re

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
# "</think>", whitespace, "<answer>": no nested quantifier, so finditer is linear.
_BOUNDARY = re.compile(r"</think>\s*<answer>")


def format_ok(text: str, release_faithful: bool = False) -> bool:
    """True when the stripped response is one think block followed by one answer block."""
    if not isinstance(text, str):
        return False
    s = text.strip()
    if not (s.startswith(THINK_OPEN) and s.endswith(ANSWER_CLOSE)):
        return False
    answer_end = len(s) - len(ANSWER_CLOSE)  # where the final </answer> starts
    first_nl = s.find("\n", len(THINK_OPEN))
    last_nl = s.rfind("\n")
    for m in _BOUNDARY.finditer(s, len(THINK_OPEN)):
        if m.end() > answer_end:
            break
        if not release_faithful:
            return True
        # Without DOTALL the think text (before m) and the answer text (after m)
        # may hold no newline; only the whitespace between the blocks may.
        think_has_nl = first_nl != -1 and first_nl < m.start()
        if think_has_nl:
            return False  # every later boundary also has that newline before it
        if last_nl < m.end():
            return True
    return False


def extract_answer(text: str, release_faithful: bool = False) -> str | None:
    """Text inside the first ``<answer>...</answer>``, or None when there is none (or no text)."""
    if not isinstance(text, str):
        return None
    if not release_faithful:
        start = text.find(ANSWER_OPEN)
        if start == -1:
            return None
        end = text.find(ANSWER_CLOSE, start + len(ANSWER_OPEN))
        if end == -1:
            return None  # no later <answer> can close either
        return text[start + len(ANSWER_OPEN):end].strip()
    # Without DOTALL a match must open and close on one line. On each line only
    # the first <answer> can start the earliest match: a later one on the same
    # line closes only if the first does.
    pos = 0
    while True:
        start = text.find(ANSWER_OPEN, pos)
        if start == -1:
            return None
        line_end = text.find("\n", start)
        if line_end == -1:
            line_end = len(text)
        end = text.find(ANSWER_CLOSE, start + len(ANSWER_OPEN), line_end)
        if end != -1:
            return text[start + len(ANSWER_OPEN):end]
        pos = line_end + 1
