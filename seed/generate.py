"""Row generators: deterministic from the profile's seed, shaped like production (design §4).

Rows are yielded in batches of dicts, validated by the canonical models' field definitions
(``bench.models.*Fields``), and turned into tuples in the column order of ``COLUMNS``. Memory stays
bounded: nothing holds a whole table.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, time, timedelta, timezone
from itertools import accumulate
from typing import Any

from faker import Faker
from faker.providers.lorem.en_US import Provider as _Lorem
from pydantic import TypeAdapter, ValidationError

from bench.models import CATEGORIES, ConversationFields, MessageFields, TaskFields, UserFields

from .profiles import Profile

Row = tuple[Any, ...]

COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("id", "email", "name", "created_at", "updated_at"),
    "tasks": ("user_id", "title", "description", "priority", "category", "tags", "due_date",
              "due_time", "is_completed", "completed_at", "created_at", "updated_at", "deleted_at"),
    "conversations": ("id", "user_id", "title", "created_at", "updated_at"),
    "messages": ("conversation_id", "user_id", "role", "content", "created_at"),
}
_VALIDATORS = {
    "users": TypeAdapter(list[UserFields]),
    "tasks": TypeAdapter(list[TaskFields]),
    "conversations": TypeAdapter(list[ConversationFields]),
    "messages": TypeAdapter(list[MessageFields]),
}
_JSON_COLUMNS = {"tags"}

WORDS: tuple[str, ...] = tuple(_Lorem.word_list)
# Natural text is Zipf-distributed: a few words are everywhere, most are rare, which is what
# makes full-text and trigram selectivity vary from one search word to the next.
_WORD_WEIGHTS = list(accumulate(1.0 / (rank + 1) for rank in range(len(WORDS))))
_PRIORITIES = (("high", 0.2), ("medium", 0.5), ("low", 0.3))
_CATEGORY_WEIGHTS = (0.35, 0.25, 0.15, 0.10, 0.15)
_ROLES = ("user", "assistant")


def tag_vocabulary(profile: Profile) -> list[str]:
    base = ["urgent", "home", "errand", "meeting", "followup", "idea", "bill", "fitness",
            "reading", "travel", "family", "project", "review", "call", "email", "garden",
            "car", "school", "doctor", "gift", "finance", "cleanup", "research", "someday"]
    extra = [f"tag{i}" for i in range(max(0, profile.tag_vocabulary - len(base)))]
    return (base + extra)[: profile.tag_vocabulary]


def validated(table: str, rows: list[dict[str, Any]]) -> list[Row]:
    """Validate a batch through the table's model fields; an invalid row is a generator bug."""
    try:
        _VALIDATORS[table].validate_python(rows)
    except ValidationError as exc:
        raise AssertionError(f"the seeder generated an invalid {table} row: {exc}") from exc
    cols = COLUMNS[table]
    return [
        tuple(json.dumps(r[c]) if c in _JSON_COLUMNS else r.get(c) for c in cols) for r in rows
    ]


