"""The base side of a check when the models changed since the reference run: a scratch copy of the
seeded database whose tables are built again from the DDL that run recorded, holding the same rows
wherever they fit.

On the copy, the models' schema (``public``) is renamed aside and the recorded DDL — checked by
PostgreSQL's parser first (``parse_schema``), volatile calls refused by the server, each statement
executed as its canonical deparse — builds a new ``public``. Each recorded table is filled from its
namesake, column by column, every value converted through its text form as COPY would convert it
(a value too long for its recorded column is refused, never cut);
a column the models no longer have takes its recorded default. Identity sequences are moved past
the rows, the models' schema is dropped, the recorded indexes are built, and the database is
vacuumed and analysed so that the base side's pages are as settled as the seeded copy's. A row that
does not fit (a required column the models lack, a value that does not convert) stops it with one
line naming it: time is then not judged across the schema change, and the check says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from bench.catalogue.sql import VOLATILITY_SQL, Schema, SQLRefused, parse_schema
from bench.errors import InputError, first_line
from bench.targets.schema import connect
from bench.targets.target import Target, scratch_copy

_ASIDE = "taskbench_models"  # where the models' schema waits on the copy until the rows are moved

_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, NULL), a.attgenerated <> ''
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_IDENTITIES_SQL = """
SELECT c.relname, a.attname, pg_get_serial_sequence(format('public.%I', c.relname), a.attname)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
  AND pg_get_serial_sequence(format('public.%I', c.relname), a.attname) IS NOT NULL
"""


@contextmanager
def recorded_schema_copy(target: Target, ddl: str, label: str) -> Iterator[tuple[Target, list[str]]]:
    """A scratch copy of ``target`` on the schema ``ddl`` describes, with the target's rows, dropped on
    exit; and what the rows could not supply (a recorded column left to its default, a recorded
    table the models no longer have, left empty). InputError when the DDL or the rows are refused."""
    try:
        schema = parse_schema(ddl)
    except SQLRefused as exc:
        raise InputError(f"the reference run's recorded schema is refused: {exc}") from None
    with scratch_copy(target, label) as copy:
        with connect(copy) as conn:
            notes = _rebuild(conn, schema)
            conn.execute("VACUUM ANALYZE")
        yield copy, notes


def _rebuild(conn: psycopg.Connection, schema: Schema) -> list[str]:
    volatile = [r[0] for r in psycopg.RawCursor(conn).execute(VOLATILITY_SQL, [sorted(schema.functions)])]
    if volatile:
        raise InputError(
            f"the reference run's recorded schema calls {', '.join(volatile)}, which this server "
            "marks volatile: it is not built again"
        )
    notes: list[str] = []
    try:
        with conn.transaction():
            conn.execute(sql.SQL("ALTER SCHEMA public RENAME TO {}").format(sql.Identifier(_ASIDE)))
            conn.execute("CREATE SCHEMA public")
            for statement in (*schema.types, *(ddl for _, ddl in schema.tables)):
                conn.execute(statement)
            for table, _ in schema.tables:
                notes += _fill(conn, table)
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(_ASIDE)))
            for index in schema.indexes:
                conn.execute(index.ddl(concurrently=False))
            for table, column, sequence in conn.execute(_IDENTITIES_SQL).fetchall():
                conn.execute(
                    sql.SQL("SELECT setval({}, max({})) FROM {}").format(
                        sql.Literal(sequence), sql.Identifier(column), sql.Identifier("public", table)
                    )
                )
    except psycopg.Error as exc:
        raise InputError(
            f"the dataset's rows do not fit the reference run's recorded schema: {first_line(exc)}"
        ) from None
    return notes


def _fill(conn: psycopg.Connection, table: str) -> list[str]:
    """Copy the models' rows of ``table`` into the recorded table of that name; what was left out."""

    def columns(schema: str) -> list[tuple[str, str, bool]]:
        return conn.execute(_COLUMNS_SQL, (sql.Identifier(schema, table).as_string(conn),)).fetchall()

    source = {name for name, _, _ in columns(_ASIDE)}
    if not source:
        return [f"{table}: left empty (the models have no such table)"]
    wanted = [(name, type_) for name, type_, generated in columns("public") if not generated]
    common = [(name, type_) for name, type_ in wanted if name in source]
    values = sql.SQL(", ").join(
        # the recorded type's text input reads the value (an enum of the same name, say), and the
        # insert applies its modifier as an assignment: a too long varchar fails instead of being cut
        sql.SQL("CAST(CAST({} AS text) AS {})").format(sql.Identifier(name), sql.SQL(type_))
        for name, type_ in common
    )
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}").format(
            sql.Identifier("public", table),
            sql.SQL(", ").join(sql.Identifier(name) for name, _ in common),
            values,
            sql.Identifier(_ASIDE, table),
        )
    )
    return [
        f"{table}.{name}: its recorded default (the models have no such column)"
        for name, _ in wanted
        if name not in source
    ]
