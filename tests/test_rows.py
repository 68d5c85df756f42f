"""Result hashes: order matters only where the query orders its rows; any changed row changes the hash."""

import asyncio

from bench.catalogue.sql import parse_query
from bench.measure.rows import result_hash
from bench.targets.target import connected


def _fetch(target, sql: str):
    async def go():
        async with connected(target) as conn:
            return await conn.fetch(sql)

    return asyncio.run(go())


def test_order_counts_only_for_ordered_queries(seeded):
    asc = _fetch(seeded, "SELECT id, title, created_at, tags FROM tasks ORDER BY id LIMIT 20")
    desc = list(reversed(asc))
    assert result_hash(asc, ordered=False) == result_hash(desc, ordered=False)
    assert result_hash(asc, ordered=True) != result_hash(desc, ordered=True)
    assert result_hash(asc, ordered=True) == result_hash(
        _fetch(seeded, "SELECT id, title, created_at, tags FROM tasks ORDER BY id LIMIT 20"), ordered=True
    )


def test_a_missing_or_changed_row_changes_the_hash(seeded):
    rows = _fetch(seeded, "SELECT id, title, due_date FROM tasks ORDER BY id LIMIT 20")
    assert result_hash(rows[:19], ordered=True) != result_hash(rows, ordered=True)  # 19 tasks instead of 20
    changed = [tuple(r) for r in rows]
    changed[3] = (changed[3][0], changed[3][1] + "!", changed[3][2])
    assert result_hash(changed, ordered=False) != result_hash(rows, ordered=False)


def test_ordered_is_read_from_the_parse_tree():
    assert parse_query("SELECT id FROM tasks WHERE user_id = :u ORDER BY created_at DESC", write=False).ordered
    assert not parse_query("SELECT count(*) FROM tasks WHERE user_id = :u", write=False).ordered
    # an ORDER BY inside a subquery does not order the result
    assert not parse_query("SELECT * FROM (SELECT id FROM tasks ORDER BY id LIMIT 5) s", write=False).ordered
