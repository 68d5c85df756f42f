"""Concurrent load: N clients, each on its own connection of an asyncpg pool, running a weighted
mix of scenarios for a duration — as fast as they can (closed loop) or at a fixed arrival rate
(open loop, Poisson arrivals split evenly over the clients, as pgbench ``-R``).

Under a fixed rate a request's latency runs from its *scheduled* start, so a client that falls
behind shows it (pgbench does the same, and reports the schedule lag apart). The share of
requests over their scenario's SLA is pgbench ``-L``'s count of late transactions.

The validity check runs pgbench on the same mix (``-f script@weight``), clients (``-c``, ``-j``),
duration (``-T``) and rate, over the very parameter sets the harness draws from, in the same run.
pgbench must fetch each parameter set with a query (``pgbench.script``), so for the comparison the
harness does the same — the same lookup, then the scenario, per transaction — in rounds that
alternate with pgbench's (this machine's speed drifts between minutes); the ratio is of medians.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import multiprocessing
import os
import random
import re
import resource
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, date, datetime
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier as BarrierType
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bench.catalogue.files import Catalogue, Scenario
from bench.catalogue.params import Drawer, pools_for
from bench.catalogue.variants import applied_new, variant_cost
from bench.errors import DatabaseError, InputError
from bench.judge.stats import summarize
from bench.measure.environment import environment
from bench.measure.lock import measurement_lock
from bench.measure.pgbench import STATEMENT_LINE, run_pgbench, script, store_params
from bench.measure.runner import run_measurement
from bench.results import (
    ColdCache,
    Dataset,
    LoadConfig,
    LoadResults,
    LoadScenario,
    PgbenchLoad,
    Results,
    new_run_id,
)
from bench.runs.options import LoadOptions
from bench.targets.roles import sampler
from bench.targets.schema import seeded_copy
from bench.targets.target import ASYNC_CONNECT_ERRORS, Target, connect_error, connected


@dataclass(frozen=True)
class Request:
    scenario: int
    scheduled: float  # perf_counter seconds; the send time in a closed loop
    sent: float
    done: float
    ok: bool


@dataclass(frozen=True)
class Workload:
    """What every request chooses from: scenarios, weights and pre-drawn parameter sets."""

    scenarios: list[Scenario]
    weights: list[int]
    sql: list[str]
    params: list[list[list[Any]]]
    lookups: list[str]  # pgbench's per-transaction parameter fetch, mirrored for the comparison
    # Named prepared statements, parsed once per connection (pgbench -M prepared). Off behind a
    # transaction-mode pooler, which may run each statement on another server session where the
    # name is unknown or already taken: then unnamed statements (pgbench -M extended), both sides.
    prepared: bool = True


def _unsent(next_at: float, deadline: float, rate: float, rng: random.Random) -> int:
    """Arrivals still scheduled before the deadline when the client ran out of time (pgbench's
    "skipped" under -R: a client that fell behind does not send its backlog after the end)."""
    n = 0
    while next_at < deadline:
        n += 1
        next_at += rng.expovariate(rate)
    return n


async def _statement(conn: PoolConnectionProxy, sql: str, prepared: bool) -> Callable[..., Awaitable[Any]]:
    """A coroutine function running ``sql`` with its arguments: a statement parsed once, or the
    text sent each time as an unnamed statement."""
    if prepared:
        return (await conn.prepare(sql)).fetch
    return functools.partial(conn.fetch, sql)


def _gone(conn: PoolConnectionProxy) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # a pool's proxy, detached once its connection was lost
        return True


async def _client(
    conn: PoolConnectionProxy,
    work: Workload,
    rng: random.Random,
    deadline: float,
    rate: float | None,
    mirror: bool,
    records: list[Request],
) -> int:
    """Send until the deadline; returns the arrivals left unsent (fixed rate only)."""
    statements = [await _statement(conn, sql, work.prepared) for sql in work.sql]
    lookups = [await _statement(conn, sql, work.prepared) for sql in work.lookups] if mirror else []
    cumulative = list(itertools.accumulate(work.weights))
    choices = range(len(statements))
    next_at = time.perf_counter()
    while True:
        if rate:
            next_at += rng.expovariate(rate)
            if next_at >= deadline:
                return 0
            if time.perf_counter() >= deadline:
                return _unsent(next_at, deadline, rate, rng)
            if (wait := next_at - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
        elif time.perf_counter() >= deadline:
            return 0
        i = rng.choices(choices, cum_weights=cumulative)[0]
        k = rng.randrange(len(work.params[i]))
        sent = time.perf_counter()
        try:
            if mirror:
                await lookups[i](k + 1)
            await statements[i](*work.params[i][k])
            ok = True
        # InternalClientError: asyncpg's, when the server ends the session while a request is being
        # sent ("cannot switch to state 12; another operation (2) is in progress", seen once in a
        # loaded make test): a failed request like the others, not the end of the whole load run.
        except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
            ok = False
        records.append(Request(i, next_at if rate else sent, sent, time.perf_counter(), ok))
        if not ok and _gone(conn):  # the server ended the session: this client is done
            return 0


@dataclass
class Sent:
    """What a set of clients did: every request, the arrivals left unsent, the CPU it cost."""

    records: list[Request]
    unsent: int = 0
    cpu_s: float = 0.0


async def drive(
    pool: asyncpg.Pool,
    work: Workload,
    clients: int,
    deadline: float,
    rate: float | None,
    seed: int,
    first_client: int = 0,
    mirror: bool = False,
) -> Sent:
    """Every client sends until ``deadline`` (perf_counter); a request in flight then completes and
    is counted. Each request is recorded exactly once, by the client that sent it. ``rate`` is per
    client; ``mirror`` adds pgbench's parameter lookup to each request."""
    records: list[Request] = []

    async def one(k: int) -> int:
        async with pool.acquire() as conn:
            return await _client(conn, work, random.Random(seed * 1000 + k), deadline, rate, mirror, records)

    unsent = await asyncio.gather(*(one(first_client + k) for k in range(clients)))
    return Sent(records, sum(unsent))


