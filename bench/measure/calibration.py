"""A calibration workload: fixed pieces of work whose cost does not depend on the code under test.

Measured interleaved with the cells, on both sides of a side-by-side comparison, they say how
fast the machine was while the cells were measured and whether the two sides were measured
under the same conditions (they must then take the same time: an A/A comparison by construction).

- ``round_trip``: ``SELECT 1`` — the client, the driver and the connection;
- ``server_cpu``: a fixed CPU-bound query — the server's CPU, no table involved;
- ``client_cpu``: a fixed piece of Python — the client's CPU.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import asyncpg

ROUND_TRIP = "SELECT 1"
# About a millisecond of pure executor work on a laptop: long enough to be above timer noise,
# short enough to repeat every round.
SERVER_CPU = "SELECT sum(i * i) FROM generate_series(1, 20000) AS s(i)"
_PYTHON_ITERATIONS = 20_000
ITEMS = ("round_trip", "server_cpu", "client_cpu")
# Which of them must come out equal on both sides of a check is the judge's rule
# (bench.judge.check.SAME_MACHINE).


def _client_cpu() -> int:
    return sum(i * i for i in range(_PYTHON_ITERATIONS))


async def _timed(work: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter_ns()
    await work()
    return (time.perf_counter_ns() - started) / 1e6


async def calibration_sample(conn: asyncpg.Connection) -> dict[str, float]:
    """One sample of each calibration item, in milliseconds."""

    async def python() -> int:
        return _client_cpu()

    return {
        "round_trip": await _timed(lambda: conn.fetchval(ROUND_TRIP)),
        "server_cpu": await _timed(lambda: conn.fetchval(SERVER_CPU)),
        "client_cpu": await _timed(python),
    }
