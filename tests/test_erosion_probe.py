"""scripts/erosion_probe.py: the erosion / derailment reading of docs/science.md section 6 from probe rows."""
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "erosion_probe.py"


def _script():
    spec = importlib.util.spec_from_file_location("erosion_probe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _per_problem(unforced, forced, m=40):
    index = pd.MultiIndex.from_product([["toy-math_test"], [f"p{j:02d}" for j in range(m)]],
                                       names=["dataset", "problem_id"])
    return pd.DataFrame({"unforced_acc": unforced, "forced_acc": forced, "forced_buggy": 0.0,
                         "forced_neither": 1.0 - np.asarray(forced, dtype=float)}, index=index)


def test_erosion_and_derailment_are_read_as_preregistered():
    ep = _script()
    rng = np.random.default_rng(0)
    m = 40
    base = _per_problem(np.ones(m), np.ones(m))
    probed = []
    for seed in range(5):
        # lost the ability: forced accuracy ~0.6 (a drop of ~0.4, far beyond 0.10)
        probed.append(({"condition": "random", "regime": "u16", "seed": seed, "step": 40, "path": "x"},
                       _per_problem(rng.random(m) < 0.6, rng.random(m) < 0.6)))
        # lost only the habit: forced accuracy stays 1, unforced falls to ~0.5
        probed.append(({"condition": "random", "regime": "u2", "seed": seed, "step": 40, "path": "y"},
                       _per_problem(rng.random(m) < 0.5, np.ones(m))))
        # nothing changed
        probed.append(({"condition": "ground_truth", "regime": "u2", "seed": seed, "step": 40, "path": "z"},
                       _per_problem(np.ones(m), np.ones(m))))
    by_model, summary = ep.tables(base, probed)
    assert len(by_model) == 1 + 15 and by_model.iloc[0]["condition"] == "base"
    read = summary.drop_duplicates(["condition", "regime"]).set_index(["condition", "regime"])["reading"]
    assert read[("random", "u16")] == "erosion"
    assert read[("random", "u2")] == "derailment"
    assert read[("ground_truth", "u2")] == "neither"
    forced = summary[summary["statistic"] == "forced_acc change"].set_index(["condition", "regime"])
    assert forced.loc[("random", "u16"), "ci_high"] < -0.1 and bool(forced.loc[("random", "u16"), "holm"])
    assert forced.loc[("random", "u2"), "mean"] == 0 and not bool(forced.loc[("random", "u2"), "holm"])


def test_a_probe_of_other_problems_is_refused():
    ep = _script()
    base = _per_problem(np.ones(40), np.ones(40))
    other = _per_problem(np.ones(39), np.ones(39), m=39)
    with pytest.raises(ValueError, match="other problems"):
        ep.tables(base, [({"condition": "random", "regime": "u2", "seed": 0, "step": 40, "path": "x"}, other)])
