"""The side-by-side time gate: exact error bounds, a simulation of A/A checks with shared noise
bursts, and the slowdowns it must catch."""

import numpy as np
import pytest
from scipy.stats import binom

from bench.judge.options import TimeThresholds
from bench.judge.timegate import (
    DEFAULT_TIME,
    false_alarm_bound,
    is_faster,
    is_slower,
    level,
    paired,
    sign_test_tail,
    unequal,
)


@pytest.mark.parametrize("n", [0, 1, 10, 30, 101])
def test_sign_test_tail_is_the_exact_binomial_tail(n):
    for k in range(n + 1):
        assert sign_test_tail(k, n) == pytest.approx(binom.sf(k - 1, n, 0.5), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("pairs", [15, 20, 30, 50, 100])
@pytest.mark.parametrize("cells", [1, 50, 210, 500])
def test_a_whole_check_false_alarms_at_most_alpha(pairs, cells):
    assert false_alarm_bound(pairs, DEFAULT_TIME, cells) <= DEFAULT_TIME.alpha


def _noisy_pairs(rng, checks, cells, pairs, base_ms, slowdown):
    """Base and head samples of ``checks`` checks: each pair shares a machine state (a lognormal
    burst factor, sometimes ×3), each sample has its own noise; the head is ``slowdown`` slower."""
    burst = np.exp(rng.normal(0, 0.3, (checks, cells, pairs))) * np.where(
        rng.random((checks, cells, pairs)) < 0.05, 3.0, 1.0
    )
    base = base_ms * burst * np.exp(rng.normal(0, 0.15, (checks, cells, pairs)))
    head = base_ms * slowdown * burst * np.exp(rng.normal(0, 0.15, (checks, cells, pairs)))
    return base, head


def test_simulated_a_a_checks_false_alarm_within_the_bound():
    rng = np.random.default_rng(7)
    checks, cells, pairs = 400, 50, 30
    base, head = _noisy_pairs(rng, checks, cells, pairs, base_ms=0.2, slowdown=1.0)
    # with the factor and floor set to nothing, the sign test alone decides: the bound must hold for it
    bare = TimeThresholds(factor=1.0, floor_ms=0.0, alpha=0.2)
    alarms = sum(
        any(is_slower(paired(list(base[c, i]), list(head[c, i])), bare, cells) for i in range(cells))
        for c in range(checks)
    )
    rate, se = alarms / checks, (0.2 * 0.8 / checks) ** 0.5
    assert rate <= 0.2 + 3 * se
    assert rate <= false_alarm_bound(pairs, bare, cells) + 3 * se


def test_every_query_half_as_slow_again_is_caught_in_every_cell():
    rng = np.random.default_rng(1)
    base, head = _noisy_pairs(rng, 1, 210, 30, base_ms=0.3, slowdown=1.5)
    assert all(is_slower(paired(list(base[0, i]), list(head[0, i])), DEFAULT_TIME, 210) for i in range(210))


def test_one_millisecond_query_half_as_slow_again_is_caught_and_its_neighbours_are_not():
    rng = np.random.default_rng(2)
    base, head = _noisy_pairs(rng, 1, 2, 30, base_ms=1.0, slowdown=1.0)
    head[0, 0] *= 1.5
    verdicts = [paired(list(base[0, i]), list(head[0, i])) for i in range(2)]
    assert is_slower(verdicts[0], DEFAULT_TIME, 210) and not is_slower(verdicts[1], DEFAULT_TIME, 210)
    assert is_faster(paired(list(head[0, 0]), list(base[0, 0])), DEFAULT_TIME, 210)


def test_tiny_or_inconsistent_shifts_are_not_regressions():
    base = [1.0, 1.2] * 15
    assert not is_slower(paired(base, [b + 0.01 for b in base]), DEFAULT_TIME, 1)  # below the floor
    assert not is_slower(paired(base, [b * 1.1 for b in base]), DEFAULT_TIME, 1)  # below the factor
    mixed = [b * (2.0 if i % 2 else 0.5) for i, b in enumerate(base)]  # half slower, half faster
    assert not is_slower(paired(base, mixed), DEFAULT_TIME, 1)
    assert level(DEFAULT_TIME, 100) == DEFAULT_TIME.alpha / 100


def test_calibration_that_differs_between_sides_is_unequal():
    rng = np.random.default_rng(3)
    base, head = _noisy_pairs(rng, 1, 1, 30, base_ms=1.0, slowdown=1.0)
    assert not unequal(paired(list(base[0, 0]), list(head[0, 0])), DEFAULT_TIME)
    assert unequal(paired(list(base[0, 0]), list(head[0, 0] * 2)), DEFAULT_TIME)
    # a round trip of 0.05 ms that is a quarter faster on one side moves less than any cell must to count
    tiny_base, tiny_head = _noisy_pairs(rng, 1, 1, 30, base_ms=0.05, slowdown=0.75)
    assert not unequal(paired(list(tiny_base[0, 0]), list(tiny_head[0, 0])), DEFAULT_TIME)
