"""Generate the bulk tables on the server, in SQL, from the same distributions as the client generator.

Over a slow or distant link (Neon from a laptop), sending ~100 MB of COPY data can cost more than
making the rows where they are stored. This generator sends only a few kilobytes of SQL: the
users (a handful of rows) still come from the client generator, so user ids match; tasks,
conversations and messages are made by ``INSERT ... SELECT`` with ``random()`` seeded by
``setseed``, serially (no parallel workers), so the same profile on the same PostgreSQL major gives
the same rows. The rows are not the client generator's rows — the profile's ``generator`` field
is part of the dataset fingerprint, so the two are never mistaken for each other.

Every row is checked by the database's constraints (types, enums, NOT NULL, CHECKs, FKs, lengths)
as it is inserted; a deterministic sample of each table is then read back and validated by the
canonical ``*Fields`` models, so a generator bug that the schema would let through still fails loudly.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row
from pydantic import TypeAdapter, ValidationError

from bench.models import CATEGORIES, Role
from bench.progress import Advance
from bench.targets import schema
from bench.targets.target import Target
from seed.generate import (
    _CATEGORY_P,
    _PRIORITY_P,
    _TAG_COUNT_P,
    _WORD_CUM,
    PRIORITIES,
    ROLE_INDEX,
    ROLES,
    WORDS,
    Generator,
)
from seed.profiles import Profile
from seed.validate import MODELS

TASK_CHUNK = 50_000  # tasks per INSERT statement: progress granularity
SAMPLE_PERCENT = 1.0  # share of each table read back and validated by the models


def _text(name: str, source: str, count: str) -> str:
    """A CTE: for each row ``n`` of ``source``, ``count`` Zipf-drawn words joined by spaces.
    Set-based (one row per word, a hash join to the word list, one aggregate) rather than a
    function call per row: ~20× faster. Words are drawn below an OFFSET 0 fence, in the scan's
    fixed order, so the random() sequence does not depend on how the aggregate is executed."""
    return f"""{name} AS (
  SELECT x.n, string_agg(v.word, ' ' ORDER BY x.j) AS txt
  FROM (SELECT b.n, j, width_bucket(random() * %(total)s, %(bounds)s::float8[]) AS rank
        FROM {source} b, generate_series(1, b.{count}) AS j OFFSET 0) x
  JOIN tb_words v USING (rank)
  GROUP BY x.n)"""


def _capitalized(column: str) -> str:
    return f"upper(left({column}, 1)) || lower(substr({column}, 2))"


_OWNERS = """
CREATE TEMP TABLE tb_owners AS
SELECT row_number() OVER (ORDER BY random()) AS n, user_id
FROM (SELECT u.user_id FROM unnest(%(users)s::uuid[], %(counts)s::int[]) AS u(user_id, tasks),
      generate_series(1, u.tasks)) s
"""

_TASKS = f"""
WITH base AS MATERIALIZED (
  SELECT o.n, o.user_id, c.created,
         2 + floor(random() * 7)::int AS title_words, floor(random() * 31)::int AS description_words,
         width_bucket(random(), %(tag_count_p)s::float8[]) - 1 AS tag_count,
         (%(priorities)s::text[])[width_bucket(random(), %(priority_p)s::float8[])] AS priority,
         (%(categories)s::text[])[width_bucket(random(), %(category_p)s::float8[])] AS category,
         random() < %(due_ratio)s AS due, floor(random() * 91)::int AS due_days,
         random() < 0.4 AS timed, 7 + floor(random() * 14)::int AS due_hour,
         15 * floor(random() * 4)::int AS due_minute,
         random() < %(completed_ratio)s AS completed,
         least(c.created + make_interval(secs => 3600 + random() * (30 * 86400 - 3600)), %(anchor)s) AS completed_at,
         random() < %(deleted_ratio)s AS deleted,
         least(c.created + make_interval(secs => 86400 + random() * 59 * 86400), %(anchor)s) AS deleted_at
  FROM tb_owners o,
       LATERAL (SELECT %(start)s + make_interval(secs => (o.n - 1 + random()) * %(step)s) AS created) c
  WHERE o.n > %(first)s AND o.n <= %(last)s
  ORDER BY o.n),
{_text("titles", "base", "title_words")},
{_text("descriptions", "base", "description_words")},
tags AS (
  SELECT n, jsonb_agg((%(tags)s::text[])[i] ORDER BY i) AS tags
  FROM (SELECT DISTINCT n, i
        FROM (SELECT b.n, width_bucket(random() * %(tag_total)s, %(tag_bounds)s::float8[]) AS i
              FROM base b, generate_series(1, b.tag_count) OFFSET 0) d) x
  GROUP BY n)
