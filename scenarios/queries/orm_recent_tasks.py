"""The first page of a user's task list as the app loads it: whole Task rows through the model, newest first."""

from sqlmodel import col, select

from bench.models import Task

SLA_CLASS = "list"
TWIN = "recent_tasks"
PARAMS = {"user_id": "user", "page_size": 20}


def statement(p):
    return (
        select(Task)
        .where(Task.user_id == p.user_id, col(Task.deleted_at).is_(None))
        .order_by(col(Task.created_at).desc(), col(Task.id).desc())
        .limit(p.page_size)
    )
