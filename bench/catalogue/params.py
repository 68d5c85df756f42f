"""Drawing scenario parameters from the data itself, repeatably (a seeded RNG per scenario).

Each sample first draws a user, then every user-dependent kind draws from that user's own rows,
as the app would: one of their tasks, one of their conversations, a position deep in their list.
Tags are drawn by their frequency in the data, search words among the words that occur in titles
(common and rare alike), substrings from those words.

Users come in classes (``Pools.classes``): a *power* user has more than ``POWER_USER_RATIO`` times
the median user's tasks, everyone else is *ordinary*; a dataset without power users has one class,
*all*. The class is read from the data, not from the profile that made it, so a dataset from any
generator (or a copy of production) is classed the same way: the seeder gives power users 5× the
tasks, well clear of the 2× line, and every user the same count at the scale sizes. A drawer either
draws users uniformly (``draw()``: the real mix of users, for load and plan checks) or from one class
(``class_drawers``: the runner's samples, stratified so that each class gets a verdict of its own).

| kind | value |
|---|---|
| user | a user id |
| task / conversation | one of that user's (not deleted) tasks / conversations |
| tag / tags_json / tags_any | a tag by frequency / as a one-element JSON array / 2–3 distinct tags (text[]) |
| word / fragment | a word occurring in titles / 3–4 letters from inside such a word |
| priority / category | one of the enum values, uniformly |
| today | the dataset's anchor date |
| deep_offset | an OFFSET between DEEP_PAGE bounds (capped by the user's task count) |
| cursor_created_at / cursor_id | the (created_at, id) of one row at such a depth of the user's list, both of one row |
"""

from __future__ import annotations

import json
import random
import statistics
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate
from typing import Any, NamedTuple

import asyncpg

from bench.catalogue.files import LIST_LENGTHS, Scenario
from bench.catalogue.orm import resolve
from bench.errors import DatabaseError
from bench.models import CATEGORIES, Priority

# A systematic sample of each user's tasks (every k-th id) keeps memory flat on large datasets.
_TASKS_PER_USER_SAMPLE = 256
DEEP_PAGE = (1000, 5000)  # "deep into the list": rows skipped before the page
_CURSOR_STEP = 25  # one cursor every k rows of that depth range
_PRIORITIES = tuple(p.value for p in Priority)
_TAG_CHOICES = LIST_LENGTHS["tags_any"]
_CURSOR_KINDS = frozenset({"cursor_created_at", "cursor_id"})
POWER_USER_RATIO = 2.0
ORDINARY, POWER, ALL = "ordinary", "power", "all"


@dataclass
class Pools:
    today: date
    users: list[uuid.UUID] = field(default_factory=list)
    tasks: dict[uuid.UUID, list[int]] = field(default_factory=dict)
    conversations: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    tag_cum_weights: list[float] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    task_counts: dict[uuid.UUID, int] = field(default_factory=dict)
    cursors: dict[uuid.UUID, list[tuple[Any, int]]] = field(default_factory=dict)
    classes: dict[str, frozenset[uuid.UUID]] = field(default_factory=dict)  # ordinary and power, or all


def user_classes(users: list[uuid.UUID], task_counts: dict[uuid.UUID, int]) -> dict[str, frozenset[uuid.UUID]]:
    """Power users (more than POWER_USER_RATIO × the median user's tasks) apart from the others. The
    lower median: of two users, one with 5× the other's tasks is a power user, as the seeder meant."""
    median = statistics.median_low(task_counts.get(u, 0) for u in users)
    power = frozenset(u for u in users if task_counts.get(u, 0) > POWER_USER_RATIO * median)
    if not power:
        return {ALL: frozenset(users)}
    return {ORDINARY: frozenset(users) - power, POWER: power}


async def pools_for(conn: asyncpg.Connection, scenarios: Iterable[Scenario], today: date) -> Pools:
    """The pools the parameters of ``scenarios`` draw from (only the kinds they use are loaded)."""
    return await load_pools(conn, {v for s in scenarios for v in s.params.values() if isinstance(v, str)}, today)


