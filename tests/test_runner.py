import json

import pytest

from bench import results as results_io
from bench.measure.runner import RunOptions, run

@pytest.fixture(scope="module")
def small_run(small_results):
    return small_results


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


def test_cold_samples_read_from_outside_shared_buffers(small_run):
    assert small_run.cold_cache.available and "pg_buffercache" in small_run.cold_cache.method
    for cell in small_run.cells:
        assert len(cell.cold.client_ms) == len(cell.cold.shared_read) == 2
        assert min(cell.cold.shared_read) > 0  # every block came from outside: the cache really was empty
    warm = small_run.cell("recent_tasks", "baseline")
    assert warm.plan.shared_read == 0 or min(warm.cold.shared_read) > warm.plan.shared_read


def test_stability_and_write_tax_are_measured_per_variant(small_run):
    assert all(c.stability and c.stability.rounds == 1 and c.stability.plans for c in small_run.cells)
    write = {v.name: v.write for v in small_run.variants}
    assert all(w.rows == 300 and w.insert_rows_per_s > 0 and w.update_rows_per_s > 0 for w in write.values())
    # composite adds three B-trees on tasks: every insert writes three more index entries to the WAL
    assert write["composite"].insert_wal_bytes_per_row > write["baseline"].insert_wal_bytes_per_row
    assert {"scratch copy", "build indexes", "warm-up and samples", "cold samples", "plan stability",
            "write tax"} <= set(small_run.phase_seconds)


def test_the_run_works_on_a_copy_and_leaves_the_seeded_database_alone(seeded, small_run):
    import psycopg
    with psycopg.connect(seeded.libpq_conninfo(), autocommit=True) as conn:
        copies = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s",
                              (f"{seeded.database}_run_%",)).fetchone()[0]
        extra = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'tb_%'").fetchone()[0]
        tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    assert copies == 0 and extra == 0
    assert tasks == small_run.dataset.row_counts["tasks"]  # the write tax's rows never reached it


def test_a_clearly_failing_cell_is_called_at_the_early_look(seeded, catalog, monkeypatch):
    import asyncio

    from bench.measure import runner
    from bench.catalogue.params import load_pools
    from bench.targets.target import connect_async

    scenario = next(s for s in catalog.scenarios if s.name == "recent_tasks").model_copy(update={"sla_ms": 0.001})
    opts = RunOptions(samples=100, max_samples=400, warmup=1, early_look=30)

    async def measure():
        conn = await connect_async(seeded)
        try:
            pools = await load_pools(conn, {"user"}, None)
            failing = await runner.measure_cell(conn, scenario, "baseline", pools, opts)
            passing = await runner.measure_cell(conn, scenario.model_copy(update={"sla_ms": 10_000}), "baseline",
                                                pools, opts)
            return failing, passing
        finally:
            await conn.close()

    failing, passing = asyncio.run(measure())
    assert failing.verdict == "fail" and failing.client.n == 30  # no microsecond query: fails at once
    assert passing.verdict == "pass" and passing.client.n == 100  # a pass is never called early


def test_inconclusive_cells_get_more_samples(seeded, catalog):
    # 30 samples cannot bound a p95 from above, so the cell must grow until it can (or hits the cap).
    opts = RunOptions(samples=30, max_samples=400, warmup=1, cold_samples=0, stability_rounds=0, write_rows=0)
    res = run(seeded, catalog.select(["task_by_id"], ["baseline"]), opts)
    cell = res.cells[0]
    assert cell.client.n == 120 and cell.verdict == "pass"


def test_results_round_trip_and_latest_link(small_run, tmp_path):
    path = results_io.save(small_run, tmp_path)
    assert (tmp_path / "latest" / "results.json").resolve() == path.resolve()
    loaded = results_io.load(tmp_path / "latest")
    assert loaded == small_run
    assert json.loads(path.read_text())["schema_version"] == results_io.SCHEMA_VERSION
