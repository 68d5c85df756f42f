"""Apply an index variant on top of the baseline schema, measure what it costs, and remove it.

Removal drops exactly what appeared since the snapshot taken before the apply (indexes, extensions
and row-level security policies not there before, and row-level security on the tables it was
enabled on), so the schema returns to its exact prior state even when a statement fails half-way
or the run is interrupted mid-build.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field

import asyncpg

from bench.catalogue.files import Variant
from bench.errors import InputError, first_line
from bench.models import TABLE_NAMES
from bench.results import IndexCost, VariantResult


@dataclass
class Applied:
    variant: Variant
    indexes_before: set[str]
    extensions_before: set[str]
    policies_before: set[tuple[str, str]] = field(default_factory=set)  # (table, policy)
    secured_before: set[str] = field(default_factory=set)  # tables with row-level security on
    indexes: list[str] = field(default_factory=list)  # created, in build order
    build_seconds: dict[str, float] = field(default_factory=dict)


async def index_names(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1::text[])",
        list(TABLE_NAMES),
    )
    return {r["indexname"] for r in rows}


async def _extensions(conn: asyncpg.Connection) -> set[str]:
    return {r["extname"] for r in await conn.fetch("SELECT extname FROM pg_extension")}


async def _policies(conn: asyncpg.Connection) -> set[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT tablename, policyname FROM pg_policies WHERE schemaname = 'public' AND tablename = ANY($1::text[])",
        list(TABLE_NAMES),
    )
    return {(r["tablename"], r["policyname"]) for r in rows}


async def secured_tables(conn: asyncpg.Connection) -> set[str]:
    """The canonical tables with row-level security enabled."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relname = ANY($1::text[]) AND c.relrowsecurity",
        list(TABLE_NAMES),
    )
    return {r["relname"] for r in rows}


async def snapshot(conn: asyncpg.Connection, variant: Variant) -> Applied:
    """Record the schema before ``variant`` is applied: what ``remove_variant`` restores."""
    return Applied(
        variant, await index_names(conn), await _extensions(conn), await _policies(conn), await secured_tables(conn)
    )


async def apply_variant(conn: asyncpg.Connection, applied: Applied) -> None:
    variant = applied.variant
    try:
        for ext in variant.extensions:
            await conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{ext}"')
        for index in variant.indexes:  # parsed: one CREATE INDEX each, nothing else can run
            known = await index_names(conn)
            started = time.perf_counter()
            await conn.execute(index.ddl())
            seconds = time.perf_counter() - started
            for name in sorted(await index_names(conn) - known):
                applied.indexes.append(name)
                applied.build_seconds[name] = seconds
        for policy in variant.policy_defs:  # parsed: ENABLE ROW LEVEL SECURITY or CREATE POLICY only
            await conn.execute(policy.sql)
    except asyncpg.PostgresError as exc:
        await remove_variant(conn, applied)
        raise InputError(f"variant {variant.name!r}: a statement failed: {first_line(exc)}") from None
    # Expression indexes carry their own statistics: without ANALYZE the planner ignores them.
    tables = await conn.fetch(
        "SELECT DISTINCT c.relname FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid"
        " JOIN pg_class c ON c.oid = i.indrelid WHERE x.relname = ANY($1::text[]) AND i.indexprs IS NOT NULL",
        applied.indexes,
    )
    for row in tables:
        await conn.execute(f'ANALYZE "{row["relname"]}"')


async def applied_new(conn: asyncpg.Connection, variant: Variant) -> Applied:
    """Snapshot, then apply ``variant``: for work on a scratch copy that is dropped with the variant
    in it, so nothing is removed."""
    applied = await snapshot(conn, variant)
    await apply_variant(conn, applied)
    return applied


def _untimed(phase: str) -> AbstractContextManager[object]:
    return nullcontext()


@asynccontextmanager
async def applied_variant(
    conn: asyncpg.Connection, variant: Variant, phase: Callable[[str], AbstractContextManager[object]] = _untimed
) -> AsyncIterator[Applied]:
    """``variant`` applied on ``conn`` for the block, removed on the way out whatever happens.
    ``phase`` times the two halves (``"build indexes"``, ``"drop indexes"``), e.g. a run's clock."""
    with phase("build indexes"):
        applied = await applied_new(conn, variant)
    try:
        yield applied
    finally:
        with phase("drop indexes"):
            await remove_variant(conn, applied)


async def remove_variant(conn: asyncpg.Connection, applied: Applied) -> None:
    """Drop every index, extension and policy that appeared since the snapshot, and turn row-level
    security off where it was off. Idempotent."""
    for table, policy in sorted(await _policies(conn) - applied.policies_before):
        await conn.execute(f"DROP POLICY IF EXISTS {_quoted(policy)} ON {_quoted(table)}")
    for table in sorted(await secured_tables(conn) - applied.secured_before):
        await conn.execute(f"ALTER TABLE {_quoted(table)} DISABLE ROW LEVEL SECURITY")
    for name in sorted(await index_names(conn) - applied.indexes_before):
        await conn.execute(f'DROP INDEX IF EXISTS "{name}"')
    for ext in sorted(await _extensions(conn) - applied.extensions_before):
        await conn.execute(f'DROP EXTENSION IF EXISTS "{ext}"')


def _quoted(name: str) -> str:
    """A name read from the catalogs as an identifier (a policy's name may hold anything)."""
    return '"' + name.replace('"', '""') + '"'


async def variant_cost(conn: asyncpg.Connection, applied: Applied) -> VariantResult:
    rows = await conn.fetch(
        "SELECT x.relname AS name, c.relname AS tbl, pg_relation_size(x.oid) AS size FROM pg_index i"
        " JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid"
        " WHERE x.relname = ANY($1::text[]) ORDER BY x.relname",
        applied.indexes,
    )
    costs = [
        IndexCost(
            name=r["name"],
            table=r["tbl"],
            size_bytes=r["size"],
            build_seconds=round(applied.build_seconds.get(r["name"], 0.0), 4),
        )
        for r in rows
    ]
    v = applied.variant
    return VariantResult(
        name=v.name,
        description=v.description,
        statements=[i.ddl() for i in v.indexes],
        policies=[p.sql for p in v.policy_defs],
        claim=v.claim,
        indexes=costs,
        index_size_bytes=sum(c.size_bytes for c in costs),
        build_seconds=round(sum(c.build_seconds for c in costs), 4),
    )
