"""The CI gate: measure the baseline's cells, compare, and re-measure before failing on time."""

import pytest

from bench.judge.check import baseline_catalog, check, confirm
from bench.judge.compare import compare
from bench.errors import EXIT_OK, EXIT_REGRESSION
from bench.measure.runner import RunOptions, run

OPTS = RunOptions(cold_samples=0, stability_rounds=0, concurrent=True)
SCENARIOS = ["recent_tasks", "pending_tasks", "task_by_id"]


@pytest.fixture(scope="module")
def base(seeded, catalog):
    return run(seeded, catalog.select(SCENARIOS, ["composite"]), OPTS)


def slowed(res, scenario="recent_tasks", verdict=None):
    """``res`` with one cell 3× (+1 ms) slower, and its verdict changed if asked."""
    def change(c):
        if c.scenario != scenario:
            return c
        update = {"samples": c.samples.model_copy(update={"client_ms": [ms * 3 + 1 for ms in c.samples.client_ms]})}
        return c.model_copy(update={**update, **({"verdict": verdict} if verdict else {})})

    return res.model_copy(update={"cells": [change(c) for c in res.cells]})


def test_check_measures_exactly_the_baselines_cells(seeded, catalog, base):
    current, result = check(catalog, base, lambda cat: run(seeded, cat, OPTS))
    assert {(c.scenario, c.variant) for c in current.cells} == {(c.scenario, c.variant) for c in base.cells}
    assert result.exit_code == EXIT_OK, result.regressions


def test_a_time_finding_a_real_remeasurement_does_not_repeat_is_reported_as_noise(seeded, catalog, base):
    first = compare(base, slowed(base))
    assert [(f.scenario, f.gate) for f in first.regressions] == [("recent_tasks", "time")]
    asked = []

    def remeasure(variants):
        asked.append(variants)
        return run(seeded, catalog.select(SCENARIOS, variants), OPTS)

    result = confirm(base, first, remeasure)
    assert asked == [["composite"]]  # the whole variant, so the re-measurement has a drift of its own
    assert result.exit_code == EXIT_OK and result.regressions == []
    assert [f.scenario for f in result.unconfirmed] == ["recent_tasks"]


def test_a_time_regression_that_repeats_stands_and_other_gates_are_not_re_judged(base):
    first = compare(base, slowed(base, verdict="fail"))
    assert sorted(f.gate for f in first.regressions) == ["sla", "time"]
    result = confirm(base, first, lambda variants: slowed(base), rounds=2)
    assert result.exit_code == EXIT_REGRESSION and result.unconfirmed == []
    time_finding = next(f for f in result.regressions if f.gate == "time")
    assert "re-measured (1)" in time_finding.message and "re-measured (2)" in time_finding.message
    # the SLA finding stands on the first run alone, even when the re-measurement is clean
    clean = confirm(base, compare(base, slowed(base, verdict="fail")), lambda variants: base)
    assert [f.gate for f in clean.regressions] == ["sla"] and [f.gate for f in clean.unconfirmed] == ["time"]


def test_no_time_finding_means_no_remeasurement(base):
    def never(variants):
        raise AssertionError("nothing to confirm")

    assert confirm(base, compare(base, base), never).exit_code == EXIT_OK


def test_cells_the_catalogue_no_longer_has_are_left_to_compare_as_missing(catalog, base):
    gone = base.cells[0].model_copy(update={"scenario": "retired_query"})
    older = base.model_copy(update={"cells": [*base.cells, gone]})
    cat = baseline_catalog(older, catalog)
    assert [s.name for s in cat.scenarios] == SCENARIOS and [v.name for v in cat.variants] == ["composite"]
    assert compare(older, base).missing == ["retired_query × composite"]
