"""Plan stability's re-ANALYZEs: every table once a round, the owner's connections sharing them."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import asyncpg
import pytest

from bench.measure.runner import run_measurement
from bench.measure.stability import _reanalyze
from bench.models import TABLE_NAMES
from bench.targets.target import connected, scratch_copy

_ANALYZED = "SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname = ANY($1::text[])"


async def _analyzed(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["relname"]: r["analyze_count"] for r in await conn.fetch(_ANALYZED, list(TABLE_NAMES))}


@pytest.mark.parametrize("owners", [1, 2, 3])
def test_each_round_analyzes_every_table_once_however_many_connections_share_it(seeded, owners):
    async def go() -> tuple[dict[str, int], set[int]]:
        async with connected(copy) as reader:
            before = await _analyzed(reader)
            async with AsyncExitStack() as stack:
                conns = [await stack.enter_async_context(connected(copy)) for _ in range(owners)]
                await _reanalyze(conns, list(TABLE_NAMES))
                pids = {c.get_server_pid() for c in conns}
            # a closed session's counters reach the shared statistics as its server process exits
            for _ in range(100):
                after = await _analyzed(reader)
                if all(after.get(t, 0) > before.get(t, 0) for t in TABLE_NAMES):
                    break
                await asyncio.sleep(0.05)
            return {t: after[t] - before.get(t, 0) for t in TABLE_NAMES}, pids

    with scratch_copy(seeded, "stability") as copy:
        analyzed, pids = run_measurement(go())
    assert len(pids) == owners
    assert analyzed == dict.fromkeys(TABLE_NAMES, 1)
