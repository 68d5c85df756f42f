from dataclasses import replace

import psycopg
import pytest

from bench.targets.target import open_target
from seed.benchmark import RAW_COPY, RAW_DEFERRED, SEEDER, SEEDER_PROCESS, SERVER_SIDE, benchmark_seed, render
from seed.profiles import get_profile
from tests.support import DATA_DIR, TINY, scalar


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_seed_benchmark_compares_the_same_rows_and_cleans_up():
    server = open_target(None, "postgres", DATA_DIR)
    profile = replace(TINY, users=2, tasks_per_user=500)
    res = benchmark_seed(server, profile, rounds=2, server_side=True)
    assert res.rows[SEEDER] == res.rows[RAW_COPY] == res.rows[RAW_DEFERRED] > profile.total_tasks
    assert res.rows[SERVER_SIDE] > profile.total_tasks  # its own rows, same tasks count
    assert res.copy_mode == "server file"
    assert len(res.rounds) == 2 and all(set(r) == {SEEDER, RAW_COPY, RAW_DEFERRED, SERVER_SIDE} for r in res.rounds)
    assert res.ratio(SEEDER) > 0 and res.ratio(SERVER_SIDE) > 0
    assert res.copy_bytes > 100 * res.rows[SEEDER]  # tasks carry ~20 words each
    break_even = res.break_even_mbit()  # None only without the server-side side, measured here
    assert break_even is not None and break_even > 0
    with psycopg.connect(server.libpq_conninfo(), autocommit=True) as conn:
        left = scalar(conn, "SELECT count(*) FROM pg_database WHERE starts_with(datname, 'postgres_seedbench_')")
    assert left == 0
    assert not [p for p in DATA_DIR.iterdir() if p.name.startswith("tmp")]


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_the_seeder_as_a_whole_process_loads_the_same_rows_into_the_scratch_copy():
    """`taskbench seed --reload` as a user starts it, timed from its start to its exit; a profile
    the command's options cannot name (a test's tailored one) has no such side."""
    server = open_target(None, "postgres", DATA_DIR)
    res = benchmark_seed(server, get_profile("ci", users=2, tasks_per_user=300), rounds=1, server_side=False)
    assert set(res.rounds[0]) == {SEEDER, SEEDER_PROCESS, RAW_COPY, RAW_DEFERRED}
    assert res.rows[SEEDER_PROCESS] == res.rows[SEEDER] and res.seconds(SEEDER_PROCESS) > res.seconds(SEEDER)
    assert any(line.lstrip().startswith(SEEDER_PROCESS) for line in render(res))
