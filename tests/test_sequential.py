"""The group-sequential SLA test: check values, exact error rates, a Monte-Carlo cross-check, classes."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import numpy.typing as npt
import pytest

from bench.judge.sequential import (
    DEFAULT_LOOKS,
    ClassTest,
    Decision,
    Design,
    OperatingCharacteristics,
    characteristics_at,
    combine,
    design,
    design_for_classes,
    operating_characteristics,
    opposite_verdicts,
    timeout_false_fail,
    with_confirmation,
    worst_opposite_verdicts,
)

DENSE_END = (*DEFAULT_LOOKS[:-1], 390, 400)  # two looks 10 samples apart at the end
OTHER_DESIGNS = [
    # (alpha_fail, alpha_pass, looks, pass_from)
    (0.025, 0.025, DEFAULT_LOOKS, 77),
    (0.05, 0.05, DEFAULT_LOOKS, 77),
    (0.01, 0.025, DEFAULT_LOOKS, 77),
    (0.025, 0.01, DEFAULT_LOOKS, 100),  # 0.95^77 = 1.9% > 1%: a pass is first possible at 100
    (0.025, 0.025, DENSE_END, 77),
    (0.025, 0.025, (10, 20, 50, 100, 200, 300, 350, 380, 400), 100),
]


def boundaries(d: Design) -> dict[int, tuple[int | None, int | None]]:
    return {n: (f, a) for n, f, a in zip(d.looks, d.fail_at, d.pass_at, strict=True)}


def test_default_design_reproduces_the_check_values() -> None:
    d = design()
    at = boundaries(d)
    assert at[4][0] == 4 and at[100][0] == 12 and at[400][0] == 31
    assert at[77][1] == 0 and at[100][1] == 0 and at[220][1] == 2 and at[400][1] == 9
    # No pass is possible before 77: no exceedance at all in 64 samples still has probability 3.7% at p0.
    assert all(a is None for n, (_, a) in at.items() if n < 77)
    # the boundaries spend alpha on their own; the borderline rule then ends some paths earlier
    spent = operating_characteristics(dataclasses.replace(d, borderline=()), 0.05)
    assert round(spent.pass_, 4) == 0.0249 and round(spent.fail, 4) == 0.0213
    exact = operating_characteristics(d, 0.05)
    assert round(exact.pass_, 4) == 0.0246 and exact.pass_ <= 0.025
    assert round(exact.fail, 4) == 0.0200 and exact.fail <= 0.025


@pytest.mark.parametrize(("alpha_fail", "alpha_pass", "looks", "pass_from"), OTHER_DESIGNS)
def test_exact_error_rates_stay_within_alpha(
    alpha_fail: float, alpha_pass: float, looks: tuple[int, ...], pass_from: int
) -> None:
    d = design(alpha_fail=alpha_fail, alpha_pass=alpha_pass, looks=looks, pass_from=pass_from)
    # A wrong fail is worst at p0 from below and a wrong pass at p0 from above (monotone in p).
    for p in (0.0, 0.01, 0.03, 0.05):
        assert operating_characteristics(d, p).fail <= alpha_fail
    for p in (0.05, 0.06, 0.08, 0.2, 1.0):
        assert operating_characteristics(d, p).pass_ <= alpha_pass


def test_the_probabilities_add_up() -> None:
    for p in (0.0, 0.02, 0.05, 0.3, 1.0):
        oc = operating_characteristics(design(), p)
        assert oc.fail + oc.pass_ + oc.borderline == pytest.approx(1.0, abs=1e-12)
        assert DEFAULT_LOOKS[0] <= oc.expected_n <= DEFAULT_LOOKS[-1]


@pytest.mark.parametrize("classes", [1, 2, 3, 4, 6, 10, 40])
def test_a_fail_stays_reachable_until_the_last_look(classes: int) -> None:
    # Why the test has no futility stop: every path that has not stopped can still fail, since the
    # samples after any look but the last are more than the last fail boundary. Denser final looks
    # would break this, and then cells that can only end inconclusive would sample on to the end.
    d = design_for_classes(classes)
    last_fail = d.fail_at[-1]
    assert last_fail is not None and all(d.looks[-1] - n >= last_fail for n in d.looks[:-1])


def decision_table(d: Design) -> npt.NDArray[np.int_]:
    """decide() for every look and E, coded 0 continue, 1 fail, 2 pass, 3 borderline (-1: impossible)."""
    codes = {"continue": 0, "fail": 1, "pass": 2, "borderline": 3}
    table = np.full((len(d.looks), d.looks[-1] + 1), -1)
    for k, n in enumerate(d.looks):
        table[k, : n + 1] = [codes[d.decide(n, e)] for e in range(n + 1)]
    return table


def _simulated(
    d: Design, p: float, cells: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int_], npt.NDArray[np.int_]]:
    """The sequential test run on ``cells`` simulated classes whose samples exceed the SLA with
    probability p: for each, the samples taken when it stopped and its verdict (``decision_table``'s
    codes). Samples are independent, so the exceedances between two looks are one binomial draw."""
    steps = np.diff(np.array((0, *d.looks)))
    exceedances = np.cumsum(rng.binomial(steps, p, size=(cells, len(steps))), axis=1)
    codes = decision_table(d)[np.arange(len(steps)), exceedances]
    stop = np.argmax(codes != 0, axis=1)  # the last look never says continue
    return np.array(d.looks)[stop], codes[np.arange(cells), stop]


@pytest.mark.parametrize("p", [0.05, 0.02, 0.10])
def test_monte_carlo_agrees_with_the_exact_dp(p: float) -> None:
    d = design()
    cells = 200_000
    samples, verdicts = _simulated(d, p, cells, np.random.default_rng(20240607))
    exact = operating_characteristics(d, p)
    for code, probability in ((1, exact.fail), (2, exact.pass_), (3, exact.borderline)):
        standard_error = math.sqrt(max(probability * (1 - probability), 1e-6) / cells)
        assert abs(np.mean(verdicts == code) - probability) < 4 * standard_error
    assert abs(samples.mean() - exact.expected_n) < 4 * samples.std() / math.sqrt(cells)


def test_clear_cells_are_decided_at_once() -> None:
    d = design()
    assert d.decide(4, 4) == "fail"  # every sample over the SLA
    clean = [(n, d.decide(n, 0)) for n in d.looks if n <= 77]
    assert clean[-1] == (77, "pass") and all(decision == "continue" for _, decision in clean[:-1])


def test_decide_between_looks_at_the_end_and_out_of_budget() -> None:
    d = design()
    assert d.decide(6, 6) == "continue"  # boundaries only exist at looks
    assert d.decide(6, 0, budget_exhausted=True) == "inconclusive"
    assert d.decide(400, 10) == "borderline"  # the last look decides nothing: the cell sits at the line
    for n in d.looks:
        for e in range(n + 1):
            free, stopped = d.decide(n, e), d.decide(n, e, budget_exhausted=True)
            assert stopped == ("inconclusive" if free == "continue" else free)
    with pytest.raises(ValueError):
        d.decide(401, 0)
    with pytest.raises(ValueError):
        d.decide(4, 5)


def test_describe_is_json_ready_and_complete() -> None:
    described = json.loads(json.dumps(design().describe()))
    assert described["looks"] == list(DEFAULT_LOOKS)
    assert described["fail_at"][-1] == 31 and described["pass_at"][-1] == 9
    assert described["wrong_pass_at_p0"] == pytest.approx(0.0246, abs=5e-5)
    assert described["borderline_at"][-1] == [10, 30] and described["borderline_at"][0] is None


def test_invalid_designs_are_refused() -> None:
    with pytest.raises(ValueError, match="later pass_from"):
        design(pass_from=64)  # 0.95^64 = 3.7% > 2.5%: no pass can be afforded there
    with pytest.raises(ValueError, match="not one of the looks"):
        design(pass_from=80)
    with pytest.raises(ValueError, match="increasing"):
        design(looks=(10, 5, 77))


def test_a_design_is_computed_once_per_setting() -> None:
    # Every cell asks for its design: the cache makes that free after the first. How long one
    # uncached design takes is a benchmark (benchmarks/test_design.py), not an assertion here.
    assert design(alpha_fail=0.03) is design(alpha_fail=0.03)
    assert design(alpha_fail=0.03) is not design(alpha_fail=0.04)


def test_combine() -> None:
    assert combine(["pass", "pass"]) == "pass"
    assert combine(["pass", "fail"]) == "fail"
    assert combine(["continue", "fail"]) == "fail"
    assert combine(["inconclusive", "continue"]) == "continue"  # the running class may still fail
    assert combine(["pass", "continue"]) == "continue"
    assert combine(["pass", "inconclusive"]) == "inconclusive"  # the budget stopped a class
    assert combine(["pass", "borderline"]) == "borderline"
    assert combine(["borderline", "inconclusive"]) == "inconclusive"
    assert combine(["borderline", "continue"]) == "continue"
    with pytest.raises(ValueError):
        combine([])


def final_verdicts(oc: OperatingCharacteristics) -> dict[Decision, float]:
    return {"fail": oc.fail, "pass": oc.pass_, "borderline": oc.borderline}


def cell_probability(classes: list[OperatingCharacteristics], verdict: Decision) -> float:
    """Exact probability of the cell's verdict: the classes are independent, so their verdicts too."""
    total = 0.0
    for outcome in itertools.product(*(final_verdicts(oc).items() for oc in classes)):
        if combine([v for v, _ in outcome]) == verdict:
            total += math.prod(probability for _, probability in outcome)
    return total


