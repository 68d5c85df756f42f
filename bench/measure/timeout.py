"""Statement timeouts: every execution of a cell runs under one derived from its SLA
(``RunOptions.statement_timeout_ms``), so a query that never ends costs a run that much, not forever.

The server enforces it (``SET statement_timeout``: it cancels the statement itself, even when the
client died); the client keeps a limit of its own a little beyond it, which is the one that holds
behind a pooler, where a SET does not stay with the session.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

# The client's own limit beyond a statement's timeout: a pooler's sessions (PgBouncer, transaction
# mode) do not keep a SET, so there the client's limit is the one that holds.
CLIENT_GRACE_S = 5.0


class TimedOut(Exception):
    """An execution cut off at its statement timeout (by the server, or by the client's limit)."""

    def __init__(self, elapsed_ms: float) -> None:
        super().__init__(f"timed out after {elapsed_ms:.0f} ms")
        self.elapsed_ms = elapsed_ms
        self.index = 0  # which of a series of executions (a warm-up's)


@asynccontextmanager
async def limited(timeout_ms: int | None) -> AsyncIterator[None]:
    """Turn a statement cut off at its timeout into ``TimedOut``: the server's cancel (SQLSTATE
    57014) or the client's limit ``timeout_ms`` + CLIENT_GRACE_S (asyncpg cancels the query too)."""
    started = time.perf_counter_ns()
    try:
        yield
    except (asyncpg.QueryCanceledError, TimeoutError) as exc:
        if timeout_ms is None:
            raise
        raise TimedOut((time.perf_counter_ns() - started) / 1e6) from exc


def client_limit(timeout_ms: int | None) -> float | None:
    return None if timeout_ms is None else timeout_ms / 1e3 + CLIENT_GRACE_S


class Session:
    """A connection the cells measure on, and the statement_timeout set on it: SET only when the next
    cell's differs, never inside a timed statement. Behind a pooler no SET is sent (it would land on
    a server session other clients get next); the client's limit holds there."""

    def __init__(self, conn: asyncpg.Connection, server_side: bool = True) -> None:
        self.conn, self.server_side = conn, server_side
        self.timeout_ms: int | None = None

    async def limit(self, timeout_ms: int) -> None:
        if self.server_side and timeout_ms != self.timeout_ms:
            await self.conn.execute(f"SET statement_timeout = {int(timeout_ms)}")
        self.timeout_ms = timeout_ms

    async def reset(self) -> None:
        """Back to the connection's own limit (set-up statements: ANALYZE, index builds)."""
        if self.server_side and self.timeout_ms is not None:
            await self.conn.execute("RESET statement_timeout")
        self.timeout_ms = None
