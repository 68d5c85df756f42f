import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.errors import DatabaseError, InputError
from bench.targets import schema
from bench.targets.target import Target, connected, open_target, parse_database_url
from tests.support import SUITE_ROOT, scalar
from tools.loopback_server import loopback_server


def test_neon_style_url_is_normalised_for_asyncpg_and_redacted():
    url = parse_database_url(
        "postgresql://alex:hunter2pw@ep-cool-1.aws.neon.tech/neondb?sslmode=require&channel_binding=require"
    )
    target = Target(kind="url", url=url.set(database="taskbench"))
    kwargs = target.asyncpg_kwargs()
    assert kwargs["ssl"] == "require" and kwargs["database"] == "taskbench"
    assert "sslmode" not in kwargs and "channel_binding" not in kwargs
    assert "hunter2pw" not in target.display and "***" in target.display
    assert "sslmode=require" in target.libpq_conninfo()


def test_a_password_in_the_query_is_used_but_never_shown():
    url = parse_database_url("postgresql://alex@127.0.0.1:9/neondb?password=qu3ry-Secret&sslmode=disable")
    target = Target(kind="url", url=url)
    assert target.asyncpg_kwargs()["password"] == "qu3ry-Secret"
    assert "qu3ry-Secret" not in target.display and "password=%2A%2A%2A" in target.display
    with pytest.raises(DatabaseError) as info:  # nothing listens on port 9: the error names the URL
        open_target(str(url.render_as_string(hide_password=False)), "taskbench")
    assert "qu3ry-Secret" not in str(info.value) and "127.0.0.1" in str(info.value)


def test_unix_socket_url_takes_host_and_port_from_the_query():
    url = parse_database_url("postgresql://postgres@/postgres?host=/run/pg&port=5433")
    kwargs = Target(kind="url", url=url).asyncpg_kwargs()
    assert kwargs["host"] == "/run/pg" and kwargs["port"] == "5433" and "ssl" not in kwargs


def test_bad_urls_are_input_errors():
    with pytest.raises(InputError):
        parse_database_url("not a url at all")
    with pytest.raises(InputError, match="postgresql://"):
        parse_database_url("mysql://a:b@h/d")
    with pytest.raises(InputError, match="port is not a number"):
        parse_database_url("postgresql://u:pw@host:abc/db")
    with pytest.raises(InputError, match=r"IPv6 host goes in brackets"):
        parse_database_url("postgresql://u:pw@::1:5432/db")
    assert parse_database_url("postgresql://u:pw@[::1]:5432/db").port == 5432
    with pytest.raises(InputError, match="%40") as info:
        parse_database_url("postgresql://u:se@cret-tail@host/db")
    assert "cret-tail" not in str(info.value)


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
        assert scalar(conn, "SELECT count(*) FROM invoices") == 0  # untouched, still there


def test_a_database_url_target_seeds_and_runs(seeded, catalogue):
    from dataclasses import replace

    from bench.measure.options import RunOptions
    from bench.runs.matrix import measure
    from bench.targets.target import drop_database, open_target
    from seed.load import seed_database
    from tests.support import TINY

    server_url = seeded.url.set(database="postgres").render_as_string(hide_password=False)
    target = open_target(server_url, "tburl_target")
    try:
        assert target.kind == "url" and target.database == "tburl_target"
        schema.claim_database(target)
        seed_database(target, replace(TINY, users=2, tasks_per_user=200))
        res = measure(
            target,
            catalogue.select(["task_by_id"], ["baseline"]),
            RunOptions(cold_samples=0, stability_rounds=0, concurrent=True),
        )
        assert res.environment.target_kind == "url" and res.cells[0].verdict == "pass"
    finally:
        drop_database(target, "tburl_target")


def test_scratch_copy_leaves_the_seeded_dataset_untouched(seeded):
    from bench.targets.target import scratch_copy

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
        left = scalar(conn, "SELECT count(*) FROM pg_database WHERE datname = %s", (copy.database,))
    assert left == 0


