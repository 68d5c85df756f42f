"""The write tax of a variant: what its indexes cost the app's inserts and updates.

Measured on the run's scratch copy, inside a transaction that is rolled back (then VACUUM), so
every variant starts from the same rows: ``rows`` new tasks inserted in multi-row INSERTs (the
content of existing tasks, for realistic index keys), then ``rows`` open tasks completed (the
most common update; it changes indexed columns, so no HOT update). Throughput is rows/s; WAL
bytes come from the WAL insert position before and after, after a CHECKPOINT so every variant
pays the same full-page writes on first touch.
"""

from __future__ import annotations

import random
import time

import asyncpg

from .results import WriteTax

_BATCH = 500  # rows per statement
_INSERT = """
INSERT INTO tasks (user_id, title, description, priority, category, tags, due_date, due_time,
                   is_completed, created_at, updated_at)
SELECT user_id, title, description, priority, category, tags, due_date, due_time, false, now(), now()
FROM tasks WHERE id = ANY($1::bigint[])
"""
_UPDATE = "UPDATE tasks SET is_completed = true, completed_at = now(), updated_at = now() WHERE id = ANY($1::bigint[])"
_LSN = "SELECT pg_current_wal_insert_lsn()"


async def _timed(conn: asyncpg.Connection, sql: str, ids: list[int]) -> tuple[float, int]:
    """(seconds, WAL bytes) of running ``sql`` over ``ids`` in batches."""
    lsn = await conn.fetchval(_LSN)
    started = time.perf_counter()
    for first in range(0, len(ids), _BATCH):
        await conn.execute(sql, ids[first:first + _BATCH])
    seconds = time.perf_counter() - started
    wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)", lsn)
    return seconds, int(wal)


async def write_tax(conn: asyncpg.Connection, rows: int, seed: int) -> WriteTax:
    rng = random.Random(f"{seed}:write")
    every = [r["id"] for r in await conn.fetch("SELECT id FROM tasks ORDER BY id")]
    open_ids = [r["id"] for r in await conn.fetch(
        "SELECT id FROM tasks WHERE NOT is_completed AND deleted_at IS NULL ORDER BY id")]
    sources = sorted(rng.sample(every, min(rows, len(every))))
    completed = sorted(rng.sample(open_ids, min(rows, len(open_ids))))
    await conn.execute("CHECKPOINT")
    tx = conn.transaction()
    await tx.start()
    try:
        insert_s, insert_wal = await _timed(conn, _INSERT, sources)
        update_s, update_wal = await _timed(conn, _UPDATE, completed)
    finally:
        await tx.rollback()
    await conn.execute("VACUUM tasks")  # the rolled-back rows must not weigh on the next variant
    return WriteTax(rows=rows, insert_rows_per_s=round(len(sources) / insert_s, 1),
                    update_rows_per_s=round(len(completed) / update_s, 1),
                    insert_wal_bytes_per_row=round(insert_wal / len(sources), 1),
                    update_wal_bytes_per_row=round(update_wal / max(len(completed), 1), 1))
