"""The environment fingerprint recorded with every run: server, settings, harness, machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import asyncpg

from bench import __version__
from bench.results import Environment, ServerFeature, setting_text
from bench.targets.target import Target

# Settings that change plans or timings: two runs that differ here are not comparable as-is.
PLANNER_SETTINGS = (
    "shared_buffers",
    "work_mem",
    "effective_cache_size",
    "random_page_cost",
    "seq_page_cost",
    "effective_io_concurrency",
    "default_statistics_target",
    "jit",
    "max_parallel_workers_per_gather",
    "plan_cache_mode",
    "enable_seqscan",
    "enable_indexscan",
    "enable_bitmapscan",
    "enable_indexonlyscan",
    "enable_sort",
    "enable_hashjoin",
    "enable_nestloop",
)


# PostgreSQL 18 and later: the planner features, and the functions, a major decides.
_SINCE_18 = "SELECT current_setting('server_version_num')::int >= 180000"
_EXTENSION = "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = $1)"
# What the harness uses, or the planner does, that not every server has: (name, a query saying whether
# this one has it, with its argument, what it is for). Recorded with the run, since plans and what a
# run could measure depend on them.
FEATURES: tuple[tuple[str, str, str | None, str], ...] = (
    (
        "B-tree skip scan",
        _SINCE_18,
        None,
        "18+: the planner uses a composite index without a condition on its first column",
    ),
    ("EXPLAIN index searches", _SINCE_18, None, "18+: a scan's descents into its index, so a skip scan shows"),
    (
        "pg_buffercache_evict_all",
        f"{_SINCE_18} AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = $1)",
        "pg_buffercache",
        "18+: cold samples empty the buffers in one call; without it, pg_buffercache_evict() on each buffer",
    ),
    (
        "pg_restore_attribute_stats",
        "SELECT to_regproc($1) IS NOT NULL",
        "pg_catalog.pg_restore_attribute_stats",
        "18+: a check's base side rebuilt on a recorded schema plans from the seeded statistics; without it, "
        "from its own ANALYZE",
    ),
    ("pg_trgm", _EXTENSION, "pg_trgm", "the trigram index variants (gin_trgm)"),
    ("btree_gin", _EXTENSION, "btree_gin", "GIN indexes over scalar columns"),
    ("pg_stat_statements", _EXTENSION, "pg_stat_statements", "statement statistics"),
    ("hypopg", _EXTENSION, "hypopg", "advise screens B-tree candidates without building them; without it, builds each"),
    ("data checksums", "SELECT current_setting($1) = 'on'", "data_checksums", "every page read is verified"),
)


async def server_features(conn: asyncpg.Connection) -> list[ServerFeature]:
    """What of ``FEATURES`` this server has."""
    found = []
    for name, query, argument, use in FEATURES:
        available = await conn.fetchval(query, *([argument] if argument else []))
        found.append(ServerFeature(name=name, available=bool(available), use=use))
    return found


def git_commit() -> str:
    """The harness's own commit (asked in its source tree: a run started elsewhere must not record
    that directory's repository)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5, check=True, cwd=here
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=here,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, str | int]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count() or 0,
        "python": platform.python_version(),
    }


async def environment(conn: asyncpg.Connection, target: Target) -> Environment:
    settings = {
        r["name"]: setting_text(r["setting"], r["unit"])
        for r in await conn.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[]) ORDER BY name",
            list(PLANNER_SETTINGS),
        )
    }
    version = await conn.fetchval("SHOW server_version")
    num = int(await conn.fetchval("SHOW server_version_num"))
    return Environment(
        target_kind=target.kind,
        target=target.display,
        server_version=version,
        server_major=num // 10000,
        settings=settings,
        harness_version=__version__,
        git_commit=git_commit(),
        machine=machine(),
        server_version_num=num,
        features=await server_features(conn),
    )
