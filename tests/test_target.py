import pytest

from bench import schema
from bench.errors import DatabaseError, InputError
from bench.target import Target, parse_database_url


def test_neon_style_url_is_normalised_for_asyncpg_and_redacted():
    url = parse_database_url("postgresql://alex:hunter2pw@ep-cool-1.aws.neon.tech/neondb"
                             "?sslmode=require&channel_binding=require")
    target = Target(kind="url", url=url.set(database="taskbench"))
    kwargs = target.asyncpg_kwargs()
    assert kwargs["ssl"] == "require" and kwargs["database"] == "taskbench"
    assert "sslmode" not in kwargs and "channel_binding" not in kwargs
    assert "hunter2pw" not in target.display and "***" in target.display
    assert "sslmode=require" in target.libpq_conninfo()


def test_unix_socket_url_takes_host_and_port_from_the_query():
    url = parse_database_url("postgresql://postgres@/postgres?host=/run/pg&port=5433")
    kwargs = Target(kind="url", url=url).asyncpg_kwargs()
    assert kwargs["host"] == "/run/pg" and kwargs["port"] == "5433" and "ssl" not in kwargs


def test_bad_urls_are_input_errors():
    with pytest.raises(InputError):
        parse_database_url("not a url at all")
    with pytest.raises(InputError, match="postgresql://"):
        parse_database_url("mysql://a:b@h/d")


def test_claim_refuses_foreign_tables_unless_forced(make_target):
    target = make_target()
    with schema.connect(target) as conn:  # simulate someone else's database: drop our marker, add a table
        conn.execute("DROP TABLE taskbench_meta")
        conn.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(DatabaseError, match="did not create"):
        schema.claim_database(target)
    schema.claim_database(target, force=True)
    schema.recreate_schema(target)
    with schema.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM invoices").fetchone()[0] == 0  # untouched, still there


def test_a_database_url_target_seeds_and_runs(seeded, catalog):
    from dataclasses import replace

    from bench.runner import RunOptions, run
    from bench.target import drop_database, open_target
    from seed.load import seed_database

    from .conftest import TINY

    server_url = seeded.url.set(database="postgres").render_as_string(hide_password=False)
    target = open_target(server_url, "tburl_target")
    try:
        assert target.kind == "url" and target.database == "tburl_target"
        schema.claim_database(target)
        seed_database(target, replace(TINY, users=2, tasks_per_user=200))
        res = run(target, catalog.select(["task_by_id"], ["baseline"]), RunOptions(samples=10, max_samples=10, cold_samples=0, stability_rounds=0, write_rows=0))
        assert res.environment.target_kind == "url" and res.cells[0].client.n == 10
    finally:
        drop_database(target, "tburl_target")


def test_scratch_copy_leaves_the_seeded_dataset_untouched(seeded):
    from bench.target import scratch_copy

    with schema.connect(seeded) as conn:
        before = conn.execute("SELECT count(*), max(id) FROM tasks").fetchone()
    with scratch_copy(seeded) as copy:
        assert copy.database != seeded.database
        with schema.connect(copy) as conn:
            assert conn.execute("SELECT count(*), max(id) FROM tasks").fetchone() == before
            assert schema.dataset_info(copy) == schema.dataset_info(seeded)
            conn.execute("DELETE FROM tasks WHERE id % 2 = 0")
    with schema.connect(seeded) as conn:
        assert conn.execute("SELECT count(*), max(id) FROM tasks").fetchone() == before
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (copy.database,)).fetchone()[0]
    assert left == 0
