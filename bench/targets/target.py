"""A PostgreSQL server taskbench works on and how to connect to it: the embedded server (default)
or any server given by URL (Neon branches and Docker containers arrive here as URLs, see
``provision``).

taskbench always works in a database of its own (``--db-name``, default ``taskbench``). A URL's
database only serves to reach the server and, when needed, to create that database.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bench.errors import DatabaseError, InputError, first_line
from bench.results import ConnectionProbe
from bench.targets.embedded import start_embedded
from bench.targets.majors import DEFAULT_PG_MAJOR, default_data_dir
from bench.targets.options import DEFAULT_DB_NAME

# Every session taskbench opens has a statement timeout: set-up work (seeding, index builds, copies,
# ANALYZE) under this one, a cell's executions under their own (``RunOptions.statement_timeout_ms``).
# Generous, for the largest datasets; what it bounds is a statement that would otherwise never end
# (a lock that is never released, a runaway query), not a slow build.
SETUP_TIMEOUT_S = 15 * 60


def redacted(url: URL) -> str:
    """``url`` as it may be shown: the password masked, whether it sits before the host or in the
    query (libpq also takes ``?password=``)."""
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    return url.render_as_string(hide_password=True)


@dataclass(frozen=True)
class Target:
    """A reachable PostgreSQL server and the taskbench database on it."""

    kind: str  # "embedded", "url", "neon" or "docker"
    url: URL  # points at the taskbench database; never printed without redaction
    data_dir: Path | None = None
    maintenance_db: str = "postgres"  # the URL's own database: where CREATE/DROP DATABASE run
    probe: ConnectionProbe | None = None  # the first contact with the server, timed

    @property
    def host_kind(self) -> str:
        """``pooler`` for a Neon ``-pooler`` host (PgBouncer, transaction mode), ``socket`` for a unix
        socket, else ``direct``."""
        host = self._query("host") or self.url.host or ""
        if not host or host.startswith("/"):
            return "socket"
        return "pooler" if "-pooler." in host or host.endswith("-pooler") else "direct"

    def _query(self, key: str) -> str | None:
        """A URL query parameter; the first where libpq was given several (several hosts)."""
        value = self.url.query.get(key)
        return value[0] if isinstance(value, tuple) else value

    @property
    def display(self) -> str:
        """The URL with its password masked: the only form that may be printed or stored."""
        return redacted(self.url)

    @property
    def database(self) -> str:
        return self.url.database or DEFAULT_DB_NAME

    def sqlalchemy_url(self) -> URL:
        return self.url.set(drivername="postgresql+psycopg")

    def libpq_conninfo(self, database: str | None = None, direct: bool = True) -> str:
        """A libpq URI (psycopg, psql, pgbench); libpq takes ``sslmode``/``channel_binding`` as they are.

        ``direct`` (for set-up: DDL, COPY, session settings, CREATE DATABASE) bypasses a Neon pooler
        by its documented host naming (``ep-x-pooler.region`` → ``ep-x.region``): PgBouncer in
        transaction mode would drop session state between statements."""
        url = self.url.set(drivername="postgresql", database=database or self.database)
        if direct and self.host_kind == "pooler" and url.host:
            url = url.set(host=url.host.replace("-pooler.", ".", 1).removesuffix("-pooler"))
        conninfo = url.render_as_string(hide_password=False)
        if not direct and self.host_kind == "pooler":  # PgBouncer refuses startup options it does not know
            return conninfo
        # key=value form from here: a URI's query would need its spaces percent-encoded
        options = f"{self._query('options') or ''} -c statement_timeout={SETUP_TIMEOUT_S}s".strip()
        return make_conninfo(conninfo, options=options)

    def asyncpg_kwargs(self) -> dict[str, Any]:
        """Explicit keyword arguments: asyncpg would forward libpq-only URL parameters such as
        ``sslmode`` and ``channel_binding`` (Neon URLs carry both) to the server and fail, so only
        the socket host and port are taken from the query and TLS is passed as ``ssl``."""
        query = dict(self.url.query)
        kwargs: dict[str, Any] = {
            "user": self.url.username,
            "password": self.url.password or query.get("password"),
            "database": self.database,
            "host": query.get("host") or self.url.host,
            "port": self.url.port or query.get("port"),  # a socket URL puts the port in the query
        }
        sslmode = query.get("sslmode")
        if sslmode and sslmode != "disable":
            kwargs["ssl"] = sslmode
        if self.host_kind == "pooler":
            # Transaction-mode PgBouncer may hand each statement another server session, where a
            # named prepared statement does not exist: unnamed statements only.
            kwargs["statement_cache_size"] = 0
        else:  # a pooler refuses startup parameters it does not know; the client's limits hold there
            kwargs["server_settings"] = {"statement_timeout": f"{SETUP_TIMEOUT_S}s"}
        return {k: v for k, v in kwargs.items() if v is not None}


def parse_database_url(raw: str) -> URL:
    """The URL, or one line saying what is wrong with it — never a part of its password."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise InputError("DATABASE_URL is not a valid URL (expected postgresql://user:password@host/db)") from None
    except ValueError:  # the port: not a number, or an IPv6 host without its brackets
        raise InputError(
            "DATABASE_URL's port is not a number (an IPv6 host goes in brackets: postgresql://user@[::1]:5432/db)"
        ) from None
    if not url.drivername.startswith("postgres"):
        raise InputError(f"DATABASE_URL must be a postgresql:// URL, not {url.drivername}://")
    if url.host and "@" in url.host:  # the rest of a password with an unescaped @: never shown
        raise InputError("DATABASE_URL has an '@' after the password's start: write an '@' in a password as %40")
    return url.set(drivername="postgresql")


def connect_error(exc: Exception, display: str) -> DatabaseError:
    return DatabaseError(f"cannot connect to {display}: {first_line(exc)}")


def ensure_database(target: Target) -> None:
    """Create the target's database unless it exists (needs CREATEDB; a clear error otherwise)."""
    db_name = target.database
    try:
        with psycopg.connect(target.libpq_conninfo(target.maintenance_db), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db_name,)).fetchone()
            if exists:
                return
            try:
                conn.execute(f'CREATE DATABASE "{db_name}"')
            except psycopg.errors.InsufficientPrivilege:
                raise DatabaseError(
                    f"database {db_name!r} does not exist and this role may not create it; "
                    f"create it or pass --db-name with a database taskbench may use"
                ) from None
    except psycopg.OperationalError as exc:
        raise connect_error(exc, redacted(target.url.set(database=target.maintenance_db))) from None


