"""The write tax of a variant: what its indexes cost the app's inserts and updates.

Each variant is measured on a fresh scratch copy of the seeded database with only that
variant's indexes, so every variant starts from the very same pages (measuring them one after
another in one database made the later ones pay for, or profit from, the earlier ones' leftovers).
After a warm-up round (not measured) and a CHECKPOINT, in one transaction: ``rows`` new tasks
inserted in multi-row INSERTs (the content of existing tasks, for realistic index keys), then
``rows`` open tasks completed (the most common update; it changes indexed columns, so no HOT
update). Throughput is rows/s; WAL bytes come from the WAL insert position before and after, so
they include the full-page writes every variant pays on first touch after the checkpoint.
"""

from __future__ import annotations

import random
import time

import asyncpg

from bench.catalogue.files import Variant
from bench.results import WriteTax
from bench.targets.target import Target, connect_async, scratch_copy
from bench.catalogue.variants import apply_variant, snapshot

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


async def _measure(conn: asyncpg.Connection, rows: int, seed: int) -> WriteTax:
    rng = random.Random(f"{seed}:write")
    every = [r["id"] for r in await conn.fetch("SELECT id FROM tasks ORDER BY id")]
    open_ids = [r["id"] for r in await conn.fetch(
        "SELECT id FROM tasks WHERE NOT is_completed AND deleted_at IS NULL ORDER BY id")]
    warm = max(rows // 10, 1)
    sources = sorted(rng.sample(every, min(rows + warm, len(every))))
    completed = sorted(rng.sample(open_ids, min(rows + warm, len(open_ids))))
    await _timed(conn, _INSERT, sources[:warm])  # warm-up: caches, catalog, plans
    await _timed(conn, _UPDATE, completed[:warm])
    await conn.execute("CHECKPOINT")
    async with conn.transaction():
        insert_s, insert_wal = await _timed(conn, _INSERT, sources[warm:])
        update_s, update_wal = await _timed(conn, _UPDATE, completed[warm:])
    inserted, updated = len(sources) - warm, max(len(completed) - warm, 1)
    return WriteTax(rows=inserted, insert_rows_per_s=round(inserted / insert_s, 1),
                    update_rows_per_s=round(updated / update_s, 1),
                    insert_wal_bytes_per_row=round(insert_wal / inserted, 1),
                    update_wal_bytes_per_row=round(update_wal / updated, 1))


async def write_tax(seeded: Target, variant: Variant, rows: int, seed: int) -> WriteTax:
    """The write tax of ``variant`` on its own fresh copy of ``seeded`` (dropped afterwards)."""
    with scratch_copy(seeded, "write") as copy:
        conn = await connect_async(copy)
        try:
            await apply_variant(conn, await snapshot(conn, variant))
            return await _measure(conn, rows, seed)
        finally:
            await conn.close()
