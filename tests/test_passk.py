import math
from fractions import Fraction

import numpy as np
import pytest


def exact(n, c, k):
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def test_matches_math_comb_on_random_cases():
    from mirage.passk import pass_at_k

    rng = np.random.default_rng(0)
    n = rng.integers(1, 300, 3000)
    c = (rng.random(3000) * (n + 1)).astype(int)
    k = 1 + (rng.random(3000) * n).astype(int)
    got = pass_at_k(n, c, k)
    want = np.array([exact(*t) for t in zip(n.tolist(), c.tolist(), k.tolist())])
    assert np.abs(got - want).max() < 1e-12


def test_matches_math_comb_at_n_1024_every_default_k():
    from mirage.passk import default_ks, pass_at_k

    rng = np.random.default_rng(1)
    c = rng.integers(0, 1025, 200)
    for k in default_ks(1024):
        got = pass_at_k(np.full(200, 1024), c, k)
        want = [exact(1024, ci, k) for ci in c.tolist()]
        assert np.abs(got - want).max() < 1e-12, k


def test_every_value_is_correctly_rounded_so_the_same_bits_on_every_machine():
    # a floating-point form (log1p / expm1) is off by an ulp depending on the CPU's vector
    # instructions: numpy's AVX-512 path gave pass@1 0.5987499999999999 for 479/800, AVX2 0.59875,
    # and the study's 4-decimal tables printed .5987 on one machine, .5988 on the other
    from mirage.passk import pass_at_k, pass_at_k_curve

    for n in (1, 2, 3, 16, 17, 64, 100, 256):
        c = np.arange(n + 1)
        for k in sorted({k for k in (1, 2, 4, n // 2, n) if 1 <= k <= n}):
            got = pass_at_k(np.full(n + 1, n), c, k)
            want = np.array([exact(n, ci, k) for ci in c.tolist()])  # Fraction -> float: correctly rounded
            assert got.tolist() == want.tolist(), (n, k)
        assert (pass_at_k(np.full(n + 1, n), c, 1) == c / n).all()  # pass@1 is exactly the float c / n
    counts = np.array([16] * 200), np.array([10] * 116 + [9] * 84)  # mean 1916 / 3200 = 479 / 800
    assert pass_at_k_curve(*counts, ks=[1])["pass_at_k"].item() == 479 / 800


def test_small_values_keep_relative_precision():
    # pass@1 with 1 correct of 1000 is 1e-3 exactly; a naive 1 - prod loses digits here
    from mirage.passk import pass_at_k

    assert pass_at_k(1000, 1, 1) == pytest.approx(1e-3, rel=1e-12)
    assert pass_at_k(1000, 1, 2) == pytest.approx(exact(1000, 1, 2), rel=1e-12)


def test_edge_cases():
    from mirage.passk import pass_at_k

    assert pass_at_k(16, 0, 1) == 0.0
    assert pass_at_k(16, 0, 16) == 0.0
    assert pass_at_k(16, 16, 1) == 1.0
    assert pass_at_k(16, 1, 16) == 1.0  # k = n and one correct: certain (best@16 would say ~0.655)
    assert pass_at_k(16, 3, 14) == 1.0  # n - c < k
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3, abs=1e-15)
    assert isinstance(pass_at_k(4, 1, 2), float)
    assert pass_at_k(np.array([[4, 8]]), 2, 2).shape == (1, 2)


@pytest.mark.parametrize("n,c,k,match", [
    (4, 1, 5, "k must be <= n"),
    (4, 5, 1, "c \\(correct\\) must be <= n"),
    (4, -1, 1, "must be >= 0"),
    (4, 1, 0, "k must be >= 1"),
    (0, 0, 1, "n \\(samples\\) must be >= 1"),
    (4.5, 1, 1, "whole numbers"),
])
def test_errors(n, c, k, match):
    from mirage.passk import pass_at_k

    with pytest.raises(ValueError, match=match):
        pass_at_k(n, c, k)


def test_error_names_the_offending_problem():
    from mirage.passk import pass_at_k

    with pytest.raises(ValueError, match="element 2: n=3, c=0, k=4"):
        pass_at_k([8, 8, 3], [1, 2, 0], 4)


def test_default_ks():
    from mirage.passk import default_ks

    assert default_ks(1) == [1]
    assert default_ks(16) == [1, 2, 4, 8, 16]
    assert default_ks(100) == [1, 2, 4, 8, 16, 32, 64, 100]
    assert default_ks(1024)[-1] == 1024 and len(default_ks(1024)) == 11
    with pytest.raises(ValueError):
        default_ks(0)


def test_curve_shape_and_monotone():
    from mirage.passk import default_ks, pass_at_k_curve

    rng = np.random.default_rng(2)
    n = np.full(50, 64)
    c = rng.integers(0, 65, 50)
    curve = pass_at_k_curve(n, c)
    assert list(curve.columns) == ["k", "pass_at_k", "n_problems"]
    assert curve["k"].tolist() == default_ks(64)
    assert (curve["n_problems"] == 50).all()
    assert np.all(np.diff(curve["pass_at_k"]) >= 0)
    assert curve["pass_at_k"].iloc[0] == pytest.approx(np.mean(c / n))  # pass@1 = mean accuracy


def test_curve_unequal_n_uses_problems_with_enough_samples():
    from mirage.passk import pass_at_k_curve

    curve = pass_at_k_curve([4, 16], [1, 2]).set_index("k")
    assert curve.loc[4, "n_problems"] == 2 and curve.loc[8, "n_problems"] == 1
    assert curve.loc[4, "pass_at_k"] == pytest.approx((1.0 + exact(16, 2, 4)) / 2)
    assert curve.loc[16, "pass_at_k"] == 1.0  # only the n=16 problem, which has a correct sample
    with pytest.raises(ValueError, match="k=32 exceeds every problem"):
        pass_at_k_curve([4, 16], [1, 2], ks=[1, 32])


def test_bootstrap_ci():
    import pandas as pd

    from mirage.passk import bootstrap_ci

    rng = np.random.default_rng(3)
    n = np.full(200, 32)
    c = rng.integers(0, 33, 200)
    ci = bootstrap_ci(n, c, n_boot=300, seed=0)
    assert list(ci.columns) == ["k", "pass_at_k", "ci_low", "ci_high", "n_problems"]
    assert (ci["ci_low"] <= ci["pass_at_k"]).all() and (ci["pass_at_k"] <= ci["ci_high"]).all()
    assert (ci["ci_high"] - ci["ci_low"] > 0).all()
    pd.testing.assert_frame_equal(ci, bootstrap_ci(n, c, n_boot=300, seed=0))  # seeded
    assert not ci.equals(bootstrap_ci(n, c, n_boot=300, seed=1))
    wide = bootstrap_ci(n[:20], c[:20], n_boot=300, seed=0)
    assert (wide["ci_high"] - wide["ci_low"]).mean() > (ci["ci_high"] - ci["ci_low"]).mean()
    same = bootstrap_ci([8] * 10, [4] * 10, n_boot=50)  # identical problems: no spread
    assert np.allclose(same["ci_low"], same["ci_high"])


def test_bootstrap_ci_unequal_n_and_memory_chunks():
    from mirage.passk import bootstrap_ci

    ci = bootstrap_ci([4, 16, 16], [1, 0, 8], n_boot=2000, seed=0)
    assert ci.set_index("k").loc[16, "n_problems"] == 2
    big = bootstrap_ci(np.full(5000, 4), np.arange(5000) % 5, n_boot=1000, seed=0)  # chunked replicates
    assert big["ci_low"].iloc[0] < 0.5 < big["ci_high"].iloc[0]


def test_counts_from_samples_merges_seeds_by_concatenation():
    import pandas as pd

    from mirage.passk import counts_from_samples, pass_at_k_curve

    seed0 = pd.DataFrame({"problem_id": ["a", "a", "b", "b"], "acc": [1, 0, 0, 0]})
    seed1 = pd.DataFrame({"problem_id": ["a", "b", "b"], "acc": [True, True, False]})
    counts = counts_from_samples(pd.concat([seed0, seed1], ignore_index=True))
    assert counts.to_dict("records") == [{"problem_id": "a", "n": 3, "c": 2}, {"problem_id": "b", "n": 4, "c": 1}]
    curve = pass_at_k_curve(counts["n"], counts["c"])
    assert curve["k"].tolist() == [1, 2, 4] and curve["n_problems"].tolist() == [2, 2, 1]


def test_counts_from_samples_errors():
    import pandas as pd

    from mirage.passk import counts_from_samples

    with pytest.raises(ValueError, match="row 1 has 0.5"):
        counts_from_samples(pd.DataFrame({"problem_id": [1, 1], "acc": [1, 0.5]}))
    with pytest.raises(KeyError, match="'correct'"):
        counts_from_samples(pd.DataFrame({"problem_id": [1], "acc": [1]}), correct="correct")
    with pytest.raises(ValueError, match="row 0 has no"):
        counts_from_samples(pd.DataFrame({"problem_id": [None, 1], "acc": [1, 0]}))
