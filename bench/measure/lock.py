"""One measurement at a time per server: a session-level advisory lock, and the machine's load.

Two runs measuring on one server time each other's queries, and nothing in their samples shows it.
A run that measures therefore holds an advisory lock on a fixed key for as long as it measures. The
lock is taken in the server's maintenance database (``postgres`` on the embedded server), not in
the seeded database: advisory locks belong to a database, so every run on the server meets there
whatever its ``--db-name``, and a session on the seeded database would stop the scratch copy
(``CREATE DATABASE ... TEMPLATE`` needs its template idle). Being a lock in the server, it also works
on a server given by URL, a Docker container or a Neon branch (each Neon run measures on a branch,
a compute, of its own). The lock session connects directly, past a Neon pooler: a transaction-mode
pooler would hand a session lock's statements to any server session.

A second run waits up to ``wait`` seconds for the lock, then stops with an error naming the holder
(pid, application name, since when). ``concurrent`` measures anyway: the lock is taken if free (a
later run then waits for this one), and the results record who held it otherwise.

The machine's load average is recorded before and after measuring: the lock cannot see a compile
or a browser on the same machine, the load average can.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from bench.errors import DatabaseError
from bench.results import Conditions
from bench.targets.target import Target, connect_error, redacted

LOCK_KEY = 0x7461736B62656E63  # "taskbenc": one key for every taskbench on a server
_POLL_S = 0.2
# The bigint key as pg_locks shows it: its high and low halves in classid and objid, objsubid 1.
_HOLDER = """
SELECT a.pid, a.application_name, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid = %(high)s AND l.objid = %(low)s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
LIMIT 1
"""


@dataclass(frozen=True)
class Measuring:
    """What ``measurement_lock`` yields; ``finish()`` after measuring gives the run's conditions."""

    concurrent: bool
    lock: str
    load_before: list[float]

    def finish(self) -> Conditions:
        return Conditions(
            concurrent=self.concurrent,
            lock=self.lock,
            cpus=os.cpu_count() or 1,
            load_before=self.load_before,
            load_after=_load(),
        )


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _holder(conn: psycopg.Connection) -> str:
    row = conn.execute(_HOLDER, {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF}).fetchone()
    if row is None:  # released between the try and this look
        return "another measurement (gone by the time it was looked up)"
    pid, name, since = row
    started = since.strftime("%Y-%m-%d %H:%M:%S %Z") if since else "an unknown time"
    return f"pid {pid} ({name or 'no application_name'}), measuring since {started}"


def _try_lock(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
    return bool(row and row[0])


@contextmanager
def measurement_lock(target: Target, label: str, concurrent: bool = False, wait: float = 10.0) -> Iterator[Measuring]:
    """Hold the server's measurement lock while the block measures (see the module docstring)."""
    try:
        conn = psycopg.connect(
            target.libpq_conninfo(target.maintenance_db),
            autocommit=True,
            connect_timeout=15,
            application_name=f"taskbench {label} (pid {os.getpid()})",
        )
    except psycopg.OperationalError as exc:
        raise connect_error(exc, redacted(target.url.set(database=target.maintenance_db))) from None
    with conn:
        deadline = time.monotonic() + (0.0 if concurrent else wait)
        while not (held := _try_lock(conn)):
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_S)
        if not held and not concurrent:
            raise DatabaseError(
                f"another measurement is running on this server: {_holder(conn)}; waited {wait:g} s. "
                "Let it finish, or pass --concurrent to measure beside it (the results say so)"
            )
        lock = "held" if held else f"not held: {_holder(conn)} held it (--concurrent)"
        try:
            yield Measuring(concurrent=concurrent, lock=lock, load_before=_load())
        finally:
            # Closing the session would release the lock too, but only once the server process has
            # noticed the close: a run started right after this one could still find it held.
            if held and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
