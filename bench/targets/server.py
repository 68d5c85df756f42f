"""``taskbench server status`` and ``taskbench server stop``: the embedded server of a data directory,
and what dead taskbench processes left on it (their pids in its handle file, their scratch copies,
their samples' roles)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.targets import roles
from bench.targets.embedded import EmbeddedServer, find_embedded, stop_embedded
from bench.targets.target import Target, drop_orphaned_copies, orphaned_copies


@dataclass(frozen=True)
class ServerState:
    server: EmbeddedServer
    orphans: list[str]  # scratch copies whose run is dead: found (status) or dropped (stop)
    roles: list[str]  # the samples' roles whose run is dead: found or dropped, likewise


def _maintenance(server: EmbeddedServer) -> Target:
    assert server.url is not None, "only a running server is connected to"
    return Target(kind="embedded", url=server.url, data_dir=server.data_dir)


def server_status(data_dir: Path) -> ServerState:
    """The embedded server of ``data_dir``, its handles and its orphaned scratch copies; changes nothing."""
    server = find_embedded(data_dir)
    if not server.running:
        return ServerState(server, [], [])
    target = _maintenance(server)
    return ServerState(server, orphaned_copies(target), roles.orphans(target))


def stop_server(data_dir: Path, force: bool = False) -> ServerState:
    """Drop the orphaned scratch copies, then stop the embedded server of ``data_dir`` (dead pids
    removed from its handle file); refused while a live taskbench process uses it, unless ``force``.
    Stopping a server that is not running only removes the dead pids."""
    server = find_embedded(data_dir)
    copies: list[str] = []
    dropped: list[str] = []
    if server.running:
        target = _maintenance(server)
        copies, dropped = drop_orphaned_copies(target), roles.drop_orphans(target)
    return ServerState(stop_embedded(data_dir, force), copies, dropped)
