import shutil

import pytest

from bench.catalogue.files import load_catalog
from bench.judge.compare import compare
from bench.errors import EXIT_INPUT, EXIT_OK, EXIT_REGRESSION
from bench.measure.runner import RunOptions, run

from tests.support import SCENARIOS

OPTS = RunOptions(cold_samples=0, stability_rounds=0, concurrent=True)
PICK = (["recent_tasks", "pending_tasks", "task_by_id"], ["composite"])


@pytest.fixture(scope="module")
def base_run(seeded, catalog):
    return run(seeded, catalog.select(*PICK), OPTS)


def test_identical_rerun_is_not_a_regression(seeded, catalog, base_run):
    again = run(seeded, catalog.select(*PICK), OPTS)
    result = compare(base_run, again)
    assert result.exit_code == EXIT_OK, result.regressions
    assert compare(base_run, base_run).exit_code == EXIT_OK


def test_removed_index_is_caught_as_a_plan_regression(seeded, tmp_path, base_run):
    scen = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scen)
    variant = scen / "variants" / "composite.toml"
    variant.write_text("\n".join(line for line in variant.read_text().splitlines()
                                 if "tb_tasks_user_created " not in line))
    current = run(seeded, load_catalog(scen).select(["recent_tasks"], ["composite"]), OPTS)
    result = compare(base_run, current)
    assert result.exit_code == EXIT_REGRESSION
    found = [f for f in result.regressions if f.scenario == "recent_tasks" and f.gate == "plan"]
    assert any("Sort" in f.message for f in found), result.regressions
    assert any("tb_tasks_user_created" in f.message for f in found)


def test_sla_pass_turning_to_fail_is_a_regression(base_run):
    cells = [c.model_copy(update={"verdict": "fail"}) if c.scenario == "task_by_id" else c for c in base_run.cells]
    assert base_run.cell("task_by_id", "composite").verdict == "pass"
    result = compare(base_run, base_run.model_copy(update={"cells": cells}))
    assert result.exit_code == EXIT_REGRESSION
    assert [f.gate for f in result.regressions] == ["sla"]


def test_three_times_slower_is_a_time_regression(base_run):
    def slower(c):
        samples = c.samples.model_copy(update={"client_ms": [ms * 3 + 1 for ms in c.samples.client_ms]})
        return c.model_copy(update={"samples": samples})

    result = compare(base_run, base_run.model_copy(update={"cells": [slower(c) for c in base_run.cells]}))
    assert {f.gate for f in result.regressions} == {"time"}


@pytest.mark.parametrize("field, change, reason", [
    ("dataset", {"fingerprint": "0000"}, "different datasets"),
    ("environment", {"server_major": 12}, "different PostgreSQL majors"),
])
def test_incomparable_runs_exit_2_with_the_reason(base_run, field, change, reason):
    other = base_run.model_copy(update={field: getattr(base_run, field).model_copy(update=change)})
    result = compare(base_run, other)
    assert result.exit_code == EXIT_INPUT and reason in result.incomparable[0]
    assert compare(base_run, other, force=True).exit_code == EXIT_OK


def test_noise_floor_grows_with_the_baselines_spread():
    from bench.judge.compare import Thresholds

    th = Thresholds(noise_floor_ms=0.5, noise_spread=0.5)
    assert th.floor_ms([1.0] * 50 + [1.1] * 50) == 0.5  # tight samples: the absolute floor
    assert th.floor_ms([1.0] * 50 + [21.0] * 50) == pytest.approx(10.0)  # half the IQR of a bimodal cell


