"""Apply an index variant on top of the baseline schema, measure what it costs, and remove it.

Removal drops exactly what the apply created (indexes found by comparing the index list before
and after, extensions that were not there before), so the schema returns to its exact prior
state even when a statement fails half-way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import asyncpg

from .catalog import Variant
from .errors import InputError
from .models import TABLE_NAMES
from .results import IndexCost, VariantResult


@dataclass
class Applied:
    variant: Variant
    indexes: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    build_seconds: dict[str, float] = field(default_factory=dict)


async def index_names(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
                            " AND tablename = ANY($1::text[])", list(TABLE_NAMES))
    return {r["indexname"] for r in rows}


async def _extensions(conn: asyncpg.Connection) -> set[str]:
    return {r["extname"] for r in await conn.fetch("SELECT extname FROM pg_extension")}


async def apply_variant(conn: asyncpg.Connection, variant: Variant) -> Applied:
    applied = Applied(variant)
    before = await index_names(conn)
    had_ext = await _extensions(conn)
    try:
        for ext in variant.extensions:
            if ext not in had_ext:
                await conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{ext}"')
                applied.extensions.append(ext)
        for stmt in variant.statements:
            known = await index_names(conn)
            started = time.perf_counter()
            await conn.execute(stmt)
            seconds = time.perf_counter() - started
            for name in sorted(await index_names(conn) - known):
                applied.indexes.append(name)
                applied.build_seconds[name] = seconds
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        applied.indexes = sorted(await index_names(conn) - before)
        await remove_variant(conn, applied)
        raise InputError(f"variant {variant.name!r}: a statement failed: {exc}") from None
    # Expression indexes carry their own statistics: without ANALYZE the planner ignores them.
    tables = await conn.fetch(
        "SELECT DISTINCT c.relname FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid"
        " JOIN pg_class c ON c.oid = i.indrelid WHERE x.relname = ANY($1::text[]) AND i.indexprs IS NOT NULL",
        applied.indexes)
    for row in tables:
        await conn.execute(f'ANALYZE "{row["relname"]}"')
    return applied


async def remove_variant(conn: asyncpg.Connection, applied: Applied) -> None:
    for name in applied.indexes:
        await conn.execute(f'DROP INDEX IF EXISTS "{name}"')
    for ext in reversed(applied.extensions):
        await conn.execute(f'DROP EXTENSION IF EXISTS "{ext}"')


async def variant_cost(conn: asyncpg.Connection, applied: Applied) -> VariantResult:
    rows = await conn.fetch(
        "SELECT x.relname AS name, c.relname AS tbl, pg_relation_size(x.oid) AS size FROM pg_index i"
        " JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid"
        " WHERE x.relname = ANY($1::text[]) ORDER BY x.relname", applied.indexes)
    costs = [IndexCost(name=r["name"], table=r["tbl"], size_bytes=r["size"],
                       build_seconds=round(applied.build_seconds.get(r["name"], 0.0), 4)) for r in rows]
    v = applied.variant
    return VariantResult(name=v.name, description=v.description, statements=v.statements, indexes=costs,
                         index_size_bytes=sum(c.size_bytes for c in costs),
                         build_seconds=round(sum(c.build_seconds for c in costs), 4))
