"""A second, throw-away PostgreSQL server with the settings Neon gives a fixed 1 CU compute, for
tests that must see what the planner sees on Neon (the Neon API stand-in's branches live on it).

The values (``NEON_1CU``, in tools/loopback_server.py, which `make gate-proof` uses too) are
Neon's, from its "Postgres compatibility" reference.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL, make_url

from tests.support import SUITE_ROOT
from tools.loopback_server import NEON_1CU, loopback_server


@pytest.fixture(scope="session")
def neon_settings_server() -> Iterator[URL]:
    """The server (its unix socket, database postgres) with NEON_1CU; stopped and its directory
    removed at the end of the session."""
    with loopback_server(settings=NEON_1CU, parent=SUITE_ROOT) as urls:
        yield make_url(urls["SOCKET_URL"])
