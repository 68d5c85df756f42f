from dataclasses import replace

from bench.target import open_target
from seed.benchmark import benchmark_seed

from .conftest import DATA_DIR, TINY


def test_seed_benchmark_compares_the_same_rows_and_cleans_up():
    server = open_target(None, "postgres", DATA_DIR)
    profile = replace(TINY, users=2, tasks_per_user=500)
    res = benchmark_seed(server, profile, rounds=2)
    assert res.rows > profile.total_tasks
    assert res.copy_mode == "server file"
    assert res.seeder_seconds > 0 and res.copy_seconds > 0 and res.ratio > 0
    import psycopg
    with psycopg.connect(server.libpq_conninfo(), autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'postgres_seedbench'").fetchone()[0]
    assert left == 0
    assert not [p for p in DATA_DIR.iterdir() if p.name.startswith("tmp")]