def test_only_marked_scratch_copies_whose_run_is_dead_are_swept(seeded, make_target):
    import secrets
    from dataclasses import replace

    import psycopg
    from psycopg import sql

    from bench.targets.target import SCRATCH_MARK, drop_database, drop_orphaned_copies, orphaned_copies, scratch_copy

    # Swept from another maintenance database than the copies' makers': their locks are seen all the same.
    elsewhere = replace(seeded, maintenance_db=make_target().database)
    suffix = secrets.token_hex(3)
    unmarked, not_a_copy, dead = f"tbsweep_run_{suffix}", f"tbsweep{suffix}", f"tbsweep_dead_{suffix}"
    with psycopg.connect(seeded.libpq_conninfo("postgres"), autocommit=True) as conn:

        def create(name: str, marked: bool) -> None:  # as a run killed after making its copy leaves it
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            if marked:
                conn.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(SCRATCH_MARK))
                )

        create(unmarked, marked=False)
        create(not_a_copy, marked=True)
        create(dead, marked=True)
        try:
            with scratch_copy(seeded, "live") as live:
                assert dead not in orphaned_copies(elsewhere)  # the copy's maker swept it first
                create(dead, marked=True)
                found = orphaned_copies(elsewhere)
                assert dead in found and not {live.database, unmarked, not_a_copy} & set(found)
                assert dead in drop_orphaned_copies(elsewhere)
                names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
                assert live.database in names and dead not in names and {unmarked, not_a_copy} <= names
        finally:
            for name in (unmarked, not_a_copy):
                drop_database(seeded, name)


def test_a_neon_pooler_host_is_detected_and_set_up_for_transaction_mode():
    url = parse_database_url(
        "postgresql://alex:pw@ep-cool-1-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require"
    )
    target = Target(kind="neon", url=url)
    assert target.host_kind == "pooler"
    assert target.asyncpg_kwargs()["statement_cache_size"] == 0
    # Set-up (DDL, COPY, session SETs) goes to the direct host; measurements go where the URL says.
    assert "host=ep-cool-1.us-east-2.aws.neon.tech " in target.libpq_conninfo()
    assert "-pooler." in target.libpq_conninfo(direct=False)
    # a set-up session has its statement timeout; the pooler would refuse the startup option
    assert "statement_timeout=" in target.libpq_conninfo()
    assert "statement_timeout" not in target.libpq_conninfo(direct=False)
    assert "server_settings" not in target.asyncpg_kwargs()
    direct = Target(kind="neon", url=url.set(host="ep-cool-1.us-east-2.aws.neon.tech"))
    assert direct.host_kind == "direct" and "statement_cache_size" not in direct.asyncpg_kwargs()
    assert Target(kind="embedded", url=parse_database_url("postgresql://p@/d?host=/tmp")).host_kind == "socket"


@pytest.fixture(scope="module")
def tls_server():
    """A throw-away server with TLS and SCRAM passwords on loopback TCP: what a Neon URL expects."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make the test server's certificate")
    # The wheel's server is built without OpenSSL; Debian's postgresql package has it.
    servers = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    tls_builds = [p.parent for p in servers if b"libssl" in subprocess.run(["ldd", str(p)], capture_output=True).stdout]
    if not tls_builds:
        pytest.skip(
            "no PostgreSQL server built with TLS on this machine (Debian's postgresql package has one; "
            "the embedded wheel's is built without OpenSSL)"
        )
    with loopback_server(tls=True, password="tls-Secret-9", bin_dir=tls_builds[0], parent=SUITE_ROOT) as urls:
        yield urls["TCP_URL"]


def _ssl_in_use(conn) -> bool:
    return bool(scalar(conn, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))


def test_a_neon_style_url_works_with_every_driver_over_tls(tls_server):
    raw = tls_server + "?sslmode=require&channel_binding=require"
    target = open_target(raw, "taskbench_tls")
    assert target.probe is not None and target.probe.host_kind == "direct"
    with schema.connect(target) as conn:  # psycopg (libpq): channel binding demanded, TLS in use
        assert _ssl_in_use(conn)
    schema.claim_database(target)
    schema.recreate_schema(target)  # SQLAlchemy + psycopg: the models' DDL

    async def through_asyncpg() -> bool:
        async with connected(target) as conn:
            assert await conn.fetchval("SELECT count(*) FROM tasks") == 0
            return bool(await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))

    assert asyncio.run(through_asyncpg())
    assert "tls-Secret-9" not in target.display


def test_a_wrong_password_is_a_one_line_error(tls_server):
    wrong = tls_server.replace("tls-Secret-9", "nope") + "?sslmode=require"
    with pytest.raises(DatabaseError, match="password authentication failed") as info:
        open_target(wrong, "taskbench_tls")
    assert "nope" not in str(info.value) and "\n" not in str(info.value)
