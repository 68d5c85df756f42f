"""Cold-cache samples: each execution right after PostgreSQL's shared buffers were emptied.

``pg_buffercache_evict_all()`` (PostgreSQL 18's pg_buffercache) empties shared buffers in
milliseconds, without a restart, so every cold sample is as cold as the first query after one.
PostgreSQL 17 has only ``pg_buffercache_evict()`` of one buffer: called on every buffer, it empties
them the same way, a call a buffer; the results say which was used. Either needs the extension and a
superuser: true on the embedded target, usually not on managed services (Neon roles are not
superusers), where the results say why there is no cold pass.
The operating system's page cache is not emptied (that needs root and would disturb the whole
machine): "cold" means read from outside PostgreSQL's buffers, usually the OS cache, not the disk.
"""

from __future__ import annotations

import json
import time

import asyncpg

from bench.catalogue.params import Drawer
from bench.errors import first_line
from bench.measure.claims import as_user, claim_for
from bench.measure.plan import EXPLAIN_ANALYZE, plan_facts, timings
from bench.measure.timeout import Session, TimedOut, client_limit, limited
from bench.results import ColdCache, ColdSamples

_WARM_OS = "; the OS page cache stays warm"
# How the buffers are emptied (the method the results record → its statement), the first the server has.
_EVICTIONS = {
    f"pg_buffercache_evict_all() before each execution{_WARM_OS}": "SELECT pg_buffercache_evict_all()",
    f"pg_buffercache_evict() on every buffer before each execution (no pg_buffercache_evict_all before "
    f"PostgreSQL 18){_WARM_OS}": "SELECT count(pg_buffercache_evict(bufferid)) FROM pg_buffercache",
}


async def cold_cache(conn: asyncpg.Connection) -> ColdCache:
    """Whether this target allows a cold pass, and how (or why not)."""
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_buffercache")
    except asyncpg.PostgresError as exc:
        return ColdCache(available=False, method=f"no cold pass: {first_line(exc)}")
    why = "no way to empty the buffers"
    for method, evict in _EVICTIONS.items():
        try:
            await conn.execute(evict)
        except asyncpg.PostgresError as exc:
            why = first_line(exc)
            continue
        return ColdCache(available=True, method=method)
    return ColdCache(available=False, method=f"no cold pass: {why}")


async def cold_samples(
    admin: asyncpg.Connection,
    session: Session,
    drawer: Drawer,
    n: int,
    timeout_ms: int,
    cold: ColdCache,
    claim: str | None = None,
) -> ColdSamples | None:
    """``n`` cold executions on ``session`` (the samples' role), each also explained from cold, the
    cache emptied on ``admin`` (a superuser's) as ``cold`` says before each, under the cell's statement timeout; the
    pass stops at the first one cut off by it (a cold read that slow is a finding of its own: the
    cell's warm samples stand). None when not one finished. Under a policy variant each runs with
    its user's ``claim`` set, as a warm sample does."""
    conn, evict = session.conn, _EVICTIONS[cold.method]
    await session.limit(timeout_ms)
    client: list[float] = []
    execution: list[float] = []
    reads: list[int] = []
    for _ in range(n):
        sql, args, user = drawer.draw()
        try:
            async with limited(timeout_ms), as_user(conn, claim_for(claim, user)):
                await admin.execute(evict)
                started = time.perf_counter_ns()
                await conn.fetch(sql, *args, timeout=client_limit(timeout_ms))
                elapsed_ms = (time.perf_counter_ns() - started) / 1e6
                await admin.execute(evict)
                explained = await conn.fetchval(EXPLAIN_ANALYZE + sql, *args, timeout=client_limit(timeout_ms))
                explain = json.loads(explained)
        except TimedOut:
            break
        client.append(round(elapsed_ms, 4))
        execution.append(round(timings(explain)[0], 4))
        reads.append(plan_facts(explain).shared_read)
    return ColdSamples(client_ms=client, execution_ms=execution, shared_read=reads) if client else None
