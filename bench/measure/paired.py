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
from dataclasses import dataclass, field

import asyncpg

from bench.catalogue.files import Scenario
from bench.catalogue.params import Drawer, Pools
from bench.measure.calibration import ITEMS, calibration_sample
from bench.measure.rows import result_hash
from bench.measure.runner import rolled_back


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


async def measure_pairs(cells: list[PairedCell], pairs: int, warmup: int, calibration: Calibration) -> None:
    """``pairs`` pairs of every cell, round-robin, after ``warmup`` unrecorded executions per side."""
    if not cells:
        return
    base, head = cells[0].base.conn, cells[0].head.conn
    for cell in cells:
        warm = Drawer(cell.head.scenario, cell.drawer.pools, 0, stream="paired warm-up")  # leaves the pairs' stream
        for _ in range(warmup):
            values = warm.draw()
            for side in (cell.base, cell.head):
                await _execute(side, _arguments(side, warm, values))
    for round_no in range(pairs):
        base_first = round_no % 2 == 0
        await _calibrate(base, head, calibration, base_first)
        for cell in cells:
            await _pair(cell, base_first)
