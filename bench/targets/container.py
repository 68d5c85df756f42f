"""A throw-away PostgreSQL in Docker (testcontainers), for teams whose PostgreSQL comes that way."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy.engine import URL, make_url

from bench.errors import DatabaseError, first_line
from bench.targets.majors import DEFAULT_PG_MAJOR


@contextmanager
def docker_postgres(major: int = DEFAULT_PG_MAJOR) -> Iterator[URL]:
    """Start ``postgres:<major>`` and yield its URL; the container is removed on exit."""
    logging.getLogger("testcontainers").setLevel(logging.WARNING)
    import docker.errors
    from testcontainers.community.postgres import PostgresContainer

    try:
        container = PostgresContainer(f"postgres:{major}", driver=None)
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST") or "the default Docker socket"
        raise DatabaseError(
            f"no Docker engine is reachable at {where} ({first_line(exc)}); start Docker, "
            "or use the embedded target (no --target) or --database-url"
        ) from None
    try:
        container.start()
    except BaseException as exc:  # a failed pull, a readiness timeout, Ctrl-C: never leave it running
        with suppress(Exception):
            container.stop()
        if isinstance(exc, (docker.errors.DockerException, TimeoutError, RuntimeError)):
            raise DatabaseError(f"the postgres:{major} container did not start: {first_line(exc)}") from None
        raise
    try:
        yield make_url(container.get_connection_url()).set(drivername="postgresql")
    finally:
        container.stop()
