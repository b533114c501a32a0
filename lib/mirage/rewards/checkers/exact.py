"""The exact checker: the answer equals the ground truth up to whitespace (the testbed's tasks).

Any answer, however odd, gives True or False and never raises: model text is adversarial.
"""

from __future__ import annotations

from typing import Any

from mirage.rewards.checkers import Checker, Verdict, register_checker


def normalise(text: str) -> str:
    return " ".join(text.split())


def same(pred: Any, ground_truth: Any) -> bool:
    return isinstance(pred, str) and ground_truth is not None and normalise(pred) == normalise(str(ground_truth))


def check(data_source, text, answer, ground_truth, extra_info, options, release_faithful: bool) -> Verdict:
    return Verdict(same(answer, ground_truth), answer, None)


register_checker(Checker("exact", check,
                         summary="the answer equals the ground truth up to whitespace"))
