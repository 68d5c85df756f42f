import asyncio

import pytest

from bench.catalogue.files import Variant
from bench.errors import InputError
from bench.targets.target import connect_async
from bench.catalogue.variants import apply_variant, index_names, remove_variant, snapshot, variant_cost


def _in_db(target, coro_fn):
    async def go():
        conn = await connect_async(target)
        try:
            return await coro_fn(conn)
        finally:
            await conn.close()
    return asyncio.run(go())


def test_variant_is_applied_measured_and_removed(seeded, catalog):
    composite = next(v for v in catalog.variants if v.name == "composite")

    async def go(conn):
        before = await index_names(conn)
        applied = await snapshot(conn, composite)
        await apply_variant(conn, applied)
        during = await index_names(conn)
        cost = await variant_cost(conn, applied)
        await remove_variant(conn, applied)
        return before, during, cost, await index_names(conn)

    before, during, cost, after = _in_db(seeded, go)
    assert during - before == {i.name for i in cost.indexes} and len(cost.indexes) == 5
    assert cost.index_size_bytes > 0 and all(i.build_seconds > 0 for i in cost.indexes)
    assert after == before


def test_failed_build_half_way_leaves_schema_as_before(seeded):
    broken = Variant(name="broken", statements=[
        "CREATE INDEX tb_ok ON tasks (user_id, due_date)",
        "CREATE INDEX tb_bad ON tasks (no_such_column)",
    ], extensions=["pg_trgm"])

    async def go(conn):
        before = await index_names(conn)
        ext_before = await conn.fetchval("SELECT count(*) FROM pg_extension")
        with pytest.raises(InputError, match="no_such_column"):
            await apply_variant(conn, await snapshot(conn, broken))
        return before, ext_before, await index_names(conn), await conn.fetchval("SELECT count(*) FROM pg_extension")

    before, ext_before, after, ext_after = _in_db(seeded, go)
    assert after == before
    assert ext_after == ext_before
