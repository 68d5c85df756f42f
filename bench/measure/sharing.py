"""Cells that are the same measurement: under two variants a scenario whose plans and the indexes
those plans use are the same reads the same pages the same way, so its samples, verdict and buffers
are the same too (an audit of a committed baseline found every such group agreeing: 160 read cells
were 62 distinct ones). A run measures each distinct cell once and lets the others share it.

A cell's *signature* is what decides that: the plan shape (``plan.fingerprint``) of each of the
parameter sets its explained samples will draw, and the generic plan a prepared statement may
switch to (``plan_cache_mode = force_generic_plan``), plus the definition (name aside) of every
index those plans use. A write changes every index of its table, so for a write the definitions of
all indexes on the tables it names count, used or not. Plans come from EXPLAIN without ANALYZE:
nothing is executed. Under a policy variant the plans are the sampled users' (their claims set), and
the policies' text is part of the signature: a policy's filter leaves the plan's shape as it was,
yet it is evaluated for every row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from bench.catalogue.files import Scenario
from bench.catalogue.params import Pools, class_drawers
from bench.catalogue.sql import SQLRefused, parse_index
from bench.measure.claims import as_user, claim_for
from bench.measure.plan import EXPLAIN_PLAN, fingerprint, walk
from bench.measure.trees import explain

_INDEXES_BY_NAME = """
SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'i' AND c.relname = ANY($1::text[])
"""
_INDEXES_ON_TABLES = """
SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public' AND t.relname = ANY($1::text[])
"""


def _definition(statement: str) -> str:
    """What an index builds, whatever it is called: the catalogue's canonical form where the parser
    reads it, else the statement as the server printed it (its name included: never shared wrongly)."""
    try:
        return parse_index(statement).fingerprint()
    except SQLRefused:
        return statement


async def _plan(conn: asyncpg.Connection, explain: str, args: list[Any]) -> tuple[str, set[str]]:
    root = json.loads(await conn.fetchval(explain, *args))[0]["Plan"]
    return fingerprint(root), {n["Index Name"] for n in walk(root) if n.get("Index Name")}


async def _generic_plan(conn: asyncpg.Connection, sql: str, params: int) -> tuple[str, set[str]]:
    """The plan a prepared statement runs once PostgreSQL switches it to a generic one: planned for
    any values, so the NULLs it is planned with here change nothing (with bound values, EXPLAIN
    (GENERIC_PLAN) would fold them in). Read as the plan trees read it (``trees.explain``: in one
    transaction, which a pooler keeps on one server session)."""
    root = (await explain(conn, sql, [None] * params, generic=True, analyze=False, timeout_ms=None))[0]["Plan"]
    return fingerprint(root), {n["Index Name"] for n in walk(root) if n.get("Index Name")}


async def signature(
    conn: asyncpg.Connection,
    scenario: Scenario,
    pools: Pools,
    seed: int,
    param_sets: int,
    policies: Sequence[str] = (),
    claim: str | None = None,
) -> str:
    """The cell's signature under the variant applied on ``conn`` (see the module docstring), whose
    row-level security is ``policies``, read through the setting ``claim``."""
    drawers = list(class_drawers(scenario, pools, seed, "samples").values())
    plans, used = [], set()
    for i in range(param_sets):  # the classes in turn, as the cell's explained samples draw them
        sql, args, user = drawers[i % len(drawers)].draw()
        async with as_user(conn, claim_for(claim, user)):
            shape, indexes = await _plan(conn, EXPLAIN_PLAN + sql, args)
        plans.append(shape)
        used |= indexes
    generic = []
    for statement in scenario.statements:  # an ORM scenario's in_() sends one per list length
        shape, indexes = await _generic_plan(conn, statement.sql, len(statement.binds))
        generic.append(shape)
        used |= indexes
    if scenario.kind == "write":
        rows = await conn.fetch(_INDEXES_ON_TABLES, sorted(scenario.query.tables))
    else:
        rows = await conn.fetch(_INDEXES_BY_NAME, sorted(used))
    definitions = sorted(_definition(statement) for _, statement in rows)
    sent = [s.sql for s in scenario.statements]
    key = json.dumps([scenario.name, scenario.kind, sent, plans, generic, definitions, list(policies)])
    return hashlib.sha256(key.encode()).hexdigest()[:16]
