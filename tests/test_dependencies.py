"""The dependency pins say what the code needs: a range mirage allows must be one verl 0.9.1 and the shipped
testbed models (transformers 5 configs) accept."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _ours(name: str) -> Requirement:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(Requirement(d) for d in deps if Requirement(d).name == name)


@pytest.mark.verl
def test_transformers_range_is_inside_verls():
    verl = next(Requirement(r) for r in importlib.metadata.requires("verl")
                if Requirement(r).name == "transformers" and r.split(";")[0].strip() != "transformers"
                and not Requirement(r).marker)
    ours = _ours("transformers")
    candidates = [Version(f"{major}.{minor}.{patch}") for major in (4, 5) for minor in range(0, 60)
                  for patch in (0, 3, 9)]
    allowed_by_us = [v for v in candidates if ours.specifier.contains(v)]
    assert allowed_by_us, ours
    outside = [str(v) for v in allowed_by_us if not verl.specifier.contains(v)]
    assert not outside, f"pyproject allows transformers {outside[:5]}..., verl 0.9.1 requires {verl.specifier}"


def test_shipped_models_need_transformers_5():
    """The testbed models' configs carry rope_parameters (transformers 5's layout): a 4.x lower bound would
    install a transformers that reads them with other defaults."""
    ours = _ours("transformers")
    configs = list((ROOT / "data" / "models").glob("*/config.json"))
    assert configs
    written = {re.search(r'"transformers_version": "([\d.]+)"', c.read_text()).group(1) for c in configs}
    assert all(Version(v).major == 5 for v in written)
    assert not ours.specifier.contains("4.57.0")
