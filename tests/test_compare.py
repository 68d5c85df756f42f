import shutil

import pytest

from bench.catalog import load_catalog
from bench.compare import compare
from bench.errors import EXIT_INPUT, EXIT_OK, EXIT_REGRESSION
from bench.runner import RunOptions, run

from .conftest import SCENARIOS

OPTS = RunOptions(samples=80, max_samples=160, warmup=3, cold_samples=0, stability_rounds=0, write_rows=0)
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
