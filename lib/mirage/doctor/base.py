"""What a finding is: one line, ``ok|warn|error: <what> -- fix: <how>``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

LEVELS = ("ok", "warn", "error")


@dataclass(frozen=True)
class Finding:
    level: str  # ok | warn | error
    what: str
    fix: str = ""

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"finding level must be one of {LEVELS}, got {self.level!r}")

    def __str__(self) -> str:
        return f"{self.level}: {self.what}" + (f" -- fix: {self.fix}" if self.fix else "")


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


class PreflightError(ValueError):
    """A run the preflight found errors in; the message counts them (the findings were printed)."""
