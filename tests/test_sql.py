"""The scenario-file SQL checks (bench.catalogue.sql): what PostgreSQL's parser lets through, and
that an index's three printed forms build the very index its statement builds, on the real server."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from psycopg import sql as pgsql
from sqlalchemy import Index, MetaData, create_engine, text
from sqlalchemy.schema import CreateIndex
from sqlmodel import SQLModel

from bench.catalogue.sql import (
    MAX_SQL_BYTES,
    VOLATILITY_SQL,
    IndexKey,
    SQLRefused,
    parse_index,
    parse_query,
    parse_schema,
)
from bench.targets import schema
from bench.targets.target import Target
from tests.support import SCENARIOS


def _toml(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(path.stem, tomllib.loads(path.read_text())) for path in sorted((SCENARIOS / kind).glob("*.toml"))]


VARIANTS = _toml("variants")
QUERIES = _toml("queries")
SHIPPED_STATEMENTS = [statement for _, variant in VARIANTS for statement in variant.get("statements", [])]

UNUSUAL_INDEXES = [
    "CREATE INDEX ON tasks (user_id, created_at)",
    "CREATE INDEX tb_q_schema ON public.tasks (due_date)",
    "CREATE INDEX tb_q_lower ON tasks (lower(title) text_pattern_ops)",
    "CREATE INDEX tb_q_lower_desc ON tasks ((lower(title)) DESC NULLS LAST)",
    "CREATE INDEX tb_q_concat ON tasks ((title || ' ' || description))",
    "CREATE INDEX tb_q_nulls ON tasks (due_date DESC NULLS LAST, created_at ASC NULLS FIRST, id DESC NULLS FIRST)",
    "CREATE INDEX tb_q_ops_desc ON tasks (title text_pattern_ops DESC)",
    'CREATE INDEX tb_q_collate ON tasks (title COLLATE "C", category)',
    "CREATE INDEX tb_q_include ON messages (conversation_id) INCLUDE (role, created_at)",
    "CREATE INDEX tb_q_open ON tasks (user_id) WHERE NOT is_completed AND deleted_at IS NULL",
    "CREATE INDEX tb_q_false ON tasks (user_id) WHERE is_completed = false",
    (
        "CREATE INDEX tb_q_literals ON tasks (user_id) WHERE title NOT LIKE '%:x%' AND priority = 'high' "
        "AND tags @> '[\"a\"]'::jsonb AND due_date > '2024-01-01'::date"
    ),
    "CREATE UNIQUE INDEX tb_q_unique ON tasks (user_id, title) WHERE deleted_at IS NULL",
    "CREATE INDEX tb_q_brin ON messages USING brin (created_at) WITH (pages_per_range = 16)",
    "CREATE INDEX tb_q_fill ON tasks (user_id) WITH (fillfactor = 70, deduplicate_items = off)",
    "CREATE INDEX tb_q_hash ON tasks USING HASH (user_id)",
    "CREATE INDEX tb_q_jsonb_path ON tasks USING gin (tags jsonb_path_ops) WITH (fastupdate = off)",
    "CREATE INDEX tb_q_trgm ON tasks USING gin (title gin_trgm_ops)",
    "CREATE INDEX tb_q_gist_trgm ON tasks USING gist (title gist_trgm_ops(siglen = 64))",
    "CREATE INDEX IF NOT EXISTS tb_q_guarded ON conversations (user_id, updated_at DESC)",
    "CREATE INDEX CONCURRENTLY tb_q_concurrent ON users (lower(email))",
    'CREATE INDEX "TB Mixed Case" ON users (name, "email")',
]


# ---------------------------------------------------------------- what ships


@pytest.mark.parametrize("statement", SHIPPED_STATEMENTS)
def test_every_shipped_index_statement_parses(statement: str) -> None:
    index = parse_index(statement)
    assert index.name.startswith("tb_") and index.table in ("tasks", "messages", "conversations")
    assert parse_index(index.ddl()) == index  # the canonical form is a fixed point


@pytest.mark.parametrize(("name", "scenario"), QUERIES, ids=[name for name, _ in QUERIES])
def test_every_shipped_scenario_parses_as_its_kind(name: str, scenario: dict[str, Any]) -> None:
    kind = scenario.get("kind", "read")
    query = parse_query(scenario["sql"], write=kind == "write")
    assert query.kind == kind
    assert set(query.params) == set(scenario.get("params", {}))  # none: the claim alone says whose rows
    assert len(query.params) == len(set(query.params))
    assert query.tables and query.tables <= {"users", "tasks", "conversations", "messages"}
    assert not query.params or (":" + query.params[0] not in query.sql and "$1" in query.sql)
    assert not query.sql.endswith(";") and query.sql == query.sql.strip()


# ---------------------------------------------------------------- refusals

INDEX_REFUSALS = [
    ("CREATE INDEX tb_x ON tasks (id); DROP TABLE users", "more than one statement"),
    ("CREATE INDEX tb_x ON tasks (id) -- x\n; DROP TABLE messages", "more than one statement"),
    ("CREATE INDEX tb_x ON tasks (id) /* ; */; DROP TABLE messages", "more than one statement"),
    ("CREATE INDEX tb_x ON tasks ((title || '; DROP TABLE users')); DROP TABLE users", "more than one statement"),
    ("/* c */ DROP TABLE messages", "not DropStmt"),
    ("ALTER TABLE tasks ADD COLUMN x int", "not AlterTableStmt"),
    ("CREATE ROLE evil SUPERUSER", "not CreateRoleStmt"),
    ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql", "not CreateFunctionStmt"),
    ("DO $$ BEGIN DROP TABLE users; END $$", "not DoStmt"),
    ("COPY tasks TO PROGRAM 'rm -rf /'", "not CopyStmt"),
    ("CREATE TABLE tasks2 (id int)", "not CreateStmt"),
    ("SELECT 1", "not SelectStmt"),
    ("CREATE INDEX x ON pg_catalog.pg_class (relname)", "public schema"),
    ("CREATE INDEX x ON other_schema.tasks (id)", "public schema"),
    ("CREATE INDEX x ON otherdb.public.tasks (id)", "public schema"),
    ("CREATE INDEX x ON other_table (a)", "'other_table' is not one of the tables"),
    ("CREATE INDEX x ON ONLY tasks (id)", "ON ONLY"),
    ("CREATE INDEX x ON tasks (id) TABLESPACE pg_default", "TABLESPACE"),
    ("CREATE UNIQUE INDEX x ON tasks (title) NULLS NOT DISTINCT", "NULLS NOT DISTINCT"),
    ("CREATE INDEX x ON tasks (id) INCLUDE ((lower(title)))", "INCLUDE takes plain columns"),
    ("CREATE INDEX x ON tasks (id) INCLUDE (title DESC)", "INCLUDE takes plain columns"),
    ("CREATE INDEX x ON tasks (id", "not valid SQL: syntax error"),
    ("CREATE INDEX x ON tasks ((title || 'x)", "not valid SQL: unterminated quoted string"),
    ("", "no statement"),
    ("-- only a comment", "no statement"),
    ("CREATE INDEX x ON tasks (id) WHERE id = " + " + ".join(["1"] * 2000), "nested too deeply"),
    ("CREATE INDEX x ON tasks (id) WHERE title <> '" + "x" * MAX_SQL_BYTES + "'", "longer than 64 KiB"),
]


@pytest.mark.parametrize(("statement", "reason"), INDEX_REFUSALS, ids=range(len(INDEX_REFUSALS)))
def test_index_refusals_say_why(statement: str, reason: str) -> None:
    with pytest.raises(SQLRefused) as refused:
        parse_index(statement)
    message = str(refused.value)
    assert reason in refused.value.reason and refused.value.reason in message
    assert "\n" not in message and len(message) < len(refused.value.reason) + 90
    assert refused.value.statement == statement


READ_REFUSALS = [
    ("DELETE FROM tasks WHERE user_id = :u RETURNING id", "a read scenario is one SELECT, not DeleteStmt"),
    ("WITH d AS (DELETE FROM tasks RETURNING id) SELECT * FROM d", "may not modify data (DeleteStmt)"),
    (
        "SELECT * FROM (WITH i AS (INSERT INTO tasks DEFAULT VALUES RETURNING id) SELECT * FROM i) s",
        "may not modify data (InsertStmt)",
    ),
    ("SELECT * FROM tasks FOR UPDATE", "FOR UPDATE/SHARE"),
    ("SELECT * FROM (SELECT * FROM tasks FOR SHARE) s", "FOR UPDATE/SHARE"),
    ("SELECT id FROM tasks WHERE EXISTS (SELECT 1 FROM users FOR KEY SHARE)", "FOR UPDATE/SHARE"),
    ("SELECT * INTO t2 FROM tasks", "SELECT INTO creates a table"),
    ("SELECT 1; SELECT 2", "more than one statement"),
    ("SELECT 1 FROM tasks; DROP TABLE users", "more than one statement"),
    ("SELECT * FROM pg_authid", "'pg_authid' is not one of the tables"),
    ("SELECT * FROM pg_catalog.pg_authid", "'pg_catalog.pg_authid' is not one of the tables"),
    ("SELECT * FROM tasks WHERE user_id IN (SELECT oid::text::uuid FROM pg_roles)", "'pg_roles' is not one"),
    ("WITH t AS (SELECT * FROM pg_shadow) SELECT * FROM t", "'pg_shadow' is not one"),
    ("WITH tasks AS (SELECT 1) SELECT * FROM other.tasks", "'other.tasks' is not one"),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "'b' is not one"),
    ("SELECT * FROM tasks t JOIN secrets s ON true", "'secrets' is not one"),
    ("TABLE pg_authid", "'pg_authid' is not one"),
    ("VACUUM tasks", "a read scenario is one SELECT, not VacuumStmt"),
    ("SELECT :a + :", "a ':' that starts no :name bind"),
    ("SELECT : a", "a ':' that starts no :name bind"),
    ("SELECT :1", "a ':' that starts no :name bind"),
    ("SELECT :'a'", "a ':' that starts no :name bind"),
    ("SELECT tags[1:2] FROM tasks", "a ':' that starts no :name bind"),
    ('SELECT :"a"', "bind names are lower_snake_case"),
    ("SELECT :UserId", "bind names are lower_snake_case"),
    ("SELECT $1", "use :name binds, not $n"),
    ("SELECT id FROM tasks WHERE id = :id AND user_id = $2", "use :name binds, not $n"),
    ("SELECT 'unterminated", "not valid SQL: unterminated quoted string"),
    ("SELECT FROM WHERE", "not valid SQL: syntax error"),
    ("  ; -- nothing", "no statement"),
    ("SELECT '" + "x" * MAX_SQL_BYTES + "'", "longer than 64 KiB"),
]


@pytest.mark.parametrize(("sql", "reason"), READ_REFUSALS, ids=range(len(READ_REFUSALS)))
def test_read_refusals_say_why(sql: str, reason: str) -> None:
    with pytest.raises(SQLRefused) as refused:
        parse_query(sql, write=False)
    assert reason in refused.value.reason
    assert "\n" not in str(refused.value)


WRITE_REFUSALS = [
    ("UPDATE pg_authid SET rolsuper = true WHERE rolname = :name", "'pg_authid' is not one of the tables"),
    ("WITH pg_authid AS (SELECT 1) UPDATE pg_authid SET rolsuper = true", "'pg_authid' is not one"),
    ("WITH x AS (SELECT 1), d AS (DELETE FROM x RETURNING 1) INSERT INTO tasks SELECT * FROM d", "'x' is not one"),
    ("INSERT INTO tasks (title) SELECT rolname FROM pg_roles", "'pg_roles' is not one"),
    ("DELETE FROM tasks USING audit a WHERE a.id = tasks.id", "'audit' is not one"),
    ("SELECT * FROM tasks", "a write scenario is one INSERT, UPDATE, DELETE or MERGE, not SelectStmt"),
    ("TRUNCATE tasks", "not TruncateStmt"),
    ("UPDATE tasks SET title = 'x'; DROP TABLE users", "more than one statement"),
]


@pytest.mark.parametrize(("sql", "reason"), WRITE_REFUSALS, ids=range(len(WRITE_REFUSALS)))
def test_write_refusals_say_why(sql: str, reason: str) -> None:
    with pytest.raises(SQLRefused) as refused:
        parse_query(sql, write=True)
    assert reason in refused.value.reason


def test_refusal_message_is_one_abbreviated_line() -> None:
    statement = "CREATE INDEX x\n   ON other_table\t(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u)"
    with pytest.raises(SQLRefused) as refused:
        parse_index(statement)
    assert str(refused.value) == (
        "'other_table' is not one of the tables (users, tasks, conversations, messages): "
        "CREATE INDEX x ON other_table (a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p..."
    )


# ---------------------------------------------------------------- binds and scenarios


def test_binds_become_positional_in_order_of_first_appearance() -> None:
    query = parse_query(
        "SELECT id FROM tasks\nWHERE user_id = :user_id AND tags ?| :tags::text[] AND owner = :user_id"
        " LIMIT:page_size ;  -- trailing\n",
        write=False,
    )
    assert query.sql == ("SELECT id FROM tasks\nWHERE user_id = $1 AND tags ?| $2::text[] AND owner = $1 LIMIT $3")
    assert query.params == ("user_id", "tags", "page_size")
    assert query.kind == "read" and query.tables == {"tasks"}


def test_colons_in_strings_comments_and_casts_are_no_binds() -> None:
    sql = (
        "SELECT 'é:x', $q$:y; DROP TABLE users$q$, \"a:b\", now()::date /* :z $1 */ -- :w\n"
        "FROM tasks WHERE title = 'ü' || :fragment"
    )
    query = parse_query(sql, write=False)
    assert query.params == ("fragment",)
    assert query.sql == sql.replace(":fragment", "$1")
    assert parse_query("SELECT ':x'", write=False).params == ()


def test_dollar_quoted_semicolon_is_not_a_second_statement() -> None:
    query = parse_query("SELECT $q$; DROP TABLE users$q$ FROM tasks", write=False)
    assert query.tables == {"tasks"} and query.params == ()
    index = parse_index("CREATE INDEX tb_x ON tasks (id) WHERE title <> $q$; DROP TABLE users$q$")
    assert index.where == "title <> '; DROP TABLE users'"


def test_keywords_are_bind_names_too() -> None:
    query = parse_query("SELECT * FROM tasks LIMIT :limit OFFSET :offset", write=False)
    assert query.params == ("limit", "offset") and query.sql.endswith("LIMIT $1 OFFSET $2")


TIED = "its LIMIT keeps rows its ORDER BY leaves tied: end the ORDER BY with"


@pytest.mark.parametrize(
    ("sql", "ties"),
    [
        ("SELECT id FROM tasks ORDER BY due_date LIMIT 50", f"{TIED} id of tasks"),
        ("SELECT id FROM tasks ORDER BY due_date, id LIMIT 50", None),
        ("SELECT id FROM tasks ORDER BY id, due_date LIMIT 50", None),  # redundant after the key, harmless
        ("SELECT id FROM tasks ORDER BY created_at DESC OFFSET 5", f"{TIED} id of tasks"),
        ("SELECT id FROM tasks LIMIT 5", f"{TIED} id of tasks"),  # no ORDER BY: any 5 rows
        ("SELECT id FROM tasks ORDER BY lower(title), id + 0 LIMIT 5", f"{TIED} id of tasks"),  # an expression
        ("SELECT id FROM tasks ORDER BY due_date", None),  # no LIMIT: every row, compared in order of ties too
        ("SELECT id FROM tasks ORDER BY due_date LIMIT ALL", None),
        ("SELECT 1 LIMIT 1", None),
        ("SELECT id AS task FROM public.tasks t ORDER BY t.due_date, task LIMIT 5", None),  # an output name
        ("SELECT id FROM tasks t ORDER BY x.id LIMIT 5", f"{TIED} id of tasks"),  # another table's id
        ("SELECT t.id FROM tasks t JOIN users u ON u.id = t.user_id ORDER BY u.email, t.id LIMIT 5", None),
        (
            "SELECT t.id FROM tasks t JOIN users u ON u.id = t.user_id ORDER BY t.id LIMIT 5",
            f"{TIED} id or email of users",
        ),
        ("SELECT user_id, count(*) FROM tasks GROUP BY user_id ORDER BY 2 DESC, user_id LIMIT 5", None),
        ("SELECT user_id, count(*) FROM tasks GROUP BY user_id ORDER BY 2 DESC LIMIT 5", "every grouped column"),
        ("WITH o AS (SELECT id FROM tasks) SELECT id FROM o ORDER BY id LIMIT 5", "subquery, function or CTE"),
        ("SELECT id FROM (SELECT id FROM tasks) s ORDER BY id LIMIT 5", "subquery, function or CTE"),
        ("SELECT id FROM tasks UNION SELECT id FROM messages ORDER BY id LIMIT 5", "UNION, INTERSECT or EXCEPT"),
    ],
)
def test_a_limit_is_judged_for_ties_its_order_leaves(sql: str, ties: str | None) -> None:
    found = parse_query(sql, write=False).ties
    assert found == ties if ties is None else ties in (found or "")


def test_ctes_unions_and_public_tables_are_reads() -> None:
    query = parse_query(
        """
        WITH RECURSIVE open AS (SELECT id, user_id FROM public.tasks WHERE NOT is_completed),
             chain(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM chain WHERE n < 3)
        SELECT o.id FROM open o JOIN users u ON u.id = o.user_id, chain
        UNION SELECT m.id FROM messages m WHERE m.user_id = :user_id
        """,
        write=False,
    )
    assert query.tables == {"tasks", "users", "messages"}
    assert query.params == ("user_id",)


def test_functions_are_collected_as_written() -> None:
    query = parse_query(
        "SELECT lower(title), pg_catalog.now(), count(*), coalesce(due_date, now()::date), "
        "extract(epoch FROM created_at) FROM tasks",
        write=False,
    )
    assert query.functions == {"lower", "pg_catalog.now", "count", "now", "pg_catalog.extract"}


def test_writes() -> None:
    insert = parse_query("INSERT INTO tasks (user_id, title) VALUES (:user_id, :title) RETURNING id", write=True)
    assert insert.kind == "write" and insert.sql.endswith("VALUES ($1, $2) RETURNING id")
    assert insert.tables == {"tasks"}
    update = parse_query(
        """
        WITH picked AS (SELECT id FROM tasks WHERE user_id = :user_id LIMIT 1 FOR UPDATE SKIP LOCKED)
        UPDATE tasks t SET is_completed = true, completed_at = now() FROM picked p WHERE t.id = p.id
        """,
        write=True,
    )
    assert update.tables == {"tasks"} and update.functions == {"now"}
    delete = parse_query("DELETE FROM messages m USING conversations c WHERE c.id = m.conversation_id", write=True)
    assert delete.tables == {"messages", "conversations"}
    merge = parse_query(
        "MERGE INTO users u USING (SELECT :id::uuid AS id) s ON u.id = s.id WHEN MATCHED THEN UPDATE SET name = :name",
        write=True,
    )
    assert merge.params == ("id", "name")


def test_deep_expressions_do_not_exhaust_the_stack() -> None:
    query = parse_query("SELECT id FROM tasks WHERE id = " + " + ".join(["1"] * 10000), write=False)
    assert query.tables == {"tasks"}


# ---------------------------------------------------------------- index definitions


def test_unnamed_index_gets_a_deterministic_name() -> None:
    first = parse_index("CREATE INDEX ON tasks (user_id, created_at DESC)")
    assert first.name == parse_index("CREATE INDEX ON tasks (user_id, created_at DESC)").name
    assert first.name.startswith("tb_tasks_") and len(first.name) == len("tb_tasks_") + 10
    assert first.name == f"tb_tasks_{first.fingerprint()[:10]}"
    assert first.name != parse_index("CREATE INDEX ON tasks (user_id, created_at)").name
    assert first.name != parse_index("CREATE INDEX ON messages (user_id, created_at DESC)").name
    long = parse_index("CREATE INDEX ON t" + "x" * 62 + " (a)", tables=["t" + "x" * 62])
    assert len(long.name.encode()) == 63
    assert parse_index("CREATE INDEX " + "x" * 70 + " ON tasks (id)").name == "x" * 63  # as PostgreSQL cuts it


def test_fingerprint_ignores_name_schema_build_options_and_default_order() -> None:
    fingerprints = {
        parse_index(statement).fingerprint()
        for statement in (
            "CREATE INDEX a ON tasks (user_id, created_at DESC)",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS b ON public.tasks USING btree (user_id ASC, created_at DESC)",
            "create index on TASKS (USER_ID nulls last, created_at desc nulls first)",
        )
    }
    assert len(fingerprints) == 1
    assert len({parse_index("CREATE INDEX a ON tasks (id)"), parse_index("CREATE INDEX a ON tasks (id)")}) == 1
    assert parse_index("CREATE INDEX a ON tasks (user_id, created_at)").fingerprint() not in fingerprints


def test_index_parts() -> None:
    index = parse_index(
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS tb_x ON public.tasks USING gin "
        "(lower(title) gin_trgm_ops, tags jsonb_path_ops) INCLUDE (id) WITH (fastupdate = off) "
        "WHERE is_completed = false"
    )
    assert (index.name, index.table, index.unique, index.using) == ("tb_x", "tasks", True, "gin")
    assert index.keys == (
        IndexKey("(lower(title))", None, "gin_trgm_ops", False, None),
        IndexKey("tags", "tags", "jsonb_path_ops", False, None),
    )
    assert (index.include, index.where, index.storage) == (("id",), "is_completed = FALSE", (("fastupdate", "off"),))
    assert index.concurrently and index.if_not_exists
    assert index.ddl() == (
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS tb_x ON tasks USING gin "
        "((lower(title)) gin_trgm_ops, tags jsonb_path_ops) INCLUDE (id) "
        "WITH (fastupdate = off) WHERE is_completed = FALSE"
    )
    assert index.ddl(concurrently=False).startswith("CREATE UNIQUE INDEX IF NOT EXISTS tb_x ON tasks")
    plain = parse_index("CREATE INDEX tb_y ON tasks (user_id, created_at DESC NULLS LAST)")
    assert plain.ddl() == "CREATE INDEX tb_y ON tasks (user_id, created_at DESC NULLS LAST)"
    assert plain.ddl(concurrently=True) == (
        "CREATE INDEX CONCURRENTLY tb_y ON tasks (user_id, created_at DESC NULLS LAST)"
    )
    assert plain.keys[1] == IndexKey("created_at", "created_at", None, True, "last")


def test_sqlalchemy_and_alembic_sources() -> None:
    index = parse_index(
        "CREATE UNIQUE INDEX tb_x ON tasks USING gin (tags jsonb_path_ops, (lower(title)), "
        "created_at DESC) INCLUDE (id) WHERE NOT is_completed AND title <> 'a:b'"
    )
    assert index.sqlalchemy() == (
        "Index('tb_x', 'tags', text('(lower(title))'), text('created_at DESC'), unique=True, "
        "postgresql_using='gin', postgresql_ops={'tags': 'jsonb_path_ops'}, postgresql_include=['id'], "
        "postgresql_where=text(\"NOT is_completed AND title <> 'a\\\\:b'\"))"
    )
    assert index.alembic_create() == (
        "op.create_index('tb_x', 'tasks', ['tags', sa.text('(lower(title))'), sa.text('created_at DESC')], "
        "unique=True, postgresql_using='gin', postgresql_ops={'tags': 'jsonb_path_ops'}, "
        "postgresql_include=['id'], postgresql_where=sa.text(\"NOT is_completed AND title <> 'a\\\\:b'\"), "
        "postgresql_concurrently=True)"
    )
    assert index.alembic_drop() == "op.drop_index('tb_x', table_name='tasks', postgresql_concurrently=True)"
    guarded = parse_index("CREATE INDEX IF NOT EXISTS tb_y ON tasks (title, title text_pattern_ops)")
    assert guarded.sqlalchemy() == "Index('tb_y', 'title', text('title text_pattern_ops'))"
    assert guarded.alembic_create(concurrently=False) == (
        "op.create_index('tb_y', 'tasks', ['title', sa.text('title text_pattern_ops')], if_not_exists=True)"
    )
    assert guarded.alembic_drop(concurrently=False) == "op.drop_index('tb_y', table_name='tasks', if_exists=True)"


# ---------------------------------------------------------------- on the real server


@dataclass
class Canonical:
    """A database with the canonical schema and the two kinds of connection the forms need."""

    raw: psycopg.Connection
    alembic: Operations
    connection: sa.Connection
    baseline: list[str]

    def built(self, create: Callable[[], object], drop: Callable[[str], object] | None = None) -> tuple[str, str]:
        """(name, definition with the name left out) of the one index ``create`` builds; then dropped."""
        create()
        rows = self.raw.execute(
            "SELECT indexname, quote_ident(indexname), indexdef FROM pg_indexes "
            "WHERE schemaname = 'public' AND indexname <> ALL(%s)",
            (self.baseline,),
        ).fetchall()
        assert len(rows) == 1, rows
        name, quoted, definition = rows[0]
        (drop or self.drop)(name)
        assert self.raw.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname <> ALL(%s)", (self.baseline,)
        ).fetchone() == (0,)
        return name, definition.replace(f" {quoted} ON ", " ON ", 1)

    def drop(self, name: str) -> None:
        self.raw.execute(pgsql.SQL("DROP INDEX {}").format(pgsql.Identifier(name)))


@pytest.fixture(scope="module")
def canonical(make_target: Callable[[str], Target]) -> Iterator[Canonical]:
    target = make_target("tbsql")
    schema.recreate_schema(target)
    engine = create_engine(target.sqlalchemy_url())
    # CONCURRENTLY refuses to run inside a transaction block, whichever form issues it
    with schema.connect(target) as raw, engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        raw.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        baseline = [row[0] for row in raw.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")]
        yield Canonical(raw, Operations(MigrationContext.configure(conn)), conn, baseline)
    engine.dispose()


@pytest.mark.parametrize("statement", SHIPPED_STATEMENTS + UNUSUAL_INDEXES)
def test_every_form_builds_the_same_index(canonical: Canonical, statement: str) -> None:
    index = parse_index(statement)
    _, original = canonical.built(lambda: canonical.raw.execute(statement))

    name, ddl = canonical.built(lambda: canonical.raw.execute(index.ddl()))
    assert (name, ddl) == (index.name, original)
    name, ddl = canonical.built(lambda: canonical.raw.execute(index.ddl(concurrently=not index.concurrently)))
    assert (name, ddl) == (index.name, original)

    model_index = eval(index.sqlalchemy(), {"Index": Index, "text": text})
    model_index._set_parent(SQLModel.metadata.tables[index.table].to_metadata(MetaData()))
    # the connection compiles the DDL for its own driver, '%' escaped as psycopg's paramstyle needs
    name, model = canonical.built(lambda: canonical.connection.execute(CreateIndex(model_index)))
    assert (name, model) == (index.name, original)

    env = {"op": canonical.alembic, "sa": sa}
    name, migration = canonical.built(
        lambda: eval(index.alembic_create(), env), lambda _: eval(index.alembic_drop(), env)
    )
    assert (name, migration) == (index.name, original)


def test_volatility_query_names_the_volatile_functions(canonical: Canonical) -> None:
    names = [
        "pg_sleep",
        "set_config",
        "nextval",
        "random",
        "pg_terminate_backend",
        "clock_timestamp",
        "pg_catalog.random",
        "now",
        "lower",
        "to_tsvector",
        "websearch_to_tsquery",
        "jsonb_build_array",
        "pg_catalog.now",
        "coalesce",
        "public.random",
        "no_such_function",
    ]
    with psycopg.RawCursor(canonical.raw) as cursor:
        volatile = [row[0] for row in cursor.execute(VOLATILITY_SQL, (names,))]
    assert volatile == sorted(
        ["pg_sleep", "set_config", "nextval", "random", "pg_terminate_backend", "clock_timestamp", "pg_catalog.random"]
    )


def test_a_scenario_read_through_the_volatility_query(canonical: Canonical) -> None:
    query = parse_query("SELECT id, random() FROM tasks WHERE created_at < now() AND lower(title) = :t", write=False)
    with psycopg.RawCursor(canonical.raw) as cursor:
        assert [row[0] for row in cursor.execute(VOLATILITY_SQL, (sorted(query.functions),))] == ["random"]


def test_the_models_recorded_schema_reads_back_in_build_order() -> None:
    recorded = parse_schema(schema.model_ddl())
    assert [name for name, _ in recorded.tables] == ["users", "tasks", "conversations", "messages"]
    assert len(recorded.types) == 2 and all(t.startswith("CREATE TYPE") for t in recorded.types)
    assert {i.name for i in recorded.indexes} == {
        "ix_conversations_user_id",
        "ix_messages_conversation_id",
        "ix_messages_user_id",
        "ix_tasks_user_id",
    }
    assert recorded.functions == {"now", "btrim"}  # for the server to judge; gen_random_uuid would not be here
    assert "gen_random_uuid" not in parse_schema("CREATE TABLE x (id uuid DEFAULT gen_random_uuid());").functions


@pytest.mark.parametrize(
    "ddl, reason",
    [
        ("CREATE TABLE x (a int); DROP TABLE users;", "not DropStmt"),
        ("CREATE TABLE x (a int); /* */ CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1';", "CreateFunction"),
        ("CREATE TABLE x (a int); DO $$ BEGIN PERFORM 1; END $$;", "not DoStmt"),
        ("CREATE TABLE x (a int REFERENCES pg_authid (oid));", "'pg_authid' is not one of the tables (x)"),
        ("CREATE TABLE pg_catalog.x (a int);", "public schema"),
        ("CREATE TYPE pg_catalog.e AS ENUM ('a');", "public schema"),
        ("CREATE UNLOGGED TABLE x (a int);", "permanent"),
        ("CREATE TEMPORARY TABLE x (a int);", "permanent"),
        ("CREATE TABLE x (LIKE users);", "no LIKE"),
        ("CREATE TABLE x (a int) INHERITS (users);", "inherits"),
        ("CREATE TABLE x (a int) WITH (fillfactor = 10);", "storage options"),
        ("CREATE TABLE x (a int); CREATE INDEX ON users (id);", "'users' is not one of the tables (x)"),
        ("CREATE TABLE x (a int); CREATE TABLE y AS SELECT * FROM pg_authid;", "not CreateTableAsStmt"),
    ],
)
def test_a_recorded_schema_is_types_tables_and_indexes_only(ddl: str, reason: str) -> None:
    with pytest.raises(SQLRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_schema(ddl)
