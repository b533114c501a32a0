"""The contamination probe's text operations: the problem statement, its cut, and the match measures.

* The STATEMENT of a problem is its text without the instruction mirage puts around it:
  ``extra_info.question`` / ``problem`` / ``original_question`` when the prompt contains
  it, else the prompt after a known instruction (the paper's math instruction, the
  testbed's), else the whole user message.
* The CUT is on characters, as Wu et al. (arXiv 2507.10532) cut "the first x% of the
  problem": the prefix is ``statement[:floor(x * len)]`` (at least one character, and
  at least one left over), with trailing whitespace moved to the remainder so that no
  prompt ends in a space (BPE tokenizers split a trailing space off the next word).
  Characters, not whitespace tokens: a toy-math statement ("5+3*4-2") is one token.
* EXACT MATCH: the continuation reproduces the remainder verbatim, up to whitespace
  runs: the whitespace-normalised continuation, cut to the normalised remainder's
  length, equals it (what the model writes after that is not judged).
* ROUGE-L: F1 of the longest common subsequence of tokens, the remainder against the
  continuation's first as-many tokens. Tokens are words and single symbols
  (``\\w+|[^\\w\\s]``, Unicode-aware): ``rouge-score``'s tokenizer keeps only [a-z0-9],
  so it would score "∫x²" or "3*4-2" against nothing. An empty remainder is reproduced by any
  continuation (exact match, ROUGE-L 1); an empty continuation of a non-empty remainder scores 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from mirage.data.math_data import INSTRUCTION as MATH
from mirage.tasks.toy import INSTRUCTION as TOY

_TOKEN = re.compile(r"\w+|[^\w\s]")
_STATEMENT_KEYS = ("question", "problem", "original_question")


def known_instructions() -> tuple[str, ...]:
    """Instructions mirage's datasets put before the problem (a blank line between)."""
    return (MATH, TOY)


def user_content(prompt: Sequence[Mapping[str, str]]) -> str:
    users = [m for m in prompt if m.get("role") == "user"]
    if not users:
        raise ValueError("the prompt has no user message")
    return str(users[-1].get("content") or "")


def problem_statement(prompt: Sequence[Mapping[str, str]], extra_info: Mapping[str, Any] | None) -> str:
    """The problem text of a row (see the module docstring); may be empty (the caller refuses it)."""
    content = user_content(prompt)
    for key in _STATEMENT_KEYS:
        value = (extra_info or {}).get(key)
        if isinstance(value, str) and value.strip() and value.strip() in content:
            return value.strip()
    for instruction in known_instructions():
        if content.startswith(instruction + "\n\n"):
            return content[len(instruction) + 2:].strip()
    return content.strip()


def truncated_prompt(prompt: Sequence[Mapping[str, str]], statement: str, prefix: str) -> list[dict[str, str]]:
    """The chat prompt with its statement replaced by the prefix (the instruction stays)."""
    out = [dict(m) for m in prompt]
    last = max(i for i, m in enumerate(out) if m.get("role") == "user")
    out[last]["content"] = out[last]["content"].replace(statement, prefix, 1)
    return out


@dataclass(frozen=True)
class Cut:
    prefix: str
    remainder: str


def cut(statement: str, fraction: float) -> Cut:
    """The first ``fraction`` of the statement's characters, and the rest (both non-empty)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(statement) < 2:
        raise ValueError(f"a statement of {len(statement)} character(s) cannot be cut into a prefix and a remainder")
    at = min(max(1, math.floor(fraction * len(statement))), len(statement) - 1)
    prefix = statement[:at].rstrip()
    if not prefix:  # the cut fell in leading whitespace (the statement is stripped: cannot happen)
        prefix = statement[:at]
    return Cut(prefix, statement[len(prefix):])


def normalise(text: str) -> str:
    return " ".join(text.split())


def exact_match(continuation: str, remainder: str) -> bool:
    """The continuation starts with the remainder, up to whitespace runs (and leading whitespace)."""
    want = normalise(remainder)
    return normalise(continuation)[:len(want)] == want


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(continuation: str, remainder: str) -> float:
    """ROUGE-L F1 of the remainder's tokens against the continuation's first as-many tokens."""
    ref = tokens(remainder)
    hyp = tokens(continuation)[:len(ref)]
    if not ref or not hyp:
        return float(not ref and not hyp)
    common = lcs_length(ref, hyp)
    if common == 0:
        return 0.0
    precision, recall = common / len(hyp), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def parse_fractions(text: str) -> tuple[float, ...]:
    """'0.4,0.6,0.8' -> (0.4, 0.6, 0.8); every value in (0, 1), distinct, sorted."""
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--fractions: comma-separated numbers in (0, 1), got {text!r}") from None
    bad = [v for v in values if not 0 < v < 1]
    if not values or bad:
        raise ValueError(f"--fractions: every value must be in (0, 1) (exclusive), got {text!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"--fractions: a value is repeated in {text!r}")
    return tuple(sorted(values))