# Several job processes start their clients at one moment: each connects, then waits at a barrier
# whose last arrival sets the start. (A start fixed before the processes were spawned fell behind on
# a loaded machine: starting them took longer than the lead, the measured window had passed before
# a client was connected, and the run "completed no request".)
START_LEAD_S = 0.2  # from the last job's connections to the first request: every job wakes in time
CONNECT_WAIT_S = 60.0  # for every job's process to start and connect
_together: tuple[BarrierType, Synchronized[float]] | None = None  # this job process's, set by _join


def _join(barrier: BarrierType, start: Synchronized[float]) -> None:
    """The job processes' initializer: the barrier and the shared start they meet at."""
    global _together
    _together = (barrier, start)


def _set_start() -> None:
    """The barrier's action, run once by the last job to arrive, before any is released."""
    assert _together is not None
    _together[1].value = time.perf_counter() + START_LEAD_S


def _not_coming() -> None:
    """A job that could not connect: the others stop waiting for it at once."""
    if _together is not None:
        _together[0].abort()


async def _agreed_start() -> float:
    """This job's start: now, alone; with other jobs, once every one of them is connected."""
    if _together is None:
        return time.perf_counter()
    barrier, start = _together
    try:
        await asyncio.to_thread(barrier.wait, CONNECT_WAIT_S)
    except threading.BrokenBarrierError:
        raise DatabaseError(
            f"the load's {barrier.parties} client processes did not all start and connect within "
            f"{CONNECT_WAIT_S:g} s; try --jobs 1"
        ) from None
    return start.value


@dataclass(frozen=True)
class _Job:
    """One process's share of the clients (as pgbench -j splits clients over threads)."""

    connect: dict[str, Any]
    work: Workload
    clients: int
    first_client: int
    opts: LoadOptions
    mirror: bool = False


async def _run_job(job: _Job, display: str = "the target") -> Sent:
    """The job's requests, with the CPU seconds its process spent sending them."""
    o = job.opts
    per_client = o.rate / o.clients if o.rate else None
    try:
        pool = await asyncpg.create_pool(**job.connect, min_size=job.clients, max_size=job.clients, timeout=15)
    except ASYNC_CONNECT_ERRORS as exc:
        _not_coming()
        raise connect_error(exc, display) from None
    try:
        start_at = await _agreed_start()
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        if o.warmup:
            await drive(
                pool, job.work, job.clients, start_at + o.warmup, per_client, o.seed + 1, job.first_client, job.mirror
            )
        cpu = time.process_time()
        sent = await drive(
            pool,
            job.work,
            job.clients,
            start_at + o.warmup + o.duration,
            per_client,
            o.seed,
            job.first_client,
            job.mirror,
        )
        sent.cpu_s = time.process_time() - cpu
        return sent
    finally:
        await pool.close()


