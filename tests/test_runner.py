import json

import pytest

from bench import results as results_io
from bench.measure.runner import RunOptions, run

@pytest.fixture(scope="module")
def small_run(small_results):
    return small_results


def test_every_cell_has_samples_statistics_and_plan_facts(small_run):
    assert len(small_run.cells) == 10
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
        if cell.kind == "write":  # a cold sample is not rolled back: writes get none
            assert cell.cold is None
            continue
        assert len(cell.cold.client_ms) == len(cell.cold.shared_read) == 2
        assert min(cell.cold.shared_read) > 0  # every block came from outside: the cache really was empty
    warm = small_run.cell("recent_tasks", "baseline")
    assert warm.plan.shared_read == 0 or min(warm.cold.shared_read) > warm.plan.shared_read


def test_stability_and_write_cost_are_measured_per_variant(small_run):
    from bench.judge.writecost import wal_per_statement, wal_ratio

    assert all(c.stability and c.stability.rounds == 1 and c.stability.plans for c in small_run.cells)
    for cell in small_run.cells:
        assert (cell.kind == "write") == (cell.scenario in ("create_task", "post_message"))
        assert len(cell.samples.wal_bytes) == (cell.client.n if cell.kind == "write" else 0)
    create = {v: wal_per_statement(small_run.cell("create_task", v)) for v in ("baseline", "composite")}
    # composite adds three B-trees on tasks: every insert writes three more index entries to the WAL
    assert create["composite"] > create["baseline"] > 0
    # and its (conversation_id, created_at) and (user_id, updated_at) B-trees make posting a message dearer
    post = {v: wal_per_statement(small_run.cell("post_message", v)) for v in ("baseline", "composite")}
    assert post["composite"] > post["baseline"] > 0
    assert wal_ratio(small_run, "composite") > 1.0 and wal_ratio(small_run, "baseline") == 1.0
    assert {"scratch copy", "build indexes", "warm-up and samples", "cold samples",
            "plan stability"} <= set(small_run.phase_seconds)


def test_the_run_works_on_a_copy_and_leaves_the_seeded_database_alone(seeded, small_run):
    import psycopg
    with psycopg.connect(seeded.libpq_conninfo(), autocommit=True) as conn:
        copies = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s",
                              (f"{seeded.database}_run_%",)).fetchone()[0]
        extra = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'tb_%'").fetchone()[0]
        tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    assert copies == 0 and extra == 0
    assert tasks == small_run.dataset.row_counts["tasks"]


def test_a_write_scenario_leaves_every_row_as_it_was(make_target, catalog):
    """Each write sample is rolled back: the database the run measured on is unchanged, row for row."""
    import asyncio
    from datetime import date

    from bench.catalogue.params import pools_for
    from bench.measure import runner
    from bench.targets.target import connect_async
    from seed.load import seed_database
    from tests.support import TINY, content_checksums

    target = make_target("tbwrites")
    seed_database(target, TINY)
    before = content_checksums(target)
    writes = [s for s in catalog.scenarios if s.kind == "write"]
    assert {s.name for s in writes} >= {"create_task", "complete_task", "retag_task", "soft_delete_task",
                                        "post_message"}
    opts = RunOptions(samples=20, max_samples=20, warmup=2)

    async def measure():
        conn = await connect_async(target)
        try:
            pools = await pools_for(conn, writes, date.fromisoformat(TINY.anchor_date.isoformat()))
            return [await runner.measure_cell(conn, s, "baseline", pools, opts) for s in writes]
        finally:
            await conn.close()

    cells = asyncio.run(measure())
    assert content_checksums(target) == before
    assert all(c.kind == "write" and len(c.samples.wal_bytes) == 20 and min(c.samples.wal_bytes) > 0 for c in cells)


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
    opts = RunOptions(samples=30, max_samples=400, warmup=1, cold_samples=0, stability_rounds=0)
    res = run(seeded, catalog.select(["task_by_id"], ["baseline"]), opts)
    cell = res.cells[0]
    assert cell.client.n == 120 and cell.verdict == "pass"


def test_results_round_trip_and_latest_link(small_run, tmp_path):
    path = results_io.save(small_run, tmp_path)
    assert (tmp_path / "latest" / "results.json").resolve() == path.resolve()
    loaded = results_io.load(tmp_path / "latest")
    assert loaded == small_run
    assert json.loads(path.read_text())["schema_version"] == results_io.SCHEMA_VERSION
