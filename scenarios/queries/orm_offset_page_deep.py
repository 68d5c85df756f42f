"""A page deep into a user's task list the way SQLModel's tutorial pages: .offset() and .limit() on whole Task rows."""

from sqlmodel import col, select

from bench.models import Task

SLA_CLASS = "list"
TWIN = "offset_page_deep"
PARAMS = {"user_id": "user", "offset": "deep_offset", "page_size": 20}


def statement(p):
    return (
        select(Task)
        .where(Task.user_id == p.user_id, col(Task.deleted_at).is_(None))
        .order_by(col(Task.created_at).desc(), col(Task.id).desc())
        .offset(p.offset)
        .limit(p.page_size)
    )
