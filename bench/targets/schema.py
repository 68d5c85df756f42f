"""The schema taskbench owns in its database: DDL from the models, and the ownership/metadata table.

``taskbench_meta`` marks a database as taskbench's and stores the dataset fingerprint. The
fingerprint row is written only after a load has completed, so an interrupted load is never
mistaken for a complete dataset.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import create_engine, create_mock_engine
from sqlalchemy.engine.mock import MockConnection
from sqlmodel import SQLModel

from bench import models  # also registers the tables on SQLModel.metadata
from bench.errors import DatabaseError, first_line
from bench.results import Dataset
from bench.targets.target import Target, connect_error, scratch_copy

META_TABLE = "taskbench_meta"
_ENUM_TYPES = ("task_priority", "message_role")

_USER_TABLES_SQL = """
SELECT n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1
"""


def connect(target: Target) -> psycopg.Connection:
    try:
        return psycopg.connect(target.libpq_conninfo(), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise connect_error(exc, target.display) from None


def claim_database(target: Target, force: bool = False) -> None:
    """Mark the database as taskbench's, refusing one that holds tables taskbench did not create."""
    with connect(target) as conn:
        tables = [r[0] for r in conn.execute(_USER_TABLES_SQL)]
        if f"public.{META_TABLE}" in tables:
            return
        if tables and not force:
            shown = ", ".join(tables[:5]) + (" ..." if len(tables) > 5 else "")
            raise DatabaseError(
                f"database {target.database!r} holds tables taskbench did not create ({shown}); "
                "use another --db-name, or --force to use it anyway"
            )
        conn.execute(
            f"CREATE TABLE {META_TABLE} (key text PRIMARY KEY, value jsonb NOT NULL, "
            "updated_at timestamptz NOT NULL DEFAULT now())"
        )
        set_meta(conn, "owner", {"tool": "taskbench", "foreign_tables_at_claim": tables})


def set_meta(conn: psycopg.Connection, key: str, value: Any) -> None:
    conn.execute(
        f"INSERT INTO {META_TABLE} (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        (key, json.dumps(value)),
    )


def get_meta(conn: psycopg.Connection, key: str) -> Any | None:
    row = conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


def delete_meta(conn: psycopg.Connection, key: str) -> None:
    conn.execute(f"DELETE FROM {META_TABLE} WHERE key = %s", (key,))


def dataset_info(target: Target) -> dict[str, Any] | None:
    """The stored dataset record (fingerprint, profile, row counts), or None if none is complete."""
    with connect(target) as conn:
        return get_meta(conn, "dataset")


def current_dataset(target: Target) -> dict[str, Any] | None:
    """``dataset_info``, but only when the tables holding it were made from the models' DDL as it is
    now: a dataset seeded before the models changed is seeded again, not measured on the old tables."""
    with connect(target) as conn:
        info, made = get_meta(conn, "dataset"), get_meta(conn, "schema")
    return info if made is not None and made.get("ddl") == model_ddl() else None


def seeded_dataset(target: Target) -> Dataset:
    """The dataset the target holds; an error telling what to do when it holds no complete one."""
    info = dataset_info(target)
    if not info:
        raise DatabaseError(f"database {target.database!r} holds no complete dataset: run `taskbench seed` first")
    return Dataset.model_validate(info)


@contextmanager
def seeded_copy(target: Target, label: str) -> Iterator[tuple[Target, Dataset]]:
    """A scratch copy of the target's seeded dataset (``scratch_copy``, dropped on exit) and that
    dataset; refused before anything is copied when the target holds none."""
    dataset = seeded_dataset(target)
    with scratch_copy(target, label) as copy:
        yield copy, dataset


def model_ddl() -> str:
    """The DDL the models produce (types, tables, constraints, indexes), as PostgreSQL would get it:
    recorded with each run, so a later check knows whether the schema changed since."""
    statements: list[str] = []
    engine: MockConnection = create_mock_engine(
        "postgresql+psycopg://",
        lambda sql, *_a, **_k: statements.append(str(sql.compile(dialect=engine.dialect)).strip()),
    )
    SQLModel.metadata.create_all(engine, checkfirst=False)
    # A table's indexes come out in set order, which changes between processes: sorted after the tables.
    indexes = sorted(s for s in statements if s.startswith("CREATE INDEX"))
    return ";\n".join([*(s for s in statements if not s.startswith("CREATE INDEX")), *indexes]) + ";\n"


# The models' foreign keys and the indexes that back no constraint, each as the server prints it
# (pg_get_constraintdef, pg_get_indexdef): what a bulk load can build after its rows are in.
_DEFERRABLE_SQL = """
SELECT c.relname, 'fkey', k.conname,
       format('ALTER TABLE %%I ADD CONSTRAINT %%I %%s', c.relname, k.conname, pg_get_constraintdef(k.oid))
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE k.contype = 'f' AND c.relname = ANY(%(tables)s) AND c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT c.relname, 'index', i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
WHERE c.relname = ANY(%(tables)s) AND c.relnamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = x.indexrelid)
ORDER BY 1, 2 DESC, 3
"""


@dataclass(frozen=True)
class Deferred:
    """A table's secondary indexes and foreign keys, dropped before a bulk load and built after it
    (as pg_restore does): one sort per index instead of an insertion per row, one join per foreign
    key instead of a trigger per row. The statements are the server's own printing of what it had."""

    indexes: dict[str, list[str]]  # table -> CREATE INDEX statements
    foreign_keys: list[str]  # ALTER TABLE ... ADD CONSTRAINT, after every index (they read the keys)


def defer_indexes_and_keys(target: Target) -> Deferred:
    """Drop the models' secondary indexes and foreign keys from the (empty) tables; returns how to
    build them again. A load killed in between leaves no dataset fingerprint: the next seed
    recreates the schema whole."""
    indexes: dict[str, list[str]] = {}
    keys: list[str] = []
    with connect(target) as conn:
        rows = conn.execute(_DEFERRABLE_SQL, {"tables": list(models.TABLE_NAMES)}).fetchall()
        for table, kind, name, statement in rows:
            if kind == "fkey":
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name))
                )
                keys.append(statement)
            else:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
                indexes.setdefault(table, []).append(statement)
    return Deferred(indexes=indexes, foreign_keys=keys)


def recreate_schema(target: Target) -> None:
    """Drop taskbench's own tables (never any other) and create them afresh from the models."""
    with connect(target) as conn:
        delete_meta(conn, "dataset")
        if get_meta(conn, "schema") is not None:  # only tables this tool created are dropped
            names = ", ".join(reversed(models.TABLE_NAMES))
            conn.execute(f"DROP TABLE IF EXISTS {names} CASCADE")
            conn.execute(f"DROP TYPE IF EXISTS {', '.join(_ENUM_TYPES)}")
            delete_meta(conn, "schema")
        engine = create_engine(target.sqlalchemy_url())
        try:
            SQLModel.metadata.create_all(engine, checkfirst=False)
        except Exception as exc:  # noqa: BLE001 - a colliding foreign table is a user-facing refusal
            raise DatabaseError(f"cannot create the schema in {target.database!r}: {first_line(exc)}") from None
        finally:
            engine.dispose()
        set_meta(conn, "schema", {"tables": list(models.TABLE_NAMES), "ddl": model_ddl()})