def probe_connection(target: Target, warm_queries: int = 5) -> ConnectionProbe:
    """Time the first contact: connecting, the first query (on Neon it may wake a suspended
    compute: hundreds of ms) and the median of a few more, so that cost is reported on its own
    and never mixed into the warm samples."""
    started = time.perf_counter()
    try:
        conn = psycopg.connect(
            target.libpq_conninfo(target.maintenance_db, direct=False), autocommit=True, connect_timeout=30
        )
    except psycopg.OperationalError as exc:
        raise connect_error(exc, redacted(target.url.set(database=target.maintenance_db))) from None
    connected = time.perf_counter()
    with conn:
        conn.execute("SELECT 1")
        first = time.perf_counter()
        warm = []
        for _ in range(warm_queries):
            t0 = time.perf_counter()
            conn.execute("SELECT 1")
            warm.append(time.perf_counter() - t0)
    return ConnectionProbe(
        host_kind=target.host_kind,
        connect_ms=(connected - started) * 1e3,
        first_query_ms=(first - connected) * 1e3,
        warm_query_ms=statistics.median(warm) * 1e3,
    )


def check_db_name(db_name: str) -> None:
    if not db_name.replace("_", "").isalnum():
        raise InputError(f"--db-name must be letters, digits and underscores, not {db_name!r}")


def open_server(
    server_url: URL, kind: str, db_name: str, data_dir: Path | None = None, maintenance_db: str | None = None
) -> Target:
    """The target for taskbench's database on a reachable server: first contact timed, database
    created if missing."""
    check_db_name(db_name)
    target = Target(
        kind=kind,
        url=server_url.set(database=db_name),
        data_dir=data_dir,
        maintenance_db=maintenance_db or server_url.database or "postgres",
    )
    target = replace(target, probe=probe_connection(target))
    ensure_database(target)
    return target


def open_target(
    database_url: str | None,
    db_name: str = DEFAULT_DB_NAME,
    data_dir: Path | None = None,
    major: int = DEFAULT_PG_MAJOR,
) -> Target:
    """Resolve the target, start the embedded server (of ``major``; in ``data_dir``, by default the
    major's own) if needed, and make sure our database exists."""
    check_db_name(db_name)
    if database_url:
        return open_server(parse_database_url(database_url), "url", db_name)
    embedded_dir = (data_dir or default_data_dir(major)).expanduser().resolve()
    return open_server(start_embedded(embedded_dir, major), "embedded", db_name, data_dir=embedded_dir)


