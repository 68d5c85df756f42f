"""Run every scenario under every variant and collect the measurements into ``Results``.

A run holds the server's measurement lock (``lock``, taken by each kind of run: ``bench.runs``) and
works on scratch copies of the seeded database (``CREATE DATABASE ... TEMPLATE``, each dropped
whatever happens), so neither its indexes, its statistics nor its rows are ever altered, and an
interrupted run leaves nothing behind. Per variant:

0. a fresh copy: a write cell's rolled-back rows leave dead tuples and index entries behind, which
   later reads visit (more buffers), so on a shared copy a variant's cells would depend on the
   variants measured before it — and a sharded run's on which shard measured it;
1. build its indexes, record their size and build time;
2. measure its cells (scenarios), interleaved: each cell is warmed up (plain executions from a
   parameter stream of its own, about half a second), then every round takes one sample from each
   cell still undecided, so a burst of machine noise lands on many cells a sample each instead of
   on one cell's run of consecutive samples (the test below counts samples as independent). A
   sample is the client round trip of the plain query (what the app feels); the verdict is the
   exact sequential test (``sequential``) on how many samples were over the SLA, per user class
   (ordinary and power users drawn in turn, each from its own seeded stream), the cell passing only
   when every class passes. The first K samples also run EXPLAIN (ANALYZE, BUFFERS, TIMING OFF,
   FORMAT JSON) with the same parameters, for server timings and plan facts: K parameter sets
   that are the same in every run, so plans and buffers pair sample by sample across runs. A cell
   whose time budget is spent stops inconclusive. A write scenario's sample runs each statement in
   a transaction that is rolled back (the WAL it wrote is recorded), so every other cell sees the
   seeded rows unchanged: its cells are the variant's write cost;
3. cold samples per read cell, where the target allows emptying the buffer cache (``cold``) — after
   every cell's warm samples, since emptying the cache mid-round would make the next samples cold;
4. plan stability across re-ANALYZEs (``stability``); then the copy is dropped, the variant in it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from bench.catalogue.files import Catalogue, Scenario, Variant
from bench.catalogue.params import (
    POWER_USER_RATIO,
    Drawer,
    Drawn,
    Pools,
    class_drawers,
    pools_for,
)
from bench.catalogue.sql import VOLATILITY_SQL, WRITE_GENERATORS
from bench.catalogue.variants import applied_new, variant_cost
from bench.errors import DatabaseError, InputError, TaskbenchError, first_line
from bench.judge.sequential import CONFIRM_BEFORE, ClassTest, Decision, combine, design_for_classes
from bench.judge.stats import mixture_summary, quantile_ci, summarize
from bench.measure.claims import Claim, as_user, claim_for, claim_nobody, policy_subject
from bench.measure.cold import cold_cache, cold_samples
from bench.measure.environment import environment
from bench.measure.isolation import check_isolation
from bench.measure.options import DEFAULT_PLAN_CACHE, MIN_TIMEOUT_MS, RunOptions, plan_cache
from bench.measure.plan import EXPLAIN_ANALYZE, EXPLAIN_ANALYZE_WAL, EXPLAIN_PLAN, plan_facts, timings, wal
from bench.measure.plancache import CellPlans, Counters, set_plan_cache
from bench.measure.rows import result_hash
from bench.measure.sharing import signature
from bench.measure.stability import plan_stability
from bench.measure.timeout import Session, TimedOut, client_limit, limited
from bench.measure.trees import timed_plans
from bench.progress import STEP, Advance, Clock
from bench.results import (
    Cell,
    ClassVerdict,
    ColdCache,
    Dataset,
    Environment,
    IsolationCheck,
    MatrixConfig,
    PlanFacts,
    Protocol,
    Results,
    Samples,
    StopReason,
    VariantResult,
    new_run_id,
)
from bench.targets import schema
from bench.targets.roles import sampler
from bench.targets.target import Target, connected, scratch_copy

T = TypeVar("T")

PROTOCOL = "sequential-exceedance"
PROTOCOL_VERSION = 1
WARMUP_MAX = 5  # executions; at least one is always run


@dataclass(frozen=True)
class Execution:
    client_ms: float
    rows: list[asyncpg.Record] | None  # a read's rows


async def execute(
    conn: asyncpg.Connection,
    sql: str,
    args: list[Any],
    write: bool,
    timeout_ms: int | None = None,
    claim: Claim | None = None,
) -> Execution:
    """Client milliseconds of one plain execution (and a read's rows). A write runs in a transaction
    that is rolled back; only the statement is timed (BEGIN and ROLLBACK are not the app's); its WAL
    comes from its EXPLAIN (``EXPLAIN_ANALYZE_WAL``). Under a policy variant the user's ``claim`` is
    set in the statement's transaction first (``claims``), untimed like BEGIN. Past ``timeout_ms``
    (the session's statement_timeout) it raises ``TimedOut``."""
    async with limited(timeout_ms), as_user(conn, claim, write):
        started = time.perf_counter_ns()
        rows = await conn.fetch(sql, *args, timeout=client_limit(timeout_ms))
        return Execution((time.perf_counter_ns() - started) / 1e6, None if write else rows)


async def explain_json(
    conn: asyncpg.Connection,
    explain_sql: str,
    args: list[Any],
    write: bool,
    timeout_ms: int | None = None,
    claim: Claim | None = None,
) -> list[Any]:
    """EXPLAIN ANALYZE executes the statement too: a write's gets a rolled-back transaction of its own,
    and under a policy variant it runs with the user's claim, like the sample it explains."""
    async with limited(timeout_ms), as_user(conn, claim, write):
        document: list[Any] = json.loads(await conn.fetchval(explain_sql, *args, timeout=client_limit(timeout_ms)))
        return document


def scenario_error(exc: asyncpg.PostgresError, scenario: Scenario, variant: str | None = None) -> TaskbenchError:
    """A scenario's SQL that the server rejects (syntax, unknown column, bad cast: SQLSTATE classes
    42 and 22) is a mistake in its file; anything else is the server's."""
    where = f"scenario {scenario.name!r}" + (f" under variant {variant!r}" if variant else "")
    if (exc.sqlstate or "")[:2] in ("42", "22"):
        return InputError(f"{where}: the server rejected its SQL: {first_line(exc)}")
    return DatabaseError(f"{where}: {first_line(exc)}")


async def check_sql(conn: asyncpg.Connection, catalogue: Catalogue, pools: Pools) -> None:
    """Have the server parse and plan every scenario before any variant is built, so a mistake in a
    scenario file stops the run in its first second, not after an hour of other cells. A read
    scenario may call no function this server marks volatile (pg_sleep, set_config, nextval,
    dblink...), a write none but the value generators a row may take (WRITE_GENERATORS): a
    volatile function may change state outside the statement's rolled-back transaction (an
    advisory lock, a file, another session), and which functions are volatile is the server's
    knowledge, so it is asked here. The role the samples run as refuses what this misses."""
    for scenario in catalogue.scenarios:
        called = sorted(scenario.functions)
        volatile = [r[0] for r in await conn.fetch(VOLATILITY_SQL, called)] if called else []
        if volatile:
            if scenario.kind == "read":
                raise InputError(
                    f"scenario {scenario.name!r}: a read scenario calls {', '.join(volatile)}, which "
                    'this server marks volatile (it may change state); declare kind = "write" '
                    "if it is one"
                )
            if refused := [name for name in volatile if name.rsplit(".", 1)[-1] not in WRITE_GENERATORS]:
                raise InputError(
                    f"scenario {scenario.name!r}: a write scenario calls {', '.join(refused)}, which this "
                    "server marks volatile: a write may call no volatile function but the value generators "
                    f"({', '.join(sorted(WRITE_GENERATORS))})"
                )
        try:
            for statement in scenario.statements:
                await conn.prepare(statement.sql)
        except asyncpg.PostgresError as exc:
            raise scenario_error(exc, scenario) from None


async def warm_up(
    conn: asyncpg.Connection,
    drawers: list[Drawer],
    write: bool,
    seconds: float,
    timeout_ms: int | None = None,
    claim: str | None = None,
) -> int:
    """Plain executions, the drawers' classes in turn, until ``seconds`` have passed: at least one (the
    statement is prepared and its pages read), at most WARMUP_MAX (a slow query must not spend its
    cell's budget warming up). Returns how many ran; ``TimedOut.index`` says which one timed out."""
    started, runs = time.perf_counter(), 0
    while runs < 1 or (runs < WARMUP_MAX and time.perf_counter() - started < seconds):
        try:
            drawn = drawers[runs % len(drawers)].draw()
            await execute(conn, drawn.sql, drawn.args, write, timeout_ms, claim_for(claim, drawn.user))
        except TimedOut as cut:
            cut.index = runs
            raise
        runs += 1
    return runs


@dataclass
class _Class:
    """One user class of a cell under the sequential test."""

    name: str
    drawer: Drawer
    test: ClassTest
    client: list[float] = field(default_factory=list)  # every sample, a first test's too
    decision: Decision = "continue"
    n: int = 0  # samples of the deciding test when decided or stopped
    decided_exceedances: int = 0
    stopped_by: StopReason = "boundary"
    resume_at: float = 0.0  # an early fail measured again: no sample before this (perf_counter)

    def stop(self, decision: Decision, reason: StopReason) -> None:
        self.decision, self.stopped_by = decision, reason
        self.n, self.decided_exceedances = self.test.n, self.test.exceedances


class _CellRun:
    """A cell being measured: its classes, its samples so far, the time it has spent."""

    def __init__(
        self, scenario: Scenario, variant: str, pools: Pools, opts: RunOptions, claim: str | None = None
    ) -> None:
        self.scenario, self.variant, self.opts = scenario, variant, opts
        self.claim = claim  # the setting each sample sets to its user under a policy variant
        drawers = class_drawers(scenario, pools, opts.seed, "samples")
        self.design = design_for_classes(len(drawers))
        self.classes = [_Class(name, drawer, ClassTest(self.design)) for name, drawer in drawers.items()]
        # Its own stream: however many executions the warm-up takes, the samples' parameters stay put.
        self.warm = list(class_drawers(scenario, pools, opts.seed, "warm-up").values())
        self.sql = self.classes[0].drawer.sql  # the statement, or the first of an ORM scenario's
        self.write = scenario.kind == "write"
        self.explain = EXPLAIN_ANALYZE_WAL if self.write else EXPLAIN_ANALYZE
        self.samples = Samples(
            client_ms=[], user_class=[], at_s=[], execution_ms=[], planning_ms=[], buffers=[], plan_fingerprints=[]
        )
        self.plans: dict[str, PlanFacts] = {}
        self.timeout_ms = opts.statement_timeout_ms(scenario.sla_ms)
        self.warmup = 0
        self.seconds = 0.0
        self.turn = 0
        self.over_budget = False
        self.timed_out = False
        self.cache: CellPlans | None = None  # on a server-side session: the plans its statements ran

    @property
    def verdict(self) -> Decision:
        return combine([c.decision for c in self.classes])

    def _wanting(self) -> list[_Class]:
        """Classes that need another sample: undecided while the cell is, or short of the minimum."""
        cap = self.design.looks[-1]
        undecided = self.verdict == "continue"
        return [
            c
            for c in self.classes
            if (undecided and c.decision == "continue") or len(c.client) < min(self.opts.min_samples, cap)
        ]

    @property
    def running(self) -> bool:
        return not self.over_budget and not self.timed_out and bool(self._wanting())

    async def warm_up(self, session: Session, since: float) -> None:
        await session.limit(self.timeout_ms)
        started = time.perf_counter()
        try:
            self.warmup = await warm_up(
                session.conn, self.warm, self.write, self.opts.warmup_seconds, self.timeout_ms, self.claim
            )
        except TimedOut as cut:  # a warm-up execution is the app's query too: past the limit, it fails
            self.warmup = cut.index
            cls = self.classes[cut.index % len(self.classes)]
            await self._timed_out(session, cls, cut, cls.drawer.draw(), started, since)
        self.seconds += time.perf_counter() - started

    async def _timed_out(
        self, session: Session, cls: _Class, cut: TimedOut, drawn: Drawn, started: float, since: float
    ) -> None:
        """A sample over the statement timeout is over the SLA many times: the cell fails at once. Its
        plan is still wanted (what made it slow): EXPLAIN without ANALYZE, which only plans."""
        self.timed_out = True
        self._record(cls, cut.elapsed_ms, started, since)
        cls.test.add(True)  # counted, whatever the look: the cell fails at once
        cls.stop("fail", "timeout")
        if not self.plans:
            await session.reset()  # planning alone is not the app's query: the set-up limit
            # under a policy variant planned as the connection's user who owns nothing (``claims``)
            explain = await session.conn.fetchval(EXPLAIN_PLAN + drawn.sql, *drawn.args)
            estimated = plan_facts(json.loads(explain))
            self.plans[estimated.fingerprint] = estimated

    def _record(self, cls: _Class, client_ms: float, started: float, since: float) -> None:
        self.samples.client_ms.append(round(client_ms, 4))
        self.samples.user_class.append(cls.name)
        self.samples.at_s.append(round(started - since, 6))  # µs: a fast cell's samples are 0.1 ms apart
        cls.client.append(client_ms)

    async def step(self, session: Session, since: float) -> bool:
        """One sample of the next class in turn, or the budget's stop; False when it took none (its
        classes are pausing before an early fail is measured again). The budget is in samples first:
        it stops a cell only once every class still undecided has reached the first look a pass is
        possible at (a fail needs fewer), so a slow cell that is clearly under its SLA can pass
        whatever its mean; the statement timeout bounds each of those samples."""
        if self.seconds >= self.opts.cell_budget and all(
            c.test.n >= self.design.pass_from or c.decision != "continue" for c in self.classes
        ):
            self.over_budget = True
            for c in self.classes:
                if c.decision == "continue":
                    c.stop(self.design.decide(c.test.n, c.test.exceedances, budget_exhausted=True), "budget")
            return False
        now = time.perf_counter()
        wanting = [c for c in self._wanting() if c.resume_at <= now]
        if not wanting:
            return False
        cls = wanting[self.turn % len(wanting)]
        self.turn += 1
        drawn = cls.drawer.draw()
        claim = claim_for(self.claim, drawn.user)
        await session.limit(self.timeout_ms)
        conn = session.conn
        if self.cache is not None:
            await self.cache.before(drawn.sql)
        started = time.perf_counter()
        try:
            done = await execute(conn, drawn.sql, drawn.args, self.write, self.timeout_ms, claim)
            explain = None
            if len(self.samples.client_ms) < self.opts.explain_samples:
                explain = await explain_json(
                    conn, self.explain + drawn.sql, drawn.args, self.write, self.timeout_ms, claim
                )
        except TimedOut as cut:
            await self._timed_out(session, cls, cut, drawn, started, since)
            self.seconds += time.perf_counter() - started
            return True
        if self.cache is not None:
            self.cache.after(drawn.sql, cls.name)
        if explain is not None:
            if self.cache is not None:
                await self.cache.probe(drawn, cls.name, lambda sql, args: self._timed(conn, sql, args, claim))
            if done.rows is not None:  # the same parameter sets in every run: their rows must not change
                self.samples.result_hashes.append(result_hash(done.rows, self.scenario.query.ordered))
            facts = plan_facts(explain)
            execution_ms, planning_ms = timings(explain)
            self.samples.execution_ms.append(round(execution_ms, 4))
            self.samples.planning_ms.append(round(planning_ms, 4))
            self.samples.buffers.append(facts.shared_hit + facts.shared_read)
            self.samples.plan_fingerprints.append(facts.fingerprint)
            self.samples.temp_blocks.append(facts.temp_blocks)
            if self.write:
                written, full_pages = wal(explain)
                self.samples.wal_bytes.append(written)
                self.samples.wal_fpi.append(full_pages)
            self.plans.setdefault(facts.fingerprint, facts)
        self.seconds += time.perf_counter() - started
        self._record(cls, done.client_ms, started, since)
        self._judge(cls, done.client_ms > self.scenario.sla_ms)
        return True

    async def _timed(self, conn: asyncpg.Connection, sql: str, args: list[Any], claim: Claim | None) -> float:
        return (await execute(conn, sql, args, False, self.timeout_ms, claim)).client_ms

    def _judge(self, cls: _Class, over: bool) -> None:
        """Count the sample in the class's test and apply what it says. A class sampled on after its
        cell was decided (for the minimum) is still judged: its own test is as valid, and no later
        verdict can change a fail."""
        if cls.decision != "continue":
            return
        step = cls.test.add(over)
        if step == "again":  # an early fail: measured again after a pause, the count from nothing
            cls.resume_at = time.perf_counter() + self.opts.confirm_pause_s
        elif step in ("pass", "fail"):
            cls.stop(step, "boundary")
        elif step == "borderline":  # the last look is borderline too: the cell sits at the line
            cls.stop(step, "cap" if cls.test.n == self.design.looks[-1] else "borderline")

    def _decided_by(self, verdict: Decision, p95: dict[str, float], sampled: list[_Class]) -> _Class:
        """The first class to fail; for a pass the last to pass; else the first class with the cell's
        verdict (borderline or inconclusive). Ties go to the class with the higher p95: the one nearer
        the SLA, or further over it."""
        if verdict == "fail":
            return min((c for c in sampled if c.decision == "fail"), key=lambda c: (c.n, -p95[c.name]))
        if verdict == "pass":
            return max(sampled, key=lambda c: (c.n, p95[c.name]))
        return next(c for c in sampled if c.decision == verdict)

    def _counts(self, user_class: str) -> dict[str, int | None]:
        if self.cache is None:
            return {"custom_plans": None, "generic_plans": None}
        custom, generic = self.cache.counts(user_class)
        return {"custom_plans": custom, "generic_plans": generic}

    def cell(self) -> Cell:
        verdict = self.verdict
        assert verdict != "continue", "a cell is only built once it has stopped"
        for c in self.classes:  # still undecided when another class failed the cell
            if c.decision == "continue":
                c.stop("inconclusive", "cell")
        # a cell that timed out at its first execution has a sample of one class only
        sampled = [c for c in self.classes if c.client]
        p95 = {c.name: quantile_ci(c.client, 0.95) for c in sampled}
        classes = [
            ClassVerdict(
                user_class=c.name,
                users=len(c.drawer.users),
                samples=len(c.client),
                n=c.n,
                exceedances=c.decided_exceedances,
                refailed_at=c.test.refailed_at,
                decision=c.decision,
                stopped_by=c.stopped_by,
                p95=p95[c.name],
                **self._counts(c.name),
            )
            for c in sampled
        ]
        # a cell that timed out before any EXPLAIN ANALYZE finished has its estimated plan only
        common = Counter(self.samples.plan_fingerprints or list(self.plans)).most_common(1)[0][0]
        return Cell(
            scenario=self.scenario.name,
            variant=self.variant,
            sla_class=self.scenario.sla_class,
            sla_ms=self.scenario.sla_ms,
            sql=self.sql,
            kind=self.scenario.kind,
            scenario_sql=self.scenario.sql,
            orm=self.scenario.orm,
            params=dict(self.scenario.params),
            warmup=self.warmup,
            samples=self.samples,
            # the users as the dataset has them, not the classes' turns: weighted by their share
            client=summarize(self.samples.client_ms)
            if len(sampled) == 1
            else mixture_summary([(c.client, len(c.drawer.users)) for c in sampled]),
            execution=summarize(self.samples.execution_ms) if self.samples.execution_ms else None,
            verdict=verdict,
            classes=classes,
            decided_by=self._decided_by(verdict, {k: q.value for k, q in p95.items()}, sampled).name,
            seconds=round(self.seconds, 3),
            plan=self.plans[common],
            plan_count=len(self.plans),
            generic=self.cache.check(self.samples.plan_fingerprints) if self.cache else None,
            statement_timeout_ms=self.timeout_ms,
            claim=self.claim,
            explicit=self.scenario.explicit,
        )


async def measure_cells(
    conn: asyncpg.Connection,
    scenarios: list[Scenario],
    variant: str,
    pools: Pools,
    opts: RunOptions,
    since: float | None = None,
    on_cell: Callable[[], None] = lambda: None,
    server_side: bool = True,
    claim: str | None = None,
) -> list[Cell]:
    """Measure ``scenarios`` under the variant applied on ``conn``, interleaved: every round takes one
    sample from each cell still running. One sample per cell per round (not a look's worth) keeps
    a cell's consecutive samples a whole round apart, so noise that lasts a moment is shared out
    among the cells; ``since`` is the clock the samples' start times count from. The reads are
    measured first and the writes after them: a rolled-back write leaves dead rows and index
    entries behind, and reads interleaved with writes would read more pages the longer the run
    went on (seen: a partial index's count 68 → 78 buffers), which no committed buffer count could
    then be judged against. Results keep the catalogue's order. Every execution runs under its
    cell's statement timeout (``RunOptions.statement_timeout_ms``; ``server_side`` False behind a
    pooler, where only the client's limit holds); the connection's own is back afterwards. ``claim``:
    the setting a policy variant's policies read, set to each sample's user in its transaction."""
    since = time.perf_counter() if since is None else since
    session = Session(conn, server_side)
    if server_side:
        await set_plan_cache(conn, plan_cache(opts.plan_cache))
    elif opts.plan_cache != DEFAULT_PLAN_CACHE:
        raise InputError(
            f"--plan-cache {opts.plan_cache} sets plan_cache_mode on the session, which a pooler does not keep"
        )
    try:
        reads = await _measure_group(
            session, [s for s in scenarios if s.kind == "read"], variant, pools, opts, since, on_cell, claim
        )
        writes = await _measure_group(
            session, [s for s in scenarios if s.kind == "write"], variant, pools, opts, since, on_cell, claim
        )
    finally:
        await session.reset()
        if server_side:
            await set_plan_cache(conn, DEFAULT_PLAN_CACHE)
    by_name = {c.scenario: c for c in [*reads, *writes]}
    return [by_name[s.name] for s in scenarios]


async def _measure_group(
    session: Session,
    scenarios: list[Scenario],
    variant: str,
    pools: Pools,
    opts: RunOptions,
    since: float,
    on_cell: Callable[[], None],
    claim: str | None,
) -> list[Cell]:
    cells = [_CellRun(s, variant, pools, opts, claim) for s in scenarios]
    counters = Counters(session.conn)  # read once a round (``settle``) for every cell's samples
    if session.server_side:  # a pooler's server sessions are not this connection's: nothing to count
        for cell in cells:
            # each class's share of the explained samples, the most pairs its generic check takes
            pairs = math.ceil(opts.explain_samples / len(cell.classes))
            cell.cache = CellPlans(counters, plan_cache(opts.plan_cache), cell.scenario.kind == "read", pairs)

    async def guarded(cell: _CellRun, work: Coroutine[Any, Any, T]) -> T:
        try:
            return await work
        except asyncpg.PostgresError as exc:
            raise scenario_error(exc, cell.scenario, variant) from None

    for cell in cells:
        await guarded(cell, cell.warm_up(session, since))
        if not cell.running:  # timed out in its warm-up
            on_cell()
    running = [cell for cell in cells if cell.running]
    rounds = 0
    while running:
        took = [await guarded(cell, cell.step(session, since)) for cell in _round_order(running, rounds)]
        await counters.settle()
        rounds += 1
        if not any(took):  # every cell left is pausing before an early fail is measured again
            await asyncio.sleep(0.05)
        for cell in running:
            if not cell.running:
                on_cell()
        running = [cell for cell in running if cell.running]
    return [cell.cell() for cell in cells]


def _round_order(cells: list[_CellRun], round_no: int) -> list[_CellRun]:
    """The order of a round: the catalogue's, but for an ORM scenario, which goes right beside its
    hand-written twin, the two taking turns at going first: their samples are compared pair by pair
    (``bench.judge.twins``), so, as a check's pairs, each pair is taken together and neither side
    always follows the other."""
    groups: dict[str, list[_CellRun]] = {}
    for cell in cells:
        orm = cell.scenario.orm
        groups.setdefault(orm.twin if orm and orm.twin else cell.scenario.name, []).append(cell)
    return [cell for group in groups.values() for cell in (group if round_no % 2 == 0 else group[::-1])]


def protocol(opts: RunOptions, pools: Pools, class_counts: set[int], privileges: str) -> Protocol:
    """The protocol this runner measures by, for results.json: enough to audit every verdict."""
    return Protocol(
        name=PROTOCOL,
        version=PROTOCOL_VERSION,
        classes=list(pools.classes),
        explain_samples=opts.explain_samples,
        warmup=f"plain executions from a parameter stream of their own for {opts.warmup_seconds:g} s: "
        f"at least 1, at most {WARMUP_MAX}",
        cell_budget_s=opts.cell_budget,
        min_samples=opts.min_samples,
        plan_cache=plan_cache(opts.plan_cache),
        parameters={
            "exceedance": "a plain execution's client time over the cell's SLA",
            "class_rule": f"power users: more than {POWER_USER_RATIO:g}x the median user's tasks; "
            "one class (all) when there are none",
            "sampling": "classes in turn within a cell, each from its own seeded stream; within a variant one "
            "sample per undecided cell per round",
            "combine": "a cell passes when every class passes and fails when any class fails",
            "designs": {str(k): design_for_classes(k).describe() for k in sorted(class_counts)},
            "confirmation": f"a class's fail at a look before n = {CONFIRM_BEFORE} is measured again from nothing "
            f"after a pause of {opts.confirm_pause_s:g} s; the second test's verdict stands",
            "statement_timeout": f"{opts.timeout_factor:g}x the cell's SLA, at least {MIN_TIMEOUT_MS} ms, on "
            "every execution (warm-up, samples, EXPLAIN ANALYZE, cold samples); an execution cut off by it is "
            "a sample over the SLA that fails its class and the cell at once",
            "samples_run_as": privileges,
        },
    )


async def _measure_variant(
    conn: asyncpg.Connection,
    samples: asyncpg.Connection,
    scenarios: list[Scenario],
    variant: Variant,
    pools: Pools,
    opts: RunOptions,
    cold: ColdCache,
    clock: Clock,
    since: float,
    on_cell: Callable[[], None],
    server_side: bool,
    earlier: Earlier,
    analyzers: Sequence[asyncpg.Connection],
) -> tuple[VariantResult, list[Cell]]:
    """Build the variant's indexes on ``conn`` (the connecting role: it owns the copy) and measure
    its cells on ``samples`` (the run's sampler role, ``roles``); ANALYZE and emptying the buffer
    cache stay with ``conn``. A cell whose signature is in ``earlier.cells`` (``sharing``) shares that
    cell's samples instead, and an isolation check in ``earlier.checks`` stands for this variant's;
    the ones made here join them (with ``RunOptions.share``). ``analyzers``: more connections of the
    owner, for the stability rounds' ANALYZEs."""
    claim = variant.claim
    if claim is not None and (refused := await policy_subject(samples)):
        raise InputError(f"variant {variant.name!r} has row-level security policies, but {refused}")
    await claim_nobody(samples, claim)
    with clock.phase("build indexes"):  # never removed: the copy is dropped with the variant in it
        cost = await variant_cost(conn, await applied_new(conn, variant))
    signatures: dict[str, str] = {}
    if opts.share:
        with clock.phase("plan check"):
            for s in scenarios:
                signatures[s.name] = await signature(
                    samples, s, pools, opts.seed, opts.explain_samples, cost.policies, claim
                )
    own = [s for s in scenarios if signatures.get(s.name) not in earlier.cells]
    with clock.phase("warm-up and samples"):
        fresh = await measure_cells(samples, own, variant.name, pools, opts, since, on_cell, server_side, claim)
    for cell in fresh:
        if cell.scenario in signatures:
            earlier.cells[signatures[cell.scenario]] = cell
    with clock.phase("plan trees"):
        await _draw_plans(Session(samples, server_side), own, fresh, pools, opts, claim)
    if cold.available and opts.cold_samples:
        with clock.phase("cold samples"):
            session = Session(samples, server_side)
            for scenario, cell in zip(own, fresh, strict=True):
                if scenario.kind == "read" and not cell.timed_out:
                    drawer = Drawer(scenario, pools, opts.seed + 1)
                    timeout_ms = opts.statement_timeout_ms(scenario.sla_ms)
                    cell.cold = await cold_samples(conn, session, drawer, opts.cold_samples, timeout_ms, cold, claim)
            await session.reset()
    by_name = {cell.scenario: cell for cell in fresh}
    cells = [by_name.get(s.name) or _shared(earlier.cells[signatures[s.name]], variant.name) for s in scenarios]
    for _ in range(len(scenarios) - len(own)):
        on_cell()
    if claim is not None:
        with clock.phase("isolation check"):
            checks = earlier.checks if opts.share else {}
            isolation = _Isolation(conn, samples, claim, tuple(cost.policies), server_side, checks)
            cells = [await isolation.checked(s, c, pools, opts) for s, c in zip(scenarios, cells, strict=True)]
    if opts.stability_rounds:  # per variant, shared or not: another index may win after an ANALYZE
        with clock.phase("plan stability"):
            stable = await plan_stability(
                [conn, *analyzers], samples, scenarios, pools, opts.seed, opts.stability_rounds, 5, claim
            )
        for cell in cells:
            cell.stability = stable[cell.scenario]
    return cost, cells


async def _draw_plans(
    session: Session, scenarios: list[Scenario], cells: list[Cell], pools: Pools, opts: RunOptions, claim: str | None
) -> None:
    """Each cell's plans timed node by node (``trees``), after every sample of the variant: each
    class's on the first parameter set its samples drew, as its user under a policy variant."""
    for scenario, cell in zip(scenarios, cells, strict=True):
        drawers = class_drawers(scenario, pools, opts.seed, "samples")
        first = {name: drawer.draw() for name, drawer in drawers.items()}
        timeout_ms = opts.statement_timeout_ms(scenario.sla_ms)
        await session.limit(timeout_ms)
        try:
            cell.plans = await timed_plans(session.conn, first, timeout_ms, cell.timed_out, claim)
        except asyncpg.PostgresError as exc:
            raise scenario_error(exc, scenario, cell.variant) from None
    await session.reset()


CheckKey = tuple[str, tuple[str, ...]]  # a scenario, and the policies' statements (which name the claim)


@dataclass
class Earlier:
    """What the variants measured before lend the later ones: each distinct cell by its signature
    (``sharing``), and each isolation check that finished, by scenario and policies."""

    cells: dict[str, Cell] = field(default_factory=dict)
    checks: dict[CheckKey, IsolationCheck] = field(default_factory=dict)


@dataclass(frozen=True)
class _Isolation:
    """A policy variant's isolation checks (``isolation``): ``conn`` owns the tables, ``samples`` is
    the samples' role, ``checks`` the checks that finished under the same policies before."""

    conn: asyncpg.Connection
    samples: asyncpg.Connection
    claim: str
    policies: tuple[str, ...]
    server_side: bool
    checks: dict[CheckKey, IsolationCheck]

    async def checked(self, scenario: Scenario, cell: Cell, pools: Pools, opts: RunOptions) -> Cell:
        """``cell`` with its isolation check when its scenario relies on row-level security; a failed
        check fails the cell whatever its latency: a query that shows one user another's rows breaks
        a promise no speed makes up for. A copy: a shared measurement stays as it was measured."""
        if scenario.explicit is None:
            return cell
        key = (scenario.name, self.policies)
        check = self.checks.get(key)
        if check is None:
            owner, sampler_session = Session(self.conn, self.server_side), Session(self.samples, self.server_side)
            timeout_ms = opts.statement_timeout_ms(scenario.sla_ms)
            check = await check_isolation(owner, sampler_session, scenario, self.claim, pools, opts.seed, timeout_ms)
            if not check.timed_out:  # a faster index might not have cut it off: not lent
                self.checks[key] = check.model_copy(update={"checked_under": cell.variant})
        return cell.model_copy(update={"isolation": check, "verdict": "fail" if check.failed else cell.verdict})


def _shared(cell: Cell, variant: str) -> Cell:
    """``cell``'s measurement standing for ``variant`` too: the same samples, verdict, plan and cold
    samples, no time of its own; its stability is measured under ``variant``."""
    return cell.model_copy(update={"variant": variant, "shared_with": cell.variant, "seconds": 0.0, "stability": None})


async def _prepare(target: Target, catalogue: Catalogue, dataset: Dataset) -> tuple[Environment, Pools]:
    """What a run needs from the seeded database, and the scenarios' check, before the measurement
    lock: a mistake in a scenario file stops the run at once, not after waiting for another run."""
    async with connected(target) as conn:
        env = await environment(conn, target)  # the seeded database is what the results describe
        pools = await pools_for(conn, catalogue.scenarios, dataset.anchor_date)
        await check_sql(conn, catalogue, pools)
        return env, pools


Job = tuple[Variant, list[Scenario]]  # a variant and the scenarios measured under it


def jobs_of(catalogue: Catalogue) -> list[Job]:
    """Every scenario under every variant: a whole matrix (those relying on row-level security under
    the variants with policies only, and under those only they unless the policy scope is all:
    ``Catalogue.under``). A variant under which none of the chosen scenarios runs is not measured:
    its scratch copy and index builds would give a variant without a cell."""
    return [(variant, scenarios) for variant in catalogue.variants if (scenarios := catalogue.under(variant))]


async def _measure_jobs(
    seeded: Target,
    jobs: list[Job],
    opts: RunOptions,
    pools: Pools,
    clock: Clock,
    advance: Advance,
) -> tuple[list[VariantResult], list[Cell], ColdCache, str]:
    cells: list[Cell] = []
    variants: list[VariantResult] = []
    cold = ColdCache(available=False, method="none: nothing measured")
    privileges = "nothing measured"
    earlier = Earlier()  # what the variants measured so far lend the later ones
    total = sum(len(scenarios) for _, scenarios in jobs)
    done = 0
    step = ""  # the variant and phase under way, named by the progress line (cold samples take minutes)

    def on_phase(name: str) -> None:
        nonlocal step
        step = f"{STEP}{variant.name}: {name}"  # the variant the loop below is measuring
        advance(f"measure cells{step}", done, total)

    def on_cell() -> None:
        nonlocal done
        done += 1
        advance(f"measure cells{step}", done, total)

    clock.on_phase = on_phase
    advance("measure cells", 0, total)
    since = time.perf_counter()
    for variant, scenarios in jobs:
        with ExitStack() as copied:
            with clock.phase("scratch copy"):  # a fresh one per variant: see the module docstring
                copy = copied.enter_context(scratch_copy(seeded, "run"))
                sampling = copied.enter_context(sampler(copy))
            privileges = sampling.privileges
            async with connected(copy) as conn, connected(sampling.target) as samples, AsyncExitStack() as more:
                # a second server process of the owner's shares each stability round's ANALYZEs
                analyzers = [await more.enter_async_context(connected(copy))] if opts.stability_rounds else []
                cold = await cold_cache(conn)  # its probe empties the server's buffer cache: only under the lock
                cost, measured = await _measure_variant(
                    conn,
                    samples,
                    scenarios,
                    variant,
                    pools,
                    opts,
                    cold,
                    clock,
                    since,
                    on_cell,
                    copy.host_kind != "pooler",
                    earlier,
                    analyzers,
                )
        variants.append(cost)
        cells.extend(measured)
    return variants, cells, cold, privileges


async def _run(
    seeded: Target,
    catalogue: Catalogue,
    opts: RunOptions,
    dataset: Dataset,
    env: Environment,
    pools: Pools,
    clock: Clock,
    advance: Advance,
) -> Results:
    variants, cells, cold, privileges = await _measure_jobs(seeded, jobs_of(catalogue), opts, pools, clock, advance)
    return Results(
        run_id=new_run_id(),
        created_at=datetime.now(UTC),
        environment=env,
        dataset=dataset,
        config=MatrixConfig(
            seed=opts.seed,
            cold_samples=opts.cold_samples,
            stability_rounds=opts.stability_rounds,
            policy_scope=catalogue.policy_scope,
        ),
        protocol=protocol(opts, pools, {len(c.classes) for c in cells}, privileges),
        cold_cache=cold,
        variants=variants,
        cells=cells,
        phase_seconds=clock.seconds,
        connection=seeded.probe,
        schema_ddl=schema.model_ddl(),
    )


def run_measurement(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop where it exists: its per-call overhead is ~30% below asyncio's
    (measured: 0.072 vs 0.101 ms for a primary-key lookup; pgbench 0.070 ms), and that overhead
    is part of every client round trip the samples record. Ctrl-C handling is asyncio.Runner's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def prepared(
    target: Target, catalogue: Catalogue, dataset: Dataset | None = None
) -> tuple[Dataset, Environment, Pools]:
    """What measuring ``catalogue`` on ``target`` needs, checked before any lock is waited for.
    ``dataset``: the one the target holds, when its own record is not there (a rebuilt copy)."""
    dataset = dataset or schema.seeded_dataset(target)
    env, pools = run_measurement(_prepare(target, catalogue, dataset))
    return dataset, env, pools


def measure_unlocked(
    target: Target,
    catalogue: Catalogue,
    opts: RunOptions,
    prepared_for: tuple[Dataset, Environment, Pools],
    advance: Advance,
) -> Results:
    """A whole run on ``target``, for a caller that holds the server's measurement lock already."""
    dataset, env, pools = prepared_for
    return run_measurement(_run(target, catalogue, opts, dataset, env, pools, Clock(), advance))


def measure_jobs(target: Target, jobs: list[Job], opts: RunOptions, pools: Pools, advance: Advance) -> list[Cell]:
    """Only the cells ``jobs`` name, each variant on a fresh copy of ``target``, for a caller that
    holds the measurement lock (``check``'s base side: the cells that differ from the head's)."""
    return run_measurement(_measure_jobs(target, jobs, opts, pools, Clock(), advance))[1]
