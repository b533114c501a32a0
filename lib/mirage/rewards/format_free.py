"""Format-free accuracy of one response: its answer checked whatever its format (``mirage.rewards.lenient``
describes the families' lenient readings)."""

from __future__ import annotations

from typing import Any, Mapping

from mirage.rewards.response import format_ok
from mirage.rewards.routing import parse_options, route
from mirage.rewards.score import compute_score

# compute_score keywords that are not checker options
_NOT_OPTIONS = ("variant", "p", "seed", "step", "sample_index", "release_faithful", "reward_router_address",
                "reward_model_tokenizer", "return_dict")


def format_free_acc(data_source: str, text: str, ground_truth: Any, extra_info: Mapping | None = None, *,
                    result: Mapping | None = None, **options: Any) -> float:
    """1.0 / 0.0: the answer correct whatever the format, NaN where the family reads no answer leniently.

    ``result``: this response's ``compute_score`` result, when already computed (its ``format`` and
    ``acc`` are reused for a well-formatted response). ``options``: compute_score's keywords.
    """
    release_faithful = bool(options.get("release_faithful", False))
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return 0.0
    fmt = bool(result["format"]) if result is not None else format_ok(text, release_faithful)
    if fmt:
        if result is not None:
            return float(result["acc"])
        return float(compute_score(data_source, text, ground_truth, extra_info, **options)["acc"])
    checker = route(data_source)
    if checker.lenient_answer is None:
        return float("nan")
    opts = parse_options({k: v for k, v in options.items() if k not in _NOT_OPTIONS})[checker.name]
    answer = checker.lenient_answer(text, str(data_source), opts)
    verdict = checker.check(data_source, text, answer, ground_truth, extra_info, opts, release_faithful)
    return float(bool(verdict.acc)) if verdict.error is None else 0.0
