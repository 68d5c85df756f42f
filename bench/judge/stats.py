"""Percentiles with distribution-free confidence intervals, for the reports.

The interval for a quantile comes from order statistics (the number of samples below the true
quantile is binomial), so it needs no assumption about the latency distribution. With too few
samples a bound does not exist (``None``), and the reports then print no interval at all. The SLA
verdict is not taken from these intervals but from the sequential test (``sequential``).
"""

from __future__ import annotations

import numpy as np

from bench.judge import binomial
from bench.results import Quantile, Summary


def quantile_ci(samples: list[float], q: float, confidence: float = 0.95) -> Quantile:
    data = np.sort(np.asarray(samples, dtype=float))
    n = len(data)
    value = float(np.quantile(data, q))
    alpha = 1.0 - confidence
    # 1-based ranks l, u with P(X_(l) <= true quantile <= X_(u)) >= confidence
    lo_rank = int(binomial.ppf(alpha / 2, n, q))
    hi_rank = int(binomial.ppf(1 - alpha / 2, n, q)) + 1
    low = float(data[lo_rank - 1]) if lo_rank >= 1 else None
    high = float(data[hi_rank - 1]) if hi_rank <= n else None
    return Quantile(value=round(value, 4), low=low, high=high)


def summarize(samples: list[float], confidence: float = 0.95) -> Summary:
    return Summary(
        n=len(samples),
        mean=round(float(np.mean(samples)), 4),
        p50=quantile_ci(samples, 0.50, confidence),
        p95=quantile_ci(samples, 0.95, confidence),
        p99=quantile_ci(samples, 0.99, confidence),
    )


def weighted_quantile(groups: list[tuple[list[float], float]], q: float) -> float:
    """The q-quantile of a mixture: each group's samples standing for ``weight`` of the population
    (weights need not add up to 1), whatever the number of samples each group has."""
    values = np.concatenate([np.asarray(samples, dtype=float) for samples, _ in groups])
    weights = np.concatenate([np.full(len(samples), weight / len(samples)) for samples, weight in groups])
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return float(values[order][min(int(np.searchsorted(cumulative, q)), len(values) - 1)])


def mixture_summary(groups: list[tuple[list[float], float]]) -> Summary:
    """A cell's figures for its users as the dataset has them: each class's samples weighted by its
    share of the users (power users are a tenth of them, while the test samples the classes in
    turn). No interval: the order-statistic bound is for one sample of one population; each class's
    own p95 carries its interval."""
    groups = [(samples, weight) for samples, weight in groups if samples and weight > 0]
    total = sum(weight for _, weight in groups)
    mean = sum(float(np.mean(samples)) * weight for samples, weight in groups) / total

    def point(q: float) -> Quantile:
        return Quantile(value=round(weighted_quantile(groups, q), 4), low=None, high=None)

    return Summary(
        n=sum(len(s) for s, _ in groups), mean=round(mean, 4), p50=point(0.5), p95=point(0.95), p99=point(0.99)
    )
