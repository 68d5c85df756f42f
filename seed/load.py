"""Load a dataset with binary COPY (asyncpg), then VACUUM ANALYZE; skip when already loaded.

The dataset fingerprint is written to ``taskbench_meta`` only after every table is loaded and
analysed, so an interrupted or failed load is never taken for a complete dataset: the next run
sees no fingerprint and loads again from scratch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg

from bench import schema
from bench.progress import Advance, no_progress
from bench.target import Target, connect_async

from .generate import COLUMNS, Generator, Row
from .profiles import Profile

TABLE_ORDER = ("users", "conversations", "messages", "tasks")


@dataclass
class SeedResult:
    fingerprint: str
    skipped: bool
    row_counts: dict[str, int]
    seconds: float = 0.0
    load_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        total = sum(self.row_counts.values())
        return total / sum(self.load_seconds.values()) if self.load_seconds else 0.0


async def _copy_table(conn: asyncpg.Connection, table: str, batches: Iterator[list[Row]],
                      advance: Advance, total: int | None) -> int:
    done = 0
    advance(f"seed {table}", 0, total)
    for batch in batches:
        await conn.copy_records_to_table(table, records=batch, columns=COLUMNS[table])
        done += len(batch)
        advance(f"seed {table}", done, total)
    return done


async def _load(target: Target, gen: Generator, advance: Advance) -> tuple[dict[str, int], dict[str, float]]:
    conn = await connect_async(target)
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    expected = gen.row_counts()
    try:
        for table in TABLE_ORDER:
            started = time.perf_counter()
            async with conn.transaction():
                counts[table] = await _copy_table(conn, table, getattr(gen, table)(), advance,
                                                  expected.get(table))
            seconds[table] = time.perf_counter() - started
    finally:
        await conn.close()
    return counts, seconds


def seed_database(target: Target, profile: Profile, advance: Advance = no_progress,
                  force_reload: bool = False) -> SeedResult:
    """Make the target hold exactly ``profile``'s dataset, loading it only if it is not there yet."""
    fingerprint = profile.fingerprint()
    current = schema.dataset_info(target)
    if current and current.get("fingerprint") == fingerprint and not force_reload:
        return SeedResult(fingerprint, True, current["row_counts"])

    started = time.perf_counter()
    schema.recreate_schema(target)  # also forgets the old fingerprint before anything is loaded
    counts, load_seconds = asyncio.run(_load(target, Generator(profile), advance))
    with schema.connect(target) as conn:
        for table in TABLE_ORDER:
            conn.execute(f"VACUUM (ANALYZE) {table}")
        schema.set_meta(conn, "dataset", {"fingerprint": fingerprint, "profile": profile.params(),
                                          "row_counts": counts})
    return SeedResult(fingerprint, False, counts, time.perf_counter() - started, load_seconds)
