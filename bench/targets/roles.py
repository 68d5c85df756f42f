"""The role a run's samples execute as: created for one scratch copy with exactly what the scenarios
need there (connect, read and write the canonical tables, take their sequences' values), and
dropped with it.

The catalogue's parser refuses what a scenario may not do; this role makes the server refuse it
too, for whatever the parser might miss: it is no superuser and holds none of the predefined roles
(``pg_read_server_files``, ``pg_signal_backend``...), so ``pg_read_file`` or cancelling another
session's query fails with "permission denied" rather than running. Where the connecting role may
not create roles (a managed service's ordinary role), or the new one may not log in (pg_hba), the
samples run as the connecting role and the results say why.

A role is a server-wide object that outlives a killed run: every sampler role carries a comment
naming its scratch database, and a role whose database is gone is dropped by the next run that
makes one (``drop_orphans``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from bench.errors import first_line
from bench.models import TABLE_NAMES
from bench.targets.target import Target

PREFIX = "taskbench_sampler_"
_MARK = "taskbench sampler for database "  # the role's comment: the mark and its database


@dataclass(frozen=True)
class Sampler:
    """Where the samples run: ``target`` (the scratch copy, reached as ``role``) and, in a line for
    the results, as whom and with which privileges."""

    target: Target
    role: str | None  # None: the connecting role (see ``privileges``)
    privileges: str


def _admin(target: Target, database: str | None = None) -> psycopg.Connection:
    return psycopg.connect(target.libpq_conninfo(database), autocommit=True, connect_timeout=15)


def drop_orphans(target: Target) -> list[str]:
    """Drop sampler roles whose scratch database no longer exists (their run died before dropping
    them); only roles carrying taskbench's mark. Returns their names."""
    with _admin(target, target.maintenance_db) as conn:
        rows = conn.execute(
            "SELECT r.rolname FROM pg_roles r "
            "JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass "
            "WHERE starts_with(r.rolname, %s) AND starts_with(d.description, %s) "
            "AND NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = substr(d.description, %s))",
            (PREFIX, _MARK, len(_MARK) + 1),
        ).fetchall()
        for (name,) in rows:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    return [name for (name,) in rows]


def _grant(conn: psycopg.Connection, role: str, database: str) -> None:
    ident = sql.Identifier(role)
    tables = sql.SQL(", ").join(sql.Identifier("public", t) for t in TABLE_NAMES)
    for statement in (
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(tables, ident),
        sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident),
    ):
        conn.execute(statement)


def _create(copy: Target, role: str, password: str) -> str | None:
    """Make the role (its privileges come after: ``_grant``); None, or why it could not be made."""
    try:
        drop_orphans(copy)
        with _admin(copy, copy.maintenance_db) as conn:
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                    "NOBYPASSRLS NOINHERIT"
                ).format(sql.Identifier(role), sql.Literal(password))
            )
            mark = sql.Literal(_MARK + copy.database)
            conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(role), mark))
    except psycopg.Error as exc:
        return f"it may not create one for the samples ({first_line(exc)})"
    return None


def _logs_in(target: Target) -> str | None:
    try:
        psycopg.connect(target.libpq_conninfo(), connect_timeout=15).close()
    except psycopg.OperationalError as exc:
        return f"a role made for the samples may not log in ({first_line(exc)})"
    return None


@contextmanager
def sampler(copy: Target) -> Iterator[Sampler]:
    """A role for the samples on the scratch database ``copy``, dropped on the way out whatever
    happens; the connecting role when one cannot be made (``Sampler.privileges`` says why)."""
    role, password = PREFIX + secrets.token_hex(4), secrets.token_urlsafe(24)
    refused = _create(copy, role, password)
    if refused is not None:
        yield Sampler(copy, None, f"the connecting role: {refused}")
        return
    try:
        with _admin(copy) as conn:
            _grant(conn, role, copy.database)
        reached = replace(copy, url=copy.url.set(username=role, password=password))
        refused = _logs_in(reached)
        if refused is not None:
            yield Sampler(copy, None, f"the connecting role: {refused}")
        else:
            yield Sampler(reached, role, PRIVILEGES)
    finally:
        _drop(copy, role)


PRIVILEGES = (
    "a role made for the run: no superuser, no predefined roles; SELECT, INSERT, UPDATE, DELETE on the "
    "canonical tables and USAGE on their sequences, in the scratch copy only"
)


def _drop(copy: Target, role: str) -> None:
    """Its privileges in the copy (DROP OWNED also revokes CONNECT on the database), then the role.
    When the server cannot be reached now, the next run's ``drop_orphans`` drops it."""
    ident = sql.Identifier(role)
    try:
        with _admin(copy) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        with _admin(copy, copy.maintenance_db) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
    except psycopg.Error:
        pass
