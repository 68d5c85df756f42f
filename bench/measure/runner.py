"""Run every scenario under every variant and collect the measurements into ``Results``.

The run works on a scratch copy of the seeded database (``CREATE DATABASE ... TEMPLATE``,
dropped at the end whatever happens), so neither its indexes, its statistics nor its rows are
ever altered, and an interrupted run leaves nothing behind. Per variant:

1. build its indexes, record their size and build time;
2. per scenario (a cell): warm-up, then samples over freshly drawn parameters. Each sample is the
   client round trip of the plain query (what the app feels) and, with the same parameters,
   EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) for server timings and plan facts. An inconclusive
   SLA verdict gets more samples, up to ``max_samples``, before it is called. A write scenario's
   sample runs each statement in a transaction that is rolled back (the WAL it wrote is recorded),
   so every cell after it sees the seeded rows unchanged: its cells are the variant's write cost;
3. cold samples per read cell, where the target allows emptying the buffer cache (``cold``);
4. plan stability across re-ANALYZEs (``stability``); then the variant is dropped before the next one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from typing import Any, TypeVar

import asyncpg

from bench.targets import schema
from bench.catalogue.files import Catalog, Scenario, Variant
from bench.catalogue.sql import VOLATILITY_SQL
from bench.measure.cold import cold_cache, cold_samples
from bench.measure.environment import environment
from bench.errors import DatabaseError, InputError, TaskbenchError, first_line
from bench.catalogue.params import Drawer, Pools, pools_for
from bench.measure.plan import EXPLAIN_ANALYZE, PlanFacts, plan_facts, timings
from bench.progress import Advance, no_progress
from bench.results import Cell, ColdCache, Dataset, Results, RunConfig, Samples, VariantResult, new_run_id
from bench.measure.stability import plan_stability
from bench.judge.stats import summarize, verdict
from bench.targets.target import Target, connect_async, scratch_copy
from bench.catalogue.variants import apply_variant, remove_variant, snapshot, variant_cost


T = TypeVar("T")


@dataclass(frozen=True)
class RunOptions:
    # An order-statistic upper bound on p95 at 95% confidence needs at least 73 samples.
    samples: int = 100
    max_samples: int = 400
    warmup: int = 5
    seed: int = 1
    confidence: float = 0.95
    early_look: int = 30  # a cell already failing at this many samples is called then (0: never)
    cold_samples: int = 5  # per cell; 0 skips the cold pass
    stability_rounds: int = 3  # re-ANALYZEs; 0 skips the check


@dataclass
class _Sample:
    client_ms: float
    explain: list[Any]
    wal_bytes: int | None = None  # writes only


_WAL_SINCE = "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)"


@asynccontextmanager
async def rolled_back(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction that is always rolled back: a write scenario's statement leaves no row behind."""
    tx = conn.transaction()
    await tx.start()
    try:
        yield
    finally:
        await tx.rollback()


async def _read_sample(conn: asyncpg.Connection, sql: str, explain_sql: str, args: list) -> _Sample:
    started = time.perf_counter_ns()
    await conn.fetch(sql, *args)
    client_ms = (time.perf_counter_ns() - started) / 1e6
    return _Sample(client_ms, json.loads(await conn.fetchval(explain_sql, *args)))


async def _write_sample(conn: asyncpg.Connection, sql: str, explain_sql: str, args: list) -> _Sample:
    """The statement alone is timed (BEGIN and ROLLBACK are not the app's); EXPLAIN ANALYZE executes
    the write too, so it gets a rolled-back transaction of its own."""
    async with rolled_back(conn):
        lsn = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        started = time.perf_counter_ns()
        await conn.fetch(sql, *args)
        client_ms = (time.perf_counter_ns() - started) / 1e6
        wal = int(await conn.fetchval(_WAL_SINCE, lsn))
    async with rolled_back(conn):
        explain = json.loads(await conn.fetchval(explain_sql, *args))
    return _Sample(client_ms, explain, wal)


