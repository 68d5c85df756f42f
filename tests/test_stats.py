from bench.judge.stats import quantile_ci, summarize


def test_interval_brackets_the_estimate():
    samples = [float(i) for i in range(1, 201)]
    q = quantile_ci(samples, 0.95)
    assert q.low <= q.value <= q.high
    assert q.low >= 180 and q.high <= 200
    assert q.interval == f"[{q.low:.2f}, {q.high:.2f}]"


def test_too_few_samples_have_no_upper_bound_and_no_interval_is_printed():
    q = quantile_ci([1.0] * 30, 0.95)
    assert q.high is None and q.interval == ""
    assert quantile_ci([1.0, 2.0, 3.0, 4.0], 0.95).interval == ""  # a cell stopped at n = 4


def test_summary_fields():
    s = summarize([1.0, 2.0, 3.0, 4.0] * 25)
    assert s.n == 100 and s.p50.value == 2.5 and s.p99.value == 4.0
