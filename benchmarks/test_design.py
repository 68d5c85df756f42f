"""How long the sequential test's design takes to compute, uncached: a timing, so a benchmark
(``make bench-pytest``, compared across saves) rather than an assertion in the test suite."""

import pytest

from bench.judge.sequential import design


@pytest.mark.parametrize("alpha_fail", [0.02, 0.03, 0.04])
def test_design(benchmark, alpha_fail):
    # __wrapped__: the lru_cache would make every round after the first free.
    made = benchmark(design.__wrapped__, alpha_fail=alpha_fail)
    assert made.looks  # a design was made; how fast is pytest-benchmark's report