def drop_database(target: Target, db_name: str) -> None:
    """Drop a database taskbench created (used by tests and scratch copies)."""
    with psycopg.connect(target.libpq_conninfo(target.maintenance_db), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def _sessions_on(target: Target) -> str:
    with psycopg.connect(target.libpq_conninfo(target.maintenance_db), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT coalesce(nullif(application_name, ''), 'unnamed client') FROM pg_stat_activity WHERE datname = %s",
            (target.database,),
        ).fetchall()
    names = sorted({r[0] for r in rows})
    return f"{len(rows)} other session(s) ({', '.join(names)})" if rows else "another session"


# A scratch copy whose run died (kill -9, a lost machine) is found by the server itself, from any
# host: while a copy lives, the session that made it holds a session-level advisory lock keyed on
# its name, and the copy carries SCRATCH_MARK as its comment. A marked copy whose lock no session
# holds is an orphan. Only a database with the mark and a scratch copy's name (<db>_<label>_<hex>)
# is ever a candidate: taskbench drops nothing it did not make.
SCRATCH_LOCK_CLASS = 0x74627363  # "tbsc": the first key of the two-int advisory lock; the second is hashtext(name)
SCRATCH_MARK = "taskbench scratch copy: dropped when its run ends"
SCRATCH_NAME = re.compile(r"[A-Za-z0-9_]+_[a-z]+_[0-9a-f]{6}")
# The lock is looked for in pg_locks, every database's, rather than tried: an advisory lock belongs
# to the database its session is in, and a sweep connected to another maintenance database than the
# run's would get the lock and drop a live copy. Only copies this role may drop are candidates.
_ORPHANS = sql.SQL("""
SELECT d.datname FROM pg_database d
WHERE shobj_description(d.oid, 'pg_database') = {mark}
  AND pg_has_role(d.datdba, 'MEMBER')
  AND NOT EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid = {lock_class}
      AND l.objid = hashtext(d.datname)::oid
  )
ORDER BY 1
""").format(mark=sql.Literal(SCRATCH_MARK), lock_class=sql.Literal(SCRATCH_LOCK_CLASS))


def maintenance_connection(target: Target) -> psycopg.Connection:
    """An autocommit session in the server's maintenance database (where databases and roles are
    made and dropped), connection failures as one-line errors."""
    try:
        return psycopg.connect(target.libpq_conninfo(target.maintenance_db), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise connect_error(exc, redacted(target.url.set(database=target.maintenance_db))) from None


def _orphans(conn: psycopg.Connection) -> list[str]:
    return [name for (name,) in conn.execute(_ORPHANS) if SCRATCH_NAME.fullmatch(name)]


def _drop(conn: psycopg.Connection, name: str) -> None:
    # FORCE: a dead run's sessions may still be running a statement on its copy.
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _drop_orphans(conn: psycopg.Connection) -> list[str]:
    orphans = _orphans(conn)
    for name in orphans:
        _drop(conn, name)
    return orphans


def orphaned_copies(target: Target) -> list[str]:
    """The scratch copies on the target's server whose run is dead (nothing is dropped)."""
    with maintenance_connection(target) as conn:
        return _orphans(conn)


def drop_orphaned_copies(target: Target) -> list[str]:
    """Drop the scratch copies on the target's server whose run is dead; their names."""
    with maintenance_connection(target) as conn:
        return _drop_orphans(conn)


@contextmanager
def scratch_copy(target: Target, label: str = "scratch", *, empty: bool = False) -> Iterator[Target]:
    """A throw-away copy of the target's database (``CREATE DATABASE ... TEMPLATE``), for work that
    writes (write-cost measurements, scale runs) so the seeded dataset is never altered; ``empty``:
    a new empty database instead. The copy is file-level, so it takes seconds, not a re-seed; it is
    dropped on exit, whatever happens, and if this process is killed, by the next one that makes a
    scratch copy on the server (or ``taskbench server stop``). Orphans of dead runs are dropped first."""
    name = f"{target.database}_{label}_{secrets.token_hex(3)}"
    copy = replace(target, url=target.url.set(database=name))
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if not empty:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(target.database))
    # One session makes the copy, holds its lock for as long as it lives, and drops it: locked
    # before the copy exists and until it is gone, so no sweep ever sees it marked and unlocked.
    with maintenance_connection(target) as conn:
        _drop_orphans(conn)
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (SCRATCH_LOCK_CLASS, name))
        try:
            conn.execute(create)
        except psycopg.errors.ObjectInUse:
            raise DatabaseError(
                f"cannot copy {target.database!r} to work on: {_sessions_on(target)} connected to it "
                f"(CREATE DATABASE ... TEMPLATE needs it idle); close them and retry"
            ) from None
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot copy {target.database!r}: {first_line(exc)}") from None
        try:
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(SCRATCH_MARK))
            )
            yield copy
        finally:
            _drop(conn, name)


# What asyncpg raises when a connection cannot be opened: refused, unreachable, timed out, rejected.
ASYNC_CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError)


async def connect_async(target: Target) -> asyncpg.Connection:
    """An asyncpg connection to the taskbench database, with connection failures as one-line errors."""
    try:
        return await asyncpg.connect(**target.asyncpg_kwargs(), timeout=15)
    except ASYNC_CONNECT_ERRORS as exc:
        raise connect_error(exc, target.display) from None


@asynccontextmanager
async def connected(target: Target) -> AsyncIterator[asyncpg.Connection]:
    """``connect_async``, closed on the way out whatever happens: the one connect/close block."""
    conn = await connect_async(target)
    try:
        yield conn
    finally:
        await conn.close()
