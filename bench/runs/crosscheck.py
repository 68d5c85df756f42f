"""Cross-check the harness's client latencies against pgbench, on the same database and queries.

For each chosen scenario, on a scratch copy of the seeded database (with one variant applied):
the parameter sets a run samples first (the user classes in turn, each from its own seeded stream)
are stored in a table, and pgbench (the one bundled with the embedded server, or on PATH) runs a
script that picks one at random, ``\\gset``s it, and runs the scenario's SQL with those values as
bind parameters (``-M prepared``, like asyncpg). The harness runs each stored set once, timed by
the runner's own ``execute``, and mirrors pgbench's transaction around it (the same lookup, then the
statement). Like is compared with like: the harness's mean statement time with pgbench's
per-statement average (``-r``), and the harness's median transaction with pgbench's median
transaction (``-l``). A cell is skewed (power users have 5× the tasks), so a median and a mean
of it differ by far more than the harnesses do: setting one against the other measured the skew.
Agreement within 15% on both, on at least three scenarios, is the criterion.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg

from bench.catalogue.files import Catalogue, Scenario, Variant
from bench.catalogue.params import Pools, class_drawers, pools_for
from bench.catalogue.variants import applied_new
from bench.errors import DatabaseError
from bench.measure.lock import measurement_lock
from bench.measure.options import RunOptions
from bench.measure.pgbench import STATEMENT_LINE, run_pgbench, script, store_params
from bench.measure.runner import execute, run_measurement, warm_up
from bench.runs.options import CROSSCHECK_TRANSACTIONS, CROSSCHECK_VARIANT
from bench.targets.schema import seeded_copy
from bench.targets.target import Target, connected

TOLERANCE = 0.15
REQUIRED = 3
PGBENCH_FACTOR = 4


@dataclass(frozen=True)
class CrossCheckOptions:
    variant: str = CROSSCHECK_VARIANT  # applied on the scratch copy
    transactions: int = CROSSCHECK_TRANSACTIONS  # the harness's executions; pgbench runs PGBENCH_FACTOR times as many
    run: RunOptions = field(default_factory=RunOptions)  # its seed, warm-up and measurement lock


@dataclass
class Agreement:
    scenario: str
    harness_mean_ms: float  # the statement alone, mean over the harness's executions
    pgbench_avg_ms: float  # the scenario statement's average (-r)
    harness_p50_ms: float  # the transaction (parameter lookup, then the statement), median
    pgbench_p50_ms: float  # median transaction latency (-l): the same lookup and statement

    @property
    def mean_difference(self) -> float:
        """The harness's mean statement time against pgbench's per-statement average."""
        return self.harness_mean_ms / self.pgbench_avg_ms - 1.0

    @property
    def p50_difference(self) -> float:
        """The harness's median transaction against pgbench's median transaction."""
        return self.harness_p50_ms / self.pgbench_p50_ms - 1.0

    @property
    def agrees(self) -> bool:
        return abs(self.mean_difference) <= TOLERANCE and abs(self.p50_difference) <= TOLERANCE


def _statement_latency(output: str, sql: str) -> float:
    """The scenario statement's average latency (ms) from pgbench -r's per-statement report."""
    head = " ".join(sql.split())[:40]
    for line in output.splitlines():
        match = STATEMENT_LINE.match(line)
        if match and " ".join(match.group(2).split()).startswith(head):
            return float(match.group(1))
    raise DatabaseError(f"pgbench reported no latency for the statement {head!r}:\n{output[-500:]}")


async def _harness(
    conn: asyncpg.Connection, sql: str, lookup: str, drawn: list[list[Any]]
) -> tuple[list[float], list[float]]:
    """Each stored parameter set once: (statement ms, transaction ms), the statement timed as a run's
    samples are and the transaction as pgbench's (its lookup, then the statement)."""
    statement, transaction = [], []
    for i, args in enumerate(drawn, start=1):
        started = time.perf_counter_ns()
        await conn.fetchrow(lookup, i)
        client_ms = (await execute(conn, sql, args, write=False)).client_ms
        transaction.append((time.perf_counter_ns() - started) / 1e6)
        statement.append(client_ms)
    return statement, transaction


