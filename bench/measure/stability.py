"""Plan stability: does a cell's plan flip when the statistics are re-sampled?

ANALYZE reads a random sample of each table, so the planner's inputs vary a little from one
ANALYZE to the next; a plan that sits near a cost tipping point flips, and with it the latency.
For a few fixed parameter sets per scenario, the plan (EXPLAIN without ANALYZE) is taken before
and after each of ``rounds`` re-ANALYZEs; a parameter set whose fingerprint changes is a flip.
Runs on the scratch copy, so the seeded database keeps its statistics.
"""

from __future__ import annotations

import json

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


async def plan_stability(
    admin: asyncpg.Connection,
    samples: asyncpg.Connection,
    scenarios: list[Scenario],
    pools: Pools,
    seed: int,
    rounds: int,
    param_sets: int = 5,
    claim: str | None = None,
) -> dict[str, Stability]:
    """ANALYZE on ``admin`` (the tables' owner), the scenarios' EXPLAINs on ``samples`` (their role),
    under a policy variant with each parameter set's user claimed (``claim``: the setting)."""
    drawers = {s.name: Drawer(s, pools, seed) for s in scenarios}
    drawn = {name: [d.draw() for _ in range(param_sets)] for name, d in drawers.items()}
    seen = {name: [await _plans(samples, drawn[name], claim)] for name in drawers}
    for _ in range(rounds):
        for table in TABLE_NAMES:
            await admin.execute(f"ANALYZE {table}")
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
