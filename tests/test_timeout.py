"""Statement timeouts: a query that never ends costs its cell the timeout, fails it at once, and
leaves the session as it found it."""

import asyncio
import time

import pytest

from bench.catalogue.params import pools_for
from bench.errors import InputError
from bench.measure import runner
from bench.measure.options import MIN_TIMEOUT_MS, RunOptions
from bench.runs.matrix import measure
from bench.targets.target import SETUP_TIMEOUT_S, connected
from tests.support import cell_of, edited_catalogue, never_ending


@pytest.fixture(scope="module")
def endless(tmp_path_factory):
    """The shipped catalogue with one read and one write that never end, and a read that does."""
    catalogue = edited_catalogue(
        tmp_path_factory.mktemp("endless"),
        {"queries/recent_tasks.toml": never_ending, "queries/complete_task.toml": never_ending},
    )
    return catalogue.select(["recent_tasks", "complete_task", "task_by_id"], ["baseline"])


def test_the_timeout_is_the_factor_times_the_sla_and_never_under_the_floor():
    opts = RunOptions(timeout_factor=20)
    assert opts.statement_timeout_ms(50) == 1000
    assert opts.statement_timeout_ms(0.5) == MIN_TIMEOUT_MS
    with pytest.raises(InputError, match="more than 1"):
        RunOptions(timeout_factor=1)


def test_a_query_that_never_ends_fails_its_cell_at_its_timeout(seeded, endless):
    opts = RunOptions(cold_samples=2, stability_rounds=1, concurrent=True, timeout_factor=4)
    started = time.perf_counter()
    res = measure(seeded, endless, opts)
    elapsed = time.perf_counter() - started
    for name in ("recent_tasks", "complete_task"):
        cell = cell_of(res, name, "baseline")
        limit = opts.statement_timeout_ms(cell.sla_ms)
        assert cell.statement_timeout_ms == limit
        assert cell.verdict == "fail" and cell.timed_out
        assert f"timed out at {limit} ms" in cell.verdict_text
        # the first execution (its warm-up) was cut off by the server, at the limit and not long after
        assert len(cell.samples.client_ms) == 1 and limit <= cell.samples.client_ms[0] < limit + 1000
        assert cell.execution is None  # the estimated plan instead: what made it slow
        assert cell.plan is not None and cell.plan.node_types
        assert cell.cold is None and cell.samples.wal_bytes == []
    assert cell_of(res, "task_by_id", "baseline").verdict == "pass"  # the session went on for the rest
    assert elapsed < 60  # without the timeout, forever


def test_cells_leave_the_sessions_own_timeout_behind(seeded, endless):
    opts = RunOptions(timeout_factor=4)

    async def measure() -> tuple[str, str]:
        async with connected(seeded) as conn:
            pools = await pools_for(conn, endless.scenarios, seeded_anchor(seeded))
            before = await conn.fetchval("SHOW statement_timeout")
            await runner.measure_cells(conn, endless.scenarios, "baseline", pools, opts)
            return before, await conn.fetchval("SHOW statement_timeout")

    before, after = asyncio.run(measure())
    assert before == after == f"{SETUP_TIMEOUT_S // 60}min"


def seeded_anchor(target):
    from bench.targets import schema

    return schema.seeded_dataset(target).anchor_date
