"""The load runner's accounting and pacing on the real server, and one small real load run."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import statistics
import threading
import time

import asyncpg
import pytest

from bench import results as results_io
from bench.catalogue.files import Scenario
from bench.errors import DatabaseError
from bench.report.build import write_report
from bench.runs import load as load_runs
from bench.runs.load import Request, Sent, Workload, drive, measure, parse_pgbench_load, summarize_load
from bench.runs.options import LoadOptions
from bench.targets import schema
from tests.support import scalar

COUNTER = Scenario(name="counter", sla_class="isolation", sla_ms=30.0, sql="SELECT nextval('tb_requests')")


def _workload(sql: str = "SELECT nextval('tb_requests')") -> Workload:
    return Workload([COUNTER], [1], [sql], [[[]]], ["SELECT $1::int"])


async def _drive(
    target, clients: int, seconds: float, rate: float | None, sql: str = "SELECT nextval('tb_requests')"
) -> tuple[Sent, int]:
    conn = await asyncpg.connect(**target.asyncpg_kwargs())
    await conn.execute("DROP SEQUENCE IF EXISTS tb_requests; CREATE SEQUENCE tb_requests")
    pool = await asyncpg.create_pool(**target.asyncpg_kwargs(), min_size=clients, max_size=clients)
    try:
        sent = await drive(
            pool, _workload(sql), clients, time.perf_counter() + seconds, rate / clients if rate else None, seed=7
        )
        executed = await conn.fetchval("SELECT last_value FROM tb_requests")
    finally:
        await pool.close()
        await conn.close()
    return sent, executed


def test_every_request_is_counted_once(make_target):
    target = make_target("tbload")
    sent, executed = asyncio.run(_drive(target, clients=3, seconds=1.0, rate=None))
    records = sent.records
    # The server's own counter: each executed request recorded once, none lost, none twice.
    assert len(records) == executed > 100
    assert all(r.sent <= r.done and r.ok for r in records)


@pytest.mark.alone  # the schedule's gaps in wall time: not beside another xdist worker (tests/workers.py)
def test_a_fixed_rate_is_kept_and_latency_runs_from_the_schedule(make_target):
    target = make_target("tbload")
    sent, executed = asyncio.run(_drive(target, clients=2, seconds=2.0, rate=200.0))
    records = sent.records
    # every request sent was executed; on a loaded machine the last arrival may fall due as the deadline passes
    assert len(records) == executed and sent.unsent <= 1
    assert 340 <= len(records) <= 460  # 400 expected; Poisson arrivals: ±3σ is ±60
    gaps = sorted(r.scheduled for r in records)
    mean_gap = statistics.mean(b - a for a, b in itertools.pairwise(gaps))
    assert mean_gap == pytest.approx(1 / 200, rel=0.15)
    assert all(r.scheduled <= r.sent + 1e-3 for r in records)  # never sent early


@pytest.mark.alone  # a wall-time bound: not beside another xdist worker (tests/workers.py)
def test_a_client_behind_a_fixed_rate_stops_at_the_deadline_and_counts_what_it_never_sent(make_target):
    target = make_target("tbload")
    started = time.perf_counter()
    # 1 client asked for 400/s of 10 ms requests: at most ~100/s get through
    sent, executed = asyncio.run(
        _drive(target, clients=1, seconds=1.0, rate=400.0, sql="SELECT nextval('tb_requests'), pg_sleep(0.01)")
    )
    assert time.perf_counter() - started < 1.0 + 1.0  # no backlog drained after the end (set-up included)
    assert len(sent.records) == executed <= 110
    assert 320 <= len(sent.records) + sent.unsent <= 480  # every arrival due in the second, sent or not


def test_a_lost_connection_ends_its_client_with_a_failed_request(make_target):
    target = make_target("tbload")

    async def kill_one() -> Sent:
        admin = await asyncpg.connect(**target.asyncpg_kwargs())
        pool = await asyncpg.create_pool(**target.asyncpg_kwargs(), min_size=2, max_size=2)
        try:
            driving = asyncio.ensure_future(
                drive(pool, _workload("SELECT pg_sleep(0.005)"), 2, time.perf_counter() + 1.5, None, seed=3)
            )
            await asyncio.sleep(0.5)
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'SELECT pg_sleep(0.005)%' AND pid <> pg_backend_pid() LIMIT 1"
            )
            return await driving
        finally:
            pool.terminate()
            await admin.close()

    sent = asyncio.run(kill_one())
    failed = [r for r in sent.records if not r.ok]
    assert len(failed) == 1 and len(sent.records) > 100  # the other client carried on to the end


def test_summary_accounting_on_constructed_requests():
    work = Workload(
        [COUNTER, COUNTER.model_copy(update={"name": "slow", "sla_ms": 10.0})], [3, 1], ["", ""], [[[]], [[]]], ["", ""]
    )
    records = [Request(0, t, t, t + 0.002, True) for t in (0.0, 0.1, 0.2)]
    records += [Request(1, 0.3, 0.3, 0.32, True), Request(1, 0.4, 0.4, 0.405, True), Request(1, 0.5, 0.5, 0.6, False)]
    load = summarize_load(Sent(records, unsent=4), work, clients=2, rate=None, variant="v")
    assert load.requests == 6 and load.errors == 1 and load.unsent == 4
    assert load.duration_s == pytest.approx(0.6)
    assert load.throughput == pytest.approx(5 / 0.6)
    fast, slow = load.scenarios
    assert (fast.requests, fast.errors, fast.over_sla) == (3, 0, 0.0)
    assert (slow.requests, slow.errors) == (2 + 1, 1) and slow.over_sla == pytest.approx(0.5)  # 20 ms > 10 ms SLA
    assert load.lag_ms is None


def test_pgbench_report_parsing_with_the_lookup_share():
    report = """number of transactions actually processed: 1000
