"""Growth fits and SLA crossings on constructed data, and one small real scale run."""

from __future__ import annotations

import uuid

import pytest

from bench import results as results_io
from bench.measure.options import RunOptions
from bench.report.build import write_report
from bench.results import ScalePoint
from bench.runs.scale import ScaleOptions, fits, growth_exponent, measure, sla_crossing
from bench.targets.options import TargetSpec
from bench.targets.target import drop_database, open_target
from tests.support import DATA_DIR

SIZES = [1_000, 10_000, 50_000, 100_000]


def power(c: float, b: float) -> list[float]:
    return [c * n**b for n in SIZES]


def test_the_growth_exponent_of_a_power_law_is_its_power():
    for b in (0.0, 0.5, 1.0, 1.3):
        exponent, r2 = growth_exponent(SIZES, power(0.002, b))
        assert exponent == pytest.approx(b, abs=1e-9)
        if b:
            assert r2 == pytest.approx(1.0)


def test_a_crossing_between_measured_sizes_is_interpolated_on_log_log_axes():
    # y = 0.001 n → crosses 30 ms at n = 30,000: between 10k and 50k
    crossing, how = sla_crossing(SIZES, power(0.001, 1.0), 30.0)
    assert how == "measured" and crossing == pytest.approx(30_000)


def test_a_crossing_beyond_the_sizes_is_extrapolated_along_the_last_slope():
    # y = 0.01 n^0.5 → 3.16 ms at 100k; crosses 50 ms at (50 / 0.01)^2 = 25,000,000 (> CROSSING_FAR × 100k)
    assert sla_crossing(SIZES, power(0.01, 0.5), 50.0) == (None, "beyond")
    # y = 0.0001 n → 10 ms at 100k; crosses 50 ms at 500,000
    crossing, how = sla_crossing(SIZES, power(0.0001, 1.0), 50.0)
    assert how == "extrapolated" and crossing == pytest.approx(500_000)
    # the p50 gives the slope, the largest p95 the level: p95 = 2 × p50
    p50 = power(0.0001, 1.0)
    crossing, how = sla_crossing(SIZES, [2 * v for v in p50], 50.0, p50)
    assert how == "extrapolated" and crossing == pytest.approx(250_000)


def test_already_over_and_flat_cells():
    assert sla_crossing(SIZES, [60.0, 70.0, 80.0, 90.0], 50.0) == (1_000, "already")
    assert sla_crossing(SIZES, [0.5, 0.5, 0.5, 0.5], 50.0) == (None, "flat")
    # noise at the top that points up while the whole series is flat is not extrapolated
    assert sla_crossing(SIZES, [0.9, 0.6, 0.5, 0.7], 50.0) == (None, "flat")


def test_fits_per_cell_from_points():
    points = [
        ScalePoint(
            scenario="s",
            variant=v,
            tasks_per_user=n,
            p50_ms=y,
            p95_ms=2 * y,
            p99_ms=3 * y,
            execution_p50_ms=y,
            buffers=n / 100 if v == "seq" else 4.0,
            verdict="pass",
            samples=100,
        )
        for v, series in (("seq", power(0.0001, 1.0)), ("index", [0.2] * 4))
        for n, y in zip(SIZES, series, strict=True)
    ]
    by_variant = {f.variant: f for f in fits(points, {"s": 50.0})}
    assert by_variant["seq"].exponent == pytest.approx(1.0) and by_variant["seq"].buffers_exponent == pytest.approx(1.0)
    assert by_variant["seq"].crossing == "extrapolated"
    assert by_variant["seq"].crossing_tasks_per_user == pytest.approx(250_000)
    assert by_variant["index"].crossing == "flat" and by_variant["index"].buffers_exponent == pytest.approx(0.0)


def test_sizes_are_checked_before_any_work(catalogue):
    from bench.errors import InputError

    with pytest.raises(InputError, match="at least two sizes"):
        measure(TargetSpec(), catalogue, ScaleOptions(RunOptions(), sizes=[1000]))


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_a_small_real_scale_run(catalogue, tmp_path):
    prefix = f"tbscale_{uuid.uuid4().hex[:6]}"
    spec = TargetSpec(db_name=prefix, data_dir=DATA_DIR)
    chosen = catalogue.select(["recent_tasks"], ["baseline", "composite"])
    opts = RunOptions(min_samples=20, cold_samples=0, stability_rounds=0, concurrent=True)
    try:
        res = measure(spec, chosen, ScaleOptions(opts, sizes=[300, 1_200], users=2))
    finally:
        server = open_target(None, "postgres", DATA_DIR)
        for size in (300, 1_200):
            drop_database(server, f"{prefix}_tpu{size}")
    assert res.scale is not None and res.scale.sizes == [300, 1_200]
    assert {(p.variant, p.tasks_per_user) for p in res.scale.points} == {
        (v, n) for v in ("baseline", "composite") for n in (300, 1_200)
    }
    fit = {f.variant: f for f in res.scale.fits}
    # The baseline reads every task of the user (buffers grow with the size, exponent 1); composite reads a
    # page of the index and the rows' heap pages (3 → 5 buffers: the larger index has a level more).
    assert fit["baseline"].buffers_exponent > 0.6 and fit["composite"].buffers_exponent < 0.5
    assert res.dataset.profile["tasks_per_user"] == 1_200  # the body is the largest size's run
    res_path = results_io.save(res, tmp_path)
    written = write_report(res_path)
    assert (res_path.parent / "scale.png") in written and (res_path.parent / "scale.csv") in written
    html = (res_path.parent / "index.html").read_text()
    assert "Scale: how p95 grows" in html and "recent_tasks" in html