# The early look calls "fail" only at this stricter confidence: looking at the data twice must
# not make a wrong "fail" likelier than the stated 95%.
EARLY_CONFIDENCE = 0.99


def _looks(opts: RunOptions) -> list[int]:
    """Sample counts at which the verdict is taken: the early look, then ``samples`` doubling
    up to ``max_samples``."""
    looks = [opts.early_look] if 0 < opts.early_look < opts.samples else []
    n = opts.samples
    while True:
        looks.append(n)
        if n >= opts.max_samples:
            return looks
        n = min(n * 2, opts.max_samples)


def scenario_error(exc: asyncpg.PostgresError, scenario: Scenario, variant: str | None = None) -> TaskbenchError:
    """A scenario's SQL that the server rejects (syntax, unknown column, bad cast: SQLSTATE classes
    42 and 22) is a mistake in its file; anything else is the server's."""
    where = f"scenario {scenario.name!r}" + (f" under variant {variant!r}" if variant else "")
    if (exc.sqlstate or "")[:2] in ("42", "22"):
        return InputError(f"{where}: the server rejected its SQL: {first_line(exc)}")
    return DatabaseError(f"{where}: {first_line(exc)}")


async def check_sql(conn: asyncpg.Connection, catalog: Catalog, pools: Pools) -> None:
    """Have the server parse and plan every scenario before any variant is built, so a mistake in a
    scenario file stops the run in its first second, not after an hour of other cells. A read
    scenario may call no function this server marks volatile (pg_sleep, set_config, nextval,
    dblink...): which functions are volatile is the server's knowledge, so it is asked here."""
    for scenario in catalog.scenarios:
        if scenario.kind == "read" and scenario.query.functions:
            volatile = [r[0] for r in await conn.fetch(VOLATILITY_SQL, sorted(scenario.query.functions))]
            if volatile:
                raise InputError(f"scenario {scenario.name!r}: a read scenario calls {', '.join(volatile)}, which "
                                 "this server marks volatile (it may change state); declare kind = \"write\" "
                                 "if it is one")
        try:
            await conn.prepare(Drawer(scenario, pools, seed=0).sql)
        except asyncpg.PostgresError as exc:
            raise scenario_error(exc, scenario) from None


async def measure_cell(conn: asyncpg.Connection, scenario: Scenario, variant: str, pools: Pools,
                       opts: RunOptions) -> Cell:
    drawer = Drawer(scenario, pools, opts.seed)
    sql = drawer.sql
    explain_sql = EXPLAIN_ANALYZE + sql
    sample = _write_sample if scenario.kind == "write" else _read_sample
    for _ in range(opts.warmup):
        await sample(conn, sql, explain_sql, drawer.draw())
    client: list[float] = []
    execution: list[float] = []
    planning: list[float] = []
    buffers: list[int] = []
    fingerprints: list[str] = []
    wal: list[int] = []
    plans: dict[str, PlanFacts] = {}
    for target_n in _looks(opts):
        while len(client) < target_n:
            s = await sample(conn, sql, explain_sql, drawer.draw())
            facts = plan_facts(s.explain)
            e_ms, p_ms = timings(s.explain)
            if s.wal_bytes is not None:
                wal.append(s.wal_bytes)
            client.append(round(s.client_ms, 4))
            execution.append(round(e_ms, 4))
            planning.append(round(p_ms, 4))
            buffers.append(facts.shared_hit + facts.shared_read)
            fingerprints.append(facts.fingerprint)
            plans.setdefault(facts.fingerprint, facts)
        if target_n < opts.samples:  # the early look: only a clear failure ends the cell here
            if (call := verdict(client, scenario.sla_ms, EARLY_CONFIDENCE)) == "fail":
                break
            continue
        if (call := verdict(client, scenario.sla_ms, opts.confidence)) != "inconclusive":
            break
    common = Counter(fingerprints).most_common(1)[0][0]
    return Cell(scenario=scenario.name, variant=variant, sla_class=scenario.sla_class, sla_ms=scenario.sla_ms,
                sql=sql, kind=scenario.kind, warmup=opts.warmup,
                samples=Samples(client_ms=client, execution_ms=execution, planning_ms=planning,
                                buffers=buffers, plan_fingerprints=fingerprints, wal_bytes=wal),
                client=summarize(client, opts.confidence), execution=summarize(execution, opts.confidence),
                verdict=call, plan=plans[common], plan_count=len(plans))