INSERT INTO tasks (user_id, title, description, priority, category, tags, due_date, due_time,
                   is_completed, completed_at, created_at, updated_at, deleted_at)
SELECT b.user_id, {_capitalized("t.txt")}, coalesce(d.txt, ''), b.priority::task_priority, b.category,
       coalesce(g.tags, '[]'::jsonb),
       CASE WHEN b.due THEN (b.created::date + b.due_days) END,
       CASE WHEN b.due AND b.timed THEN make_time(b.due_hour, b.due_minute, 0) END,
       b.completed, CASE WHEN b.completed THEN b.completed_at END, b.created,
       greatest(b.created, CASE WHEN b.completed THEN b.completed_at END,
                CASE WHEN b.deleted THEN b.deleted_at END),
       CASE WHEN b.deleted THEN b.deleted_at END
FROM base b JOIN titles t USING (n) LEFT JOIN descriptions d USING (n) LEFT JOIN tags g USING (n)
ORDER BY b.n
"""

_CONVERSATIONS = f"""
WITH base AS MATERIALIZED (
  SELECT row_number() OVER (ORDER BY u.ord, g) AS n,
         md5(%(salt)s || ':conversation:' || u.ord || ':' || g)::uuid AS id, u.user_id,
         %(start)s + make_interval(secs => random() * %(span)s * 0.95) AS created,
         2 + floor(random() * 5)::int AS title_words
  FROM unnest(%(users)s::uuid[]) WITH ORDINALITY AS u(user_id, ord),
       LATERAL (SELECT u.ord AS o, floor(random() * (%(conv_hi)s - %(conv_lo)s + 1))::int + %(conv_lo)s AS k) c,
       generate_series(1, c.k) AS g
  ORDER BY u.ord, g),
{_text("titles", "base", "title_words")}
INSERT INTO conversations (id, user_id, title, created_at, updated_at)
SELECT b.id, b.user_id, {_capitalized("t.txt")}, b.created, b.created
FROM base b JOIN titles t USING (n)
ORDER BY b.created
"""

_PLAN = """
CREATE TEMP TABLE tb_plan AS
SELECT c.id, c.user_id, c.created_at, row_number() OVER (ORDER BY c.created_at, c.id) AS ord,
       %(lo)s + floor(random() * (%(hi)s - %(lo)s + 1))::int AS messages
FROM conversations c ORDER BY c.created_at, c.id
"""

_ROLE_AT = {role: i + 1 for role, i in ROLE_INDEX.items()}  # a role's position in a SQL array (from 1)

_MESSAGES = f"""
WITH base AS MATERIALIZED (
  SELECT row_number() OVER (ORDER BY c.ord, g.pos) AS n, c.id AS conversation_id, c.user_id,
         c.created_at AS created, g.pos, -90 * ln(1 - random()) AS gap, random() AS r,
         3 + floor(random() * 58)::int AS words
  FROM tb_plan c, generate_series(0, c.messages - 1) AS g(pos)
  WHERE c.ord > %(first)s AND c.ord <= %(last)s
  ORDER BY c.ord, g.pos),
{_text("contents", "base", "words")},
timed AS (
  SELECT n, least(created + make_interval(secs => sum(gap) OVER w - first_value(gap) OVER w), %(anchor)s) AS at
  FROM base WINDOW w AS (PARTITION BY conversation_id ORDER BY pos))
