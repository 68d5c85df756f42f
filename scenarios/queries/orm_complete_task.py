"""Complete one of the user's tasks with an ORM-enabled update(): SQLAlchemy binds the new values too."""

from sqlalchemy import func, update

from bench.models import Task

SLA_CLASS = "write"
KIND = "write"
TWIN = "complete_task"
PARAMS = {"task_id": "task", "user_id": "user"}


def statement(p):
    return (
        update(Task)
        .where(Task.id == p.task_id, Task.user_id == p.user_id)
        .values(is_completed=True, completed_at=func.now(), updated_at=func.now())
    )
