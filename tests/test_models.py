import uuid

import pytest
from pydantic import ValidationError

from bench.models import TaskFields
from bench.targets import schema
from tests.support import scalar


def test_schema_is_created_from_the_models(make_target):
    target = make_target()
    schema.recreate_schema(target)
    with schema.connect(target) as conn:
        cols: dict[str, str] = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name <> 'taskbench_meta'"
            ).fetchall()
        )
        assert cols["tasks.id"] == "bigint"
        assert cols["tasks.tags"] == "jsonb"
        assert cols["tasks.priority"] == "USER-DEFINED"
        assert cols["users.id"] == "uuid"
        assert cols["tasks.due_time"] == "time without time zone"
        assert cols["messages.created_at"] == "timestamp with time zone"
        identity = scalar(
            conn, "SELECT is_identity FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'id'"
        )
        assert identity == "YES"
        enums: dict[str, str] = dict(
            conn.execute(
                "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text "
                "FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY 1"
            ).fetchall()
        )
        assert enums == {"task_priority": "{high,medium,low}", "message_role": "{user,assistant,system,tool}"}
        fks: dict[str, str] = dict(
            conn.execute(
                "SELECT conrelid::regclass || '.' || conname, confdeltype FROM pg_constraint WHERE contype = 'f'"
            ).fetchall()
        )
        deltypes = sorted(fks.values())
        assert deltypes == ["a", "c", "c", "c"]  # messages.user_id: no action; the rest cascade
        indexes = {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'taskbench_meta'"
            )
        }
    assert indexes == {
        "users_pkey",
        "users_email_key",
        "tasks_pkey",
        "ix_tasks_user_id",
        "conversations_pkey",
        "ix_conversations_user_id",
        "messages_pkey",
        "ix_messages_conversation_id",
        "ix_messages_user_id",
    }


def test_database_constraints_hold(make_target):
    target = make_target()
    schema.recreate_schema(target)
    uid = uuid.uuid4()
    with schema.connect(target) as conn:
        conn.execute("INSERT INTO users (id, email, name) VALUES (%s, 'a@example.com', 'A')", (uid,))
        for bad in (
            "INSERT INTO tasks (user_id, title) VALUES (%s, '   ')",
            "INSERT INTO tasks (user_id, title, category) VALUES (%s, 'x', 'fun')",
        ):
            with pytest.raises(Exception, match="violates check constraint"):
                conn.execute(bad, (uid,))
        row = conn.execute(
            "INSERT INTO tasks (user_id, title) VALUES (%s, 'x') RETURNING priority::text, category, "
            "tags::text, is_completed, description",
            (uid,),
        ).fetchone()
        assert row == ("medium", "other", "[]", False, "")
        conn.execute("DELETE FROM users WHERE id = %s", (uid,))
        assert scalar(conn, "SELECT count(*) FROM tasks") == 0


def test_model_validation_rejects_what_the_database_would():
    with pytest.raises(ValidationError):
        TaskFields.model_validate({"user_id": uuid.uuid4(), "title": "  "})
    with pytest.raises(ValidationError):
        TaskFields.model_validate({"user_id": uuid.uuid4(), "title": "x", "category": "fun"})
    with pytest.raises(ValidationError):
        TaskFields.model_validate({"user_id": uuid.uuid4(), "title": "x" * 201})


def test_the_recorded_schema_ddl_is_the_same_in_every_process():
    """A check compares it with the reference run's: set ordering must not make it differ."""
    import os
    import subprocess
    import sys

    code = "from bench.targets.schema import model_ddl; print(model_ddl())"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(outputs) == 1 and "CREATE TABLE tasks" in outputs.pop()
