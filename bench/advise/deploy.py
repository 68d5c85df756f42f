"""What deploying each advised index costs, measured on a scratch copy of the seeded database:

- its build time, plain and with CONCURRENTLY (which scans the table twice and waits for running
  transactions, so it takes longer, but lets writes through);
- how long writers wait while it is built: ``WRITERS`` connections run the write scenarios that
  touch its table (each statement in a transaction that is rolled back, so the rows stay the
  seeded ones) before the build, during a plain CREATE INDEX (which holds a SHARE lock: every
  INSERT, UPDATE and DELETE on the table waits for the whole build) and during CREATE INDEX
  CONCURRENTLY. A statement's latency includes its wait for the lock, so the slowest statement
  during the build is how long a writer was blocked.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date
from statistics import median, quantiles

import asyncpg

from bench.advise.candidates import Candidate
from bench.catalogue.files import Catalogue
from bench.catalogue.params import Drawer, pools_for
from bench.measure.runner import run_measurement
from bench.measure.transaction import rolled_back
from bench.targets import schema
from bench.targets.target import Target, connected

WRITERS = 3
BEFORE_S = 1.0  # writes measured before each build: the writers' usual latency


@dataclass(frozen=True)
class Writes:
    statements: int
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True)
class DeployCost:
    index: str
    table: str
    build_s: float
    concurrent_build_s: float
    writers: int
    before: Writes | None  # None: no write scenario touches the table
    during_build: Writes | None
    during_concurrent_build: Writes | None

    @property
    def blocked_ms(self) -> float | None:
        """The longest a writer waited during the plain build, beyond its usual p95."""
        if self.before is None or self.during_build is None:
            return None
        return max(self.during_build.max_ms - self.before.p95_ms, 0.0)


def _writes(latencies: list[float]) -> Writes | None:
    if not latencies:
        return None
    p95 = quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
    return Writes(len(latencies), round(median(latencies), 3), round(p95, 3), round(max(latencies), 3))


class _Writers:
    """Writer connections running write statements back to back, each latency stamped with its start."""

    def __init__(self, connections: list[asyncpg.Connection], drawers: list[Drawer]) -> None:
        self.connections = connections
        self.drawers = drawers
        self.log: list[tuple[float, float]] = []  # (start, ms)
        self.stop = asyncio.Event()

    async def _loop(self, conn: asyncpg.Connection, offset: int) -> None:
        turn = offset
        while not self.stop.is_set():
            drawer = self.drawers[turn % len(self.drawers)]
            turn += 1
            sql, args, _ = drawer.draw()
            async with rolled_back(conn):
                started = time.perf_counter()
                await conn.fetch(sql, *args)
                self.log.append((started, (time.perf_counter() - started) * 1e3))

    def between(self, start: float, end: float) -> Writes | None:
        return _writes([ms for at, ms in self.log if start <= at < end])

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._loop(conn, i)) for i, conn in enumerate(self.connections)]


async def _timed(conn: asyncpg.Connection, sql: str) -> tuple[float, float]:
    started = time.perf_counter()
    await conn.execute(sql)
    return started, time.perf_counter()


async def _measure(target: Target, catalogue: Catalogue, indexes: list[Candidate], today: date) -> list[DeployCost]:
    async with AsyncExitStack() as connections:
        ddl = await connections.enter_async_context(connected(target))
        writers = [await connections.enter_async_context(connected(target)) for _ in range(WRITERS)]
        writes = [s for s in catalogue.scenarios if s.kind == "write"]
        pools = await pools_for(ddl, writes, today)
        for extension in sorted({e for c in indexes for e in c.extensions}):
            await ddl.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
        costs = []
        for n, candidate in enumerate(indexes):
            drawers = [Drawer(s, pools, seed=n) for s in writes if candidate.table in s.query.tables]
            quoted = f'"{candidate.name}"'
            load = _Writers(writers, drawers) if drawers else None
            tasks = load.start() if load else []
            try:
                if load:
                    await asyncio.sleep(BEFORE_S)
                start, end = await _timed(ddl, candidate.index.ddl(concurrently=False))
                await ddl.execute(f"DROP INDEX {quoted}")
                c_start, c_end = await _timed(ddl, candidate.index.ddl(concurrently=True))
                await ddl.execute(f"DROP INDEX {quoted}")
            finally:
                if load:
                    load.stop.set()
                    await asyncio.gather(*tasks)
            costs.append(
                DeployCost(
                    index=candidate.name,
                    table=candidate.table,
                    build_s=round(end - start, 3),
                    concurrent_build_s=round(c_end - c_start, 3),
                    writers=len(writers) if load else 0,
                    before=load.between(start - BEFORE_S, start) if load else None,
                    during_build=load.between(start, end) if load else None,
                    during_concurrent_build=load.between(c_start, c_end) if load else None,
                )
            )
        return costs


def deploy_costs(target: Target, catalogue: Catalogue, indexes: list[Candidate]) -> list[DeployCost]:
    """Per index: build seconds plain and concurrent, and the writers' latency around the builds."""
    if not indexes:
        return []
    with schema.seeded_copy(target, "deploy") as (copy, dataset):
        return run_measurement(_measure(copy, catalogue, indexes, dataset.anchor_date))
