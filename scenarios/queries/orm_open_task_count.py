"""The open-task badge as the app counts it: Query.count() on the query of the list the badge sits
over, which it wraps whole (its ORDER BY too) in a subquery."""

from sqlmodel import col

from bench.models import Task

SLA_CLASS = "isolation"
TWIN = "open_task_count"
PARAMS = {"user_id": "user"}


def statement(p, session):
    open_tasks = session.query(Task).filter(
        Task.user_id == p.user_id,
        Task.is_completed == False,  # noqa: E712 - the comparison as the app writes it
        col(Task.deleted_at).is_(None),
    )
    return open_tasks.order_by(col(Task.created_at).desc(), col(Task.id).desc()).count()
