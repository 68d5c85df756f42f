"""A second, throw-away PostgreSQL server with the settings Neon gives a fixed 1 CU compute, for
tests that must see what the planner sees on Neon (the Neon API stand-in's branches live on it).

The values are Neon's, from its "Postgres compatibility" reference (neon.com/docs/reference/
compatibility): the table of "Postgres parameter settings" and, under "Parameter settings that differ
by compute size", the formulas for a compute of min = max = 1 CU (4 GB of RAM). Replication and
logging settings of that table are left out: they change nothing a query does here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL, make_url

from tools.loopback_server import loopback_server

NEON_1CU: dict[str, str] = {
    # Differ by compute size (formulas of the reference, at 1 CU):
    "max_connections": "419",  # max(100, min(4000, floor(1 × 419.66)))
    "maintenance_work_mem": "67MB",  # max(4 GiB × 1024 / 63,963,136, 65,536) kB; the reference's table: 67 MB
    "max_worker_processes": "14",  # 12 + floor(2 × 1)
    "shared_buffers": "128MB",  # max(128, (1023 + (1 + 419 + 14) × 256) / 1024) MB
    "effective_cache_size": "3GB",  # the local file cache of 1 CU: 75% of its 4 GB ("How to size your compute")
    # The same on every compute size:
    "effective_io_concurrency": "20",
    "max_parallel_workers": "8",
    "superuser_reserved_connections": "4",
    "idle_in_transaction_session_timeout": "300000",
    "client_connection_check_interval": "60000",
    "fsync": "off",  # Neon's safekeepers keep the WAL instead
}


@pytest.fixture(scope="session")
def neon_settings_server() -> Iterator[URL]:
    """The server (its unix socket, database postgres) with NEON_1CU; stopped and its directory
    removed at the end of the session."""
    with loopback_server(settings=NEON_1CU) as urls:
        yield make_url(urls["SOCKET_URL"])
