"""What the tests share besides fixtures: paths, the tiny profile, and content checks on a database."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench.targets import schema
from bench.targets.target import Target
from seed.profiles import get_profile

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
DATA_DIR = ROOT / ".taskbench" / "pgdata"
# Small enough to seed in seconds, large enough for indexes to beat scans.
TINY = replace(get_profile("ci", users=3, tasks_per_user=1500), conversations_per_user=(2, 4),
               messages_per_conversation=(20, 60))


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