def test_a_wide_baseline_needs_a_larger_shift(base_run):
    def shifted(c, by):
        samples = c.samples.model_copy(update={"client_ms": [ms + by for ms in c.samples.client_ms]})
        return c.model_copy(update={"samples": samples})

    cell = base_run.cells[0]
    wide = cell.model_copy(update={"samples": cell.samples.model_copy(
        update={"client_ms": [1.0, 9.0] * (len(cell.samples.client_ms) // 2)})})
    base = base_run.model_copy(update={"cells": [wide]})
    assert compare(base, base.model_copy(update={"cells": [shifted(wide, 3.0)]})).exit_code == EXIT_OK
    assert compare(base, base.model_copy(update={"cells": [shifted(wide, 30.0)]})).exit_code == EXIT_REGRESSION


def test_time_gate_is_off_between_different_machines(base_run):
    from bench.judge.compare import annotations

    machine = {**base_run.environment.machine, "cpus": 64}
    other = base_run.model_copy(update={
        "environment": base_run.environment.model_copy(update={"machine": machine}),
        "cells": [c.model_copy(update={"samples": c.samples.model_copy(
            update={"client_ms": [ms * 3 + 1 for ms in c.samples.client_ms]})}) for c in base_run.cells]})
    result = compare(base_run, other)
    assert result.exit_code == EXIT_OK and "different machines" in result.timing_off
    forced = compare(base_run, other, across_machines=True)
    assert forced.exit_code == EXIT_REGRESSION
    lines = annotations(forced)
    assert lines and all(line.startswith("::error title=taskbench time regression::") for line in lines)


def test_baseline_save_needs_a_reason_and_records_it(base_run, tmp_path):
    from bench import results as results_io
    from bench.errors import InputError

    run_file = results_io.save(base_run, tmp_path)
    with pytest.raises(InputError, match="reason"):
        results_io.save_baseline(run_file, "  ", tmp_path / "baseline.json")
    saved = results_io.save_baseline(run_file, "new index on tasks", tmp_path / "baseline.json")
    loaded = results_io.load(tmp_path / "baseline.json")
    assert loaded.baseline.reason == "new index on tasks" and loaded.baseline.from_run == base_run.run_id
    assert saved.cells == base_run.cells


def test_a_whole_variant_drifting_together_is_not_a_regression(base_run):
    from bench.judge.compare import MIN_CELLS_FOR_DRIFT

    cell = base_run.cells[0]
    cells = [cell.model_copy(update={"scenario": f"s{i}"}) for i in range(MIN_CELLS_FOR_DRIFT + 1)]
    base = base_run.model_copy(update={"cells": cells})

    def scaled(c, k):
        return c.model_copy(update={"samples": c.samples.model_copy(
            update={"client_ms": [ms * k + 2 for ms in c.samples.client_ms]})})

    everything_slower = compare(base, base.model_copy(update={"cells": [scaled(c, 2.0) for c in cells]}))
    assert everything_slower.exit_code == EXIT_OK and everything_slower.drift[cell.variant] > 1.5
    one_slower = compare(base, base.model_copy(update={"cells": [scaled(cells[0], 3.0), *cells[1:]]}))
    assert [f.scenario for f in one_slower.regressions] == ["s0"]


def test_runs_of_different_protocols_exit_2_on_time_and_keep_the_other_gates(base_run, tmp_path):
    from bench import results as results_io
    from tests.support import taskbench

    assert base_run.protocol.name == "sequential-exceedance" and base_run.protocol.version == 1
    older = base_run.model_copy(update={"protocol": base_run.protocol.model_copy(update={"name": "order-statistic"})})
    # Three times slower (a time regression within one protocol) and one cell's verdict gone from pass to fail.
    cells = [c.model_copy(update={"samples": c.samples.model_copy(update={"client_ms": [ms * 3 + 1 for ms in
                                                                                        c.samples.client_ms]}),
                                  **({"verdict": "fail"} if c.scenario == "task_by_id" else {})})
             for c in base_run.cells]
    current = base_run.model_copy(update={"cells": cells})
    assert {f.gate for f in compare(base_run, current).regressions} == {"sla", "time"}
    result = compare(older, current)
    assert result.exit_code == EXIT_INPUT and not result.incomparable
    assert "different sampling protocols: baseline order-statistic v1, current sequential-exceedance v1" in \
        result.time_refused
    assert [f.gate for f in result.regressions] == ["sla"]  # judged; time is not
    assert compare(older, current, force=True).exit_code == EXIT_REGRESSION
    old_file, new_file = results_io.save(older, tmp_path / "old"), results_io.save(current, tmp_path / "new")
    proc = taskbench("compare", str(old_file), str(new_file))
    assert proc.returncode == EXIT_INPUT
    assert "cannot judge time (exit 2): different sampling protocols: baseline order-statistic v1" in proc.stdout
    assert "task_by_id" in proc.stdout and "sla" in proc.stdout


def test_an_older_file_reads_as_the_order_statistic_protocol(base_run):
    from bench import results as results_io
    from tests.support import ROOT

    old = results_io.load(ROOT / "tests" / "data" / "results_v2_order_statistic.json")
    assert old.protocol.name == "order-statistic" and old.protocol.parameters["early_look"] == 30
    assert old.protocol.explain_samples is None and old.config.seed == 1
    cell = old.cell("recent_tasks", "baseline")
    assert cell.samples.explained == len(cell.samples.client_ms) == 100 and cell.classes[0].user_class == "all"
    over = sum(ms > cell.sla_ms for ms in cell.samples.client_ms)
    assert cell.verdict_text == f"pass at n = 100 ({over}/100 over 50 ms)"
    result = compare(old.model_copy(update={"dataset": base_run.dataset, "environment": base_run.environment}),
                     base_run)
    assert result.exit_code == EXIT_INPUT and "baseline order-statistic v1" in result.time_refused
