"""Cross-check the harness's client latencies against pgbench, on the same database and queries.

For each chosen scenario, on a scratch copy of the seeded database (with one variant applied):
the parameter sets the runner's ``measure_cell`` will sample are stored in a table, and
pgbench (the one bundled with the embedded server, or on PATH) runs a script that picks one at
random, ``\\gset``s it, and runs the scenario's SQL with those values as bind parameters
(``-M prepared``, like asyncpg). Its per-statement average (``-r``) is set against the client p50
of the harness's own ``measure_cell`` on the same cell: agreement within 15% on at least three
scenarios is the criterion. Like-for-like figures are reported beside it — the harness's mean
against that average, and its p50 against pgbench's median transaction (``-l``) — because a
skewed cell (power users have 5× the tasks) has a mean well above its median.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from datetime import date

from bench.targets import schema
from bench.catalogue.files import Catalog, Scenario, Variant
from bench.errors import DatabaseError
from bench.catalogue.params import Drawer, Pools, pools_for
from bench.measure.pgbench import STATEMENT_LINE, run_pgbench, script, store_params
from bench.measure.runner import RunOptions, measure_cell, run_measurement
from bench.targets.target import Target, connect_async, scratch_copy
from bench.catalogue.variants import apply_variant, snapshot

DEFAULT_SCENARIOS = ("task_by_id", "open_task_count", "recent_tasks", "pending_tasks", "keyset_page_deep",
                     "last_messages")
TOLERANCE = 0.15
REQUIRED = 3
OPTIONS = RunOptions(samples=200, max_samples=200, warmup=10, early_look=0)
PGBENCH_FACTOR = 4


@dataclass
class Agreement:
    scenario: str
    harness_p50_ms: float
    harness_mean_ms: float
    pgbench_avg_ms: float  # the scenario statement's average (-r)
    pgbench_p50_ms: float  # median transaction latency (-l): the statement plus the parameter lookup

    @property
    def difference(self) -> float:
        """The harness's p50 against pgbench's per-statement average (the criterion)."""
        return self.harness_p50_ms / self.pgbench_avg_ms - 1.0

    @property
    def mean_difference(self) -> float:
        """Like for like: the harness's mean against pgbench's average."""
        return self.harness_mean_ms / self.pgbench_avg_ms - 1.0

    @property
    def p50_difference(self) -> float:
        """Like for like: the harness's p50 against pgbench's median transaction."""
        return self.harness_p50_ms / self.pgbench_p50_ms - 1.0

    @property
    def agrees(self) -> bool:
        return abs(self.difference) <= TOLERANCE


def _statement_latency(output: str, sql: str) -> float:
    """The scenario statement's average latency (ms) from pgbench -r's per-statement report."""
    head = " ".join(sql.split())[:40]
    for line in output.splitlines():
        match = STATEMENT_LINE.match(line)
        if match and " ".join(match.group(2).split()).startswith(head):
            return float(match.group(1))
    raise DatabaseError(f"pgbench reported no latency for the statement {head!r}:\n{output[-500:]}")


async def _check(target: Target, scenarios: list[Scenario], variant: Variant, opts: RunOptions,
                 today: date) -> list[Agreement]:
    conn = await connect_async(target)
    try:
        await apply_variant(conn, await snapshot(conn, variant))
        pools: Pools = await pools_for(conn, scenarios, today)
        agreements = []
        for scenario in scenarios:
            # The parameter sets measure_cell will sample, in order (it draws its warm-up first): the
            # harness runs each once, pgbench picks among them at random, PGBENCH_FACTOR times as
            # often, so its averages approach the same population's.
            drawer = Drawer(scenario, pools, opts.seed)
            for _ in range(opts.warmup):
                drawer.draw()
            table = f"tb_pgbench_{scenario.name}"
            await store_params(conn, table, drawer.order, [drawer.draw() for _ in range(opts.samples)])
            cell = await measure_cell(conn, scenario, variant.name, pools, opts)
            output, latencies = await asyncio.to_thread(
                run_pgbench, target, {"script.sql": script(scenario, table, opts.samples)},
                ["-t", str(opts.samples * PGBENCH_FACTOR)])
            agreements.append(Agreement(scenario.name, cell.client.p50.value, cell.client.mean,
                                        _statement_latency(output, scenario.sql), statistics.median(latencies)))
        return agreements
    finally:
        await conn.close()


def check_against_pgbench(target: Target, catalog: Catalog, variant: str = "baseline",
                          opts: RunOptions = OPTIONS) -> list[Agreement]:
    """Harness vs pgbench per scenario, on a scratch copy of ``target`` with ``variant`` applied."""
    info = schema.dataset_info(target)
    if not info:
        raise DatabaseError(f"database {target.database!r} holds no complete dataset: run `taskbench seed` first")
    today = date.fromisoformat(info["profile"]["anchor_date"])
    chosen = catalog.reads().select(None, [variant])  # pgbench would commit a write scenario's rows
    with scratch_copy(target, "validate") as copy:
        return run_measurement(_check(copy, chosen.scenarios, chosen.variants[0], opts, today))
