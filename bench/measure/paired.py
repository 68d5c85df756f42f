"""Side-by-side samples: the base's SQL on the base's database and the head's on the head's, with
the same parameters, one right after the other — the only timings the time gate compares.

Per round, every cell takes one pair, round-robin over the cells, so a burst of machine noise
spreads over many cells (and, inside a pair, over both sides) instead of deciding one; which side
goes first alternates by round, so neither profits from the other having warmed a cache. Each
round also takes one pair of every calibration item (``calibration``): the same work on both
sides, which must come out equal. Write scenarios run in rolled-back transactions. Reads record
a hash of their rows, so the two sides can be checked for returning the same rows too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date

import asyncpg

from bench.catalogue.files import Catalogue, Scenario, Variant
from bench.catalogue.params import Drawer, Drawn, Pools, pools_for
from bench.catalogue.variants import applied_variant
from bench.measure.calibration import ITEMS, calibration_sample
from bench.measure.claims import claim_for
from bench.measure.lock import measurement_lock
from bench.measure.options import DEFAULT_PLAN_CACHE, PairOptions, plan_cache, statement_timeout_ms
from bench.measure.plancache import set_plan_cache
from bench.measure.rows import result_hash
from bench.measure.runner import execute, run_measurement
from bench.measure.timeout import Session, TimedOut
from bench.progress import Advance, no_progress
from bench.results import PairedSamples, SideBySide
from bench.targets.rebuild import recorded_schema_copy
from bench.targets.roles import sampler
from bench.targets.schema import seeded_dataset
from bench.targets.target import Target, connected, scratch_copy


@dataclass
class Side:
    """One side of a pair: a connection, the scenario as that side wrote it, and the parameters it
    is drawn (when both sides declare the same parameters, the head's draw serves both)."""

    session: Session  # its connection, with the statement timeout set on it
    scenario: Scenario
    drawer: Drawer
    claim: str | None = None  # under a policy variant: the setting each execution sets to its user


@dataclass
class PairedCell:
    scenario: str
    variant: str
    base: Side
    head: Side
    timeout_ms: int  # the cell's statement timeout (the head's SLA): a pair cut off by it ends its pairs
    timed_out: bool = False
    base_ms: list[float] = field(default_factory=list)
    head_ms: list[float] = field(default_factory=list)
    base_hashes: list[str] = field(default_factory=list)
    head_hashes: list[str] = field(default_factory=list)

    @property
    def same_parameters(self) -> bool:
        """Both sides get the same values: the same parameters declared, so rows can be compared."""
        return dict(self.base.scenario.params) == dict(self.head.scenario.params)

    @property
    def rows_comparable(self) -> bool:
        return self.same_parameters and self.base.scenario.kind == self.head.scenario.kind == "read"

    def arguments(self, head_drawer: Drawer, base_drawer: Drawer) -> tuple[Drawn, Drawn]:
        """(base, head) statements and arguments of one pair, each with the user it was drawn for. With
        the same parameters declared, the base gets the head's values by name (a rewrite may have
        reordered its binds); else each side draws its own from its own declarations, and the pair
        compares what each side does with its own."""
        user, values = head_drawer.user_values()
        if not self.same_parameters:
            return base_drawer.draw(), head_drawer.bind(values, user)
        return base_drawer.bind(values, user), head_drawer.bind(values, user)


@dataclass
class Calibration:
    base_ms: dict[str, list[float]] = field(default_factory=lambda: {item: [] for item in ITEMS})
    head_ms: dict[str, list[float]] = field(default_factory=lambda: {item: [] for item in ITEMS})


def _side(session: Session, scenario: Scenario, variant: Variant, pools: Pools, seed: int, stream: str) -> Side:
    return Side(session, scenario, Drawer(scenario, pools, seed, stream=stream), variant.claim)


async def _execute(side: Side, drawn: Drawn, timeout_ms: int) -> tuple[float, str]:
    await side.session.limit(timeout_ms)
    sql, args, user = drawn
    write = side.scenario.kind == "write"
    done = await execute(side.session.conn, sql, args, write, timeout_ms, claim_for(side.claim, user))
    return done.client_ms, "" if done.rows is None else result_hash(done.rows, side.scenario.query.ordered)


async def _pair(cell: PairedCell, base_first: bool) -> None:
    """One pair, kept only when both sides finished: past the statement timeout the cell's pairs end
    (its matrix cell failed on the timeout already; the time gate has nothing to weigh then)."""
    base_args, head_args = cell.arguments(cell.head.drawer, cell.base.drawer)
    order = [(cell.base, base_args, True), (cell.head, head_args, False)]
    taken: dict[bool, tuple[float, str]] = {}
    try:
        for side, args, is_base in order if base_first else reversed(order):
            taken[is_base] = await _execute(side, args, cell.timeout_ms)
    except TimedOut:
        cell.timed_out = True
        return
    for is_base, (ms, digest) in taken.items():
        (cell.base_ms if is_base else cell.head_ms).append(round(ms, 4))
        (cell.base_hashes if is_base else cell.head_hashes).append(digest)


async def _calibrate(base: asyncpg.Connection, head: asyncpg.Connection, into: Calibration, base_first: bool) -> None:
    sides = [(base, into.base_ms), (head, into.head_ms)]
    for conn, store in sides if base_first else reversed(sides):
        for item, ms in (await calibration_sample(conn)).items():
            store[item].append(round(ms, 4))


async def measure_pairs(
    cells: list[PairedCell], pairs: int, warmup: int, warmup_seconds: float, calibration: Calibration
) -> None:
    """``pairs`` pairs of every cell, round-robin, after unrecorded rounds: at least ``warmup`` and
    until ``warmup_seconds`` have passed. Right after a variant's indexes are built, the side built
    last runs slower for a few hundred milliseconds (seen: its first ten pairs of 0.25 ms queries
    ×1.2–1.4, the last ten ×1.0), so a handful of executions is not enough: time settles it."""
    if not cells:
        return
    base, head = cells[0].base.session.conn, cells[0].head.session.conn
    # the warm-up's own streams: however many rounds it takes, the pairs' parameters stay put
    warm = [
        (
            Drawer(cell.base.scenario, cell.base.drawer.pools, 0, stream="paired warm-up"),
            Drawer(cell.head.scenario, cell.head.drawer.pools, 0, stream="paired warm-up"),
        )
        for cell in cells
    ]
    started, rounds = time.perf_counter(), 0
    while rounds < warmup or time.perf_counter() - started < warmup_seconds:
        for cell, (base_drawer, head_drawer) in zip(cells, warm, strict=True):
            base_args, head_args = cell.arguments(head_drawer, base_drawer)
            sides = [(cell.base, base_args), (cell.head, head_args)]
            try:
                for side, args in sides if rounds % 2 == 0 else reversed(sides):
                    if not cell.timed_out:
                        await _execute(side, args, cell.timeout_ms)
            except TimedOut:
                cell.timed_out = True
        rounds += 1
    for round_no in range(pairs):
        base_first = round_no % 2 == 0
        await _calibrate(base, head, calibration, base_first)
        for cell in cells:
            if not cell.timed_out:
                await _pair(cell, base_first)


def same_scenario(a: Scenario, b: Scenario) -> bool:
    """The same request: the SQL the server receives, its parameters, kind and SLA, and the explicit
    twin whose rows it must equal (its isolation check)."""
    return _request(a) == _request(b)


def _request(s: Scenario) -> tuple[object, ...]:
    sent = [(st.sql, st.binds, st.lengths) for st in s.statements]
    return (sent, dict(s.params), s.draws_as, s.kind, s.sla_ms, s.explicit_sql)


def same_variant(a: Variant, b: Variant) -> bool:
    """The same indexes and policies: their canonical DDL (what is executed) and extensions."""
    return _built(a) == _built(b)


def _built(v: Variant) -> tuple[list[str], list[str], list[str]]:
    return [i.ddl() for i in v.indexes], v.extensions, [p.sql for p in v.policy_defs]


@dataclass
class Pairing:
    variants: list[tuple[Variant, Variant]]  # (base, head) of each variant both have
    scenarios: list[tuple[Scenario, Scenario]]
    new: list[str]  # only the head has them: nothing to measure them beside
    gone: list[str]  # only the base has them
    head: Catalogue  # whose policy scope says which cells a run measures (``Catalogue.measures``)

    def measured(self, variants: tuple[Variant, Variant], scenario: tuple[Scenario, Scenario]) -> bool:
        """A pair of cells both sides measure, as the head's matrix does."""
        return all(self.head.measures(v, s) for v, s in zip(variants, scenario, strict=True))

    def under(self, variants: tuple[Variant, Variant]) -> list[tuple[Scenario, Scenario]]:
        """The pairs of scenarios both sides measure under ``variants``."""
        return [pair for pair in self.scenarios if self.measured(variants, pair)]

    def differing(self, schema_rebuilt: bool) -> list[tuple[Variant, list[Scenario]]]:
        """The base side's cells that are not the head's own: what the base must measure for itself.
        A cell whose request, indexes and schema are the same on both sides is the same measurement
        on the same data and server: it is measured once and stands for both."""
        jobs = []
        for base_v, head_v in self.variants:
            scenarios = [
                b
                for b, h in self.under((base_v, head_v))
                if schema_rebuilt or not same_variant(base_v, head_v) or not same_scenario(b, h)
            ]
            if scenarios:
                jobs.append((base_v, scenarios))
        return jobs


def pair_up(before: Catalogue, after: Catalogue) -> Pairing:
    """The variants and scenarios both catalogues have, and those only one of them has."""
    base_v = {v.name: v for v in before.variants}
    base_s = {s.name: s for s in before.scenarios}
    head_v, head_s = {v.name for v in after.variants}, {s.name for s in after.scenarios}
    return Pairing(
        variants=[(base_v[v.name], v) for v in after.variants if v.name in base_v],
        scenarios=[(base_s[s.name], s) for s in after.scenarios if s.name in base_s],
        new=[f"variant {v.name}" for v in after.variants if v.name not in base_v]
        + [f"scenario {s.name}" for s in after.scenarios if s.name not in base_s],
        gone=[f"variant {v.name}" for v in before.variants if v.name not in head_v]
        + [f"scenario {b.name}" for b in before.scenarios if b.name not in head_s],
        head=after,
    )


async def _variant_pairs(
    base: asyncpg.Connection,
    head: asyncpg.Connection,
    samples: tuple[asyncpg.Connection, asyncpg.Connection],
    variants: tuple[Variant, Variant],
    scenarios: list[tuple[Scenario, Scenario]],
    pools: Pools,
    opts: PairOptions,
    calibration: Calibration,
) -> list[PairedSamples]:
    """The variants built on ``base`` and ``head`` (their copies' owner); the pairs executed on
    ``samples``, the same copies reached as each one's samples' role (``roles``)."""
    before, after = variants
    sessions = Session(samples[0]), Session(samples[1])
    async with applied_variant(base, before), applied_variant(head, after):
        cells = [
            PairedCell(
                s.name,
                after.name,
                _side(sessions[0], b, before, pools, opts.seed, "paired"),
                _side(sessions[1], s, after, pools, opts.seed, "paired"),
                statement_timeout_ms(opts.timeout_factor, s.sla_ms),
            )
            for b, s in scenarios
        ]
        try:
            await measure_pairs(cells, opts.pairs, opts.warmup, opts.warmup_seconds, calibration)
        finally:  # the indexes are dropped under the set-up limit
            for session in sessions:
                await session.reset()
    return [
        PairedSamples(
            scenario=c.scenario,
            variant=c.variant,
            base_ms=c.base_ms,
            head_ms=c.head_ms,
            differing_rows=sum(b != h for b, h in zip(c.base_hashes, c.head_hashes, strict=True))
            if c.rows_comparable
            else None,
            timed_out=c.timed_out,
        )
        for c in cells
    ]


async def _side_by_side(
    base_db: Target,
    head_db: Target,
    pairing: Pairing,
    today: date,
    opts: PairOptions,
    advance: Advance,
) -> tuple[list[PairedSamples], Calibration]:
    variants, scenarios = pairing.variants, pairing.scenarios
    calibration = Calibration()
    cells: list[PairedSamples] = []
    with sampler(base_db) as base_role, sampler(head_db) as head_role:
        async with (
            connected(base_db) as base,
            connected(head_db) as head,
            connected(base_role.target) as base_samples,
            connected(head_role.target) as head_samples,
        ):
            pools = await pools_for(head, [s for _, s in scenarios] + [b for b, _ in scenarios], today)
            if opts.plan_cache != DEFAULT_PLAN_CACHE:  # as the matrix measured them: like with like
                for conn in (base_samples, head_samples):
                    await set_plan_cache(conn, plan_cache(opts.plan_cache))
            for done, pair in enumerate(variants):
                advance("side by side", done, len(variants))
                samples = (base_samples, head_samples)
                measured = pairing.under(pair)
                if measured:
                    cells += await _variant_pairs(base, head, samples, pair, measured, pools, opts, calibration)
        advance("side by side", len(variants), len(variants))
    return cells, calibration


def pairs_unlocked(
    base_db: Target, head_db: Target, pairing: Pairing, today: date, opts: PairOptions, advance: Advance
) -> SideBySide:
    """Every cell of ``pairing`` measured in pairs on ``base_db`` and ``head_db`` (two databases
    nobody else uses), for a caller that holds the server's measurement lock."""
    cells, calibration = run_measurement(_side_by_side(base_db, head_db, pairing, today, opts, advance))
    return SideBySide(
        pairs=opts.pairs,
        calibration_base_ms=calibration.base_ms,
        calibration_head_ms=calibration.head_ms,
        cells=cells,
        new=pairing.new,
    )


def side_by_side(
    seeded: Target,
    before: Catalogue,
    after: Catalogue,
    opts: PairOptions = PairOptions(),
    advance: Advance = no_progress,
    base_schema: str | None = None,
    base_server: Target | None = None,
) -> SideBySide:
    """Every cell both catalogues have, measured in pairs on two scratch copies of ``seeded``: the
    base's statements and SQL on one, the head's on the other, under the server's measurement lock.
    ``base_schema``: the DDL the base side's tables are built from when it is not the models' own
    (``recorded_schema_copy``); ``base_server``: the base side's seeded database when it is on another
    server (an upgrade check), whose measurement lock is held too."""
    pairing = pair_up(before, after)
    dataset = seeded_dataset(seeded)
    with ExitStack() as held:
        for server in [seeded] if base_server is None else [seeded, base_server]:
            held.enter_context(measurement_lock(server, "check", opts.concurrent, opts.lock_wait))
        base_db, rebuilt = held.enter_context(base_copy(base_server or seeded, base_schema))
        head_db = held.enter_context(scratch_copy(seeded, "head"))
        sbs = pairs_unlocked(base_db, head_db, pairing, dataset.anchor_date, opts, advance)
    return sbs.model_copy(update={"rebuilt_schema": rebuilt})


@contextmanager
def base_copy(seeded: Target, ddl: str | None) -> Iterator[tuple[Target, list[str] | None]]:
    """The base side's database, and what rebuilding it on ``ddl`` left out (None: not rebuilt)."""
    if ddl is None:
        with scratch_copy(seeded, "base") as copy:
            yield copy, None
    else:
        with recorded_schema_copy(seeded, ddl, "base") as (copy, notes):
            yield copy, notes