INSERT INTO messages (conversation_id, user_id, role, content, created_at)
SELECT b.conversation_id, b.user_id,
       (%(roles)s::text[])[CASE WHEN b.pos = 0 AND b.r < 0.3 THEN {_ROLE_AT[Role.system]}
                                WHEN b.pos > 0 AND b.r < 0.03 THEN {_ROLE_AT[Role.tool]}
                                WHEN b.pos %% 2 = 0 THEN {_ROLE_AT[Role.user]}
                                ELSE {_ROLE_AT[Role.assistant]} END]::message_role,
       c.txt, t.at
FROM base b JOIN contents c USING (n) JOIN timed t USING (n)
ORDER BY t.at, b.n
"""
MESSAGE_CHUNK = 100  # conversations per INSERT statement (~26k messages)


def _bounds(cumulative: np.ndarray) -> list[float]:
    """Lower bounds of each bucket for ``width_bucket``: a draw in [0, total) picks by weight."""
    return [0.0, *cumulative[:-1].tolist()]


def _setseed(seed: int) -> float:
    """setseed() takes a value in [-1, 1]; spread the profile's integer seed over it."""
    return (seed * 0.6180339887498949) % 2.0 - 1.0


def _prepare(conn: psycopg.Connection, gen: Generator) -> None:
    conn.execute("SET max_parallel_workers_per_gather = 0")  # one process: one random() sequence
    conn.execute("SET jit = off")
    conn.execute("SET work_mem = '64MB'")  # a chunk's word sorts (~10 MB) stay in memory
    conn.execute("SET TIME ZONE 'UTC'")  # dates become timestamps at UTC midnight, as on the client
    # A join to this table beats subscripting a text[]: that walks the array to reach element i.
    conn.execute("CREATE TEMP TABLE tb_words (rank int PRIMARY KEY, word text NOT NULL)")
    conn.execute(
        "INSERT INTO tb_words SELECT rank, word FROM unnest(%s::text[]) WITH ORDINALITY AS w(word, rank)",
        (WORDS.to_pylist(),),
    )
    conn.execute("ANALYZE tb_words")
    conn.execute("SELECT setseed(%s)", (_setseed(gen.profile.seed),))


def _cumulative(p: tuple[float, ...]) -> list[float]:
    return [0.0, *np.cumsum(p)[:-1].tolist()]


def _common(gen: Generator) -> dict[str, Any]:
    """Parameters every statement may use. Bucket bounds travel as parameters, not in a table: a
    bound array is a plain in-memory constant, while a stored one would be de-TOASTed again for
    every word drawn."""
    p = gen.profile
    anchor = datetime.combine(p.anchor_date, datetime.min.time(), UTC)
    tag_cum = np.cumsum(1.0 / np.arange(1, len(gen.tags) + 1) ** p.tag_zipf_exponent)
    return {
        "users": [bytes(raw).hex() for raw in gen.user_raw],
        "salt": f"{p.seed}",
        "bounds": _bounds(_WORD_CUM),
        "total": float(_WORD_CUM[-1]),
        "tags": gen.tags,
        "tag_bounds": _bounds(tag_cum),
        "tag_total": float(tag_cum[-1]),
        "start": anchor - timedelta(days=p.history_days),
        "anchor": anchor,
        "span": p.history_days * 86_400.0,
    }


def _insert_users(conn: psycopg.Connection, gen: Generator, advance: Advance) -> dict[str, int]:
    """The client generator's users (a handful of rows), so user ids match the client dataset."""
    rows = next(gen.users()).to_pylist()
    with conn.cursor().copy("COPY users (id, email, name, created_at, updated_at) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                (uuid.UUID(bytes=row["id"]), row["email"], row["name"], row["created_at"], row["updated_at"])
            )
    return {"users": len(rows)}