class _Clock:
    """Seconds spent per phase of the run: the answer to "where does the time go"."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)


async def _measure_variant(conn: asyncpg.Connection, catalog: Catalog, variant: Variant,
                           pools: Pools, opts: RunOptions, cold: ColdCache, clock: _Clock,
                           on_cell: Callable[[], None]) -> tuple[VariantResult, list[Cell]]:
    applied = await snapshot(conn, variant)
    with clock.phase("build indexes"):
        await apply_variant(conn, applied)
        cost = await variant_cost(conn, applied)
    cells = []
    for scenario in catalog.scenarios:
        with clock.phase("warm-up and samples"):
            try:
                cell = await measure_cell(conn, scenario, variant.name, pools, opts)
            except asyncpg.PostgresError as exc:
                raise scenario_error(exc, scenario, variant.name) from None
        if cold.available and opts.cold_samples and scenario.kind == "read":
            with clock.phase("cold samples"):
                cell.cold = await cold_samples(conn, Drawer(scenario, pools, opts.seed + 1), opts.cold_samples)
        cells.append(cell)
        on_cell()
    if opts.stability_rounds:
        with clock.phase("plan stability"):
            stable = await plan_stability(conn, catalog.scenarios, pools, opts.seed, opts.stability_rounds)
        for cell in cells:
            cell.stability = stable[cell.scenario]
    with clock.phase("build indexes"):
        await remove_variant(conn, applied)
    return cost, cells


async def _run(target: Target, seeded: Target, catalog: Catalog, opts: RunOptions, dataset: Dataset,
               clock: _Clock, advance: Advance) -> Results:
    conn = await connect_async(target)
    cells: list[Cell] = []
    variants: list[VariantResult] = []
    total = len(catalog.variants) * len(catalog.scenarios)
    try:
        env = await environment(conn, seeded)  # the seeded database is what the results describe
        cold = await cold_cache(conn)
        pools = await pools_for(conn, catalog.scenarios, date.fromisoformat(dataset.profile["anchor_date"]))
        await check_sql(conn, catalog, pools)
        done = 0

        def on_cell() -> None:
            nonlocal done
            done += 1
            advance("measure cells", done, total)

        advance("measure cells", 0, total)
        for variant in catalog.variants:
            cost, measured = await _measure_variant(conn, catalog, variant, pools, opts, cold, clock,
                                                    on_cell)
            variants.append(cost)
            cells.extend(measured)
    finally:
        await conn.close()
    return Results(run_id=new_run_id(), created_at=datetime.now(timezone.utc), environment=env,
                   dataset=dataset, config=RunConfig(**asdict(opts)), cold_cache=cold, variants=variants,
                   cells=cells, phase_seconds=clock.seconds, connection=seeded.probe)


def run_measurement(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop where it exists: its per-call overhead is ~30% below asyncio's
    (measured: 0.072 vs 0.101 ms for a primary-key lookup; pgbench 0.070 ms), and that overhead
    is part of every client round trip the samples record. Ctrl-C handling is asyncio.Runner's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run(target: Target, catalog: Catalog, opts: RunOptions = RunOptions(),
        advance: Advance = no_progress) -> Results:
    info = schema.dataset_info(target)
    if not info:
        raise DatabaseError(f"database {target.database!r} holds no complete dataset: run `taskbench seed` first")
    clock = _Clock()
    started = time.perf_counter()
    with scratch_copy(target, "run") as copy:
        clock.seconds["scratch copy"] = round(time.perf_counter() - started, 3)
        return run_measurement(_run(copy, target, catalog, opts, Dataset.model_validate(info), clock, advance))
