"""HypoPG screening of B-tree candidates, where the server has the extension.

HypoPG makes an index the planner believes in without building it: EXPLAIN (no ANALYZE) then
says whether the planner would use it and at what estimated cost. Dexter and index_advisor rank on
exactly that. Here it only screens: a B-tree candidate the planner uses for none of the scenarios
it serves is not built (HypoPG has no GIN, so every other method is built anyway), and each
screened candidate's hypothetical size and plan are kept, so that the report can set them beside
the real build's size and the measured plan: HypoPG's bias as a number.

Runs on a scratch copy (``CREATE EXTENSION hypopg`` there, never in the seeded database), with one
parameter set per scenario drawn as the runner draws them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from bench.advise.candidates import Candidate
from bench.catalogue.files import Catalogue
from bench.catalogue.params import Drawer, pools_for
from bench.measure.plan import walk
from bench.measure.runner import run_measurement
from bench.targets import schema
from bench.targets.target import Target, connected

EXTENSION = "hypopg"


@dataclass(frozen=True)
class Hypothetical:
    candidate: str  # fingerprint
    size_bytes: int  # hypopg_relation_size: HypoPG's estimate
    used_by: tuple[str, ...]  # served scenarios whose estimated plan uses it
    cost_without: dict[str, float]  # scenario -> the planner's total cost without the index
    cost_with: dict[str, float]  # ... and with it


async def _available(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = $1", EXTENSION))


def available(target: Target) -> bool:
    """Whether the server offers HypoPG (``pg_available_extensions``)."""

    async def ask() -> bool:
        async with connected(target) as conn:
            return await _available(conn)

    return run_measurement(ask())


async def _plan(conn: asyncpg.Connection, sql: str, args: list[Any]) -> tuple[float, set[str]]:
    explained = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))
    root = explained[0]["Plan"]
    return float(root["Total Cost"]), {n["Index Name"] for n in walk(root) if "Index Name" in n}


async def _screen(target: Target, catalogue: Catalogue, candidates: list[Candidate], today: date) -> list[Hypothetical]:
    async with connected(target) as conn:
        await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {EXTENSION}")
        scenarios = {s.name: s for s in catalogue.scenarios}
        served = sorted({s for c in candidates for s in c.serves if s in scenarios})
        pools = await pools_for(conn, [scenarios[s] for s in served], today)
        drawn = {s: Drawer(scenarios[s], pools, seed=0) for s in served}
        args = {s: drawer.draw() for s, drawer in drawn.items()}
        plain = {s: (await _plan(conn, args[s].sql, args[s].args))[0] for s in served}
        found = []
        for candidate in candidates:
            row = await conn.fetchrow(
                "SELECT indexrelid, indexname FROM hypopg_create_index($1)", candidate.index.ddl()
            )
            assert row is not None  # hypopg_create_index returns a row for the index it made
            try:
                size = int(await conn.fetchval("SELECT hypopg_relation_size($1)", row["indexrelid"]))
                with_it, used = {}, []
                for scenario in (s for s in candidate.serves if s in scenarios):
                    cost, indexes = await _plan(conn, args[scenario].sql, args[scenario].args)
                    with_it[scenario] = cost
                    if row["indexname"] in indexes:
                        used.append(scenario)
            finally:
                await conn.execute("SELECT hypopg_reset()")
            found.append(
                Hypothetical(candidate.fingerprint, size, tuple(used), {s: plain[s] for s in with_it}, with_it)
            )
        return found


def screen(target: Target, catalogue: Catalogue, candidates: list[Candidate]) -> list[Hypothetical]:
    """Each B-tree candidate, hypothetically, against the scenarios it serves."""
    btrees = [c for c in candidates if c.btree and c.serves]
    with schema.seeded_copy(target, "hypo") as (copy, dataset):
        return run_measurement(_screen(copy, catalogue, btrees, dataset.anchor_date))