def _job_process(job: _Job, display: str) -> Sent:
    return run_measurement(_run_job(job, display))


def jobs_for(opts: LoadOptions) -> int:
    return max(1, min(opts.jobs or (os.cpu_count() or 1), opts.clients))


async def _drive_jobs(target: Target, work: Workload, opts: LoadOptions, mirror: bool = False) -> Sent:
    jobs = jobs_for(opts)
    if jobs == 1:
        return await _run_job(_Job(target.asyncpg_kwargs(), work, opts.clients, 0, opts, mirror), target.display)
    shares = [opts.clients // jobs + (k < opts.clients % jobs) for k in range(jobs)]
    firsts = list(itertools.accumulate([0, *shares[:-1]]))
    context = multiprocessing.get_context("spawn")
    together = (context.Barrier(jobs, action=_set_start), context.Value("d", 0.0))
    loop = asyncio.get_running_loop()
    try:
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_join, initargs=together) as pool:
            parts = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        pool,
                        _job_process,
                        _Job(target.asyncpg_kwargs(), work, n, first, opts, mirror),
                        target.display,
                    )
                    for n, first in zip(shares, firsts, strict=True)
                )
            )
    except BrokenProcessPool as exc:
        raise DatabaseError(f"a load process died ({exc}); try --jobs 1") from None
    return Sent([r for part in parts for r in part.records], sum(p.unsent for p in parts), sum(p.cpu_s for p in parts))


def summarize_load(sent: Sent, work: Workload, clients: int, rate: float | None, variant: str) -> LoadResults:
    records = sent.records
    if not records:
        raise DatabaseError("the load run completed no request")
    started = min(r.scheduled for r in records)
    elapsed = max(r.done for r in records) - started
    per = []
    for i, scenario in enumerate(work.scenarios):
        mine = [r for r in records if r.scenario == i]
        latencies = [(r.done - r.scheduled) * 1e3 for r in mine if r.ok]
        per.append(
            LoadScenario(
                scenario=scenario.name,
                sla_ms=scenario.sla_ms,
                weight=work.weights[i],
                requests=len(mine),
                errors=sum(not r.ok for r in mine),
                latency=summarize(latencies) if latencies else None,
                over_sla=sum(lat > scenario.sla_ms for lat in latencies) / len(latencies) if latencies else 0.0,
            )
        )
    ok = sum(r.ok for r in records)
    lag = [(r.sent - r.scheduled) * 1e3 for r in records] if rate else []
    return LoadResults(
        variant=variant,
        clients=clients,
        duration_s=round(elapsed, 3),
        rate=rate,
        requests=len(records),
        errors=len(records) - ok,
        unsent=sent.unsent,
        throughput=ok / elapsed,
        lag_ms=summarize(lag) if lag else None,
        scenarios=per,
    )


def parse_pgbench_load(output: str) -> tuple[float, int, float, float]:
    """tps, transactions, average latency, and the share of each transaction's time spent in the
    parameter lookup (from -r, weighted by each script's transactions)."""
    tps = re.search(r"^tps = ([\d.]+)", output, re.M)
    count = re.search(r"number of transactions actually processed: (\d+)", output)
    avg = re.search(r"^latency average = ([\d.]+) ms", output, re.M)
    if not (tps and count and avg) or float(tps.group(1)) <= 0:
        raise DatabaseError(f"cannot read pgbench's report:\n{output[-500:]}")
    lookup = total = 0.0
    for section in re.split(r"^SQL script \d+:", output, flags=re.M)[1:]:
        done = re.search(r"- (\d+) transactions", section)
        weight = int(done.group(1)) if done else 0
        # A script's statements, as pgbench.script writes them: \set, the lookup, the scenario.
        statements = [float(m.group(1)) for line in section.splitlines() if (m := STATEMENT_LINE.match(line))]
        if len(statements) == 3:
            total += weight * sum(statements)
            lookup += weight * statements[1]
    return float(tps.group(1)), int(count.group(1)), float(avg.group(1)), (lookup / total if total else 0.0)


