"""The role a run's samples execute as: created for one scratch copy with exactly what the scenarios
need there (connect, read and write the canonical tables, take their sequences' values), and
dropped with it.

The catalogue's parser refuses what a scenario may not do; this role makes the server refuse it
too, for whatever the parser might miss: it is no superuser and holds none of the predefined roles
(``pg_read_server_files``, ``pg_signal_backend``...), so ``pg_read_file`` or cancelling another
session's query fails with "permission denied" rather than running. Where the connecting role may
not create roles (a managed service's ordinary role), or the new one may not log in (pg_hba), the
samples run as the connecting role and the results say why.

A role is a server-wide object that outlives a killed run. As with scratch copies (``target``),
the session that made a role holds an advisory lock on its name for as long as it lives, and the
role carries a comment naming its database: a marked role whose lock no session holds is an
orphan, dropped by the next run that makes one (``drop_orphans``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from bench.errors import DatabaseError, first_line
from bench.models import TABLE_NAMES
from bench.targets import schema
from bench.targets.target import Target, maintenance_connection

PREFIX = "taskbench_sampler_"
_MARK = "taskbench sampler for database "  # the role's comment: the mark and its database
ROLE_LOCK_CLASS = 0x74627372  # "tbsr": the first key of the two-int advisory lock; the second is hashtext(name)
# Looked for in pg_locks (every database's), as for scratch copies: a lock belongs to its session's
# database, and a sweep from another database would take it and drop a live role.
_ORPHANS = sql.SQL("""
SELECT r.rolname FROM pg_roles r
JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
WHERE starts_with(r.rolname, {prefix}) AND starts_with(d.description, {mark})
  AND NOT EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid = {lock_class}
      AND l.objid = hashtext(r.rolname)::oid
  )
ORDER BY 1
""").format(prefix=sql.Literal(PREFIX), mark=sql.Literal(_MARK), lock_class=sql.Literal(ROLE_LOCK_CLASS))


@dataclass(frozen=True)
class Sampler:
    """Where the samples run: ``target`` (the scratch copy, reached as ``role``) and, in a line for
    the results, as whom and with which privileges."""

    target: Target
    role: str | None  # None: the connecting role (see ``privileges``)
    privileges: str


def orphans(target: Target) -> list[str]:
    """The sampler roles on the target's server whose run died (nothing is dropped)."""
    with maintenance_connection(target) as conn:
        return [name for (name,) in conn.execute(_ORPHANS)]


def drop_orphans(target: Target) -> list[str]:
    """Drop the sampler roles whose run died (marked, and no session holds their lock); only roles
    carrying taskbench's mark. A role that still holds privileges in a database that outlived its
    run (a load test's, on the seeded database) cannot be dropped from here: it is left, and the
    next sweep on that database drops it (``DROP OWNED`` there first). A role another run's sweep
    dropped between the listing and the drop is that sweep's. Returns the names dropped."""
    dropped = []
    with maintenance_connection(target) as maintenance, schema.connect(target) as here:
        for (name,) in maintenance.execute(_ORPHANS).fetchall():
            try:
                here.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                maintenance.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            except (psycopg.errors.DependentObjectsStillExist, psycopg.errors.UndefinedObject):
                continue
            dropped.append(name)
    return dropped


def _grant(conn: psycopg.Connection, role: str, database: str, readable: Sequence[str]) -> None:
    ident = sql.Identifier(role)
    tables = sql.SQL(", ").join(sql.Identifier("public", t) for t in TABLE_NAMES)
    statements = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(tables, ident),
        sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident),
    ]
    if readable:
        extra = sql.SQL(", ").join(sql.Identifier("public", t) for t in readable)
        statements.append(sql.SQL("GRANT SELECT ON {} TO {}").format(extra, ident))
    for statement in statements:
        conn.execute(statement)


def _create(holder: psycopg.Connection, database: str, role: str, password: str) -> str | None:
    """Make the role (its privileges come after: ``_grant``); None, or why it could not be made."""
    ident = sql.Identifier(role)
    try:
        holder.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN PASSWORD {} "
                "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
            ).format(ident, sql.Literal(password))
        )
        holder.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(ident, sql.Literal(_MARK + database)))
    except psycopg.Error as exc:
        return f"it may not create one for the samples ({first_line(exc)})"
    return None


def _logs_in(target: Target) -> str | None:
    try:
        psycopg.connect(target.libpq_conninfo(), connect_timeout=15).close()
    except psycopg.OperationalError as exc:
        return f"a role made for the samples may not log in ({first_line(exc)})"
    return None


PRIVILEGES = (
    "a role made for the run: no superuser, no predefined roles; SELECT, INSERT, UPDATE, DELETE on the "
    "canonical tables and USAGE on their sequences, in its database only"
)


@contextmanager
def sampler(database: Target, readable: Sequence[str] = ()) -> Iterator[Sampler]:
    """A role for the samples on ``database`` (a scratch copy), dropped on the way out whatever
    happens; the connecting role when one cannot be made (``Sampler.privileges`` says why).
    ``readable``: tables of the harness's own it may read too (a load test's parameter sets). One
    session makes it, holds its lock and drops it."""
    role, password = PREFIX + secrets.token_hex(4), secrets.token_urlsafe(24)
    drop_orphans(database)
    with maintenance_connection(database) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (ROLE_LOCK_CLASS, role))
        refused = _create(holder, database.database, role, password)
        if refused is not None:
            yield Sampler(database, None, f"the connecting role: {refused}")
            return
        try:
            with schema.connect(database) as conn:
                _grant(conn, role, database.database, readable)
            reached = replace(database, url=database.url.set(username=role, password=password))
            refused = _logs_in(reached)
            if refused is not None:
                yield Sampler(database, None, f"the connecting role: {refused}")
            else:
                yield Sampler(reached, role, PRIVILEGES)
        finally:
            _drop(holder, database, role)


def _drop(holder: psycopg.Connection, database: Target, role: str) -> None:
    """Its privileges in the database (DROP OWNED also revokes CONNECT on it), then the role. When the
    server cannot be reached now, a later run's ``drop_orphans`` drops it (its lock goes with us)."""
    ident = sql.Identifier(role)
    try:
        with schema.connect(database) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        holder.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
    except (psycopg.Error, DatabaseError):
        pass
