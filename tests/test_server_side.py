"""Generation on the server: same distributions, deterministic, validated, never taken for client data."""

from dataclasses import replace

import pytest

from bench.targets import schema
from seed.load import seed_database
from seed.server_side import validate_sample
from tests.support import TINY, constraint_violations, content_checksums, one, scalar

ON_SERVER = replace(TINY, generator="server")


@pytest.fixture(scope="module")
def server_seeded(make_target):
    target = make_target("tbserver")
    seed_database(target, ON_SERVER)
    return target


def test_server_side_data_follow_the_profile(server_seeded):
    with schema.connect(server_seeded) as conn:
        per_user = [r[0] for r in conn.execute("SELECT count(*) FROM tasks GROUP BY user_id ORDER BY 1")]
        completed, deleted, due = one(
            conn,
            "SELECT avg(is_completed::int), avg((deleted_at IS NOT NULL)::int), avg((due_date IS NOT NULL)::int) "
            "FROM tasks",
        )
        conversations = [r[0] for r in conn.execute("SELECT count(*) FROM conversations GROUP BY user_id")]
        messages = [r[0] for r in conn.execute("SELECT count(*) FROM messages GROUP BY conversation_id")]
        top_tags = conn.execute(
            "SELECT t, count(*) FROM tasks, jsonb_array_elements_text(tags) t GROUP BY t ORDER BY 2 DESC"
        ).fetchall()
        words = scalar(
            conn,
            "SELECT count(*) FROM tasks WHERE to_tsvector('english', description) "
            "@@ plainto_tsquery('english', 'morning')",
        )
    assert per_user == [1500, 1500, 7500]
    assert abs(float(completed) - TINY.completed_ratio) < 0.02
    assert 0.01 < float(deleted) < 0.05 and 0.57 < float(due) < 0.63
    assert all(TINY.conversations_per_user[0] <= n <= TINY.conversations_per_user[1] for n in conversations)
    assert all(TINY.messages_per_conversation[0] <= n <= TINY.messages_per_conversation[1] for n in messages)
    assert top_tags[0][0] == "urgent" and top_tags[0][1] > 3 * top_tags[-1][1]  # Zipf: rank 1 dominates
    assert words > 0  # real words: full-text search finds things
    assert constraint_violations(server_seeded) == 0


def test_server_side_is_deterministic_and_has_its_own_fingerprint(make_target, server_seeded):
    again, other = make_target(), make_target()
    result = seed_database(again, ON_SERVER)
    seed_database(other, replace(ON_SERVER, seed=7))
    info = schema.dataset_info(server_seeded)
    assert info is not None and result.fingerprint == info["fingerprint"] != TINY.fingerprint()
    assert content_checksums(again) == content_checksums(server_seeded)
    assert content_checksums(other)["tasks"] != content_checksums(again)["tasks"]


def test_sample_validation_catches_a_row_the_models_reject(make_target):
    target = make_target()
    seed_database(target, replace(ON_SERVER, users=1, tasks_per_user=200))
    assert validate_sample(target, seed=1, percent=100) > 200
    with schema.connect(target) as conn:  # a row the schema would let through once its CHECK is gone
        conn.execute("ALTER TABLE tasks DROP CONSTRAINT ck_tasks_category")
        conn.execute("UPDATE tasks SET category = 'bogus' WHERE id = (SELECT min(id) FROM tasks)")
    with pytest.raises(AssertionError, match="invalid tasks row"):
        validate_sample(target, seed=1, percent=100)
