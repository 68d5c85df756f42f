import json

import pytest

from bench import results as results_io
from bench.runner import RunOptions, run

QUICK = RunOptions(samples=20, max_samples=40, warmup=2)


@pytest.fixture(scope="module")
def small_run(seeded, catalog):
    return run(seeded, catalog.select(["recent_tasks", "last_messages", "task_by_id"], ["baseline", "composite"]), QUICK)


def test_every_cell_has_samples_statistics_and_plan_facts(small_run):
    assert len(small_run.cells) == 6
    for cell in small_run.cells:
        assert len(cell.samples.client_ms) == cell.client.n >= 20
        assert len(cell.samples.execution_ms) == len(cell.samples.client_ms)
        assert all(ms > 0 for ms in cell.samples.client_ms)
        assert cell.plan.node_types and cell.plan.fingerprint
        assert sum(cell.samples.buffers) > 0
        assert cell.verdict in ("pass", "fail", "inconclusive")


def test_the_matching_index_is_used_and_costed(small_run):
    recent = small_run.cell("recent_tasks", "composite")
    assert "tb_tasks_user_created" in recent.plan.indexes
    assert "Sort" not in recent.plan.node_types
    assert "Sort" in small_run.cell("recent_tasks", "baseline").plan.node_types
    sizes = {v.name: v.index_size_bytes for v in small_run.variants}
    assert sizes["baseline"] == 0 < sizes["composite"]


def test_environment_and_dataset_are_recorded(small_run):
    env = small_run.environment
    assert env.server_major >= 14 and "work_mem" in env.settings
    assert env.target_kind == "embedded"
    assert small_run.dataset.row_counts["tasks"] > 0 and small_run.dataset.fingerprint


def test_inconclusive_cells_get_more_samples(seeded, catalog):
    # 30 samples cannot bound a p95 from above, so the cell must grow until it can (or hits the cap).
    res = run(seeded, catalog.select(["task_by_id"], ["baseline"]), RunOptions(samples=30, max_samples=400, warmup=1))
    cell = res.cells[0]
    assert cell.client.n == 120 and cell.verdict == "pass"


def test_results_round_trip_and_latest_link(small_run, tmp_path):
    path = results_io.save(small_run, tmp_path)
    assert (tmp_path / "latest" / "results.json").resolve() == path.resolve()
    loaded = results_io.load(tmp_path / "latest")
    assert loaded == small_run
    assert json.loads(path.read_text())["schema_version"] == results_io.SCHEMA_VERSION
