"""Cold-cache samples: each execution right after PostgreSQL's shared buffers were emptied.

``pg_buffercache_evict_all()`` (PostgreSQL 18's pg_buffercache) empties shared buffers in
milliseconds, without a restart, so every cold sample is as cold as the first query after one.
It needs the extension and a superuser: true on the embedded target, usually not on managed
services (Neon roles are not superusers), where the results say why there is no cold pass.
The operating system's page cache is not emptied (that needs root and would disturb the whole
machine): "cold" means read from outside PostgreSQL's buffers, usually the OS cache, not the disk.
"""

from __future__ import annotations

import json
import time

import asyncpg

from bench.catalogue.params import Drawer
from bench.errors import first_line
from bench.measure.plan import EXPLAIN_ANALYZE, plan_facts, timings
from bench.measure.timeout import Session, TimedOut, client_limit, limited
from bench.results import ColdCache, ColdSamples

_EVICT = "SELECT pg_buffercache_evict_all()"


async def cold_cache(conn: asyncpg.Connection) -> ColdCache:
    """Whether this target allows a cold pass, and how (or why not)."""
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_buffercache")
        await conn.execute(_EVICT)
    except asyncpg.PostgresError as exc:
        return ColdCache(available=False, method=f"no cold pass: {first_line(exc)}")
    return ColdCache(
        available=True, method="pg_buffercache_evict_all() before each execution; the OS page cache stays warm"
    )


async def cold_samples(
    admin: asyncpg.Connection, session: Session, drawer: Drawer, n: int, timeout_ms: int
) -> ColdSamples | None:
    """``n`` cold executions on ``session`` (the samples' role), each also explained from cold, the
    cache emptied on ``admin`` (a superuser's) before each, under the cell's statement timeout; the
    pass stops at the first one cut off by it (a cold read that slow is a finding of its own: the
    cell's warm samples stand). None when not one finished."""
    conn = session.conn
    await session.limit(timeout_ms)
    client: list[float] = []
    execution: list[float] = []
    reads: list[int] = []
    for _ in range(n):
        sql, args = drawer.draw()
        try:
            async with limited(timeout_ms):
                await admin.execute(_EVICT)
                started = time.perf_counter_ns()
                await conn.fetch(sql, *args, timeout=client_limit(timeout_ms))
                elapsed_ms = (time.perf_counter_ns() - started) / 1e6
                await admin.execute(_EVICT)
                explained = await conn.fetchval(EXPLAIN_ANALYZE + sql, *args, timeout=client_limit(timeout_ms))
                explain = json.loads(explained)
        except TimedOut:
            break
        client.append(round(elapsed_ms, 4))
        execution.append(round(timings(explain)[0], 4))
        reads.append(plan_facts(explain).shared_read)
    return ColdSamples(client_ms=client, execution_ms=execution, shared_read=reads) if client else None
