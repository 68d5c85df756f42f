"""The parameter pools a run draws from: the same however the seeded rows lie on disk."""

import asyncio

import psycopg

from bench.catalogue.params import Pools, load_pools
from bench.targets.target import Target, connected, scratch_copy
from tests.support import TINY


def _pools(target: Target) -> Pools:
    async def load() -> Pools:
        async with connected(target) as conn:
            return await load_pools(conn, {"user", "task", "word"}, TINY.anchor_date)

    return asyncio.run(load())


def test_the_task_and_word_pools_do_not_follow_the_rows_order_on_disk(seeded):
    before = _pools(seeded)
    with scratch_copy(seeded, "pools") as copy:
        with psycopg.connect(copy.libpq_conninfo(), autocommit=True) as conn:
            # the same rows, newest first on disk (a seeder that loads another way may leave them so)
            conn.execute("CREATE INDEX tb_pools_newest ON tasks (created_at DESC)")
            conn.execute("CLUSTER tasks USING tb_pools_newest")
            conn.execute("ANALYZE tasks")
        after = _pools(copy)
    assert before.tasks and all(len(ids) < TINY.tasks_per_user for ids in before.tasks.values())  # a sample
    assert after.tasks == before.tasks
    assert before.words and after.words == before.words
