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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

import asyncpg

from bench.catalogue.files import Catalog, Scenario, Variant
from bench.catalogue.params import Drawer, Pools, pools_for
from bench.catalogue.variants import applied_variant
from bench.measure.calibration import ITEMS, calibration_sample
from bench.measure.lock import measurement_lock
from bench.measure.rebuild import recorded_schema_copy
from bench.measure.rows import result_hash
from bench.measure.runner import rolled_back, run_measurement
from bench.progress import Advance, no_progress
from bench.results import PairedSamples, SideBySide
from bench.targets.schema import seeded_dataset
from bench.targets.target import Target, connected, scratch_copy


@dataclass
class Side:
    """One side of a pair: a connection and the scenario as that side wrote it."""

    conn: asyncpg.Connection
    scenario: Scenario


@dataclass
class PairedCell:
    scenario: str
    variant: str
    base: Side
    head: Side
    drawer: Drawer  # the parameters both sides get (drawn for the head's binds, by name)
    base_ms: list[float] = field(default_factory=list)
    head_ms: list[float] = field(default_factory=list)
    base_hashes: list[str] = field(default_factory=list)
    head_hashes: list[str] = field(default_factory=list)


@dataclass
class Calibration:
    base_ms: dict[str, list[float]] = field(default_factory=lambda: {item: [] for item in ITEMS})
    head_ms: dict[str, list[float]] = field(default_factory=lambda: {item: [] for item in ITEMS})


def pair_cell(scenario: str, variant: str, base: Side, head: Side, pools: Pools, seed: int) -> PairedCell:
    return PairedCell(scenario, variant, base, head, Drawer(head.scenario, pools, seed, stream="paired"))


def _arguments(side: Side, drawer: Drawer, values: list[object]) -> list[object]:
    """The drawn values in this side's bind order (a rewrite may have reordered or renamed binds:
    a name the head does not have gets nothing to pair with, which the caller refuses first)."""
    by_name = dict(zip(drawer.order, values, strict=True))
    return [by_name[name] for name in side.scenario.query.params]


async def _execute(side: Side, args: list[object]) -> tuple[float, str]:
    query = side.scenario.query
    if query.kind == "write":
        async with rolled_back(side.conn):
            started = time.perf_counter_ns()
            await side.conn.fetch(query.sql, *args)
            return (time.perf_counter_ns() - started) / 1e6, ""
    started = time.perf_counter_ns()
    rows = await side.conn.fetch(query.sql, *args)
    elapsed = (time.perf_counter_ns() - started) / 1e6
    return elapsed, result_hash(rows, query.ordered)


async def _pair(cell: PairedCell, base_first: bool) -> None:
    values = cell.drawer.draw()
    order = [(cell.base, True), (cell.head, False)]
    for side, is_base in order if base_first else reversed(order):
        ms, digest = await _execute(side, _arguments(side, cell.drawer, values))
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
    base, head = cells[0].base.conn, cells[0].head.conn
    # the warm-up's own stream: however many rounds it takes, the pairs' parameters stay put
    warm = [Drawer(cell.head.scenario, cell.drawer.pools, 0, stream="paired warm-up") for cell in cells]
    started, rounds = time.perf_counter(), 0
    while rounds < warmup or time.perf_counter() - started < warmup_seconds:
        for cell, drawer in zip(cells, warm, strict=True):
            values = drawer.draw()
            sides = (cell.base, cell.head) if rounds % 2 == 0 else (cell.head, cell.base)
            for side in sides:
                await _execute(side, _arguments(side, drawer, values))
        rounds += 1
    for round_no in range(pairs):
        base_first = round_no % 2 == 0
        await _calibrate(base, head, calibration, base_first)
        for cell in cells:
            await _pair(cell, base_first)


@dataclass(frozen=True)
class PairOptions:
    pairs: int = 30  # per cell: enough for the sign test to call a cell at 1% over 500 cells (2^-30)
    warmup: int = 2  # unrecorded rounds (an execution per side and cell) at the least
    warmup_seconds: float = 0.5  # and unrecorded rounds until this much time has passed
    seed: int = 1
    concurrent: bool = False
    lock_wait: float = 10.0


@dataclass
class Pairing:
    variants: list[tuple[Variant, Variant]]  # (base, head) of each variant both have
    scenarios: list[tuple[Scenario, Scenario]]
    new: list[str]  # only the head has them: nothing to measure them beside
    incomparable: list[str]  # both have them, but the two sides cannot get the same parameters