def test_two_classes_keep_the_cell_within_alpha() -> None:
    d = design_for_classes(2)
    assert d.alpha_fail == 0.0125 and d.alpha_pass == 0.025
    at_limit, clean = operating_characteristics(d, 0.05), operating_characteristics(d, 0.0)
    wrong_fail = cell_probability([at_limit, at_limit], "fail")
    assert wrong_fail == pytest.approx(1 - (1 - at_limit.fail) ** 2) and wrong_fail <= 0.025
    # The correction is needed: with each class at the full alpha_fail the cell would fail too often.
    uncorrected = operating_characteristics(design(), 0.05).fail
    assert 1 - (1 - uncorrected) ** 2 > 0.025
    wrong_pass = cell_probability([at_limit, clean], "pass")
    assert clean.pass_ == 1.0 and wrong_pass == pytest.approx(at_limit.pass_) and wrong_pass <= 0.025


def test_power() -> None:
    d = design()
    bad = operating_characteristics(d, 0.20)
    assert bad.fail > 0.99 and bad.expected_n < 60  # exact: 0.99999997, 44.5 samples
    good = operating_characteristics(d, 0.005)
    assert good.pass_ > 0.9 and good.expected_n < 130  # exact: 0.99997, 119.8 samples


def test_characteristics_taken_together_are_each_ps_own() -> None:
    # one binomial call a look for every p at once: each p's row must be its own, to the last bit
    d = design_for_classes(2)
    ps = [0.0, 0.004, 0.05, 0.0723, 0.2, 1.0]
    assert characteristics_at(d, ps) == [operating_characteristics(d, p) for p in ps]
    assert characteristics_at(d, list(reversed(ps))) == [operating_characteristics(d, p) for p in reversed(ps)]
    with pytest.raises(ValueError, match="p must be in"):
        characteristics_at(d, [0.1, 1.5])


