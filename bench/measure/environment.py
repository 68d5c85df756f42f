"""The environment fingerprint recorded with every run: server, settings, harness, machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import asyncpg

from bench import __version__
from bench.results import Environment, setting_text
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
    )
