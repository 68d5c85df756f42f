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
vacuumed and analysed so that the base side's pages are as settled as the seeded copy's. ANALYZE
samples at random, so the columns both schemas have then get the models' statistics back
(``pg_restore_attribute_stats``, PostgreSQL 18 and later): both sides plan from the same numbers,
and a plan that sits on a knife-edge estimate cannot differ between them for that reason. A row that
does not fit (a required column the models lack, a value that does not convert) stops it with one
line naming it: time is then not judged across the schema change, and the check says so.
"""

from __future__ import annotations

import contextlib
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

_STATISTICS_SQL = """
SELECT tablename, attname, null_frac, avg_width, n_distinct, most_common_vals::text, most_common_freqs,
       histogram_bounds::text, correlation, most_common_elems::text, most_common_elem_freqs, elem_count_histogram
FROM pg_catalog.pg_stats
WHERE schemaname = %s AND NOT inherited
"""

# NULL arguments are not restored: ANALYZE's value stands for them
_RESTORE_SQL = """
SELECT pg_catalog.pg_restore_attribute_stats(
  'schemaname', 'public'::text, 'relname', %s::text, 'attname', %s::text, 'inherited', false,
  'null_frac', %s::real, 'avg_width', %s::integer, 'n_distinct', %s::real,
  'most_common_vals', %s::text, 'most_common_freqs', %s::real[], 'histogram_bounds', %s::text,
  'correlation', %s::real, 'most_common_elems', %s::text, 'most_common_elem_freqs', %s::real[],
  'elem_count_histogram', %s::real[])
"""

_IDENTITIES_SQL = """
SELECT relname, attname, sequence FROM (
  SELECT c.relname, a.attname, pg_get_serial_sequence(format('public.%I', c.relname), a.attname) AS sequence
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
  WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
) owned
WHERE sequence IS NOT NULL
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
            notes, statistics = _rebuild(conn, schema)
            conn.execute("VACUUM ANALYZE")
            notes += _restore_statistics(conn, statistics)
        yield copy, notes


def _rebuild(conn: psycopg.Connection, schema: Schema) -> tuple[list[str], list[tuple[object, ...]]]:
    """Build ``schema`` in place of the models' and move the rows; what the rows could not supply,
    and the models' statistics of the columns copied (``_STATISTICS_SQL`` rows)."""
    volatile = [r[0] for r in psycopg.RawCursor(conn).execute(VOLATILITY_SQL, [sorted(schema.functions)])]
    if volatile:
        raise InputError(
            f"the reference run's recorded schema calls {', '.join(volatile)}, which this server "
            "marks volatile: it is not built again"
        )
    notes: list[str] = []
    copied: set[tuple[str, str]] = set()
    try:
        with conn.transaction():
            conn.execute(sql.SQL("ALTER SCHEMA public RENAME TO {}").format(sql.Identifier(_ASIDE)))
            conn.execute("CREATE SCHEMA public")
            for statement in (*schema.types, *(ddl for _, ddl in schema.tables)):
                conn.execute(statement)
            for table, _ in schema.tables:
                columns, left_out = _fill(conn, table)
                copied |= {(table, column) for column in columns}
                notes += left_out
            statistics = [r for r in conn.execute(_STATISTICS_SQL, (_ASIDE,)) if (r[0], r[1]) in copied]
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
    return notes, statistics


def _restore_statistics(conn: psycopg.Connection, statistics: list[tuple[object, ...]]) -> list[str]:
    """The models' statistics onto the columns copied; a column whose values its recorded type cannot
    read keeps ANALYZE's. Before PostgreSQL 18 there is no way to, and the note says so."""
    if conn.execute("SELECT to_regproc('pg_catalog.pg_restore_attribute_stats') IS NULL").fetchone() == (True,):
        return ["planner statistics: the copy's own ANALYZE (restoring them needs PostgreSQL 18)"]
    for row in statistics:
        with contextlib.suppress(psycopg.Error):
            conn.execute(_RESTORE_SQL, row)
    return []


def _fill(conn: psycopg.Connection, table: str) -> tuple[list[str], list[str]]:
    """Copy the models' rows of ``table`` into the recorded table of that name; the columns copied,
    and what was left out."""

    def columns(schema: str) -> list[tuple[str, str, bool]]:
        return conn.execute(_COLUMNS_SQL, (sql.Identifier(schema, table).as_string(conn),)).fetchall()

    source = {name for name, _, _ in columns(_ASIDE)}
    if not source:
        return [], [f"{table}: left empty (the models have no such table)"]
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
    return [name for name, _ in common], [
        f"{table}.{name}: its recorded default (the models have no such column)"
        for name, _ in wanted
        if name not in source
    ]
