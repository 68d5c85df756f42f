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

Advice found under a policy variant (``advise --policy``) ships its policies too: the variant file's
``policies`` (a policy variant the catalogue loads back), and in the revision, after the indexes, the
policies' canonical text in one transaction (row-level security enabled on a table without its
policy yet would show the app no row); the downgrade drops the policies and disables row-level
security before it drops the indexes.
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
from bench.catalogue.policies import PolicyDef
from bench.models import TABLES

VARIANT_NAME = "advised"


def variant_toml(indexes: Sequence[Candidate], description: str, policies: Sequence[PolicyDef] = ()) -> str:
    """The variant file: ``scenarios/variants/advised.toml`` when written into the catalogue."""
    extensions = sorted({e for c in indexes for e in c.extensions})
    lines = [f"description = {json.dumps(' '.join(description.split()))}"]
    if extensions:
        lines.append(f"extensions = {json.dumps(extensions)}")

    def array(key: str, statements: list[str]) -> list[str]:
        return [f"{key} = [", *(f"  {json.dumps(statement)}," for statement in statements), "]"]

    lines += array("statements", [c.index.ddl() for c in indexes])
    if policies:
        lines += array("policies", [p.sql for p in policies])
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


def revision_id(indexes: Sequence[Candidate], policies: Sequence[PolicyDef] = ()) -> str:
    """A revision id that is the same for the same advice (Alembic's are 12 hex digits)."""
    held = "".join(sorted(c.fingerprint for c in indexes)) + "".join(p.sql for p in policies)
    return hashlib.sha256(held.encode()).hexdigest()[:12]


def alembic_revision(
    indexes: Sequence[Candidate],
    message: str,
    down_revision: str | None = None,
    policies: Sequence[PolicyDef] = (),
) -> str:
    """An Alembic revision file's source: upgrade builds the indexes concurrently, then applies the
    policies in one transaction; downgrade undoes the policies (in the reverse order), then drops the
    indexes. Extensions are created if missing and never dropped: other objects may use them."""
    extensions = sorted({e for c in indexes for e in c.extensions})
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    upgrade = [f"op.execute('CREATE EXTENSION IF NOT EXISTS \"{e}\"')" for e in extensions]
    upgrade += [c.index.alembic_create(concurrently=True) for c in indexes]
    downgrade = [c.index.alembic_drop(concurrently=True) for c in reversed(indexes)]

    def block(statements: list[str]) -> str:
        return "".join(f"        {s}\n" for s in statements) or "        pass\n"

    def executed(statements: list[str]) -> str:  # outside the autocommit block: in Alembic's transaction
        return "".join(f"    op.execute({s!r})\n" for s in statements)

    applied = executed([p.sql for p in policies])
    undone = executed([p.undo() for p in reversed(policies)])

    return f'''"""{message}

Revision ID: {revision_id(indexes, policies)}
Revises: {down_revision or ""}
Create Date: {created}

Written by `taskbench advise`. CREATE INDEX CONCURRENTLY does not block writes, but cannot run in a
transaction: every index statement runs in Alembic's autocommit block (row-level security, if any,
after it in one transaction). A build that fails half-way leaves an INVALID index behind: drop it
before running the upgrade again.
"""

import sqlalchemy as sa
from alembic import op

revision = {revision_id(indexes, policies)!r}
down_revision = {down_revision!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
{block(upgrade)}{applied}

def downgrade() -> None:
{undone}    with op.get_context().autocommit_block():
{block(downgrade)}'''


def write(
    directory: Path,
    indexes: Sequence[Candidate],
    description: str,
    down_revision: str | None = None,
    policies: Sequence[PolicyDef] = (),
) -> dict[str, Path]:
    """The three forms into ``directory``: advised.toml, table_args.py and the revision file (the
    policies in the variant file and the revision, not in the models: SQLModel has no policies)."""
    directory.mkdir(parents=True, exist_ok=True)
    variant = output.write_text(directory / f"{VARIANT_NAME}.toml", variant_toml(indexes, description, policies))
    models = output.write_text(
        directory / "table_args.py",
        "# The SQLModel __table_args__ of each model that gets an advised index.\n"
        "from sqlalchemy import CheckConstraint, Index, text\n\n"
        + "".join(f"# class {name}:\n{source}\n\n" for name, source in table_args(indexes).items()),
    )
    revision = output.write_text(
        directory / f"{revision_id(indexes, policies)}_advised_indexes.py",
        alembic_revision(indexes, "Advised indexes (taskbench advise)", down_revision, policies),
    )
    return {"variant": variant, "table_args": models, "alembic": revision}
