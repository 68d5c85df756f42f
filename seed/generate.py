"""Column generators: deterministic from the profile's seed, shaped like production (docs/data.md).

Each table is produced as a stream of Arrow record batches built with NumPy and pyarrow
compute, never row by row in Python: generating a row must cost less than the server spends
loading it, or generation, not COPY, sets the seeding speed. Text is real English words
(Faker's word list) joined in C by ``pyarrow.compute.binary_join``.

Every batch comes from its own RNG, seeded by (profile seed, stream, batch number), so the data
depend only on the profile, not on how the stream is consumed. Memory stays bounded: the only
whole-table array is the owner of each task (4 bytes a task).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from faker import Faker
from faker.providers.lorem.en_US import Provider as _Lorem

from bench.models import CATEGORIES, Priority, Role
from seed.profiles import Profile

# Batch boundaries pick the RNG of each batch: changing these changes the data (bump
# GENERATOR_VERSION in profiles.py).
TASK_BATCH = 10_000  # rows per task batch: small enough to keep peak memory flat
CONVERSATION_CHUNK = 24  # conversations whose messages form one batch (~6k messages)

US_PER_DAY = 86_400_000_000
TIMESTAMP = pa.timestamp("us", tz="UTC")
UUID = pa.binary(16)

# Natural text is Zipf-distributed: a few words are everywhere, most are rare, which is what
# makes full-text and trigram selectivity vary from one search word to the next. The word list is
# alphabetical, so ranks follow a fixed shuffle (otherwise every common word would start with "a").
WORDS = pa.array(_Lorem.word_list, pa.string()).take(np.random.default_rng(0).permutation(len(_Lorem.word_list)))
_WORD_CUM = np.cumsum(1.0 / np.arange(1, len(WORDS) + 1))
_BUCKETS = 1 << 16  # of the table behind ByWeight: a power of two, so u * _BUCKETS is exact


class ByWeight:
    """Draws indexes by weight: for uniform ``u`` in [0, 1), exactly
    ``np.searchsorted(cumulative, u * cumulative[-1], side="right")``, about 5 times faster (8.9
    million draws of the `default` profile's words: 0.08 s against 0.39 s, a third of generating it).

    The unit interval is cut into buckets of 1/_BUCKETS; a bucket whose both edges fall in the same
    step of ``cumulative`` answers from a table, the others (where a step ends: 1.5% of the draws
    for the 971 Zipf-weighted words) are searched. Exact, not approximate: u in bucket b means
    b/B <= u < (b+1)/B exactly, and rounding is monotone, so u * total lies between the edges'
    products b/B * total and (b+1)/B * total as rounded, and so does its step."""

    def __init__(self, cumulative: np.ndarray) -> None:
        self.cumulative = cumulative
        self.total = cumulative[-1]
        steps = np.searchsorted(cumulative, np.arange(_BUCKETS + 1) / _BUCKETS * self.total, side="right")
        self.step = steps[:-1]
        self.whole = steps[:-1] == steps[1:]

    def __call__(self, u: np.ndarray) -> np.ndarray:
        bucket = (u * _BUCKETS).astype(np.intp)
        found: np.ndarray = self.step[bucket]
        split = ~self.whole[bucket]
        found[split] = np.searchsorted(self.cumulative, u[split] * self.total, side="right")
        return found


_BY_WORD_WEIGHT = ByWeight(_WORD_CUM)
# Enum values come from the models, in their order (the server-side generator indexes them too).
PRIORITIES = [p.value for p in Priority]
_PRIORITY_WEIGHT = {Priority.high: 0.2, Priority.medium: 0.5, Priority.low: 0.3}
_PRIORITY_P = tuple(_PRIORITY_WEIGHT[p] for p in Priority)
_CATEGORIES = pa.array(list(CATEGORIES))
_CATEGORY_P = (0.35, 0.25, 0.15, 0.10, 0.15)
ROLES = [r.value for r in Role]
ROLE_INDEX = {r: i for i, r in enumerate(Role)}  # a role's position in ROLES
_TAG_COUNT_P = (0.3, 0.4, 0.2, 0.1)  # 0..3 tags per task
_MAX_TAGS = 3
# Independent RNG streams: adding draws to one table never shifts another table's data.
_STREAM = {"users": 1, "owners": 2, "tasks": 3, "conversations": 4, "messages": 5}


def tag_vocabulary(profile: Profile) -> list[str]:
    base = [
        "urgent",
        "home",
        "errand",
        "meeting",
        "followup",
        "idea",
        "bill",
        "fitness",
        "reading",
        "travel",
        "family",
        "project",
        "review",
        "call",
        "email",
        "garden",
        "car",
        "school",
        "doctor",
        "gift",
        "finance",
        "cleanup",
        "research",
        "someday",
    ]
    extra = [f"tag{i}" for i in range(max(0, profile.tag_vocabulary - len(base)))]
    return (base + extra)[: profile.tag_vocabulary]


def _us(day: date) -> int:
    """Microseconds from the Unix epoch to midnight UTC of ``day``."""
    return (day - date(1970, 1, 1)).days * US_PER_DAY


def uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random version-4 UUIDs as an (n, 16) uint8 array."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def uuid_array(raw: np.ndarray) -> pa.Array:
    return pa.FixedSizeBinaryArray.from_buffers(UUID, len(raw), [None, pa.py_buffer(raw.tobytes())])


def timestamps(us: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Microseconds since the Unix epoch as timestamptz; ``mask`` marks NULLs."""
    return pa.array(us, TIMESTAMP, mask=mask)


class Generator:
    """All batches of one dataset, table by table."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.anchor_us = _us(profile.anchor_date)
        self.start_us = self.anchor_us - profile.history_days * US_PER_DAY
        self.user_raw = uuids(self._rng("users"), profile.users)
        self.user_ids = uuid_array(self.user_raw)
        self.tags = tag_vocabulary(profile)
        self._tag_by_weight = ByWeight(np.cumsum(1.0 / np.arange(1, len(self.tags) + 1) ** profile.tag_zipf_exponent))
        self._plan = self._conversation_plan()

    def _rng(self, stream: str, batch: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.profile.seed, _STREAM[stream], batch])

    def row_counts(self) -> dict[str, int]:
        """Rows each table will hold (known before generating, for progress bars)."""
        return {
            "users": self.profile.users,
            "tasks": self.profile.total_tasks,
            "conversations": len(self._plan["created"]),
            "messages": int(self._plan["messages"].sum()),
        }

    def _words(self, rng: np.random.Generator, counts: np.ndarray) -> pa.Array:
        """One string per entry of ``counts``: that many Zipf-drawn words joined by spaces."""
        words = WORDS.take(_BY_WORD_WEIGHT(rng.random(int(counts.sum()))))
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
        return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), words), " ")

    # -- users -------------------------------------------------------------------------------
    def users(self) -> Iterator[pa.RecordBatch]:
        p = self.profile
        fake = Faker("en_US")
        fake.seed_instance(p.seed)
        rng = self._rng("users", 1)
        created = self.start_us - rng.integers(1, 61, p.users) * US_PER_DAY
        emails = [f"user{i}.{bytes(raw[:4]).hex()}@example.com" for i, raw in enumerate(self.user_raw)]
        yield pa.record_batch(
            {
                "id": self.user_ids,
                "email": pa.array(emails),
                "name": pa.array([fake.name()[:100] for _ in emails]),
                "created_at": timestamps(created),
                "updated_at": timestamps(created),
            }
        )

    # -- tasks -------------------------------------------------------------------------------
    def _task_owners(self) -> np.ndarray:
        """Which user owns the n-th task in time order: exact per-user counts, interleaved as in
        production (rows of many users share heap pages, unlike a per-user bulk load)."""
        p = self.profile
        counts = [p.tasks_for_user(i) for i in range(p.users)]
        return self._rng("owners").permutation(np.repeat(np.arange(p.users, dtype=np.int32), counts))

    def _tags_json(self, rng: np.random.Generator, n: int) -> pa.Array:
        """0–3 distinct tags per task, Zipf-drawn, as the JSON text of a sorted array."""
        vocab = len(self.tags)
        count = rng.choice(len(_TAG_COUNT_P), size=n, p=_TAG_COUNT_P)
        draws = self._tag_by_weight(rng.random((n, _MAX_TAGS)))
        draws[np.arange(_MAX_TAGS) >= count[:, None]] = vocab  # vocab = "no tag"
        draws.sort(axis=1)
        draws[:, 1:][draws[:, 1:] == draws[:, :-1]] = vocab  # drop repeats
        draws.sort(axis=1)
        codes = (draws[:, 0] * (vocab + 1) + draws[:, 1]) * (vocab + 1) + draws[:, 2]
        distinct, inverse = np.unique(codes, return_inverse=True)
        texts = []
        for code in distinct:
            picks = [int(code // (vocab + 1) ** k % (vocab + 1)) for k in (2, 1, 0)]
            texts.append(json.dumps([self.tags[i] for i in picks if i < vocab]))
        return pa.array(texts).take(inverse)

    def tasks(self) -> Iterator[pa.RecordBatch]:
        p = self.profile
        owners = self._task_owners()
        total = len(owners)
        span = self.anchor_us - self.start_us
        for batch, first in enumerate(range(0, total, TASK_BATCH)):
            rng = self._rng("tasks", batch)
            n = min(TASK_BATCH, total - first)
            created = self.start_us + ((np.arange(first, first + n) + rng.random(n)) * span / total).astype(np.int64)
            completed = rng.random(n) < p.completed_ratio
            completed_at = np.minimum(
                created + rng.uniform(3_600e6, 30 * US_PER_DAY, n).astype(np.int64), self.anchor_us
            )
            deleted = rng.random(n) < p.deleted_ratio
            deleted_at = np.minimum(
                created + rng.uniform(US_PER_DAY, 60 * US_PER_DAY, n).astype(np.int64), self.anchor_us
            )
            due = rng.random(n) < p.due_date_ratio
            due_days = created // US_PER_DAY + rng.integers(0, 91, n)
            timed = due & (rng.random(n) < 0.4)
            due_time = (rng.integers(7, 21, n) * 3600 + rng.choice([0, 15, 30, 45], n) * 60) * 1_000_000
            updated = np.maximum(
                created, np.maximum(np.where(completed, completed_at, 0), np.where(deleted, deleted_at, 0))
            )
            yield pa.record_batch(
                {
                    "user_id": self.user_ids.take(owners[first : first + n]),
                    "title": pc.utf8_capitalize(self._words(rng, rng.integers(2, 9, n))),
                    "description": self._words(rng, rng.integers(0, 31, n)),
                    "priority": pa.array(PRIORITIES).take(rng.choice(len(PRIORITIES), n, p=_PRIORITY_P)),
                    "category": _CATEGORIES.take(rng.choice(len(CATEGORIES), n, p=_CATEGORY_P)),
                    "tags": self._tags_json(rng, n),
                    "due_date": pa.array(due_days.astype(np.int32), pa.date32(), mask=~due),
                    "due_time": pa.array(due_time, pa.time64("us"), mask=~timed),
                    "is_completed": pa.array(completed),
                    "completed_at": timestamps(completed_at, ~completed),
                    "created_at": timestamps(created),
                    "updated_at": timestamps(updated),
                    "deleted_at": timestamps(deleted_at, ~deleted),
                }
            )

    # -- conversations and messages ------------------------------------------------------------
    def _conversation_plan(self) -> dict[str, np.ndarray]:
        p = self.profile
        rng = self._rng("conversations")
        per_user = rng.integers(p.conversations_per_user[0], p.conversations_per_user[1] + 1, p.users)
        n = int(per_user.sum())
        span = self.anchor_us - self.start_us
        return {
            "owner": np.repeat(np.arange(p.users), per_user),
            "id": uuids(rng, n),
            "created": self.start_us + (rng.random(n) * span * 0.95).astype(np.int64),
            "messages": rng.integers(p.messages_per_conversation[0], p.messages_per_conversation[1] + 1, n),
        }

    def _chunks(self) -> Iterator[tuple[int, slice]]:
        n = len(self._plan["created"])
        for chunk, first in enumerate(range(0, n, CONVERSATION_CHUNK)):
            yield chunk, slice(first, min(first + CONVERSATION_CHUNK, n))

    def _message_times(self, rng: np.random.Generator, convs: slice) -> tuple[np.ndarray, np.ndarray]:
        """Send times of every message in ``convs`` (gaps ~ exponential, mean 90 s), and the
        index of each message's conversation. Always the first draws of a chunk's RNG, so
        conversations() and messages() agree on them."""
        counts = self._plan["messages"][convs]
        conv = np.repeat(np.arange(len(counts)), counts)
        gaps = rng.exponential(90e6, int(counts.sum())).astype(np.int64)
        since_start = np.cumsum(gaps)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        since_start -= np.repeat(since_start[starts] - gaps[starts], counts)
        return np.minimum(self._plan["created"][convs][conv] + since_start, self.anchor_us), conv

    def conversations(self) -> Iterator[pa.RecordBatch]:
        plan = self._plan
        last = np.empty(len(plan["created"]), dtype=np.int64)
        for chunk, convs in self._chunks():
            times, _ = self._message_times(self._rng("messages", chunk), convs)
            ends = np.cumsum(plan["messages"][convs]) - 1
            last[convs] = times[ends]
        titles = self._words(self._rng("conversations", 1), self._rng("conversations", 2).integers(2, 7, len(last)))
        yield pa.record_batch(
            {
                "id": uuid_array(plan["id"]),
                "user_id": self.user_ids.take(plan["owner"]),
                "title": pc.utf8_capitalize(titles),
                "created_at": timestamps(plan["created"]),
                "updated_at": timestamps(last),
            }
        )

    def messages(self) -> Iterator[pa.RecordBatch]:
        plan = self._plan
        for chunk, convs in self._chunks():
            rng = self._rng("messages", chunk)
            times, conv = self._message_times(rng, convs)
            n = len(times)
            position = np.arange(n) - np.repeat(
                np.concatenate(([0], np.cumsum(plan["messages"][convs])[:-1])), plan["messages"][convs]
            )
            role = np.where(position % 2 == 0, ROLE_INDEX[Role.user], ROLE_INDEX[Role.assistant])  # user, assistant...
            role[(position == 0) & (rng.random(n) < 0.3)] = ROLE_INDEX[Role.system]  # an opening system prompt
            role[(position > 0) & (rng.random(n) < 0.03)] = ROLE_INDEX[Role.tool]  # a tool call result
            yield pa.record_batch(
                {
                    "conversation_id": uuid_array(plan["id"][convs][conv]),
                    "user_id": self.user_ids.take(plan["owner"][convs][conv]),
                    "role": pa.array(ROLES).take(role),
                    "content": self._words(rng, rng.integers(3, 61, n)),
                    "created_at": timestamps(times),
                }
            )