def _insert_tasks(conn: psycopg.Connection, gen: Generator, advance: Advance) -> dict[str, int]:
    p = gen.profile
    counts = [p.tasks_for_user(i) for i in range(p.users)]
    total = sum(counts)
    common = _common(gen)
    conn.execute(_OWNERS, {"users": common["users"], "counts": counts})
    params = {
        **common,
        "step": common["span"] / total,
        "priority_p": _cumulative(_PRIORITY_P),
        "category_p": _cumulative(_CATEGORY_P),
        "tag_count_p": _cumulative(_TAG_COUNT_P),
        "categories": list(CATEGORIES),
        "priorities": PRIORITIES,
        "due_ratio": p.due_date_ratio,
        "completed_ratio": p.completed_ratio,
        "deleted_ratio": p.deleted_ratio,
    }
    advance("seed tasks (server)", 0, total)
    for first in range(0, total, TASK_CHUNK):
        conn.execute(_TASKS, {**params, "first": first, "last": first + TASK_CHUNK})
        advance("seed tasks (server)", min(first + TASK_CHUNK, total), total)
    conn.execute("DROP TABLE tb_owners")
    return {"tasks": total}


def _insert_conversations(conn: psycopg.Connection, gen: Generator, advance: Advance) -> dict[str, int]:
    p = gen.profile
    common = _common(gen)
    lo, hi = p.conversations_per_user
    conversations = conn.execute(_CONVERSATIONS, {**common, "conv_lo": lo, "conv_hi": hi}).rowcount
    lo, hi = p.messages_per_conversation
    conn.execute(_PLAN, {"lo": lo, "hi": hi})
    planned = conn.execute("SELECT sum(messages) FROM tb_plan").fetchone()
    expected = planned[0] if planned else 0
    done = 0
    advance("seed messages (server)", 0, expected)
    for first in range(0, conversations, MESSAGE_CHUNK):
        done += conn.execute(
            _MESSAGES, {**common, "roles": ROLES, "first": first, "last": first + MESSAGE_CHUNK}
        ).rowcount
        advance("seed messages (server)", done, expected)
    # A conversation's activity time is its last message, as in the client generator.
    conn.execute("""UPDATE conversations c SET updated_at = m.last
                    FROM (SELECT conversation_id, max(created_at) AS last FROM messages GROUP BY 1) m
                    WHERE m.conversation_id = c.id""")
    conn.execute("DROP TABLE tb_plan")
    return {"conversations": conversations, "messages": done}


def validate_sample(target: Target, seed: int, percent: float = SAMPLE_PERCENT) -> int:
    """Read a repeatable sample of every table back and validate it with the canonical models.
    Raises AssertionError (a generator bug) on the first invalid row; returns rows checked."""
    checked = 0
    with schema.connect(target) as conn, conn.cursor(row_factory=dict_row) as cur:
        for table, model in MODELS.items():
            fields = ", ".join(model.model_fields)
            rows = cur.execute(
                f"SELECT {fields} FROM {table} TABLESAMPLE BERNOULLI (%s) REPEATABLE (%s)", (percent, seed)
            ).fetchall()
            try:
                TypeAdapter(list[model]).validate_python(rows)  # type: ignore[valid-type]  # a model per table
            except ValidationError as exc:
                raise AssertionError(
                    f"the server-side generator made an invalid {table} row: {' '.join(str(exc).split())[:300]}"
                ) from None
            checked += len(rows)
    return checked


def generate_on_server(target: Target, profile: Profile, advance: Advance) -> dict[str, int]:
    """Fill the (empty) tables on the server; returns their row counts."""
    gen = Generator(profile)
    counts: dict[str, int] = {}
    with schema.connect(target) as conn:
        _prepare(conn, gen)
        for step in (_insert_users, _insert_conversations, _insert_tasks):
            counts.update(step(conn, gen, advance))
    validate_sample(target, profile.seed)
    return counts
