"""bench.judge.binomial gives what scipy.stats.binom gives, bit for bit, on the arguments the verdicts
and intervals use; without scipy's private ufuncs it is scipy.stats.binom."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import binom

from bench.judge import binomial
from bench.judge.stats import quantile_ci
from tests.support import ROOT, cli_env

# p as the designs and their error rates take it: 0 and 1, the SLA's 0.05, the borderline rule's
# 0.02 and 0.08, a search grid's small and odd values
PS = [0.0, 1e-9, 0.0005, 0.02, 0.05, 0.0723, 0.08, 0.2, 0.5, 0.95, 1.0]
# the levels quantile_ci asks for, (1 - confidence) / 2 and 1 - that, computed as it computes them
LEVELS = [level for c in (0.9, 0.95, 0.975) for level in ((1.0 - c) / 2, 1 - (1.0 - c) / 2)]
QUANTILES = [0.5, 0.95, 0.99]


def test_the_pmf_is_scipys_for_every_count_up_to_the_last_look_and_beyond():
    column = np.asarray(PS)[:, None]
    for n in [*range(0, 130), 290, 400, 1000]:
        k = np.arange(n + 1)
        assert np.array_equal(binomial.pmf(k, n, column), binom.pmf(k, n, column))
        for p in PS:
            assert np.array_equal(binomial.pmf(k, n, p), binom.pmf(k, n, p))


def test_the_quantile_is_scipys_for_every_sample_count_a_cell_may_have():
    for n in [*range(1, 500), 1000, 2000, 5000]:
        for q in QUANTILES:
            for level in LEVELS:
                assert binomial.ppf(level, n, q) == binom.ppf(level, n, q), (level, n, q)


def test_the_intervals_ranks_are_the_levels_quantiles():
    samples = [float(i) for i in range(1, 101)]  # the i-th smallest is i: a bound names its rank
    interval = quantile_ci(samples, 0.95, 0.95)
    assert interval.low == binom.ppf(0.025, 100, 0.95) and interval.high == binom.ppf(0.975, 100, 0.95) + 1


def test_a_level_of_0_or_1_is_refused():
    for level in (0.0, 1.0):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            binomial.ppf(level, 10, 0.5)


def test_without_scipys_private_ufuncs_the_public_distribution_stands_in(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.special._ufuncs", None)  # importing it now fails
    pmf, ppf = binomial._functions.__wrapped__()
    assert pmf == binom.pmf and ppf == binom.ppf


# A judging process, from its imports to a cell's design, the check's account of the verdict gate and
# a summary with intervals: what it has imported of scipy at the end.
_JUDGING = """
import sys
import bench.measure.runner, bench.judge.check
from bench.judge import sequential, stats
sequential.worst_opposite_verdicts(sequential.design_for_classes(2))
stats.summarize([float(i) for i in range(100)])
print(" ".join(sorted(m for m in sys.modules if m.startswith("scipy."))))
"""


def test_a_judging_process_does_not_import_scipy_stats():
    ran = subprocess.run(
        [sys.executable, "-c", _JUDGING], cwd=ROOT, env=cli_env(), capture_output=True, text=True, check=True
    )
    loaded = set(ran.stdout.split())
    assert "scipy.special" in loaded and not any(m == "scipy.stats" or m.startswith("scipy.stats.") for m in loaded)
