"""Plan stability: does a cell's plan flip when the statistics are re-sampled?

ANALYZE reads a random sample of each table, so the planner's inputs vary a little from one
ANALYZE to the next; a plan that sits near a cost tipping point flips, and with it the latency.
For a few fixed parameter sets per scenario, the plan (EXPLAIN without ANALYZE) is taken before
and after each of ``rounds`` re-ANALYZEs; a parameter set whose fingerprint changes is a flip.
Runs on the scratch copy, so the seeded database keeps its statistics.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import asyncpg

from bench.catalogue.files import Scenario
from bench.catalogue.params import Drawer, Drawn, Pools
from bench.measure.claims import as_user, claim_for
from bench.measure.plan import EXPLAIN_PLAN, fingerprint
from bench.models import TABLE_NAMES
from bench.results import Stability


async def _plans(conn: asyncpg.Connection, drawn: list[Drawn], claim: str | None) -> list[str]:
    plans = []
    for sql, args, user in drawn:
        async with as_user(conn, claim_for(claim, user)):
            explain = json.loads(await conn.fetchval(EXPLAIN_PLAN + sql, *args))
        plans.append(fingerprint(explain[0]["Plan"]))
    return plans


_BY_SIZE = """
SELECT t FROM unnest($1::text[]) AS t
ORDER BY pg_relation_size(to_regclass(format('public.%I', t))) DESC NULLS LAST, t
"""


async def _reanalyze(owners: Sequence[asyncpg.Connection], tables: list[str]) -> None:
    """ANALYZE every table, the owners' connections (server processes of their own) each taking a
    share at once, ``tables`` dealt out in their order (the largest first: on the default profile
    tasks and messages took 0.29 and 0.16 s one after the other). ANALYZE only reads, and what it
    samples does not depend on what runs beside it."""

    async def analyze(conn: asyncpg.Connection, share: list[str]) -> None:
        for table in share:
            await conn.execute(f"ANALYZE {table}")

    # every share to its end before an error is raised: no ANALYZE left running on a connection
    done = await asyncio.gather(
        *(analyze(conn, tables[i :: len(owners)]) for i, conn in enumerate(owners)), return_exceptions=True
    )
    if failed := next((e for e in done if isinstance(e, BaseException)), None):
        raise failed


async def plan_stability(
    owners: Sequence[asyncpg.Connection],
    samples: asyncpg.Connection,
    scenarios: list[Scenario],
    pools: Pools,
    seed: int,
    rounds: int,
    param_sets: int = 5,
    claim: str | None = None,
) -> dict[str, Stability]:
    """ANALYZE on ``owners`` (connections of the tables' owner, at once: ``_reanalyze``), the
    scenarios' EXPLAINs on ``samples`` (their role), under a policy variant with each parameter
    set's user claimed (``claim``: the setting)."""
    drawers = {s.name: Drawer(s, pools, seed) for s in scenarios}
    drawn = {name: [d.draw() for _ in range(param_sets)] for name, d in drawers.items()}
    seen = {name: [await _plans(samples, drawn[name], claim)] for name in drawers}
    by_size = [r[0] for r in await owners[0].fetch(_BY_SIZE, list(TABLE_NAMES))]
    for _ in range(rounds):
        await _reanalyze(owners, by_size)
        for name in drawers:
            seen[name].append(await _plans(samples, drawn[name], claim))
    result = {}
    for name, per_round in seen.items():
        per_params = list(zip(*per_round, strict=True))
        result[name] = Stability(
            rounds=rounds,
            plans=sorted({p for r in per_round for p in r}),
            flipped=sum(1 for plans in per_params if len(set(plans)) > 1),
        )
    return result