latency average = 2.000 ms
tps = 500.0 (without initial connection time)
SQL script 1: a.sql
 - 750 transactions (75.0% of total)
 - statement latencies in milliseconds and failures:
         0.001           0 \\set i random(1, 50)
         0.050           0 SELECT x FROM tb_load_a WHERE i = :i
         0.149           0 SELECT 1
SQL script 2: b.sql
 - 250 transactions (25.0% of total)
 - statement latencies in milliseconds and failures:
         0.000           0 \\set i random(1, 50)
         0.050           0 SELECT y FROM tb_load_b WHERE i = :i
         5.950           0 SELECT 2
"""
    tps, count, avg, share = parse_pgbench_load(report)
    assert (tps, count, avg) == (500.0, 1000, 2.0)
    assert share == pytest.approx((750 * 0.05 + 250 * 0.05) / (750 * 0.2 + 250 * 6.0))


def test_a_small_real_load_run(seeded, catalogue, tmp_path):
    mixed = catalogue.with_mix({"task_by_id": 3, "recent_tasks": 1}).select(None, ["composite"])
    res = measure(
        seeded, mixed, LoadOptions(clients=2, duration=1.0, warmup=0.2, jobs=1, param_sets=50, pgbench_rounds=1)
    )
    load = res.load
    assert load is not None and res.cells == [] and res.variants[0].name == "composite"
    assert [s.scenario for s in load.scenarios] == ["task_by_id", "recent_tasks"]
    assert load.requests == sum(s.requests for s in load.scenarios) > 50 and load.errors == 0
    share = load.scenarios[0].requests / load.requests
    assert 0.6 < share < 0.9  # weights 3:1
    assert load.pgbench is not None and load.pgbench.tps > 0 and load.pgbench.ratio > 0
    assert 0 < load.pgbench.lookup_share < 1 and load.pgbench.cpu_ms_per_tx > 0
    path = results_io.save(res, tmp_path)
    assert results_io.load(path).load == load
    written = write_report(path)
    assert path.parent / "load.png" in written and path.parent / "load.csv" in written
    assert "Under load" in (path.parent / "index.html").read_text()
    assert "Recommendation" not in (path.parent / "summary.md").read_text()  # no matrix, no recommendation


def test_job_processes_start_together_once_the_last_one_is_connected(monkeypatch):
    """Two jobs meet at the barrier; the one connected last sets the start, a lead after its arrival,
    so a job slow to start (a loaded machine) cannot find the measured window already gone."""
    context = multiprocessing.get_context("spawn")
    monkeypatch.setattr(
        load_runs, "_together", (context.Barrier(2, action=load_runs._set_start), context.Value("d", 0.0))
    )
    starts: list[float] = []
    arrived: list[float] = []

    def job(delay: float) -> None:
        time.sleep(delay)
        arrived.append(time.perf_counter())
        starts.append(asyncio.run(load_runs._agreed_start()))

    threads = [threading.Thread(target=job, args=(delay,)) for delay in (0.0, 0.5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(starts) == 2 and starts[0] == starts[1]
    assert starts[0] >= max(arrived) + load_runs.START_LEAD_S - 0.05


def test_a_job_that_cannot_connect_releases_the_others_at_once(monkeypatch):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2, action=load_runs._set_start)
    monkeypatch.setattr(load_runs, "_together", (barrier, context.Value("d", 0.0)))
    load_runs._not_coming()
    with pytest.raises(DatabaseError, match="did not all start and connect"):
        asyncio.run(load_runs._agreed_start())  # broken: no 60 s wait


def test_two_job_processes_share_the_clients_and_one_window(make_target):
    target = make_target()
    with schema.connect(target) as conn:
        conn.execute("CREATE SEQUENCE tb_requests")
    opts = LoadOptions(clients=2, jobs=2, duration=0.5, warmup=0.1, param_sets=1)
    sent = asyncio.run(load_runs._drive_jobs(target, _workload(), opts))
    assert sent.records and sent.unsent == 0 and all(r.ok for r in sent.records)
    with schema.connect(target) as conn:  # every request ran, the warm-up's too
        assert scalar(conn, "SELECT last_value FROM tb_requests") >= len(sent.records)