class Generator:
    """All rows of one dataset. Each table has its own RNG stream, so tables are independent."""

    def __init__(self, profile: Profile, batch_size: int = 5_000) -> None:
        self.profile = profile
        self.batch_size = batch_size
        self.anchor = datetime.combine(profile.anchor_date, time(0), tzinfo=timezone.utc)
        self.start = self.anchor - timedelta(days=profile.history_days)
        self.user_ids = [self._uuid(random.Random(f"{profile.seed}:user:{i}")) for i in range(profile.users)]
        self.tags = tag_vocabulary(profile)
        self.tag_weights = list(accumulate(1.0 / (k + 1) ** profile.tag_zipf_exponent
                                           for k in range(len(self.tags))))

    @staticmethod
    def _uuid(rng: random.Random) -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    def _rng(self, stream: str) -> random.Random:
        return random.Random(f"{self.profile.seed}:{stream}")

    def _words(self, rng: random.Random, low: int, high: int) -> str:
        return " ".join(rng.choices(WORDS, cum_weights=_WORD_WEIGHTS, k=rng.randint(low, high)))

    def _batched(self, table: str, rows: Iterator[dict[str, Any]]) -> Iterator[list[Row]]:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= self.batch_size:
                yield validated(table, batch)
                batch = []
        if batch:
            yield validated(table, batch)

    def row_counts(self) -> dict[str, int]:
        """Expected tasks and users up front (for progress); messages are known once generated."""
        return {"users": self.profile.users, "tasks": self.profile.total_tasks}

    # -- users -------------------------------------------------------------------------------
    def users(self) -> Iterator[list[Row]]:
        fake = Faker("en_US")
        fake.seed_instance(self.profile.seed)
        rng = self._rng("users")

        def rows() -> Iterator[dict[str, Any]]:
            for i, uid in enumerate(self.user_ids):
                created = self.start - timedelta(days=rng.randint(1, 60))
                name = fake.name()[:100]
                yield {"id": uid, "email": f"user{i}.{uid.hex[:8]}@example.com", "name": name,
                       "created_at": created, "updated_at": created}

        return self._batched("users", rows())

    # -- tasks -------------------------------------------------------------------------------
    def _task_owner_order(self, rng: random.Random) -> list[int]:
        """Which user owns the n-th task in time order: exact per-user counts, interleaved as in
        production (rows of many users share heap pages, unlike a per-user bulk load)."""
        owners = [i for i in range(self.profile.users) for _ in range(self.profile.tasks_for_user(i))]
        rng.shuffle(owners)
        return owners

    def tasks(self) -> Iterator[list[Row]]:
        p = self.profile
        rng = self._rng("tasks")
        owners = self._task_owner_order(rng)
        span = (self.anchor - self.start).total_seconds()
        total = len(owners)

        def rows() -> Iterator[dict[str, Any]]:
            for n, owner in enumerate(owners):
                created = self.start + timedelta(seconds=span * (n + rng.random()) / total)
                completed = rng.random() < p.completed_ratio
                completed_at = (min(created + timedelta(hours=rng.uniform(1, 24 * 30)), self.anchor)
                                if completed else None)
                deleted_at = (min(created + timedelta(days=rng.uniform(1, 60)), self.anchor)
                              if rng.random() < p.deleted_ratio else None)
                due = rng.random() < p.due_date_ratio
                ntags = rng.choices((0, 1, 2, 3), weights=(0.3, 0.4, 0.2, 0.1))[0]
                tags = sorted(set(rng.choices(self.tags, cum_weights=self.tag_weights, k=ntags)))
                yield {
                    "user_id": self.user_ids[owner],
                    "title": self._words(rng, 2, 8).capitalize(),
                    "description": self._words(rng, 0, 30),
                    "priority": rng.choices([x for x, _ in _PRIORITIES], weights=[w for _, w in _PRIORITIES])[0],
                    "category": rng.choices(CATEGORIES, weights=_CATEGORY_WEIGHTS)[0],
                    "tags": tags,
                    "due_date": (created + timedelta(days=rng.randint(0, 90))).date() if due else None,
                    "due_time": time(rng.randint(7, 20), rng.choice((0, 15, 30, 45))) if due and rng.random() < 0.4 else None,
                    "is_completed": completed,
                    "completed_at": completed_at,
                    "created_at": created,
                    "updated_at": max(t for t in (created, completed_at, deleted_at) if t is not None),
                    "deleted_at": deleted_at,
                }

        return self._batched("tasks", rows())

    # -- conversations and messages ------------------------------------------------------------
    def _conversation_plan(self) -> Iterator[tuple[uuid.UUID, uuid.UUID, datetime, int, random.Random]]:
        p = self.profile
        rng = self._rng("conversations")
        span = (self.anchor - self.start).total_seconds()
        for uid in self.user_ids:
            for _ in range(rng.randint(*p.conversations_per_user)):
                cid = self._uuid(rng)
                created = self.start + timedelta(seconds=rng.uniform(0, span * 0.95))
                count = rng.randint(*p.messages_per_conversation)
                yield cid, uid, created, count, random.Random(f"{p.seed}:messages:{cid}")

    def _message_times(self, created: datetime, count: int, rng: random.Random) -> list[datetime]:
        times, at = [], created
        for _ in range(count):
            at = min(at + timedelta(seconds=rng.expovariate(1 / 90)), self.anchor)
            times.append(at)
        return times

    def conversations(self) -> Iterator[list[Row]]:
        def rows() -> Iterator[dict[str, Any]]:
            for cid, uid, created, count, mrng in self._conversation_plan():
                last = self._message_times(created, count, mrng)[-1]
                yield {"id": cid, "user_id": uid, "title": self._words(mrng, 2, 6).capitalize(),
                       "created_at": created, "updated_at": last}

        return self._batched("conversations", rows())

    def messages(self) -> Iterator[list[Row]]:
        def rows() -> Iterator[dict[str, Any]]:
            for cid, uid, created, count, mrng in self._conversation_plan():
                times = self._message_times(created, count, mrng)
                for i, at in enumerate(times):
                    role = "system" if i == 0 and mrng.random() < 0.3 else (
                        "tool" if mrng.random() < 0.03 else _ROLES[i % 2])
                    yield {"conversation_id": cid, "user_id": uid, "role": role,
                           "content": self._words(mrng, 3, 60), "created_at": at}

        return self._batched("messages", rows())
