"""Distances between a baseline distribution (from its statistics) and current data.

Numeric columns, on the baseline's 10 quantile buckets with open outer buckets
(below the first inner edge, at or above the last) plus a bucket for missing
values (null or NaN):
- Jensen-Shannon divergence, base 2 (0 = same, 1 = disjoint): the gating measure;
- PSI (population stability index) on the same buckets, with empty buckets
  counted as 1e-4 so it stays finite;
- the Kolmogorov-Smirnov statistic over finite values against the baseline's CDF read
  from its quantile summary (within 0.2% of rank): exact for that CDF, from the current
  values' counts at the summary's points (validation.column_scan);
- the standardised mean difference |mean - baseline mean| / baseline sd over finite
  values (SMD, Cohen's d with the baseline's sd): the second gating measure, for the
  mean shifts that move too little mass across 10 buckets for the JSD to see.
Categorical columns: the L-infinity distance between the value frequencies of the
baseline (its ranked values) and of the current data, missing values left out.
"""

from __future__ import annotations

import math
from typing import Any

PSI_FLOOR = 1e-4
# The schema's `drift` key that sets the default threshold of each gating measure.
THRESHOLD_KEYS = {"jsd": "numeric_jsd", "linf": "categorical_linf", "smd": "numeric_smd"}


def baseline_buckets(base: dict[str, Any]) -> list[int]:
    """The baseline's counts in its 10 quantile buckets, open-ended (all its finite values
    fall inside its closed edges), then its values that are not finite numbers (null,
    NaN, infinite), as the current data's are counted."""
    return [int(c) for c in base["quantile_histogram"]["counts"]] + [
        int(base["missing"] + base.get("nan", 0) + base.get("inf", 0))
    ]


def _normalise(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0] * len(counts)


def jensen_shannon(p_counts: list[int], q_counts: list[int]) -> float:
    p, q = _normalise(p_counts), _normalise(q_counts)
    js = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        if a > 0:
            js += 0.5 * a * math.log2(a / m)
        if b > 0:
            js += 0.5 * b * math.log2(b / m)
    return max(0.0, min(1.0, js))


def psi(p_counts: list[int], q_counts: list[int]) -> float:
    p = [max(x, PSI_FLOOR) for x in _normalise(p_counts)]
    q = [max(x, PSI_FLOOR) for x in _normalise(q_counts)]
    return sum((b - a) * math.log(b / a) for a, b in zip(p, q, strict=True))


def linf(base: dict[str, Any], current: dict[str, int]) -> tuple[float, str | None]:
    """L-infinity distance of value frequencies, and the value where it is reached."""
    base_total = base["count"]
    cur_total = sum(current.values())
    if not base_total or not cur_total:
        return 0.0, None
    base_freq = {v: c / base_total for v, c in base["values"]}
    worst, where = 0.0, None
    for value in sorted(set(base_freq) | set(current)):
        d = abs(base_freq.get(value, 0.0) - current.get(value, 0) / cur_total)
        if d > worst:
            worst, where = d, value
    return worst, where


# -- significance: is the difference more than sampling noise? -------------------------
DEFAULT_SIGNIFICANCE = 0.01  # of a schema without the key (written before it existed)
MIN_EXPECTED = 5  # chi-squared cells expected to hold fewer rows are pooled


def warm_up_tests() -> None:
    """Start importing scipy.special in a thread, while the data is read: the tests'
    p-values need it at the end, and its import takes ~0.2 s of one core (an import
    the main thread then asks for waits for this one to finish, as Python's per-module
    import locks guarantee). numpy is imported first, here: a first import of numpy
    racing in two threads fails. The tests use scipy.special's distribution functions,
    not scipy.stats, whose import took 0.55 s (0.3 s of `validate`'s 1.35 s at 1M rows)."""
    import sys
    import threading

    import numpy  # noqa: F401

    if "scipy.special" not in sys.modules:
        threading.Thread(target=_import_special, name="import scipy.special", daemon=True).start()


def _import_special() -> None:
    try:
        import scipy.special  # noqa: F401
    except Exception:  # the main thread's own import will raise it where it is handled
        pass


# Up to this effective size the KS tail is scipy's exact one-sided Smirnov distribution
# (its cost grows with N: 7 ms at 10,000, 0.4 s at 500,000); above, its corrected
# asymptotic form, in constant time.
EXACT_KS_SIZE = 10_000


