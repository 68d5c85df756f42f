"""Drawing scenario parameters from the data itself, repeatably (a seeded RNG per scenario).

Each sample first draws a user (uniformly), then every user-dependent kind draws from that
user's own rows, as the app would: one of their tasks, one of their conversations.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate
from typing import Any

import asyncpg

from .catalog import Scenario
from .errors import DatabaseError

# A systematic sample of each user's tasks (every k-th id) keeps memory flat on large datasets.
_TASKS_PER_USER_SAMPLE = 256


@dataclass
class Pools:
    today: date
    users: list[uuid.UUID] = field(default_factory=list)
    tasks: dict[uuid.UUID, list[int]] = field(default_factory=dict)
    conversations: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    tag_cum_weights: list[float] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


async def load_pools(conn: asyncpg.Connection, kinds: set[str], today: date) -> Pools:
    pools = Pools(today=today)
    pools.users = [r["id"] for r in await conn.fetch("SELECT id FROM users ORDER BY id")]
    if not pools.users:
        raise DatabaseError("the database holds no users: run `taskbench seed` first")
    if "task" in kinds:
        rows = await conn.fetch(
            "SELECT user_id, array_agg(id ORDER BY id) AS ids FROM ("
            " SELECT user_id, id, row_number() OVER w AS rn, count(*) OVER w AS n FROM tasks"
            " WHERE deleted_at IS NULL WINDOW w AS (PARTITION BY user_id)) t"
            " WHERE rn % greatest(n / $1, 1) = 0 GROUP BY user_id", _TASKS_PER_USER_SAMPLE)
        pools.tasks = {r["user_id"]: list(r["ids"]) for r in rows}
    if "conversation" in kinds:
        rows = await conn.fetch("SELECT user_id, array_agg(id ORDER BY id) AS ids FROM conversations GROUP BY user_id")
        pools.conversations = {r["user_id"]: list(r["ids"]) for r in rows}
    if kinds & {"tag", "tags_json"}:
        rows = await conn.fetch("SELECT tag, count(*) AS n FROM tasks, jsonb_array_elements_text(tags) tag"
                                " GROUP BY tag ORDER BY tag")
        pools.tags = [r["tag"] for r in rows]
        pools.tag_cum_weights = list(accumulate(float(r["n"]) for r in rows))
    if "word" in kinds:
        rows = await conn.fetch("SELECT word FROM ts_stat($$SELECT to_tsvector('english', title) FROM tasks"
                                " TABLESAMPLE SYSTEM (5) REPEATABLE (7)$$) WHERE length(word) > 3 ORDER BY word")
        pools.words = [r["word"] for r in rows]
    return pools


def _users_with(pools: Pools, kinds: set[str]) -> list[uuid.UUID]:
    users = pools.users
    if "task" in kinds:
        users = [u for u in users if pools.tasks.get(u)]
    if "conversation" in kinds:
        users = [u for u in users if pools.conversations.get(u)]
    if not users:
        raise DatabaseError(f"no user has the rows these parameters need ({', '.join(sorted(kinds))})")
    return users


class Drawer:
    """Draws the positional arguments of one scenario, sample after sample."""

    def __init__(self, scenario: Scenario, pools: Pools, seed: int) -> None:
        self.sql, self.order = scenario.positional()
        self.spec = scenario.params
        self.kinds = {v for v in self.spec.values() if isinstance(v, str)}
        self.pools = pools
        self.users = _users_with(pools, self.kinds)
        self.rng = random.Random(f"{seed}:{scenario.name}")

    def draw(self) -> list[Any]:
        user = self.rng.choice(self.users)
        return [self._value(self.spec[name], user) for name in self.order]

    def _value(self, spec: Any, user: uuid.UUID) -> Any:
        if not isinstance(spec, str):
            return spec
        p, rng = self.pools, self.rng
        if spec == "user":
            return user
        if spec == "task":
            return rng.choice(p.tasks[user])
        if spec == "conversation":
            return rng.choice(p.conversations[user])
        if spec in ("tag", "tags_json"):
            tag = rng.choices(p.tags, cum_weights=p.tag_cum_weights)[0]
            return json.dumps([tag]) if spec == "tags_json" else tag
        if spec == "word":
            return rng.choice(p.words)
        if spec == "today":
            return p.today
        raise AssertionError(f"unhandled parameter kind {spec}")  # the catalogue validated kinds