def pair_up(before: Catalog, after: Catalog) -> Pairing:
    """The variants and scenarios both catalogues have, and why the others cannot be paired."""
    base_v = {v.name: v for v in before.variants}
    base_s = {s.name: s for s in before.scenarios}
    pairing = Pairing([(base_v[v.name], v) for v in after.variants if v.name in base_v], [], [], [])
    pairing.new += [f"variant {v.name}" for v in after.variants if v.name not in base_v]
    for s in after.scenarios:
        b = base_s.get(s.name)
        if b is None:
            pairing.new.append(f"scenario {s.name}")
        elif dict(b.params) != dict(s.params) or b.kind != s.kind:
            pairing.incomparable.append(
                f"scenario {s.name}: its parameters or kind changed ({b.kind} "
                f"{dict(b.params)} → {s.kind} {dict(s.params)})"
            )
        else:
            pairing.scenarios.append((b, s))
    return pairing


async def _variant_pairs(
    base: asyncpg.Connection,
    head: asyncpg.Connection,
    variants: tuple[Variant, Variant],
    scenarios: list[tuple[Scenario, Scenario]],
    pools: Pools,
    opts: PairOptions,
    calibration: Calibration,
) -> list[PairedSamples]:
    before, after = variants
    async with applied_variant(base, before), applied_variant(head, after):
        cells = [pair_cell(s.name, after.name, Side(base, b), Side(head, s), pools, opts.seed) for b, s in scenarios]
        await measure_pairs(cells, opts.pairs, opts.warmup, opts.warmup_seconds, calibration)
    return [
        PairedSamples(
            scenario=c.scenario,
            variant=c.variant,
            base_ms=c.base_ms,
            head_ms=c.head_ms,
            differing_rows=None
            if c.head.scenario.kind == "write"
            else sum(b != h for b, h in zip(c.base_hashes, c.head_hashes, strict=True)),
        )
        for c in cells
    ]


async def _side_by_side(
    base_db: Target,
    head_db: Target,
    variants: list[tuple[Variant, Variant]],
    scenarios: list[tuple[Scenario, Scenario]],
    today: date,
    opts: PairOptions,
    advance: Advance,
) -> tuple[list[PairedSamples], Calibration]:
    calibration = Calibration()
    cells: list[PairedSamples] = []
    async with connected(base_db) as base, connected(head_db) as head:
        pools = await pools_for(head, [s for _, s in scenarios], today)
        for done, pair in enumerate(variants):
            advance("side by side", done, len(variants))
            cells += await _variant_pairs(base, head, pair, scenarios, pools, opts, calibration)
        advance("side by side", len(variants), len(variants))
    return cells, calibration


def side_by_side(
    seeded: Target,
    before: Catalog,
    after: Catalog,
    opts: PairOptions = PairOptions(),
    advance: Advance = no_progress,
    base_schema: str | None = None,
) -> SideBySide:
    """Every cell both catalogues have, measured in pairs on two scratch copies of ``seeded``: the
    base's statements and SQL on one, the head's on the other, under the server's measurement lock.
    ``base_schema``: the DDL the base side's tables are built from when it is not the models' own
    (``recorded_schema_copy``)."""
    pairing = pair_up(before, after)
    dataset = seeded_dataset(seeded)
    with (
        measurement_lock(seeded, "check", opts.concurrent, opts.lock_wait),
        _base_copy(seeded, base_schema) as (base_db, rebuilt),
        scratch_copy(seeded, "head") as head_db,
    ):
        cells, calibration = run_measurement(
            _side_by_side(base_db, head_db, pairing.variants, pairing.scenarios, dataset.anchor_date, opts, advance)
        )
    return SideBySide(
        pairs=opts.pairs,
        calibration_base_ms=calibration.base_ms,
        calibration_head_ms=calibration.head_ms,
        cells=cells,
        new=pairing.new,
        incomparable=pairing.incomparable,
        rebuilt_schema=rebuilt,
    )


@contextmanager
def _base_copy(seeded: Target, ddl: str | None) -> Iterator[tuple[Target, list[str] | None]]:
    """The base side's database, and what rebuilding it on ``ddl`` left out (None: not rebuilt)."""
    if ddl is None:
        with scratch_copy(seeded, "base") as copy:
            yield copy, None
    else:
        with recorded_schema_copy(seeded, ddl, "base") as (copy, notes):
            yield copy, notes
