"""A user's tasks carrying any of several tags, written with in_() over the tags: one bind per tag, so
each number of tags is a statement of its own."""

from sqlalchemy import exists, func
from sqlmodel import col, select

from bench.models import Task

SLA_CLASS = "list"
TWIN = "tags_any"
PARAMS = {"user_id": "user", "tags": "tags_any", "page_size": 20}


def statement(p):
    tag = func.jsonb_array_elements_text(Task.tags).table_valued("value")
    return (
        select(Task)
        .where(
            Task.user_id == p.user_id,
            exists(select(tag.c.value).where(tag.c.value.in_(p.tags))),
            col(Task.deleted_at).is_(None),
        )
        .order_by(col(Task.created_at).desc(), col(Task.id).desc())
        .limit(p.page_size)
    )
