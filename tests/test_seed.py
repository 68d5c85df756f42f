import asyncio
import threading
import time
from dataclasses import replace

import pytest

from bench.progress import no_progress
from bench.targets import schema
from bench.targets.schema import dataset_info
from seed import generate
from seed.load import TABLE_ORDER, _copy_table, seed_database
from seed.profiles import get_profile
from tests.support import TINY, constraint_violations, content_checksums, one, scalar

SMALL = replace(TINY, users=2, tasks_per_user=400, messages_per_conversation=(20, 30))


def test_seed_loads_the_profile_and_records_it(seeded):
    info = dataset_info(seeded)
    assert info is not None
    counts = info["row_counts"]
    assert counts["users"] == TINY.users
    assert counts["tasks"] == TINY.total_tasks == 1500 * 5 + 1500 * 2  # one power user with 5x
    with schema.connect(seeded) as conn:
        per_user = [r[0] for r in conn.execute("SELECT count(*) FROM tasks GROUP BY user_id ORDER BY 1")]
        completed = scalar(conn, "SELECT avg(is_completed::int) FROM tasks")
        assert scalar(conn, "SELECT count(*) FROM messages") == counts["messages"]
        analyzed = scalar(
            conn,
            "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
            "AND relname IN ('users','tasks','conversations','messages')",
        )
    assert per_user == [1500, 1500, 7500]
    assert abs(float(completed) - TINY.completed_ratio) <= 0.02
    assert analyzed == 4


def test_every_constraint_holds_in_the_loaded_data(seeded):
    assert constraint_violations(seeded) == 0
    with schema.connect(seeded) as conn:
        uuid_versions = conn.execute("SELECT DISTINCT uuid_extract_version(id) FROM users").fetchall()
    assert uuid_versions == [(4,)]


def test_same_seed_same_content_and_fingerprint(make_target):
    a, b, c = make_target(), make_target(), make_target()
    ra = seed_database(a, SMALL)
    rb = seed_database(b, SMALL)
    rc = seed_database(c, replace(SMALL, seed=7))
    assert ra.fingerprint == rb.fingerprint != rc.fingerprint
    assert content_checksums(a) == content_checksums(b)
    assert content_checksums(a)["tasks"] != content_checksums(c)["tasks"]


def test_second_seed_with_same_parameters_is_skipped(make_target):
    target = make_target()
    first = seed_database(target, SMALL)
    again = seed_database(target, SMALL)
    assert not first.skipped and again.skipped
    assert again.row_counts == first.row_counts


def test_a_dataset_seeded_before_the_models_changed_is_seeded_again(make_target):
    target = make_target()
    seed_database(target, SMALL)
    with schema.connect(target) as conn:  # as a seed by the models of an earlier commit left it
        schema.set_meta(conn, "schema", {"tables": ["users", "tasks"], "ddl": "CREATE TABLE users (id uuid);"})
    again = seed_database(target, SMALL)
    assert not again.skipped and schema.current_dataset(target) is not None
    assert seed_database(target, SMALL).skipped


# Every index and constraint of the public schema, as the server prints it.
_DEFINITIONS = """
SELECT c.relname, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE connamespace = 'public'::regnamespace
ORDER BY 1, 2, 3
"""


def test_the_loaded_tables_have_the_models_indexes_and_keys_and_frozen_pages(make_target):
    """The load builds the secondary indexes and foreign keys after the rows (and COPYs FREEZE): the
    schema it leaves is the models' to the letter, and every page is all-frozen."""
    models_only, loaded = make_target(), make_target()
    schema.recreate_schema(models_only)
    seed_database(loaded, SMALL)
    with schema.connect(models_only) as conn:
        expected = conn.execute(_DEFINITIONS).fetchall()
    with schema.connect(loaded) as conn:
        assert conn.execute(_DEFINITIONS).fetchall() == expected
        assert any("FOREIGN KEY" in d for *_, d in expected) and any("CREATE INDEX" in d for *_, d in expected)
        conn.execute("CREATE EXTENSION pg_visibility")
        for table in TABLE_ORDER:
            pages, frozen = one(
                conn,
                "SELECT c.relpages, v.all_frozen FROM pg_class c, pg_visibility_map_summary(c.oid) v "
                "WHERE c.oid = %s::regclass",
                (table,),
            )
            assert pages > 0 and frozen == pages, table


def test_interrupted_load_is_not_taken_for_a_dataset(make_target, monkeypatch):
    target = make_target()

    real_tasks = generate.Generator.tasks

    def broken_tasks(self):
        yield next(real_tasks(self))  # one batch reaches the server, then the load is interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(generate.Generator, "tasks", broken_tasks)
    with pytest.raises(KeyboardInterrupt):
        seed_database(target, SMALL)
    assert dataset_info(target) is None
    monkeypatch.undo()
    result = seed_database(target, SMALL)
    assert not result.skipped and result.row_counts["tasks"] == SMALL.total_tasks


def test_a_table_failing_while_the_others_load_stops_them_and_closes_their_connections(make_target, monkeypatch):
    """The tables load at once, each on a connection of its own: a generator bug in one ends the
    seeding with its own error, and the table still loading (here one that would never end) is
    stopped and its connection closed."""
    target = make_target()
    real_tasks, real_messages = generate.Generator.tasks, generate.Generator.messages

    def endless_tasks(self):
        batch = next(real_tasks(self))
        while True:
            time.sleep(0.01)
            yield batch

    def broken_messages(self):
        yield next(real_messages(self))
        raise ValueError("a generator bug")

    monkeypatch.setattr(generate.Generator, "tasks", endless_tasks)
    monkeypatch.setattr(generate.Generator, "messages", broken_messages)
    with pytest.raises(ValueError, match="a generator bug"):
        seed_database(target, SMALL)
    assert dataset_info(target) is None
    with schema.connect(target) as conn:
        others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        deadline = time.monotonic() + 10  # a closed connection's server process takes a moment to exit
        while scalar(conn, others) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scalar(conn, others) == 0


def test_a_table_stopped_before_its_first_chunk_stops_making_batches():
    """Cancelled while it waits for its first chunk (another table failed, Ctrl-C), a table's load
    stops its batch producer too. Left running, the producer filled its queue and then waited on it
    for ever, and asyncio.run's clean-up with it."""
    batch = next(generate.Generator(SMALL).tasks())
    go, made = threading.Event(), []

    def batches():
        while True:
            go.wait(10)
            made.append(batch)
            yield batch

    async def stop_it_early() -> set[asyncio.Task[object]]:
        copy = asyncio.create_task(_copy_table(None, "tasks", batches(), no_progress, 0))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)  # waiting for its first chunk, which waits for go
        copy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copy
        go.set()
        await asyncio.sleep(0.3)  # time enough for a producer still running to make more
        return asyncio.all_tasks() - {asyncio.current_task()}

    loop = asyncio.new_event_loop()
    try:
        left = loop.run_until_complete(stop_it_early())
    finally:
        go.set()
        loop.close()  # not waiting for what is left: that is what is asserted
    assert left == set() and len(made) == 1  # the batch in the making when it was stopped, no more


def test_profile_overrides_and_unknown_profile():
    assert get_profile("default", users=3).users == 3
    assert get_profile("default").tasks_per_user >= 10_000
    from bench.errors import InputError

    with pytest.raises(InputError, match="unknown profile"):
        get_profile("huge")