def _params_table(scenario: Scenario) -> str:
    """Where a scenario's parameter sets wait for the clients and pgbench."""
    return f"tb_load_{scenario.name}"


async def _prepare(
    conn: asyncpg.Connection, catalogue: Catalogue, opts: LoadOptions, today: date, prepared: bool
) -> Workload:
    pools = await pools_for(conn, catalogue.scenarios, today)
    sql, params, lookups = [], [], []
    for scenario in catalogue.scenarios:
        drawer = Drawer(scenario, pools, opts.seed)
        drawn = [drawer.draw().args for _ in range(opts.param_sets)]
        order = list(scenario.query.params)  # a hand-written scenario's binds: pgbench's variables
        table = _params_table(scenario)
        await store_params(conn, table, order, drawn)
        sql.append(drawer.sql)
        params.append(drawn)
        lookups.append(f"SELECT {', '.join(order)} FROM {table} WHERE i = $1" if order else "SELECT $1::int")
    return Workload(
        catalogue.scenarios, [catalogue.mix[s.name] for s in catalogue.scenarios], sql, params, lookups, prepared
    )


def _pgbench_round(target: Target, work: Workload, opts: LoadOptions) -> tuple[float, int, float, float, float]:
    """tps, transactions, average latency, lookup share, and pgbench's CPU ms per transaction."""
    scripts = {
        f"{s.name}.sql@{w}": script(s, f"tb_load_{s.name}", opts.param_sets)
        for s, w in zip(work.scenarios, work.weights, strict=True)
    }
    options = ["-c", str(opts.clients), "-j", str(jobs_for(opts)), "-T", str(max(1, round(opts.duration)))]
    if opts.rate:
        options += ["-R", str(opts.rate)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output, _ = run_pgbench(target, scripts, options, log=False, mode="prepared" if work.prepared else "extended")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    tps, transactions, avg, share = parse_pgbench_load(output)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return tps, transactions, avg, share, cpu * 1e3 / transactions


async def _against_pgbench(target: Target, work: Workload, opts: LoadOptions) -> PgbenchLoad:
    """Alternate rounds: the harness mirroring pgbench's transactions, then pgbench."""
    harness, harness_cpu, runs = [], [], []
    for _ in range(opts.pgbench_rounds):
        sent = await _drive_jobs(target, work, opts, mirror=True)
        harness.append(summarize_load(sent, work, opts.clients, opts.rate, "").throughput)
        harness_cpu.append(sent.cpu_s * 1e3 / max(1, sum(r.ok for r in sent.records)))
        runs.append(await asyncio.to_thread(_pgbench_round, target, work, opts))
    tps = statistics.median(r[0] for r in runs)
    return PgbenchLoad(
        rounds=opts.pgbench_rounds,
        tps=tps,
        transactions=int(statistics.median(r[1] for r in runs)),
        latency_avg_ms=statistics.median(r[2] for r in runs),
        lookup_share=statistics.median(r[3] for r in runs),
        cpu_ms_per_tx=statistics.median(r[4] for r in runs),
        harness_tps=statistics.median(harness),
        ratio=statistics.median(harness) / tps,
        harness_cpu_ms_per_tx=statistics.median(harness_cpu),
    )


async def _load(target: Target, seeded: Target, catalogue: Catalogue, opts: LoadOptions, dataset: Dataset) -> Results:
    async with connected(target) as admin:
        env = await environment(admin, seeded)
        applied = await applied_new(admin, catalogue.variants[0])  # never removed: the scratch copy is dropped
        cost = await variant_cost(admin, applied)
        work = await _prepare(admin, catalogue, opts, dataset.anchor_date, prepared=target.host_kind != "pooler")
    # The clients, the harness's and pgbench's alike, are the samples' role (``roles``).
    with sampler(target, readable=[_params_table(s) for s in catalogue.scenarios]) as clients:
        load = summarize_load(
            await _drive_jobs(clients.target, work, opts), work, opts.clients, opts.rate, catalogue.variants[0].name
        )
        if opts.pgbench_rounds:
            load.pgbench = await _against_pgbench(clients.target, work, opts)
    return Results(
        run_id=new_run_id(),
        created_at=datetime.now(UTC),
        environment=env,
        dataset=dataset,
        config=LoadConfig(
            clients=opts.clients,
            jobs=jobs_for(opts),
            duration_s=opts.duration,
            rate=opts.rate,
            warmup_s=opts.warmup,
            seed=opts.seed,
            param_sets=opts.param_sets,
            pgbench_rounds=opts.pgbench_rounds,
        ),
        cold_cache=ColdCache(available=False, method="not measured under load"),
        variants=[cost],
        cells=[],
        phase_seconds={"load": load.duration_s},
        connection=seeded.probe,
        load=load,
    )


def measure(target: Target, catalogue: Catalogue, opts: LoadOptions = LoadOptions()) -> Results:
    """The mix of ``catalogue`` (its first variant applied) under load, on a scratch copy of the target.
    No progress callback, unlike the other kinds of run: it lasts ``opts.duration`` whatever happens."""
    if opts.clients < 1 or opts.duration <= 0 or (opts.rate is not None and opts.rate <= 0):
        raise InputError("load needs at least one client, a positive duration and a positive rate")
    if len(catalogue.variants) != 1:
        raise InputError("load runs under one variant (--variant)")
    catalogue.refuse_policies("load")
    with (
        measurement_lock(target, "load", opts.concurrent, opts.lock_wait) as measuring,
        seeded_copy(target, "load") as (copy, dataset),
    ):
        res = run_measurement(_load(copy, target, catalogue, opts, dataset))
        return res.model_copy(update={"conditions": measuring.finish()})


def parse_mix(items: list[str]) -> dict[str, int]:
    """``--mix SCENARIO=WEIGHT`` items as weights by scenario."""
    weights: dict[str, int] = {}
    for item in items:
        name, _, weight = item.partition("=")
        if not weight.isdigit():
            raise InputError(f"--mix takes SCENARIO=WEIGHT with a whole-number weight, not {item!r}")
        weights[name] = int(weight)
    return weights


def describe(opts: LoadOptions, variant: str) -> str:
    """What is about to be measured, in one line."""
    rate = f" at {opts.rate:g}/s" if opts.rate else ""
    pgbench = f", then {opts.pgbench_rounds} rounds against pgbench" if opts.pgbench_rounds else ""
    return f"load: {opts.clients} clients, {opts.duration:g} s{rate}, variant {variant}{pgbench}"


def render(res: Results) -> list[str]:
    """Throughput, each scenario's latency and share over its SLA, and pgbench's figures beside."""
    load = res.load
    assert load is not None, "a load run has its load section"
    lines = [
        f"{load.requests:,} requests in {load.duration_s:.1f} s: {load.throughput:,.0f}/s, {load.errors} errors"
        + (f", {load.unsent:,} arrivals never sent (behind schedule at the end)" if load.unsent else "")
        + (f"; schedule lag p95 {load.lag_ms.p95.value:.2f} ms" if load.lag_ms else ""),
        f"  {'scenario':26} {'weight':>6} {'requests':>9} {'p50':>8} {'p95':>8} {'p99':>8} {'SLA':>5} {'over SLA':>8}",
    ]
    for s in load.scenarios:
        lat = s.latency
        cols = (
            f"{lat.p50.value:8.2f} {lat.p95.value:8.2f} {lat.p99.value:8.2f}" if lat else f"{'–':>8} {'–':>8} {'–':>8}"
        )
        lines.append(f"  {s.scenario:26} {s.weight:6.0f} {s.requests:9,} {cols} {s.sla_ms:5.0f} {s.over_sla:8.2%}")
    if p := load.pgbench:
        lines.append(
            f"same transactions as pgbench (parameter lookup + scenario), medians of {p.rounds} alternating "
            f"rounds: harness {p.harness_tps:,.0f}/s, pgbench {p.tps:,.0f}/s → {p.ratio:.2f}× (client CPU per "
            f"transaction: harness {p.harness_cpu_ms_per_tx:.3f} ms, pgbench {p.cpu_ms_per_tx:.3f} ms)"
        )
    return lines
