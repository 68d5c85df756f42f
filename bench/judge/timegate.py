"""The time gate: is the head slower than the base, judged only on samples taken side by side?

Each cell is measured as pairs: the base's SQL on the base's database and the head's on the
head's, with the same parameters, one right after the other (alternating which goes first), on the
same machine in the same minute. A burst of machine noise lands on both members of a pair, so the
pair's difference keeps the change and loses the drift: no milliseconds from another machine or
another hour are ever compared, and no "drift" estimated from the cells under test can absorb a
regression that slows every query.

Verdict per cell, a sign test on the pairs: under "no change" the two members of a pair are
exchangeable, so the number of pairs where the head was slower is Binomial(n, 1/2) (pairs with
no difference dropped). A cell is slower when that count is improbable at level ``alpha / cells``
(Bonferroni over the cells of the check) AND the median of the paired ratios is at least
``factor`` AND the median paired difference is at least ``floor_ms``. The second and third
conditions only remove findings, so the false-alarm rate of a whole check is at most ``alpha``
(``false_alarm_bound`` computes the bound from exact binomial tails; tests/test_timegate.py checks
it, and checks it by simulating A/A checks whose pairs share bursts of machine noise).

The calibration items (``bench.measure.calibration``) are measured the same way; they must come
out equal on both sides. If one does not, the two sides were not measured under the same
conditions and the gate cannot judge — said in the exit code (2), never as a silent pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median

from bench.judge.options import TimeThresholds

DEFAULT_TIME = TimeThresholds()


@dataclass(frozen=True)
class PairedVerdict:
    n: int  # pairs with a difference
    slower: int  # pairs where the head took longer
    ratio: float  # median of head ÷ base over the pairs
    difference_ms: float  # median of head − base
    p_slower: float  # one-sided sign test: P(at least ``slower`` of ``n`` | no change)
    p_faster: float
    base_ms: float  # medians, for the message
    head_ms: float


def sign_test_tail(k: int, n: int) -> float:
    """P(X ≥ k) for X ~ Binomial(n, 1/2), exactly."""
    if n == 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(max(k, 0), n + 1)) / (1 << n)  # 1 << n: 2**n typed as int


def paired(base_ms: list[float], head_ms: list[float]) -> PairedVerdict:
    if len(base_ms) != len(head_ms) or not base_ms:
        raise ValueError("paired samples need the same, non-zero number of base and head samples")
    diffs = [h - b for b, h in zip(base_ms, head_ms, strict=True)]
    n = sum(1 for d in diffs if d != 0)
    slower = sum(1 for d in diffs if d > 0)
    return PairedVerdict(
        n=n,
        slower=slower,
        ratio=median(h / max(b, 1e-9) for b, h in zip(base_ms, head_ms, strict=True)),
        difference_ms=median(diffs),
        p_slower=sign_test_tail(slower, n),
        p_faster=sign_test_tail(n - slower, n),
        base_ms=median(base_ms),
        head_ms=median(head_ms),
    )


def level(th: TimeThresholds, cells: int) -> float:
    """The per-cell significance level that keeps a whole check's false alarms at most ``th.alpha``."""
    return th.alpha / max(cells, 1)


def is_slower(v: PairedVerdict, th: TimeThresholds, cells: int) -> bool:
    return v.p_slower < level(th, cells) and v.ratio >= th.factor and v.difference_ms >= th.floor_ms


def is_faster(v: PairedVerdict, th: TimeThresholds, cells: int) -> bool:
    return v.p_faster < level(th, cells) and v.ratio <= 1 / th.factor and -v.difference_ms >= th.floor_ms


def unequal(v: PairedVerdict, th: TimeThresholds) -> bool:
    """A calibration item that differs between the two sides (two-sided, at ``alpha`` for the item) by
    as much as a cell must to count (the factor and the floor): the sides were not measured under
    the same conditions. A smaller difference could not have made a cell's finding either."""
    return (
        min(v.p_slower, v.p_faster) < th.alpha / 2
        and not (1 / th.factor < v.ratio < th.factor)
        and abs(v.difference_ms) >= th.floor_ms
    )


def false_alarm_bound(pairs: int, th: TimeThresholds, cells: int) -> float:
    """Under "no change" in every cell: at most this chance that any of ``cells`` cells of ``pairs``
    pairs each is called slower by the sign test alone (the factor and floor only lower it). The
    per-cell rate is an exact binomial tail; the union over cells needs no independence."""
    alpha = level(th, cells)
    k = next((k for k in range(pairs + 1) if sign_test_tail(k, pairs) < alpha), pairs + 1)
    return min(1.0, cells * sign_test_tail(k, pairs))
