import asyncio
from contextlib import nullcontext

import pytest

from bench.catalogue.files import Variant
from bench.catalogue.variants import applied_variant, apply_variant, index_names, snapshot, variant_cost
from bench.errors import InputError
from bench.targets.target import connected


def _in_db(target, coro_fn):
    async def go():
        async with connected(target) as conn:
            return await coro_fn(conn)

    return asyncio.run(go())


def test_variant_is_applied_measured_and_removed(seeded, catalogue):
    composite = next(v for v in catalogue.variants if v.name == "composite")

    async def go(conn):
        before = await index_names(conn)
        phases: list[str] = []

        def phase(name: str) -> nullcontext[None]:
            phases.append(name)
            return nullcontext()

        async with applied_variant(conn, composite, phase) as applied:
            during = await index_names(conn)
            cost = await variant_cost(conn, applied)
        return before, during, cost, await index_names(conn), phases

    before, during, cost, after, phases = _in_db(seeded, go)
    assert during - before == {i.name for i in cost.indexes} and len(cost.indexes) == 5
    assert cost.index_size_bytes > 0 and all(i.build_seconds > 0 for i in cost.indexes)
    assert after == before
    assert phases == ["build indexes", "drop indexes"]  # a run's clock times dropping apart from building


def test_a_failure_inside_the_block_still_removes_the_variant(seeded, catalogue):
    composite = next(v for v in catalogue.variants if v.name == "composite")

    async def go(conn):
        before = await index_names(conn)
        with pytest.raises(RuntimeError, match="mid-measurement"):
            async with applied_variant(conn, composite):
                raise RuntimeError("mid-measurement")
        return before, await index_names(conn)

    before, after = _in_db(seeded, go)
    assert after == before


def test_failed_build_half_way_leaves_schema_as_before(seeded):
    broken = Variant(
        name="broken",
        statements=[
            "CREATE INDEX tb_ok ON tasks (user_id, due_date)",
            "CREATE INDEX tb_bad ON tasks (no_such_column)",
        ],
        extensions=["pg_trgm"],
    )

    async def go(conn):
        before = await index_names(conn)
        ext_before = await conn.fetchval("SELECT count(*) FROM pg_extension")
        with pytest.raises(InputError, match="no_such_column"):
            await apply_variant(conn, await snapshot(conn, broken))
        return before, ext_before, await index_names(conn), await conn.fetchval("SELECT count(*) FROM pg_extension")

    before, ext_before, after, ext_after = _in_db(seeded, go)
    assert after == before
    assert ext_after == ext_before
