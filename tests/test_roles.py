"""The samples' role: the server itself refuses what a scenario must not do, and no role outlives
its run."""

import asyncio

import psycopg
import pytest
from psycopg import sql

from bench.catalogue.params import pools_for
from bench.errors import InputError
from bench.measure import runner
from bench.targets import roles, schema
from bench.targets.target import connected, scratch_copy
from tests.support import HOSTILE_WRITE_CALLS, calling, edited_catalogue, scalar


def _sampler_roles(target) -> list[str]:
    with schema.connect(target) as conn:
        rows = conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (roles.PREFIX,))
        return [r[0] for r in rows]


def test_the_samples_role_reads_and_writes_the_tables_and_nothing_else(seeded):
    with scratch_copy(seeded, "roles") as copy, roles.sampler(copy) as sampling:
        assert sampling.role is not None and sampling.privileges == roles.PRIVILEGES
        password = sampling.target.url.password
        assert password and str(password) not in sampling.target.display
        with psycopg.connect(sampling.target.libpq_conninfo()) as conn:
            assert conn.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
            assert scalar(conn, "SELECT count(*) FROM tasks") > 0
            conn.execute("UPDATE tasks SET title = 'x' WHERE id = (SELECT min(id) FROM tasks)")
            conn.rollback()
            refused = [
                "SELECT pg_read_file('/etc/passwd')",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename <> current_user LIMIT 1",
                "CREATE TABLE smuggled (id int)",
                "SELECT count(*) FROM pg_authid",
            ]
            for statement in refused:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
                conn.rollback()
        assert sampling.role in _sampler_roles(seeded)
    assert sampling.role not in _sampler_roles(seeded)


def test_a_role_whose_run_died_is_dropped_and_no_other(seeded):
    orphan, live, foreign = (roles.PREFIX + name for name in ("deadbeef", "alive", "notours"))
    mark = sql.Literal("taskbench sampler for database somewhere")
    with schema.connect(seeded) as conn, schema.connect(seeded) as holder:
        for name in (orphan, live, foreign):
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
        for name in (orphan, live):
            conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(name), mark))
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (roles.ROLE_LOCK_CLASS, live))
        try:
            # the other worker's runs sweep orphans too, and may be first to drop this one
            dropped = roles.drop_orphans(seeded)
            left = _sampler_roles(seeded)
            # a run still holding its role's lock keeps it; a role without the mark is not taskbench's
            assert orphan not in left and live in left and foreign in left
            assert live not in dropped and foreign not in dropped
        finally:
            for name in (live, foreign):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_an_orphan_another_sweep_dropped_first_is_left_to_it(seeded, monkeypatch):
    # listed as an orphan, gone by the time this sweep drops it: another run's sweep was first
    gone = sql.SQL("SELECT {}").format(sql.Literal(roles.PREFIX + "gonebefore"))
    monkeypatch.setattr(roles, "_ORPHANS", gone)
    assert roles.drop_orphans(seeded) == []


@pytest.mark.parametrize(("call", "named"), HOSTILE_WRITE_CALLS)
def test_a_write_may_call_no_volatile_function_but_a_value_generator(seeded, tmp_path, call, named):
    catalogue = edited_catalogue(tmp_path, {"queries/retag_task.toml": calling(call)}).select(
        ["retag_task", "create_task"], ["baseline"]
    )

    async def check() -> None:
        async with connected(seeded) as conn:
            pools = await pools_for(conn, catalogue.scenarios, schema.seeded_dataset(seeded).anchor_date)
            await runner.check_sql(conn, catalogue, pools)

    with pytest.raises(InputError, match=f"write scenario calls {named}"):
        asyncio.run(check())


def test_a_run_records_whom_its_samples_ran_as_and_leaves_no_role(small_results, seeded):
    assert small_results.protocol.parameters["samples_run_as"] == roles.PRIVILEGES
    # the suite's other processes may be measuring: their roles are live, an orphan would be ours
    assert roles.drop_orphans(seeded) == []
