"""Run every scenario under every variant and collect the measurements into ``Results``.

Per cell: warm-up executions, then samples over freshly drawn parameters. Each sample is the
client round trip of the plain query (what the app feels) and, with the same parameters,
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) for server timings and plan facts. An inconclusive SLA
verdict gets more samples, up to ``max_samples``, before it is called.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone

import asyncpg

from . import schema
from .catalog import Catalog, Scenario
from .environment import environment
from .errors import DatabaseError
from .params import Drawer, Pools, load_pools
from .plan import PlanFacts, plan_facts, timings
from .progress import Advance, no_progress
from .results import Cell, Dataset, Results, RunConfig, Samples, VariantResult, new_run_id
from .stats import summarize, verdict
from .target import Target, connect_async
from .variants import Applied, apply_variant, remove_variant, snapshot, variant_cost


@dataclass(frozen=True)
class RunOptions:
    # An order-statistic upper bound on p95 at 95% confidence needs at least 73 samples.
    samples: int = 100
    max_samples: int = 400
    warmup: int = 5
    seed: int = 1
    confidence: float = 0.95


async def _sample(conn: asyncpg.Connection, sql: str, explain_sql: str, args: list) -> tuple[float, list]:
    started = time.perf_counter_ns()
    await conn.fetch(sql, *args)
    client_ms = (time.perf_counter_ns() - started) / 1e6
    explain = json.loads(await conn.fetchval(explain_sql, *args))
    return client_ms, explain


async def measure_cell(conn: asyncpg.Connection, scenario: Scenario, variant: str, pools: Pools,
                       opts: RunOptions) -> Cell:
    drawer = Drawer(scenario, pools, opts.seed)
    sql = drawer.sql
    explain_sql = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql
    for _ in range(opts.warmup):
        await conn.fetch(sql, *drawer.draw())
    client: list[float] = []
    execution: list[float] = []
    planning: list[float] = []
    buffers: list[int] = []
    fingerprints: list[str] = []
    plans: dict[str, PlanFacts] = {}
    target_n = opts.samples
    while True:
        while len(client) < target_n:
            c_ms, explain = await _sample(conn, sql, explain_sql, drawer.draw())
            facts = plan_facts(explain)
            e_ms, p_ms = timings(explain)
            client.append(round(c_ms, 4))
            execution.append(round(e_ms, 4))
            planning.append(round(p_ms, 4))
            buffers.append(facts.shared_hit + facts.shared_read)
            fingerprints.append(facts.fingerprint)
            plans.setdefault(facts.fingerprint, facts)
        call = verdict(client, scenario.sla_ms, opts.confidence)
        if call != "inconclusive" or target_n >= opts.max_samples:
            break
        target_n = min(target_n * 2, opts.max_samples)
    common = Counter(fingerprints).most_common(1)[0][0]
    return Cell(scenario=scenario.name, variant=variant, sla_class=scenario.sla_class, sla_ms=scenario.sla_ms,
                sql=sql, warmup=opts.warmup,
                samples=Samples(client_ms=client, execution_ms=execution, planning_ms=planning,
                                buffers=buffers, plan_fingerprints=fingerprints),
                client=summarize(client, opts.confidence), execution=summarize(execution, opts.confidence),
                verdict=call, plan=plans[common], plan_count=len(plans))


async def _cleanup(target: Target, conn: asyncpg.Connection, applied: Applied) -> None:
    """Remove the variant on a fresh connection, after stopping whatever the run's connection was
    doing: an interrupt can arrive mid-build, and a CREATE INDEX left running would finish later."""
    fresh = await connect_async(target)
    try:
        pid = conn.get_server_pid()
        await fresh.execute("SELECT pg_cancel_backend($1)", pid)
        for _ in range(100):
            if not await fresh.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", pid):
                break
            await asyncio.sleep(0.1)
        await remove_variant(fresh, applied)
    finally:
        await fresh.close()


async def _run(target: Target, catalog: Catalog, opts: RunOptions, dataset: Dataset,
               advance: Advance) -> Results:
    conn = await connect_async(target)
    cells: list[Cell] = []
    variants: list[VariantResult] = []
    total = len(catalog.variants) * len(catalog.scenarios)
    try:
        env = await environment(conn, target)
        kinds = {v for s in catalog.scenarios for v in s.params.values() if isinstance(v, str)}
        today = date.fromisoformat(dataset.profile["anchor_date"])
        pools = await load_pools(conn, kinds, today)
        advance("measure cells", 0, total)
        for variant in catalog.variants:
            applied = await snapshot(conn, variant)
            try:
                await apply_variant(conn, applied)
                variants.append(await variant_cost(conn, applied))
                for scenario in catalog.scenarios:
                    cells.append(await measure_cell(conn, scenario, variant.name, pools, opts))
                    advance("measure cells", len(cells), total)
            finally:
                await _cleanup(target, conn, applied)
    finally:
        await conn.close()
    return Results(run_id=new_run_id(), created_at=datetime.now(timezone.utc), environment=env,
                   dataset=dataset, config=RunConfig(**asdict(opts)), variants=variants, cells=cells)


def run(target: Target, catalog: Catalog, opts: RunOptions = RunOptions(),
        advance: Advance = no_progress) -> Results:
    info = schema.dataset_info(target)
    if not info:
        raise DatabaseError(f"database {target.database!r} holds no complete dataset: run `taskbench seed` first")
    return asyncio.run(_run(target, catalog, opts, Dataset.model_validate(info), advance))