def test_two_measurements_of_one_class_rarely_disagree_exactly_and_in_simulation() -> None:
    # the verdict gate compares only decided verdicts, pass against fail: its false alarm when nothing
    # changed is two measurements of the same class ending opposite, largest just above p0
    d = design()
    worst, at = worst_opposite_verdicts(d)
    assert worst == pytest.approx(0.00244, abs=1e-5) and 0.06 < at < 0.08
    assert opposite_verdicts(d, 0.0) == 0.0 and opposite_verdicts(d, 0.5) < 1e-12
    assert worst_opposite_verdicts(design_for_classes(2))[0] < worst  # a smaller alpha_fail per class
    # simulated: two runs of the test on fresh Bernoulli streams at the worst p
    rng = np.random.default_rng(7)
    runs = 60_000
    verdicts = [_simulated(d, at, runs, rng)[1] for _ in range(2)]  # 1 fail, 2 pass, 3 borderline
    flips = int(np.sum((verdicts[0] == 1) & (verdicts[1] == 2)) + np.sum((verdicts[0] == 2) & (verdicts[1] == 1)))
    expected = worst * runs
    assert abs(flips - expected) < 4 * expected**0.5, (flips, expected)


def test_the_timeout_adds_at_most_q_times_the_expected_executions_to_a_wrong_fail():
    """Simulated cells at p = p0 whose every execution is cut off with probability q (as a sample over
    the SLA that fails the class at once) fail no more often than the test alone plus the bound."""
    d = design()
    p, q, extra, runs = d.p0, 0.001, 25, 40_000
    rng = np.random.default_rng(7)
    before = rng.random(runs) < 1 - (1 - q) ** extra  # warm-up and EXPLAINs: their own executions
    cut = rng.geometric(q, runs)  # the first of the test's executions cut off
    samples, verdicts = _simulated(d, p, runs, rng)  # where the test stops, had nothing been cut off
    # a cut-off execution up to there fails the class at once; after it, none runs
    failed = int(np.sum(before | (cut <= samples) | (verdicts == 1)))
    alone = operating_characteristics(d, p).fail
    bound = alone + timeout_false_fail(d, p, q, extra)
    observed = failed / runs
    assert observed <= bound + 3 * (bound * (1 - bound) / runs) ** 0.5
    # and the bound is not vacuous: the timeouts alone account for most of what it adds
    assert observed - alone >= 0.5 * (bound - alone)


