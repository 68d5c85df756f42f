from bench.judge.stats import quantile_ci, summarize


def test_interval_brackets_the_estimate():
    samples = [float(i) for i in range(1, 201)]
    q = quantile_ci(samples, 0.95)
    assert q.low is not None and q.high is not None  # 200 samples bound the 95th percentile both ways
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


def test_a_mixture_weighs_each_class_by_its_share_not_by_its_samples():
    from bench.judge.stats import mixture_summary, weighted_quantile

    ordinary, power = [1.0] * 100, [10.0] * 100  # the classes sampled in turn: as many samples each
    assert weighted_quantile([(ordinary, 0.5), (power, 0.5)], 0.95) == 10.0
    # but power users are a tenth of the users: the users' p95 is a power user's, their p50 an ordinary one's
    users = mixture_summary([(ordinary, 90), (power, 10)])
    assert users.p50.value == 1.0 and users.p95.value == 10.0 and users.mean == 1.9
    assert users.p95.low is None and users.n == 200
    assert mixture_summary([(ordinary, 95.5), (power, 4.5)]).p95.value == 1.0  # 4.5% of users above
