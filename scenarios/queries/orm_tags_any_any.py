"""A user's tasks carrying any of several tags, written with any_() over the tags: one array bind, one
statement whatever the number of tags."""

from sqlalchemy import String, any_, exists, func, literal
from sqlalchemy.dialects.postgresql import ARRAY
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
            exists(select(tag.c.value).where(tag.c.value == any_(literal(p.tags, ARRAY(String))))),
            col(Task.deleted_at).is_(None),
        )
        .order_by(col(Task.created_at).desc(), col(Task.id).desc())
        .limit(p.page_size)
    )
