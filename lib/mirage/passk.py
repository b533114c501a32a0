"""pass@k: the unbiased estimator (Chen et al. 2021), curves, bootstrap CIs.

For one problem with n samples of which c are correct,

    pass@k = 1 - C(n-c, k) / C(n, k)
           = 1                                   if n - c < k
           = 1 - prod_{i=n-c+1..n} (1 - k/i)     otherwise      (the stable product form)

averaged over problems. pass@1 is the mean accuracy. This is NOT avg@k (the mean
accuracy of k samples), and NOT verl's in-training ``best@N`` (a bootstrap of
the maximum); mirage offers neither under this name.

Computed exactly: C(n, k) - C(n-c, k) and C(n, k) are Python integers and their quotient is
rounded once (Python's int / int is correctly rounded), so pass@1 is exactly the float nearest c / n
and every value is the same on every machine. A floating-point form (logs, expm1) depends on
the CPU's vector instructions: numpy's AVX-512 log1p/expm1 gave 0.5987499999999999 where its
AVX2 path gave 0.59875, and the study's 4-decimal tables printed .5987 on one machine, .5988 on
the other. Each distinct (n, c, k) is computed once.

Unequal n per problem: a problem takes part in pass@k only if n_i >= k (there is
no unbiased estimate otherwise). ``pass_at_k_curve`` therefore averages, at each
k, over the problems with enough samples and reports how many (``n_problems``);
nothing is padded or extrapolated. Merging seeds = concatenating sample rows
before ``counts_from_samples``.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb

import numpy as np
import pandas as pd


def _as_int_array(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"pass@k: {name} must be integers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            bad = np.flatnonzero(~np.isfinite(a.ravel()) | (a.ravel() != np.round(a.ravel())))[0]
            raise ValueError(f"pass@k: {name} must be whole numbers; element {bad} is {a.ravel()[bad]!r}")
    return a.astype(np.int64)


def _check(n: np.ndarray, c: np.ndarray, k: np.ndarray) -> None:
    for cond, msg in [
        (n < 1, "n (samples) must be >= 1"),
        (c < 0, "c (correct) must be >= 0"),
        (c > n, "c (correct) must be <= n (samples)"),
        (k < 1, "k must be >= 1"),
        (k > n, "k must be <= n (pass@k has no unbiased estimate with fewer than k samples)"),
    ]:
        if np.any(cond):
            i = int(np.flatnonzero(cond.ravel())[0])
            raise ValueError(f"pass@k: {msg}; first offending element {i}: "
                             f"n={n.ravel()[i]}, c={c.ravel()[i]}, k={k.ravel()[i]}")


@lru_cache(maxsize=65536)
def _exact(n: int, c: int, k: int) -> float:
    """pass@k of one problem, 1 - C(n-c, k) / C(n, k), correctly rounded (integer arithmetic)."""
    if n - c < k:
        return 1.0
    total = comb(n, k)
    return (total - comb(n - c, k)) / total


def pass_at_k(n, c, k) -> np.ndarray | float:
    """Unbiased pass@k per problem. n, c, k broadcast against each other.

    Returns a float for scalar input, else an array of the broadcast shape. Exact (the module
    docstring): the same bits on every machine. Errors (never silent NaN) for k > n, c > n,
    negative counts or non-integers.
    """
    n_a, c_a, k_a = np.broadcast_arrays(_as_int_array(n, "n"), _as_int_array(c, "c"), _as_int_array(k, "k"))
    _check(n_a, c_a, k_a)
    out = np.ones(n_a.shape, dtype=np.float64)
    n_max = int(n_a.max()) if n_a.size else 0
    for kk in np.unique(k_a):
        sel = (k_a == kk) & (n_a - c_a >= kk)  # where n - c < k, pass@k is exactly 1
        if not np.any(sel):
            continue
        keys, inverse = np.unique(n_a[sel] * (n_max + 1) + c_a[sel], return_inverse=True)  # each (n, c) once
        values = [_exact(int(key) // (n_max + 1), int(key) % (n_max + 1), int(kk)) for key in keys]
        out[sel] = np.asarray(values, dtype=np.float64)[inverse.ravel()]
    return float(out) if out.ndim == 0 else out


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ..., up to n, plus n itself when n is not a power of two."""
    n = int(n)
    if n < 1:
        raise ValueError(f"default_ks: n must be >= 1, got {n}")
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    if ks[-1] != n:
        ks.append(n)
    return ks


