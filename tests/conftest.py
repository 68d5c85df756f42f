"""Fixtures: every test talks to the real embedded PostgreSQL, each module in databases of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bench import schema
from bench.catalog import load_catalog
from bench.target import Target, drop_database, open_target
from seed.load import seed_database
from seed.profiles import get_profile

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
DATA_DIR = ROOT / ".taskbench" / "pgdata"
# Small enough to seed in seconds, large enough for indexes to beat scans.
TINY = replace(get_profile("ci", users=3, tasks_per_user=1500), conversations_per_user=(2, 4),
               messages_per_conversation=(20, 60))


@pytest.fixture(scope="session")
def make_target() -> Iterator:
    """Factory for fresh, claimed databases on the embedded server; all dropped at the end."""
    created: list[Target] = []

    def make(prefix: str = "tbtest") -> Target:
        target = open_target(None, f"{prefix}_{uuid.uuid4().hex[:8]}", DATA_DIR)
        schema.claim_database(target)
        created.append(target)
        return target

    yield make
    for target in created:
        drop_database(target, target.database)


@pytest.fixture(scope="session")
def seeded(make_target) -> Target:
    """One seeded database shared by the tests that only read it."""
    target = make_target("tbseeded")
    seed_database(target, TINY)
    return target


@pytest.fixture(scope="session")
def catalog():
    return load_catalog(SCENARIOS)


@pytest.fixture(scope="session")
def small_results(seeded, catalog):
    """A real, small run (3 scenarios × 2 variants, every phase on) that report and recommendation
    tests read; it is never written to by them."""
    from bench.runner import RunOptions, run

    opts = RunOptions(samples=20, max_samples=40, warmup=2, cold_samples=2, stability_rounds=1, write_rows=300)
    return run(seeded, catalog.select(["recent_tasks", "last_messages", "task_by_id"], ["baseline", "composite"]),
               opts)


def content_checksums(target: Target) -> dict[str, str]:
    """One md5 per table over every row in key order: equal checksums mean identical content."""
    with schema.connect(target) as conn:
        return {t: conn.execute(f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {t} t").fetchone()[0]
                for t in ("users", "tasks", "conversations", "messages")}


def constraint_violations(target: Target) -> int:
    """Rows breaking a rule of the data model that the schema itself does not enforce."""
    with schema.connect(target) as conn:
        return conn.execute("""
            SELECT
              (SELECT count(*) FROM tasks WHERE btrim(title) = '' OR length(title) > 200)
            + (SELECT count(*) FROM tasks WHERE completed_at IS NOT NULL AND NOT is_completed)
            + (SELECT count(*) FROM tasks WHERE is_completed AND completed_at IS NULL)
            + (SELECT count(*) FROM tasks WHERE updated_at < created_at)
            + (SELECT count(*) FROM tasks WHERE jsonb_typeof(tags) <> 'array')
            + (SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
               WHERE m.user_id <> c.user_id OR m.created_at < c.created_at)
            + (SELECT count(*) FROM conversations c WHERE updated_at <>
               (SELECT max(created_at) FROM messages m WHERE m.conversation_id = c.id))
        """).fetchone()[0]