async def load_pools(conn: asyncpg.Connection, kinds: set[str], today: date) -> Pools:
    pools = Pools(today=today)
    pools.users = [r["id"] for r in await conn.fetch("SELECT id FROM users ORDER BY id")]
    if not pools.users:
        raise DatabaseError("the database holds no users: run `taskbench seed` first")
    if "task" in kinds:
        # every k-th task by id: numbered in the order the rows happened to arrive, the sample followed
        # the plan and the physical order (loading the same rows another way gave other tasks)
        rows = await conn.fetch(
            "SELECT user_id, array_agg(id ORDER BY id) AS ids FROM ("
            " SELECT user_id, id, row_number() OVER (PARTITION BY user_id ORDER BY id) AS rn,"
            " count(*) OVER (PARTITION BY user_id) AS n FROM tasks WHERE deleted_at IS NULL) t"
            " WHERE rn % greatest(n / $1, 1) = 0 GROUP BY user_id",
            _TASKS_PER_USER_SAMPLE,
        )
        pools.tasks = {r["user_id"]: list(r["ids"]) for r in rows}
    if "conversation" in kinds:
        rows = await conn.fetch("SELECT user_id, array_agg(id ORDER BY id) AS ids FROM conversations GROUP BY user_id")
        pools.conversations = {r["user_id"]: list(r["ids"]) for r in rows}
    # Every run needs the counts: they class the users (one aggregate, ~0.1 s on the default profile).
    rows = await conn.fetch("SELECT user_id, count(*) AS n FROM tasks WHERE deleted_at IS NULL GROUP BY user_id")
    pools.task_counts = {r["user_id"]: r["n"] for r in rows}
    pools.classes = user_classes(pools.users, pools.task_counts)
    if kinds & _CURSOR_KINDS:
        rows = await conn.fetch(
            "SELECT user_id, array_agg(created_at ORDER BY rn) AS at, array_agg(id ORDER BY rn) AS ids FROM ("
            " SELECT user_id, created_at, id, row_number() OVER"
            "  (PARTITION BY user_id ORDER BY created_at DESC, id DESC) AS rn FROM tasks WHERE deleted_at IS NULL) t"
            " WHERE rn BETWEEN $1 AND $2 AND rn % $3 = 0 GROUP BY user_id",
            *DEEP_PAGE,
            _CURSOR_STEP,
        )
        pools.cursors = {r["user_id"]: list(zip(r["at"], r["ids"], strict=True)) for r in rows}
    if kinds & {"tag", "tags_json", "tags_any"}:
        rows = await conn.fetch(
            "SELECT tag, count(*) AS n FROM tasks, jsonb_array_elements_text(tags) tag GROUP BY tag ORDER BY tag"
        )
        pools.tags = [r["tag"] for r in rows]
        pools.tag_cum_weights = list(accumulate(float(r["n"]) for r in rows))
    if kinds & {"word", "fragment"}:
        # every 20th task by id: a sample of pages (TABLESAMPLE SYSTEM) followed the heap's layout,
        # which loading the same rows another way changes
        rows = await conn.fetch(
            "SELECT DISTINCT lower(w) AS word FROM tasks, regexp_split_to_table(title, '\\s+') AS w"
            " WHERE tasks.id % 20 = 0 AND length(w) > 3 ORDER BY 1"
        )
        pools.words = [r["word"] for r in rows]
    return pools


def _users_with(pools: Pools, kinds: set[str]) -> list[uuid.UUID]:
    users = pools.users
    if "task" in kinds:
        users = [u for u in users if pools.tasks.get(u)]
    if "conversation" in kinds:
        users = [u for u in users if pools.conversations.get(u)]
    if kinds & _CURSOR_KINDS:
        users = [u for u in users if pools.cursors.get(u)]
    if not users:
        raise DatabaseError(f"no user has the rows these parameters need ({', '.join(sorted(kinds))})")
    return users


class Drawn(NamedTuple):
    """One execution's statement and its positional arguments."""

    sql: str
    args: list[Any]
    user: uuid.UUID | None = None  # whom it was drawn for: whose claim a row-level security policy reads


