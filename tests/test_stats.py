from bench.judge.stats import quantile_ci, summarize, verdict


def test_interval_brackets_the_estimate():
    samples = [float(i) for i in range(1, 201)]
    q = quantile_ci(samples, 0.95)
    assert q.low <= q.value <= q.high
    assert 180 <= q.low and q.high <= 200


def test_too_few_samples_have_no_upper_bound():
    q = quantile_ci([1.0] * 30, 0.95)
    assert q.high is None and verdict([1.0] * 30, 30.0) == "inconclusive"


def test_verdicts():
    fast = [5.0 + (i % 10) * 0.1 for i in range(100)]
    slow = [50.0 + (i % 10) for i in range(100)]
    straddling = [20.0 + i * 0.2 for i in range(100)]  # p95 interval spans the 38 ms line
    assert verdict(fast, 30.0) == "pass"
    assert verdict(slow, 30.0) == "fail"
    assert verdict(straddling, 38.6) == "inconclusive"


def test_summary_fields():
    s = summarize([1.0, 2.0, 3.0, 4.0] * 25)
    assert s.n == 100 and s.p50.value == 2.5 and s.p99.value == 4.0
