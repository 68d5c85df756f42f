"""User-facing errors and the exit codes they map to (documented in the README)."""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_REGRESSION = 1  # compare found a regression
EXIT_INPUT = 2  # bad input: malformed file, unknown name, incomparable results
EXIT_DATABASE = 3  # database unreachable, refused, or not ours
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM (128 + SIGINT)


def first_line(exc: BaseException | str) -> str:
    """A driver error's (or a message quoting one) first line: without the server's DETAIL:, HINT:,
    CONTEXT: or LINE lines and the query text."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# user:password@ in a URL, password=... in a libpq connection string
_SECRETS = re.compile(r"(?<=://)([^:/@\s]*):[^@\s]*@|(?<=password=)[^\s&]+", re.IGNORECASE)


def hide_secrets(text: str) -> str:
    """``text`` with the password of any URL or connection string in it replaced by ***."""
    return _SECRETS.sub(lambda m: f"{m.group(1)}:***@" if m.group(1) is not None else "***", text)


class TaskbenchError(Exception):
    """An error caused by the user's input or environment, reported as one line."""

    exit_code = EXIT_INPUT


class InputError(TaskbenchError):
    """A malformed scenario/variant/results file or an unknown name."""

    exit_code = EXIT_INPUT


class DatabaseError(TaskbenchError):
    """The database cannot be reached, or taskbench must not touch it."""

    exit_code = EXIT_DATABASE


class IsolationFailure(TaskbenchError):
    """A policy variant let a user see or change another user's rows (run, bench: after saving the
    run and its report)."""

    exit_code = EXIT_REGRESSION


class Interrupted(TaskbenchError):
    """Ctrl-C: work in progress was abandoned after cleaning up."""

    exit_code = EXIT_INTERRUPTED


def as_user_error(exc: BaseException) -> TaskbenchError | None:
    """An error that escaped the places that word their own, as one line: a driver or network
    error (a connection lost mid-run, a server that refused a statement) is the database's; any
    other OS error (a reports directory that cannot be written) is the environment's; None for the
    rest, which are bugs."""
    import asyncpg
    import psycopg

    if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, psycopg.Error, ConnectionError, TimeoutError)):
        return DatabaseError(f"the database failed: {first_line(exc)}")
    if isinstance(exc, OSError):
        return InputError(first_line(exc))
    return None
