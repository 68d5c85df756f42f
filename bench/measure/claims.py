"""Whose rows a sample sees under a policy variant: the sampled user's claim, set in its transaction.

An app relying on row-level security sets the user's id in a session setting the policies read
(``current_setting('app.user_id')``) at the start of each request's transaction, with
``set_config(..., true)`` so that it ends with the transaction and a pooled connection carries no
user into the next request. Each sample under a policy variant does the same: a transaction, the
claim set to the user its parameters were drawn for, the statement (the one thing timed), and a
rollback. The connection itself claims a user who owns nothing (``NOBODY``) between samples, so a
statement run without a claim of its own (a plan taken for a check's pairs, say) sees no one's rows
instead of failing on a setting that is not there.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from bench.measure.transaction import rolled_back
from bench.models import TABLE_NAMES

NOBODY = uuid.UUID(int=0)  # no user has this id: a claim that sees no row
_SET = "SELECT set_config($1, $2, $3)"

Claim = tuple[str, uuid.UUID]  # the setting the policies read, and the user it is set to


def claim_for(setting: str | None, user: uuid.UUID | None) -> Claim | None:
    """The claim of a sample drawn for ``user`` under a variant whose policies read ``setting``."""
    if setting is None:
        return None
    assert user is not None, "a sample under a policy variant is drawn for a user (Drawer.draw)"
    return setting, user


@asynccontextmanager
async def as_user(conn: asyncpg.Connection, claim: Claim | None, write: bool = False) -> AsyncIterator[None]:
    """The block in a transaction that is rolled back, the claim set in it: a write's (it must leave
    no row behind) or a sample's under a policy variant. A read without a claim runs as it is."""
    if claim is None and not write:
        yield
        return
    async with rolled_back(conn):
        if claim is not None:
            await conn.execute(_SET, claim[0], str(claim[1]), True)
        yield


async def claim_nobody(conn: asyncpg.Connection, setting: str | None) -> None:
    """Between samples, the connection claims a user who owns nothing (see the module docstring)."""
    if setting is not None:
        await conn.execute(_SET, setting, str(NOBODY), False)


_SUBJECT = """
SELECT r.rolsuper OR r.rolbypassrls AS bypasses,
       EXISTS (SELECT 1 FROM pg_tables t WHERE t.schemaname = 'public' AND t.tablename = ANY($1::text[])
               AND t.tableowner = current_user) AS owns
FROM pg_roles r WHERE r.rolname = current_user
"""


async def policy_subject(conn: asyncpg.Connection) -> str | None:
    """None when row-level security filters what ``conn`` reads (its role owns none of the tables and
    neither is a superuser nor has BYPASSRLS); else why a policy variant cannot be measured on it."""
    row = await conn.fetchrow(_SUBJECT, list(TABLE_NAMES))
    assert row is not None  # current_user is a role
    if row["bypasses"]:
        return "the samples' role bypasses row-level security (superuser or BYPASSRLS)"
    if row["owns"]:
        return "the samples' role owns the tables, which row-level security does not filter"
    return None
