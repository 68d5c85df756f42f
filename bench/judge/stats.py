"""Percentiles with distribution-free confidence intervals, and the SLA verdict.

The interval for a quantile comes from order statistics (the number of samples below the true
quantile is binomial), so it needs no assumption about the latency distribution. With too few
samples the upper bound does not exist yet, and a cell cannot pass until more are taken.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel

Verdict = Literal["pass", "fail", "inconclusive"]
SLA_QUANTILE = 0.95


class Quantile(BaseModel):
    value: float
    low: float | None  # None: too few samples for a bound at this confidence
    high: float | None


class Summary(BaseModel):
    n: int
    mean: float
    p50: Quantile
    p95: Quantile
    p99: Quantile


def quantile_ci(samples: list[float], q: float, confidence: float = 0.95) -> Quantile:
    from scipy.stats import binom  # scipy.stats costs ~0.7 s to import: only when statistics are needed

    data = np.sort(np.asarray(samples, dtype=float))
    n = len(data)
    value = float(np.quantile(data, q))
    alpha = 1.0 - confidence
    # 1-based ranks l, u with P(X_(l) <= true quantile <= X_(u)) >= confidence
    lo_rank = int(binom.ppf(alpha / 2, n, q))
    hi_rank = int(binom.ppf(1 - alpha / 2, n, q)) + 1
    low = float(data[lo_rank - 1]) if lo_rank >= 1 else None
    high = float(data[hi_rank - 1]) if hi_rank <= n else None
    return Quantile(value=round(value, 4), low=low, high=high)


def summarize(samples: list[float], confidence: float = 0.95) -> Summary:
    return Summary(n=len(samples), mean=round(float(np.mean(samples)), 4),
                   p50=quantile_ci(samples, 0.50, confidence),
                   p95=quantile_ci(samples, 0.95, confidence),
                   p99=quantile_ci(samples, 0.99, confidence))


def verdict(samples: list[float], sla_ms: float, confidence: float = 0.95) -> Verdict:
    """pass: the whole p95 interval is within the SLA; fail: all of it is above; else inconclusive."""
    q = quantile_ci(samples, SLA_QUANTILE, confidence)
    if q.low is not None and q.low > sla_ms:
        return "fail"
    if q.high is not None and q.high <= sla_ms:
        return "pass"
    return "inconclusive"