def _per_problem_matrix(n, c, ks) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(P, valid, ks): P[i, j] = pass@ks[j] of problem i where n_i >= ks[j] (0 elsewhere)."""
    n = _as_int_array(n, "n").ravel()
    c = _as_int_array(c, "c").ravel()
    if n.shape != c.shape:
        raise ValueError(f"pass@k: n and c must have the same length, got {n.size} and {c.size}")
    if n.size == 0:
        raise ValueError("pass@k: no problems")
    ks = default_ks(int(n.max())) if ks is None else [int(k) for k in ks]
    _check(n, c, np.ones_like(n))  # counts valid regardless of k
    valid = n[:, None] >= np.asarray(ks)[None, :]
    if not valid.any(axis=0).all():
        k_bad = ks[int(np.flatnonzero(~valid.any(axis=0))[0])]
        raise ValueError(f"pass@k: k={k_bad} exceeds every problem's sample count (max n = {n.max()})")
    P = np.zeros(valid.shape)
    for j, k in enumerate(ks):
        rows = valid[:, j]
        if rows.all():  # the common case: skip the masked copies
            P[:, j] = pass_at_k(n, c, k)
        else:
            P[rows, j] = pass_at_k(n[rows], c[rows], k)
    return P, valid, ks


def pass_at_k_curve(n, c, ks=None) -> pd.DataFrame:
    """Mean pass@k over problems for each k (default 1, 2, 4, ..., max n).

    Columns: k, pass_at_k, n_problems (problems with n_i >= k, the ones averaged).
    """
    P, valid, ks = _per_problem_matrix(n, c, ks)
    counts = valid.sum(axis=0)
    return pd.DataFrame({"k": ks, "pass_at_k": P.sum(axis=0) / counts, "n_problems": counts})


def bootstrap_ci(n, c, ks=None, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Percentile bootstrap CI of the pass@k curve, resampling problems with replacement.

    Columns: k, pass_at_k (on all problems), ci_low, ci_high, n_problems.
    Deterministic for a fixed seed.
    """
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"bootstrap_ci: need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    P, valid, ks = _per_problem_matrix(n, c, ks)
    m = P.shape[0]
    V = valid.astype(np.float64)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 4_000_000 // m))  # bound memory: chunk x m weights at a time
    means = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        # resample weights: how many times each problem is drawn in each replicate
        idx = rng.integers(0, m, size=(b, m))
        W = np.bincount((np.arange(b)[:, None] * m + idx).ravel(), minlength=b * m).reshape(b, m).astype(np.float64)
        # weighted sums column by column, not W @ P: a BLAS matrix product's rounding depends on its CPU
        # kernel (OpenBLAS with and without FMA differed); numpy's product-then-sum does not
        num = np.stack([(W * P[:, j]).sum(axis=1) for j in range(P.shape[1])], axis=1)
        den = np.stack([(W * V[:, j]).sum(axis=1) for j in range(V.shape[1])], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(num / den)  # NaN where a replicate drew no problem with n_i >= k
    boot = np.concatenate(means)
    lo, hi = np.nanquantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    counts = valid.sum(axis=0)
    return pd.DataFrame({"k": ks, "pass_at_k": P.sum(axis=0) / counts,
                         "ci_low": lo, "ci_high": hi, "n_problems": counts})


def counts_from_samples(df: pd.DataFrame, by="problem_id", correct: str = "acc") -> pd.DataFrame:
    """One row per sample -> one row per problem: the ``by`` column(s), n (samples), c (correct).

    ``correct`` must hold 0/1 (or bool). Samples of several seeds are merged by
    concatenating their rows first.
    """
    keys = [by] if isinstance(by, str) else list(by)
    for col in keys + [correct]:
        if col not in df.columns:
            raise KeyError(f"counts_from_samples: column {col!r} missing; columns: {list(df.columns)}")
    acc = pd.to_numeric(df[correct], errors="coerce")
    bad = ~acc.isin([0, 1])
    if bad.any():
        i = df.index[bad.to_numpy()][0]
        value = df[correct].loc[i]
        value = value.item() if isinstance(value, np.generic) else value  # 0.5, not np.float64(0.5)
        raise ValueError(f"counts_from_samples: column {correct!r} must be 0/1, row {i} has {value!r}")
    if df[keys].isna().any(axis=None):
        i = df.index[df[keys].isna().any(axis=1).to_numpy()][0]
        raise ValueError(f"counts_from_samples: row {i} has no {keys} value")
    out = (df.assign(_c=acc.astype(np.int64)).groupby(keys, sort=True)["_c"]
           .agg(n="size", c="sum").reset_index())
    return out