class Drawer:
    """Draws the parameters of one scenario, sample after sample, from a seeded stream of its own: the
    same seed, scenario, stream and users give the same parameter sets in every run. An ORM scenario
    that draws as its twin (``Scenario.draws_as``) gets the twin's sets."""

    def __init__(
        self, scenario: Scenario, pools: Pools, seed: int, stream: str = "", users: frozenset[uuid.UUID] | None = None
    ) -> None:
        self.statements = scenario.statements
        self.sql = self.statements[0].sql  # the statement, or the first of an ORM scenario's
        self.order = [name for name, _ in scenario.drawn()]  # the drawn parameters, in drawing order
        self.spec = scenario.params
        self.kinds = {v for v in self.spec.values() if isinstance(v, str)}
        self.pools = pools
        try:
            eligible = _users_with(pools, self.kinds)
        except DatabaseError as exc:
            raise DatabaseError(
                f"scenario {scenario.name}: {exc} — the dataset is too small for it "
                f"(deep pages need users with over {DEEP_PAGE[0]:,} tasks)"
            ) from None
        self.users = eligible if users is None else [u for u in eligible if u in users]
        self.rng = random.Random(f"{seed}:{scenario.draws_as}" + (f":{stream}" if stream else ""))

    def values(self) -> dict[str, Any]:
        """The next parameter set by name, constants included; the user uniformly among this drawer's users."""
        return self.user_values()[1]

    def user_values(self) -> tuple[uuid.UUID, dict[str, Any]]:
        """The next parameter set by name, and the user it was drawn for."""
        user = self.rng.choice(self.users)
        # Kinds that describe one row (a cursor's time and id) must come from the same row.
        cursor = self.rng.choice(self.pools.cursors[user]) if self.kinds & _CURSOR_KINDS else None
        drawn = {name: self._value(self.spec[name], user, cursor) for name in self.order}
        return user, {name: drawn.get(name, spec) for name, spec in self.spec.items()}

    def bind(self, values: dict[str, Any], user: uuid.UUID | None = None) -> Drawn:
        """The statement for ``values`` (the one for its lists' lengths) and its positional arguments."""
        lengths = {name: len(v) for name, v in values.items() if isinstance(v, list)}
        statement = next(s for s in self.statements if all(lengths[k] == n for k, n in s.lengths.items()))
        return Drawn(statement.sql, [resolve(bind, values) for bind in statement.binds], user)

    def draw(self) -> Drawn:
        """The next parameter set, bound to its statement, with the user it was drawn for."""
        return self.bind(*reversed(self.user_values()))

    def _value(self, spec: Any, user: uuid.UUID, cursor: tuple[Any, int] | None) -> Any:
        if not isinstance(spec, str):
            return spec
        p, rng = self.pools, self.rng
        if spec == "user":
            return user
        if spec in ("cursor_created_at", "cursor_id"):
            assert cursor is not None  # users without cursors were filtered out
            return cursor[0] if spec == "cursor_created_at" else cursor[1]
        if spec == "deep_offset":
            return rng.randint(DEEP_PAGE[0], max(DEEP_PAGE[0], min(DEEP_PAGE[1], p.task_counts.get(user, 0) - 20)))
        if spec == "tags_any":
            picked: set[str] = set()
            want = rng.choice(_TAG_CHOICES)
            while len(picked) < min(want, len(p.tags)):
                picked.add(rng.choices(p.tags, cum_weights=p.tag_cum_weights)[0])
            return sorted(picked)
        if spec == "fragment":
            word = rng.choice(p.words)
            size = min(len(word), rng.choice((3, 4)))
            start = rng.randint(0, len(word) - size)
            return word[start : start + size]
        if spec == "priority":
            return rng.choice(_PRIORITIES)
        if spec == "category":
            return rng.choice(CATEGORIES)
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


def class_drawers(scenario: Scenario, pools: Pools, seed: int, stream: str) -> dict[str, Drawer]:
    """One drawer per user class that has users this scenario can draw (deep pages need users with
    enough tasks), each on a stream of its own: the n-th parameter set of a class is the same in
    every run, however many samples the other class took."""
    drawers = {}
    for name, users in pools.classes.items():
        drawer = Drawer(scenario, pools, seed, f"{stream}:{name}", users)
        if drawer.users:
            drawers[name] = drawer
    return drawers
