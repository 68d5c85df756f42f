"""The plans the report draws as trees (``TimedPlan``): once a cell's samples are taken, each user
class's plan with every node timed, and the generic plan a prepared statement may switch to where
its shape differs from at least one class's plan (timed with the first such class's values).

Per-node timing is on here and only here: its clock calls would slow the samples' own EXPLAINs,
whose execution times the cells record. Each EXPLAIN ANALYZE runs under the cell's statement
timeout in a transaction that is rolled back (a write's rows never stay); one cut off by the
timeout, or a cell whose samples were, leaves the plan estimated only (EXPLAIN without ANALYZE),
and the plan says so.

The generic plan is read through a prepared statement (``PREPARE``, ``SET LOCAL plan_cache_mode =
force_generic_plan``, ``EXPLAIN ... EXECUTE``, ``DEALLOCATE``) inside that transaction, which a
pooler in transaction mode keeps on one server session. A prepared statement outlives the
transaction it was made in, so each has a name of its own: one an EXPLAIN cut off by the timeout
never deallocated (its transaction aborted) is gone with the connection, and no later one meets it.
The server takes no bind parameters in a utility statement, so the ``EXECUTE``'s values are
literals, quoted by psycopg.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import asyncpg
from psycopg import sql

from bench.catalogue.params import Drawn
from bench.measure.claims import Claim, as_user, claim_for
from bench.measure.plan import EXPLAIN_PLAN, EXPLAIN_TIMED, fingerprint, plan_tree, timings
from bench.measure.timeout import TimedOut, client_limit, limited
from bench.results import TimedPlan

Explain = list[dict[str, Any]]


def _execute(name: str, args: list[Any]) -> str:
    """``EXECUTE`` of the prepared statement ``name`` with ``args`` as quoted literals."""
    values = sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Literal, args))) if args else sql.SQL("")
    return sql.SQL("EXECUTE {}{}").format(sql.Identifier(name), values).as_string(None)


async def explain(
    conn: asyncpg.Connection,
    query: str,
    args: list[Any],
    generic: bool,
    analyze: bool,
    timeout_ms: int | None,
    claim: Claim | None = None,
) -> Explain:
    """The EXPLAIN document of ``query`` on ``args`` (its custom plan, or its generic plan), executed
    with every node timed or only planned, in a transaction that is rolled back (``sharing`` reads
    the generic plan's shape here too), under a policy variant with its user's ``claim`` set in it."""
    explain = EXPLAIN_TIMED if analyze else EXPLAIN_PLAN
    async with limited(timeout_ms), as_user(conn, claim, write=True):
        if not generic:
            text = await conn.fetchval(explain + query, *args, timeout=client_limit(timeout_ms))
        else:
            name = f"taskbench_tree_{secrets.token_hex(6)}"  # see the module docstring
            await conn.execute(f"PREPARE {name} AS {query}")
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            text = await conn.fetchval(explain + _execute(name, args), timeout=client_limit(timeout_ms))
            await conn.execute(f"DEALLOCATE {name}")
    document: Explain = json.loads(text)
    return document


async def _plan(
    conn: asyncpg.Connection,
    drawn: Drawn,
    generic: bool,
    timeout_ms: int,
    user_class: str,
    cut: bool,
    claim: str | None,
) -> tuple[TimedPlan, str]:
    """The plan on ``drawn`` with every node timed, and its shape's fingerprint; estimated only when
    the cell was ``cut`` off by its statement timeout already, or this EXPLAIN ANALYZE is. ``claim``:
    the setting a policy variant's policies read, set to the user ``drawn`` was drawn for."""
    query, args, as_whom = drawn.sql, drawn.args, claim_for(claim, drawn.user)
    if not cut:
        try:
            document = await explain(conn, query, args, generic, True, timeout_ms, as_whom)
            execution_ms, planning_ms = timings(document)
            timed = TimedPlan(
                user_class=user_class,
                generic=generic,
                execution_ms=execution_ms,
                planning_ms=planning_ms,
                root=plan_tree(document),
            )
            return timed, fingerprint(document[0]["Plan"])
        except TimedOut:
            pass
    document = await explain(conn, query, args, generic, False, timeout_ms, as_whom)
    estimated = TimedPlan(user_class=user_class, generic=generic, timed_out_ms=timeout_ms, root=plan_tree(document))
    return estimated, fingerprint(document[0]["Plan"])


async def timed_plans(
    conn: asyncpg.Connection, first: dict[str, Drawn], timeout_ms: int, cut: bool, claim: str | None = None
) -> list[TimedPlan]:
    """Each class's plan on its first parameter set (and the statement that set goes with: an ORM
    scenario's in_() sends one per list length), then the generic plan where its shape differs from
    at least one class's plan (the same as another class's does not spare it), executed with the
    first such class's parameters (a generic plan is planned for any values: its shape is the same
    whatever they are). Under a policy variant, as each set's user
    (``claim``: the setting the policies read)."""
    plans, shapes = [], []
    for user_class, drawn in first.items():
        plan, shape = await _plan(conn, drawn, False, timeout_ms, user_class, cut, claim)
        plans.append(plan)
        shapes.append(shape)
    if not plans:
        return plans
    drawn = next(iter(first.values()))
    document = await explain(conn, drawn.sql, drawn.args, True, False, timeout_ms, claim_for(claim, drawn.user))
    generic_shape = fingerprint(document[0]["Plan"])
    other = next((p.user_class for p, shape in zip(plans, shapes, strict=True) if shape != generic_shape), None)
    if other is not None:
        plans.append((await _plan(conn, first[other], True, timeout_ms, other, cut, claim))[0])
    return plans
