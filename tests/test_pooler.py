"""The pooler settings through a real PgBouncer in transaction mode (Debian's pgbouncer, in front
of the embedded server); skipped, with the reason, where pgbouncer is not installed.

PgBouncer here has two server sessions for every client to share, as behind Neon's pooler under
load, so consecutive statements of one client may run on different sessions.
A loopback PgBouncer has no Neon ``-pooler`` host name, so these tests declare the host kind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bench.catalogue.files import Scenario
from bench.catalogue.params import Drawn, pools_for
from bench.measure.options import RunOptions
from bench.measure.runner import measure_cells
from bench.measure.trees import timed_plans
from bench.runs.load import Workload, drive
from bench.targets.target import Target
from tests.support import TINY

PGBOUNCER = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed (Debian package pgbouncer)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def pooler(seeded):
    """A transaction-mode PgBouncer with two server sessions, in front of the seeded database."""
    # PgBouncer refuses to run as root and drops to another user, who must read its files: pytest's
    # own temporary directories are private to root, so this one is made readable.
    work = Path(tempfile.mkdtemp(prefix="tb-pgbouncer-"))
    work.chmod(0o755)
    server = seeded.asyncpg_kwargs()
    port = _free_port()
    (work / "users.txt").write_text('"postgres" ""\n')
    (work / "pgbouncer.ini").write_text(f"""[databases]
* = host={server["host"]} port={server.get("port", 5432)} user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {work / "users.txt"}
pool_mode = transaction
default_pool_size = 2
max_client_conn = 50
""")
    assert PGBOUNCER is not None  # the module is skipped without it
    command = [PGBOUNCER, str(work / "pgbouncer.ini")]
    if os.geteuid() == 0:  # as the server's own user, who may enter its socket directory
        command[1:1] = ["-u", Path(server["host"]).owner()]
    log = (work / "pgbouncer.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"pgbouncer did not start: {(work / 'pgbouncer.log').read_text()}")
            time.sleep(0.05)
    url = make_url(f"postgresql://postgres@127.0.0.1:{port}/{seeded.database}")
    yield Target(kind="url", url=url)
    proc.terminate()
    proc.wait(timeout=10)
    log.close()
    shutil.rmtree(work)


@pytest.fixture
def as_pooler(monkeypatch):
    monkeypatch.setattr(Target, "host_kind", property(lambda self: "pooler"))


def _workload() -> Workload:
    """What the load runs behind a pooler: unnamed statements (``prepared=False``)."""
    sql = "SELECT count(*) + {}::int FROM tasks WHERE is_completed"
    lookup = Scenario(name="lookup", sla_class="isolation", sla_ms=30.0, sql=sql.format(":n"), params={"n": 1})
    return Workload([lookup], [1], [sql.format("$1")], [[[1], [2]]], ["SELECT $1::int"], prepared=False)


async def _clients(target: Target, clients: int = 4, seconds: float = 1.0):
    pool = await asyncpg.create_pool(**target.asyncpg_kwargs(), min_size=clients, max_size=clients)
    try:
        return await drive(pool, _workload(), clients, time.perf_counter() + seconds, None, seed=5)
    finally:
        await pool.close()


def test_load_clients_sharing_two_server_sessions_all_succeed(pooler, as_pooler):
    assert pooler.asyncpg_kwargs()["statement_cache_size"] == 0  # unnamed statements behind a pooler
    sent = asyncio.run(_clients(pooler))
    assert len(sent.records) > 50 and all(r.ok for r in sent.records)


def test_the_runner_measures_through_the_pooler_while_other_clients_share_it(pooler, as_pooler, catalogue):
    opts = RunOptions()

    async def measure_beside_load():
        conn = await asyncpg.connect(**pooler.asyncpg_kwargs())
        try:
            pools = await pools_for(conn, catalogue.scenarios, TINY.anchor_date)
            load = asyncio.ensure_future(_clients(pooler, clients=3, seconds=2.0))
            chosen = catalogue.select(["task_by_id", "recent_tasks"], None).scenarios
            # as the runner measures behind a pooler: no SET, which the pooler would not keep
            cells = await measure_cells(conn, chosen, "baseline", pools, opts, server_side=pooler.host_kind != "pooler")
            return cells, await load
        finally:
            await conn.close()

    cells, sent = asyncio.run(measure_beside_load())
    assert all(c.samples.explained == min(len(c.samples.client_ms), 20) > 0 for c in cells)
    assert all(c.plan.node_types for c in cells)  # EXPLAIN (ANALYZE, BUFFERS) came back through PgBouncer
    assert sent.records and all(r.ok for r in sent.records)


def test_the_plan_trees_generic_plan_is_read_through_the_pooler_while_other_clients_share_it(pooler, as_pooler):
    """PREPARE, EXPLAIN EXECUTE and DEALLOCATE of the generic plan stay in one transaction, so on one
    server session, whichever session the pooler gives the next statement."""
    query = "SELECT title FROM tasks WHERE id > $1"
    # above 0 is every row (a seq scan), above 10⁹ none (the primary key): the generic plan, planned
    # for any value, cannot be both
    first = {"all": Drawn(query, [0]), "few": Drawn(query, [10**9])}

    async def read_beside_load():
        conn = await asyncpg.connect(**pooler.asyncpg_kwargs())
        try:
            load = asyncio.ensure_future(_clients(pooler, clients=3, seconds=2.0))
            plans = [await timed_plans(conn, first, 5000, False) for _ in range(5)]
            return plans, await load
        finally:
            await conn.close()

    plans, sent = asyncio.run(read_beside_load())
    for read in plans:
        generic = [p for p in read if p.generic]
        assert len(generic) == 1 and generic[0].execution_ms is not None and generic[0].root.total_ms is not None
    assert sent.records and all(r.ok for r in sent.records)
