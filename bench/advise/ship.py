"""The advice shipped three ways, every form printed from the same parse trees (``IndexDef``):

- a variant file (``advised.toml``) that later runs and the gate load like any hand-written one;
- per model, the SQLModel ``__table_args__`` with the indexes added after what the model already
  declares (its check constraints stay as they are);
- an Alembic revision: ``CREATE INDEX CONCURRENTLY`` (a migration meets a live table: a plain
  build would block its writers for the whole build, see ``deploy``) inside
  ``op.get_context().autocommit_block()``, since CONCURRENTLY cannot run in a transaction; the
  downgrade drops the indexes, concurrently too. Alembic's autogenerate is not used: it does not
  notice a changed WHERE, USING, INCLUDE or operator class, and renders ``is_completed == False``
  as ``is_completed = 0``, which PostgreSQL rejects; here every predicate goes through ``text()``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import CheckConstraint

from bench import output
from bench.advise.candidates import Candidate
from bench.models import TABLES

VARIANT_NAME = "advised"


def variant_toml(indexes: Sequence[Candidate], description: str) -> str:
    """The variant file: ``scenarios/variants/advised.toml`` when written into the catalogue."""
    extensions = sorted({e for c in indexes for e in c.extensions})
    lines = [f"description = {json.dumps(' '.join(description.split()))}"]
    if extensions:
        lines.append(f"extensions = {json.dumps(extensions)}")
    lines.append("statements = [")
    lines += [f"  {json.dumps(c.index.ddl())}," for c in indexes]
    lines.append("]")
    return "\n".join(lines) + "\n"


def _existing_entry(entry: object) -> str:
    if isinstance(entry, CheckConstraint):
        return f"CheckConstraint({str(entry.sqltext)!r}, name={entry.name!r})"
    raise TypeError(f"cannot print a {type(entry).__name__} of a model's __table_args__")


def table_args(indexes: Sequence[Candidate]) -> dict[str, str]:
    """Model class name -> its ``__table_args__`` source (``Index``, ``text`` and ``CheckConstraint``
    imported from sqlalchemy), for every model that gets an index."""
    sources = {}
    for model in TABLES:
        table = str(model.__tablename__)
        mine = [c.index for c in indexes if c.table == table]
        if not mine:
            continue
        kept = getattr(model, "__table_args__", ())
        entries = [_existing_entry(e) for e in (kept if isinstance(kept, tuple) else ())]
        entries += [index.sqlalchemy() for index in mine]
        sources[model.__name__] = "__table_args__ = (\n" + "".join(f"    {e},\n" for e in entries) + ")"
    return sources


def revision_id(indexes: Sequence[Candidate]) -> str:
    """A revision id that is the same for the same advice (Alembic's are 12 hex digits)."""
    return hashlib.sha256("".join(sorted(c.fingerprint for c in indexes)).encode()).hexdigest()[:12]


def alembic_revision(indexes: Sequence[Candidate], message: str, down_revision: str | None = None) -> str:
    """An Alembic revision file's source: upgrade builds the indexes concurrently, downgrade drops
    them. Extensions are created if missing and never dropped: other objects may use them."""
    extensions = sorted({e for c in indexes for e in c.extensions})
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    upgrade = [f"op.execute('CREATE EXTENSION IF NOT EXISTS \"{e}\"')" for e in extensions]
    upgrade += [c.index.alembic_create(concurrently=True) for c in indexes]
    downgrade = [c.index.alembic_drop(concurrently=True) for c in reversed(indexes)]

    def block(statements: list[str]) -> str:
        return "".join(f"        {s}\n" for s in statements) or "        pass\n"

    return f'''"""{message}

Revision ID: {revision_id(indexes)}
Revises: {down_revision or ""}
Create Date: {created}

Written by `taskbench advise`. CREATE INDEX CONCURRENTLY does not block writes, but cannot run in a
transaction: every statement runs in Alembic's autocommit block. A build that fails half-way leaves
an INVALID index behind: drop it before running the upgrade again.
"""

import sqlalchemy as sa
from alembic import op

revision = {revision_id(indexes)!r}
down_revision = {down_revision!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
{block(upgrade)}

def downgrade() -> None:
    with op.get_context().autocommit_block():
{block(downgrade)}'''


def write(
    directory: Path, indexes: Sequence[Candidate], description: str, down_revision: str | None = None
) -> dict[str, Path]:
    """The three forms into ``directory``: advised.toml, table_args.py and the revision file."""
    directory.mkdir(parents=True, exist_ok=True)
    variant = output.write_text(directory / f"{VARIANT_NAME}.toml", variant_toml(indexes, description))
    models = output.write_text(
        directory / "table_args.py",
        "# The SQLModel __table_args__ of each model that gets an advised index.\n"
        "from sqlalchemy import CheckConstraint, Index, text\n\n"
        + "".join(f"# class {name}:\n{source}\n\n" for name, source in table_args(indexes).items()),
    )
    revision = output.write_text(
        directory / f"{revision_id(indexes)}_advised_indexes.py",
        alembic_revision(indexes, "Advised indexes (taskbench advise)", down_revision),
    )
    return {"variant": variant, "table_args": models, "alembic": revision}