def ks_p_value(d: float | None, n: int, n_baseline: int) -> float | None:
    """Two-sample Kolmogorov-Smirnov p-value of statistic `d` (the baseline's CDF read
    from its quantile summary, so `d` is within 0.2% of the exact one), at the effective
    size N = n*m/(n+m): min(1, 2 * smirnov(N, d)), twice the one-sided tail, as scipy
    computes `kstwo.sf(d, N)` wherever N*d^2 >= 2.2. Above EXACT_KS_SIZE the tail is
    Smirnov's corrected asymptotic exp(-2 (sqrt(N) d + 1/(6 sqrt(N)))^2), within 0.04% of
    the exact one where p >= 0.001 and never below kstwo. Either way within 0.4% of kstwo
    wherever that is at most 0.3 (tested): the same decisions as before, conservative
    above. scipy.special only, where kstwo's import (scipy.stats) was 0.3 s of validate's
    1.35 s at 1M rows; the exact tail at N = 500,000 took 0.4 s a column."""
    if d is None or n < 1 or n_baseline < 1:
        return None
    size = max(1, round(n * n_baseline / (n + n_baseline)))
    if d != d:
        return d  # (a NaN statistic stays NaN, as kstwo gave it)
    if size > EXACT_KS_SIZE:
        root = math.sqrt(size)
        return min(1.0, 2.0 * math.exp(-2.0 * (root * d + 1.0 / (6.0 * root)) ** 2))
    from scipy.special import smirnov

    return min(1.0, 2.0 * float(smirnov(size, d)))


# Welch's test takes the mean as normally distributed; for a skewed column (Adult's
# capital-gain: 92% zeros and a long tail) that needs many rows: on 100-row samples the
# test called 1.1% of columns drift that had not moved (bench/drift_calibration.py).
MIN_MEAN_TEST_ROWS = 1_000


def mean_shift(
    base: dict[str, Any], n_base: int, n: int, mean: float, var: float | None
) -> tuple[float | None, float | None]:
    """(standardised mean difference, Welch's t-test p-value) of the current finite values
    (n, mean, sample variance) against the baseline's mean, sd and count of finite
    values, which its statistics hold exactly (Chan's merge), so the test needs no
    sketch. None for both when either side has fewer than 2 values or the baseline's sd
    is not positive (a constant baseline: the JSD speaks for it); no p-value when either
    side has fewer than MIN_MEAN_TEST_ROWS values."""
    from scipy.special import stdtr  # Student's t CDF: scipy.stats' t.sf(x, df) is stdtr(df, -x)

    base_mean, sd = base.get("mean"), base.get("std")
    if base_mean is None or not sd or var is None or n < 2 or n_base < 2 or not math.isfinite(sd):
        return None, None
    smd = abs(mean - base_mean) / sd
    if not math.isfinite(smd):
        return None, None
    if min(n, n_base) < MIN_MEAN_TEST_ROWS:
        return smd, None  # too few rows for the test: no mean rule
    a, b = sd * sd / n_base, var / n
    denominator = a * a / (n_base - 1) + b * b / (n - 1)
    if not (math.isfinite(a + b) and a + b > 0 and denominator > 0):
        # the variances underflow to 0 or overflow: floating point cannot run the test
        return smd, None
    t = abs(mean - base_mean) / math.sqrt(a + b)
    df = (a + b) ** 2 / denominator  # Welch-Satterthwaite
    p = float(2 * stdtr(df, -t))
    return smd, (p if math.isfinite(p) else None)


def chi2_p_value(base: dict[str, Any], current: dict[str, int]) -> float | None:
    """Chi-squared test of homogeneity between the baseline's value counts and the
    current ones; values too rare for the test's approximation (expected under
    MIN_EXPECTED rows) are pooled into one cell. None (no test) when the baseline lists
    only its top values (a column of more than 1,000 values)."""
    import numpy as np
    from scipy.special import chdtrc  # scipy.stats' chi2.sf(x, k) is chdtrc(k, x)

    base_counts = {str(v): int(c) for v, c in base.get("values", [])}
    n_base, n_cur = int(base["count"]), sum(current.values())
    if not n_base or not n_cur:
        return None
    if n_base - sum(base_counts.values()) > 0:
        # the baseline lists only its most frequent values: their counts are the ones
        # that came out high in that sample, so any new sample looks lower on them (the
        # winner's curse) and the test would call noise drift. No test: the effect
        # size decides alone, as before there was a test.
        return None
    keys = sorted(set(base_counts) | set(current))
    table = np.array([[base_counts.get(k, 0) for k in keys], [current.get(k, 0) for k in keys]],
                     dtype=float)  # fmt: skip
    totals = table.sum(axis=0)
    expected_min = totals * min(n_base, n_cur) / (n_base + n_cur)
    rare = expected_min < MIN_EXPECTED
    if rare.any():
        table = np.column_stack([table[:, ~rare], table[:, rare].sum(axis=1)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return float(chdtrc(table.shape[1] - 1, stat))