async def _check(
    target: Target, scenarios: list[Scenario], variant: Variant, transactions: int, opts: RunOptions, today: date
) -> list[Agreement]:
    async with connected(target) as conn:
        await applied_new(conn, variant)  # never removed: the scratch copy is dropped with it
        pools: Pools = await pools_for(conn, scenarios, today)
        agreements = []
        for scenario in scenarios:
            # The parameter sets a run's cell samples first, in its order: the classes in turn. pgbench
            # picks among them at random, PGBENCH_FACTOR times as often, so its figures approach the
            # same population's.
            drawers = list(class_drawers(scenario, pools, opts.seed, "samples").values())
            drawn = [drawers[i % len(drawers)].draw().args for i in range(transactions)]
            order = list(scenario.query.params)
            table = f"tb_pgbench_{scenario.name}"
            await store_params(conn, table, order, drawn)
            lookup = f"SELECT {', '.join(order) or '1'} FROM {table} WHERE i = $1"
            await warm_up(
                conn,
                list(class_drawers(scenario, pools, opts.seed, "warm-up").values()),
                False,
                opts.warmup_seconds,
            )
            statement, transaction = await _harness(conn, drawers[0].sql, lookup, drawn)
            output, latencies = await asyncio.to_thread(
                run_pgbench,
                target,
                {"script.sql": script(scenario, table, transactions)},
                ["-t", str(transactions * PGBENCH_FACTOR)],
            )
            agreements.append(
                Agreement(
                    scenario.name,
                    statistics.mean(statement),
                    _statement_latency(output, scenario.sql),
                    statistics.median(transaction),
                    statistics.median(latencies),
                )
            )
        return agreements


def measure(target: Target, catalogue: Catalogue, opts: CrossCheckOptions = CrossCheckOptions()) -> list[Agreement]:
    """Harness vs pgbench per scenario, on a scratch copy of ``target`` with ``opts.variant`` applied.
    Agreements, not ``Results``, unlike the other kinds of run: the cross-check judges the harness
    itself and writes no results file. No progress callback: it takes seconds."""
    # pgbench would commit a write scenario's rows, and runs SQL a file wrote (with :name variables)
    chosen = catalogue.reads().hand_written().select(None, [opts.variant])
    chosen.refuse_policies("validate")
    run = opts.run
    # "validate": the command's name, which another measurement waiting for the lock is shown
    with (
        measurement_lock(target, "validate", run.concurrent, run.lock_wait),
        seeded_copy(target, "validate") as (copy, dataset),
    ):
        return run_measurement(
            _check(copy, chosen.scenarios, chosen.variants[0], opts.transactions, run, dataset.anchor_date)
        )


def passed(agreements: list[Agreement]) -> bool:
    return sum(a.agrees for a in agreements) >= REQUIRED


def render(agreements: list[Agreement], opts: CrossCheckOptions) -> list[str]:
    """Each scenario's harness and pgbench figures side by side, and how many agree."""
    n = opts.transactions
    lines = [
        f"variant {opts.variant}: harness {n} executions, pgbench {n * PGBENCH_FACTOR} "
        f"transactions over the same parameter sets (-M prepared -r -l, one client)",
        f"  {'scenario':24} {'statement mean':>14} {'pgbench avg':>11} {'diff':>7}   "
        f"{'transaction p50':>15} {'pgbench p50':>11} {'diff':>7}",
    ]
    for a in agreements:
        lines.append(
            f"  {a.scenario:24} {a.harness_mean_ms:12.3f}ms {a.pgbench_avg_ms:9.3f}ms "
            f"{a.mean_difference:+7.1%}   {a.harness_p50_ms:13.3f}ms {a.pgbench_p50_ms:9.3f}ms "
            f"{a.p50_difference:+7.1%}  "
            f"{'ok' if a.agrees else 'off'}"
        )
    agreeing = sum(a.agrees for a in agreements)
    lines.append(f"{agreeing} of {len(agreements)} scenarios within {TOLERANCE:.0%} on both (need {REQUIRED})")
    return lines