def test_the_borderline_rule_stops_cells_at_the_line_early_and_raises_no_error_rate() -> None:
    """Exact: the rule only ends paths that would have gone on, so a wrong fail (p <= p0) and a wrong
    pass (p >= p0) can only become rarer; at the line, the cells it stops take 40% fewer samples."""
    d = design_for_classes(2)
    without = dataclasses.replace(d, borderline=())
    for p in (0.0, 0.01, 0.03, 0.05):
        assert operating_characteristics(d, p).fail <= operating_characteristics(without, p).fail + 1e-15
    for p in (0.05, 0.06, 0.08, 0.2):
        assert operating_characteristics(d, p).pass_ <= operating_characteristics(without, p).pass_ + 1e-15
    at_line, before = operating_characteristics(d, 0.05), operating_characteristics(without, 0.05)
    assert at_line.expected_n < 0.6 * before.expected_n  # exact: 222 against 391 samples
    assert at_line.borderline > 0.9  # and says so: borderline, not inconclusive
    # what it costs the clear cases is small: a cell at 2% passes, one at 8% fails, nearly as often
    for p, verdict in ((0.02, "pass_"), (0.08, "fail")):
        assert getattr(operating_characteristics(d, p), verdict) > 0.9 * getattr(
            operating_characteristics(without, p), verdict
        )


def test_an_early_fail_is_measured_again_and_a_burst_cannot_fake_it() -> None:
    d = design_for_classes(2)
    # Exact: measuring an early fail again raises neither error rate beyond its alpha.
    for p in (0.0, 0.01, 0.03, 0.05):
        assert with_confirmation(d, p).fail <= operating_characteristics(d, p).fail + 1e-15
    assert max(with_confirmation(d, p).pass_ for p in (0.05, 0.06, 0.08, 0.1, 0.2, 0.5)) <= d.alpha_pass
    # The object the runner drives agrees with the exact figures (a class well over its SLA) ...
    rng = np.random.default_rng(11)
    p, runs = 0.2, 20_000
    verdicts = []
    for _ in range(runs):
        test, step = ClassTest(d), "continue"
        while step in ("continue", "again"):
            step = test.add(bool(rng.random() < p))
        verdicts.append(step)
    exact = with_confirmation(d, p)
    assert abs(verdicts.count("fail") / runs - exact.fail) < 4 * math.sqrt(exact.fail * (1 - exact.fail) / runs) + 1e-4
    # ... and a burst of other work covering a clean class's first samples fails it no more: the burst
    # is over when the class is measured again after its pause (the runner waits RunOptions.confirm_pause_s).
    burst, clean, failed_once, failed = 6, 0.01, 0, 0
    for _ in range(2_000):
        test, step, i = ClassTest(d), "continue", 0
        while step in ("continue", "again"):
            step = test.add(i < burst or bool(rng.random() < clean))
            i = burst if step == "again" else i + 1  # the pause outlasts the burst
            failed_once += step == "again"
        failed += step == "fail"
    assert failed_once == 2_000  # without the re-measurement every one of them would have failed
    assert failed / 2_000 <= 0.01  # exact for a clean class at p = 0.01: 0.0000
