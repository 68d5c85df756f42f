"""The SQL users write into scenario files, read by PostgreSQL's own parser (libpg_query, via pglast).

A variant's index statements and a scenario's query used to be checked by regular expressions, and
``CREATE INDEX x ON tasks (id); DROP TABLE users`` walked straight through them. Here every check is
made on the parse tree PostgreSQL itself would build from the text, so a second statement hiding after
a comment, inside what looks like a string or behind a dollar quote is seen for what it is.

``parse_index`` accepts exactly one ``CREATE INDEX`` on a canonical table and prints it back in three
forms (SQL, a SQLAlchemy ``Index`` for a model, an Alembic operation), all from the parse tree through
pglast's deparser. ``parse_query`` turns a scenario's ``:name`` binds into ``$n`` parameters using
PostgreSQL's own lexer, then checks that a read only reads and a write only writes the canonical tables.
``parse_schema`` reads the models' DDL a run recorded, before a later check builds it again.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from pglast import ast
from pglast.enums import OnCommitAction, SetOperation, SortByDir, SortByNulls
from pglast.parser import ParseError, Token, parse_sql, scan
from pglast.stream import RawStream, maybe_double_quote_name

from bench.models import TABLE_NAMES, UNIQUE_KEYS

MAX_SQL_BYTES = 64 * 1024
"""Longer SQL is refused before it reaches the parser: no scenario needs it, and a huge file must not
keep the lexer, the parser and the tree walk busy."""

_MAX_NAME_BYTES = 63  # NAMEDATALEN - 1: the parser truncates longer identifiers, names given included
_ABBREVIATED = 80
_BIND_START = frozenset(string.ascii_lowercase + "_")
_BIND_CHARS = _BIND_START | frozenset(string.digits)
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_MODIFYING = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)

VOLATILITY_SQL = """
SELECT DISTINCT f.name
FROM unnest($1::text[]) AS f(name)
JOIN pg_catalog.pg_proc p ON p.provolatile = 'v'
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE f.name = n.nspname || '.' || p.proname
   OR (f.name = p.proname AND n.nspname IN ('pg_catalog', 'public'))
ORDER BY 1
"""
"""Of the function names given as ``$1`` (a ``text[]``, e.g. ``Query.functions``; ``$1`` as asyncpg
writes it, psycopg takes it through a ``RawCursor``), those that are volatile on this server. A
qualified name matches its own schema; an unqualified one matches in pg_catalog or public, where the
default search path finds it. A name is reported when any overload is volatile: the statement's
argument types are not known here, and a false alarm is the safe side."""


class SQLRefused(ValueError):
    """SQL from a scenario file that taskbench will not run; the message is one line."""

    def __init__(self, reason: str, statement: str) -> None:
        self.reason = " ".join(reason.split())  # parser messages may span lines
        self.statement = statement
        super().__init__(f"{self.reason}: {_abbreviate(statement)}")


@dataclass(frozen=True)
class IndexKey:
    """One key of an index, its parts deparsed separately so each output form can place them."""

    sql: str  # as it stands in a key list: a (quoted if need be) column, or an expression in parentheses
    column: str | None  # the bare column name when the key is a plain column
    opclass: str | None  # e.g. "jsonb_path_ops", "gist_trgm_ops(siglen = 32)"
    descending: bool
    nulls: Literal["first", "last"] | None  # None: the default for the direction (last ASC, first DESC)

    def ddl(self) -> str:
        """The key as written in CREATE INDEX, with its operator class and order."""
        parts = [
            self.sql,
            self.opclass,
            "DESC" if self.descending else None,
            f"NULLS {self.nulls.upper()}" if self.nulls else None,
        ]
        return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class IndexDef:
    """A checked CREATE INDEX: what it builds, and how it is built (``concurrently``, ``if_not_exists``).

    ``storage`` holds the ``WITH (...)`` storage parameters, which are accepted: fillfactor,
    fastupdate or pages_per_range are exactly the knobs a variant may want to compare, and SQLAlchemy
    and Alembic carry them as ``postgresql_with``. ``definition`` is the canonical statement without
    name, schema, CONCURRENTLY or IF NOT EXISTS: the input of ``fingerprint`` and of ``ddl``.
    """

    name: str
    table: str
    unique: bool
    using: str
    keys: tuple[IndexKey, ...]
    include: tuple[str, ...]
    where: str | None
    concurrently: bool
    if_not_exists: bool
    storage: tuple[tuple[str, str | None], ...]
    definition: str

    def ddl(self, concurrently: bool | None = None) -> str:
        """The canonical CREATE INDEX (no trailing semicolon); ``concurrently`` None keeps the statement's."""
        node = _single(self.definition)
        assert isinstance(node, ast.IndexStmt)  # definition is parse_index's own deparsed IndexStmt
        node.idxname = self.name
        node.concurrent = self.concurrently if concurrently is None else concurrently
        node.if_not_exists = self.if_not_exists
        return _deparse(node, self.definition)

    def fingerprint(self) -> str:
        """A stable id of what the index builds, whatever it is called and however it is built."""
        return _digest(self.definition)

    def sqlalchemy(self) -> str:
        """Python source of a SQLAlchemy ``Index(...)`` for the model's ``__table_args__`` (needs
        ``Index`` and ``text`` imported from sqlalchemy)."""
        keys, kwargs = self._arguments("text")
        return f"Index({', '.join([repr(self.name), *keys, *kwargs])})"

    def alembic_create(self, concurrently: bool = True) -> str:
        """Python source of the Alembic operation creating the index (``op`` and ``sa`` as Alembic's
        migration template imports them). CONCURRENTLY, the default because a migration meets a live
        table, must run outside a transaction: in ``op.get_context().autocommit_block()``."""
        keys, kwargs = self._arguments("sa.text")
        columns = "[" + ", ".join(keys) + "]"
        kwargs += _build_options(concurrently, "if_not_exists", self.if_not_exists)
        return f"op.create_index({', '.join([repr(self.name), repr(self.table), columns, *kwargs])})"

    def alembic_drop(self, concurrently: bool = True) -> str:
        """Python source of the Alembic operation dropping the index (the downgrade of ``alembic_create``)."""
        kwargs = [f"table_name={self.table!r}", *_build_options(concurrently, "if_exists", self.if_not_exists)]
        return f"op.drop_index({', '.join([repr(self.name), *kwargs])})"

    def _arguments(self, text: str) -> tuple[list[str], list[str]]:
        """Source of the key list and of the keyword arguments SQLAlchemy's ``Index`` and Alembic's
        ``create_index`` share; ``text`` is how the caller's code spells ``sqlalchemy.text``."""
        plain = [key.column for key in self.keys if key.column is not None]
        keys: list[str] = []
        ops: dict[str, str] = {}
        for key in self.keys:
            # postgresql_ops maps a column name to one opclass, so a column listed twice with an
            # opclass, like any key with an order or an expression, is written out in text()
            if (
                key.column is not None
                and not key.descending
                and key.nulls is None
                and (key.opclass is None or plain.count(key.column) == 1)
            ):
                keys.append(repr(key.column))
                if key.opclass is not None:
                    ops[key.column] = key.opclass
            else:
                keys.append(f"{text}({_text_literal(key.ddl())!r})")
        kwargs = ["unique=True"] if self.unique else []
        if self.using != "btree":
            kwargs.append(f"postgresql_using={self.using!r}")
        if ops:
            kwargs.append(f"postgresql_ops={ops!r}")
        if self.include:
            kwargs.append(f"postgresql_include={list(self.include)!r}")
        if self.storage:
            kwargs.append(f"postgresql_with={dict(self.storage)!r}")
        if self.where is not None:
            kwargs.append(f"postgresql_where={text}({_text_literal(self.where)!r})")
        return keys, kwargs


@dataclass(frozen=True)
class Query:
    """A checked scenario statement, ready to prepare: ``sql`` takes ``params`` as $1, $2, ..."""

    sql: str
    params: tuple[str, ...]
    # every function called, spelled as PostgreSQL reads it (unquoted names folded to lower case,
    # qualified only where written so); the caller checks them with VOLATILITY_SQL
    functions: frozenset[str]
    tables: frozenset[str]  # the canonical tables it references
    kind: Literal["read", "write"]
    # the result's row order is part of the answer (a top-level ORDER BY): compared in order
    ordered: bool = False
    # why a read's LIMIT or OFFSET may return other rows for the same parameters (its ORDER BY leaves
    # ties); None when its rows are determined. The catalogue refuses such a scenario (files.py)
    ties: str | None = None


def parse_index(statement: str, tables: Collection[str] = TABLE_NAMES) -> IndexDef:
    """Check one variant statement: a single CREATE INDEX on one of ``tables`` in the public schema."""
    node = _single(statement)
    if not isinstance(node, ast.IndexStmt):
        raise SQLRefused(f"only CREATE INDEX is allowed here, not {type(node).__name__}", statement)
    relation = node.relation
    assert relation is not None and relation.relname is not None  # the grammar requires ON table
    if relation.catalogname is not None or relation.schemaname not in (None, "public"):
        raise SQLRefused("indexes go on tables of the public schema", statement)
    if relation.relname not in tables:
        raise SQLRefused(f"{relation.relname!r} is not one of the tables ({', '.join(tables)})", statement)
    if not relation.inh:
        raise SQLRefused("ON ONLY is for partitioned tables, which these are not", statement)
    if node.tableSpace is not None:
        raise SQLRefused("TABLESPACE is not for a benchmark variant to choose", statement)
    if node.nulls_not_distinct:
        # pglast 8.8 prints NULLS NOT DISTINCT after WHERE/WITH, where PostgreSQL rejects it
        raise SQLRefused("NULLS NOT DISTINCT is not supported", statement)
    include = tuple(_included_column(elem, statement) for elem in node.indexIncludingParams or ())
    keys = tuple(_index_key(elem, statement) for elem in node.indexParams or ())
    storage = tuple(
        (
            ".".join(filter(None, (option.defnamespace, option.defname))),
            None if option.arg is None else _deparse(option.arg, statement),
        )
        for option in node.options or ()
    )
    where = None if node.whereClause is None else _deparse(node.whereClause, statement)
    name, concurrently, if_not_exists = node.idxname, bool(node.concurrent), bool(node.if_not_exists)
    # what remains distinguishes indexes by what they build: _index_key already dropped redundant orders
    node.idxname = relation.schemaname = None
    node.concurrent = node.if_not_exists = False
    definition = _deparse(node, statement)
    if name is None:  # PostgreSQL would pick a name by what exists already; this one is reproducible
        prefix = f"tb_{relation.relname}".encode()[: _MAX_NAME_BYTES - 11].decode(errors="ignore")
        name = f"{prefix}_{_digest(definition)[:10]}"
    return IndexDef(
        name=name,
        table=relation.relname,
        unique=bool(node.unique),
        using=node.accessMethod or "btree",
        keys=keys,
        include=include,
        where=where,
        concurrently=concurrently,
        if_not_exists=if_not_exists,
        storage=storage,
        definition=definition,
    )


def parse_query(
    sql: str,
    *,
    write: bool,
    tables: Collection[str] = TABLE_NAMES,
    keys: Mapping[str, Collection[tuple[str, ...]]] = UNIQUE_KEYS,
) -> Query:
    """Check a scenario's SQL: one SELECT that only reads (``write`` False), or one INSERT, UPDATE,
    DELETE or MERGE (``write`` True), touching no table but ``tables`` (and its own CTEs). ``keys``
    are each table's unique keys, for ``Query.ties``."""
    positional, params = _positional(sql)
    return _checked(positional, params, sql, write, tables, keys)


def parse_compiled(
    sql: str,
    binds: int,
    *,
    write: bool,
    tables: Collection[str] = TABLE_NAMES,
    keys: Mapping[str, Collection[tuple[str, ...]]] = UNIQUE_KEYS,
) -> Query:
    """Check a statement an ORM scenario compiled (``bench.catalogue.orm``), whose binds are already
    the driver's ``$1 .. $binds``: the same rules as ``parse_query``'s for a file's SQL."""
    _check_size(sql)
    try:
        tokens = scan(sql)
    except ParseError as exc:
        raise SQLRefused(f"not valid SQL: {exc}", sql) from None
    numbers = {sql[token.start + 1 : token.end + 1] for token in tokens if token.name == "PARAM"}
    if numbers != {str(n) for n in range(1, binds + 1)}:
        raise SQLRefused(f"its parameters are not $1 to ${binds}", sql)
    return _checked(sql, tuple(f"${n}" for n in range(1, binds + 1)), sql, write, tables, keys)


def _checked(
    positional: str,
    params: tuple[str, ...],
    sql: str,
    write: bool,
    tables: Collection[str],
    keys: Mapping[str, Collection[tuple[str, ...]]],
) -> Query:
    node = _single(positional, sql)
    if write and not isinstance(node, _MODIFYING):
        raise SQLRefused(f"a write scenario is one INSERT, UPDATE, DELETE or MERGE, not {type(node).__name__}", sql)
    if not write and not isinstance(node, ast.SelectStmt):
        raise SQLRefused(f"a read scenario is one SELECT, not {type(node).__name__}", sql)
    walk = _Walk(sql, write, tables)
    walk.run(node)
    return Query(
        sql=positional,
        params=params,
        functions=frozenset(walk.functions),
        tables=frozenset(walk.tables),
        kind="write" if write else "read",
        ordered=isinstance(node, ast.SelectStmt) and bool(node.sortClause),
        ties=_ties(node, keys) if isinstance(node, ast.SelectStmt) else None,
    )


def _ties(node: ast.SelectStmt, keys: Mapping[str, Collection[tuple[str, ...]]]) -> str | None:
    """Why the statement's own LIMIT/OFFSET may keep other rows from one execution to the next, or
    None. Rows its ORDER BY leaves tied come in whatever order the plan meets them, so another index,
    or the same plan another day, keeps others: the order is total only when it includes a unique key
    of every table in FROM (a unique key of each joined row makes the joined row unique) or, for a
    GROUP BY, every grouped column. A LIMIT inside a subquery is not judged."""
    unlimited = node.limitCount is None or (isinstance(node.limitCount, ast.A_Const) and node.limitCount.isnull)
    if unlimited and node.limitOffset is None:
        return None
    if node.op != SetOperation.SETOP_NONE:
        return "a LIMIT over UNION, INTERSECT or EXCEPT: its order cannot be shown to leave no ties"
    aliases = {
        target.name: target.val
        for target in node.targetList or ()
        if isinstance(target, ast.ResTarget) and target.name and isinstance(target.val, ast.ColumnRef)
    }
    ordered = set()  # (qualifier or None, column) of each plain column the ORDER BY names
    for sort in node.sortClause or ():
        column = _column(sort.node)
        if column and column[0] is None and column[1] in aliases:  # ORDER BY an output name
            column = _column(aliases[column[1]])
        if column:
            ordered.add(column)

    def covered(qualifier: str | None, key: Collection[str]) -> bool:
        # an unqualified name is the one column of that name in FROM (the server refuses it otherwise)
        return all((None, c) in ordered or (qualifier is not None and (qualifier, c) in ordered) for c in key)

    if node.groupClause:
        grouped = [_column(item) for item in node.groupClause]
        if all(c is not None and (c in ordered or (None, c[1]) in ordered) for c in grouped):
            return None
        return "a LIMIT after GROUP BY needs every grouped column (plain columns) in its ORDER BY, or groups tie"
    tables = _from_tables(node)
    if tables is None:
        return "a LIMIT over a subquery, function or CTE: taskbench knows the unique keys of tables only"
    for reference, table in tables:
        if not any(covered(reference, key) for key in keys.get(table, ())):
            wanted = " or ".join(", ".join(key) for key in keys.get(table, ())) or "a unique key"
            return f"its LIMIT keeps rows its ORDER BY leaves tied: end the ORDER BY with {wanted} of {table}"
    return None


def _column(node: ast.Node | None) -> tuple[str | None, str] | None:
    """``(qualifier, name)`` of a plain column reference (``name`` or ``alias.name``), else None."""
    if not isinstance(node, ast.ColumnRef) or not all(isinstance(f, ast.String) for f in node.fields or ()):
        return None
    names = [f.sval for f in node.fields or ()]
    if len(names) == 1:
        return None, names[0]
    return (names[-2], names[-1]) if len(names) == 2 else None


def _from_tables(node: ast.SelectStmt) -> list[tuple[str, str]] | None:
    """(name it is referred to by, table) of each canonical table in FROM, joins included; None when
    FROM holds anything else (a subquery, a function, one of the statement's CTEs)."""
    ctes = {cte.ctename for cte in node.withClause.ctes or ()} if node.withClause else set()
    found: list[tuple[str, str]] = []
    pending = list(node.fromClause or ())
    while pending:
        item = pending.pop()
        if isinstance(item, ast.JoinExpr):
            pending += [item.larg, item.rarg]
        elif isinstance(item, ast.RangeVar) and item.relname and not (item.schemaname is None and item.relname in ctes):
            alias = item.alias.aliasname if item.alias else None
            found.append((alias or item.relname, item.relname))
        else:
            return None
    return found


@dataclass(frozen=True)
class Schema:
    """A run's recorded schema DDL, checked, in the order to build it: its enum types, its tables
    (as written: a table comes after those it references), then its indexes."""

    types: tuple[str, ...]
    tables: tuple[tuple[str, str], ...]  # (name, CREATE TABLE), each statement's canonical deparse
    indexes: tuple[IndexDef, ...]
    # the functions its defaults, checks and generated columns call, but the value generators a
    # server default may use (SCHEMA_GENERATORS): the caller refuses volatile ones with VOLATILITY_SQL
    functions: frozenset[str]


SCHEMA_GENERATORS = frozenset({"gen_random_uuid", "uuidv4", "uuidv7", "clock_timestamp", "random", "nextval"})
"""Volatile functions a model's server default may call to make a value (``server_default=...``)."""
WRITE_GENERATORS = SCHEMA_GENERATORS | {"timeofday"}
"""Volatile functions a write scenario may call: the values a row may take, nothing else (``now()``
is stable, not volatile, and needs no leave). An advisory lock, a file, a notification or another
session are state the rolled-back transaction would not take back."""


def parse_schema(ddl: str) -> Schema:
    """Check the DDL a run recorded of its models (``Results.schema_ddl``), which a check builds again
    on a scratch database when the models have changed since: enum types and tables of the public
    schema, tables referencing only each other, and indexes on them. Nothing else is accepted; each
    statement is executed as its canonical deparse, so a results file cannot smuggle SQL in either."""
    _check_size(ddl)
    try:
        nodes = [statement.stmt for statement in parse_sql(ddl)]
    except ParseError as exc:
        raise SQLRefused(f"not valid SQL: {exc}", ddl) from None
    created = [n.relation.relname for n in nodes if isinstance(n, ast.CreateStmt) and n.relation and n.relation.relname]
    types: list[str] = []
    tables: list[tuple[str, str]] = []
    indexes: list[IndexDef] = []
    functions: set[str] = set()
    for node in nodes:
        assert node is not None  # libpg_query drops empty statements
        text = _deparse(node, ddl)
        if isinstance(node, ast.CreateEnumStmt):
            names = [part.sval for part in node.typeName or ()]
            if len(names) != 1 and names[:-1] != ["public"]:
                raise SQLRefused("types go in the public schema", text)
            types.append(text)
        elif isinstance(node, ast.CreateStmt):
            _plain_table(node, text)
            walk = _Walk(text, write=False, tables=created)
            walk.run(node)
            functions |= walk.functions
            assert node.relation is not None and node.relation.relname is not None  # the grammar names it
            tables.append((node.relation.relname, text))
        elif isinstance(node, ast.IndexStmt):
            indexes.append(parse_index(text, created))
        else:
            raise SQLRefused(
                f"a recorded schema is CREATE TYPE ... AS ENUM, CREATE TABLE and CREATE INDEX only, not "
                f"{type(node).__name__}",
                text,
            )
    return Schema(tuple(types), tuple(tables), tuple(indexes), frozenset(functions - SCHEMA_GENERATORS))


def _plain_table(node: ast.CreateStmt, statement: str) -> None:
    """A permanent table of the public schema made of columns and constraints: no inheritance,
    partitions, typed or LIKE tables, table space, access method or storage options."""
    relation = node.relation
    assert relation is not None  # the grammar requires a name
    if relation.catalogname is not None or relation.schemaname not in (None, "public"):
        raise SQLRefused("tables go in the public schema", statement)
    if relation.relpersistence != "p" or node.oncommit not in (None, OnCommitAction.ONCOMMIT_NOOP):
        raise SQLRefused("a model's table is permanent (not TEMPORARY or UNLOGGED)", statement)
    if node.inhRelations or node.partbound or node.partspec or node.ofTypename:
        raise SQLRefused("a model's table inherits from nothing and is not partitioned or typed", statement)
    if node.tablespacename or node.accessMethod or node.options:
        raise SQLRefused("table space, access method and storage options are not the models' to choose", statement)
    if any(not isinstance(element, (ast.ColumnDef, ast.Constraint)) for element in node.tableElts or ()):
        raise SQLRefused("a model's table is columns and constraints (no LIKE)", statement)


class _Walk:
    """One pass over a scenario's parse tree, collecting the tables and functions it uses and refusing
    what its kind may not do (``walk_tree``)."""

    def __init__(self, sql: str, write: bool, tables: Collection[str]) -> None:
        self.sql = sql
        self.write = write
        self.allowed = tables
        self.tables: set[str] = set()
        self.functions: set[str] = set()

    def run(self, root: ast.Node) -> None:
        no_ctes: frozenset[str] = frozenset()
        walk_tree(root, no_ctes, self._visit)

    def _visit(self, node: ast.Node, ctes: frozenset[str]) -> Iterator[tuple[object, frozenset[str]]]:
        """Check one node; yield its children, each with the CTE names a table reference there may mean."""
        skip = set()
        if isinstance(node, ast.RangeVar):
            self._table(node, ctes)
        elif isinstance(node, ast.FuncCall):
            self.functions.add(".".join(part.sval for part in node.funcname or ()))
        elif isinstance(node, ast.SelectStmt):
            if node.intoClause is not None:
                raise SQLRefused("SELECT INTO creates a table", self.sql)
            if node.lockingClause and not self.write:
                raise SQLRefused("FOR UPDATE/SHARE locks rows, which a read scenario may not", self.sql)
            skip.add("lockingClause")  # FOR UPDATE OF names FROM items, not tables
        if isinstance(node, _MODIFYING):
            if not self.write:
                raise SQLRefused(f"a read scenario may not modify data ({type(node).__name__})", self.sql)
            # PostgreSQL never takes a modified table for a CTE of the same name
            assert node.relation is not None  # the grammar requires a target table
            self._table(node.relation, frozenset())
            skip.add("relation")
        if isinstance(node, (ast.SelectStmt, *_MODIFYING)) and node.withClause is not None:
            skip.add("withClause")
            names = [cte.ctename for cte in node.withClause.ctes or ()]
            for position, cte in enumerate(node.withClause.ctes or ()):
                # without RECURSIVE a CTE sees only the ones before it: a later name is a table
                visible = names if node.withClause.recursive else names[:position]
                yield cte.ctequery, ctes | frozenset(visible)
            ctes = ctes | frozenset(names)
        for attribute in node:
            if attribute not in skip:
                yield getattr(node, attribute), ctes

    def _table(self, relation: ast.RangeVar, ctes: frozenset[str]) -> None:
        name = relation.relname
        assert name is not None  # the grammar always names the relation
        qualified = relation.catalogname is not None or relation.schemaname is not None
        if not qualified and name in ctes:
            return
        if relation.catalogname is not None or relation.schemaname not in (None, "public") or name not in self.allowed:
            shown = ".".join(filter(None, (relation.catalogname, relation.schemaname, name)))
            raise SQLRefused(f"{shown!r} is not one of the tables ({', '.join(self.allowed)})", self.sql)
        self.tables.add(name)


State = TypeVar("State")


def walk_tree(root: ast.Node, state: State, visit: Callable[[ast.Node, State], Iterable[tuple[object, State]]]) -> None:
    """Every node under ``root`` with the state its parent handed down: ``visit`` checks one node and
    yields its children, each with its state. A stack of its own: a long chain of operators nests
    deeper than Python's recursion limit long before MAX_SQL_BYTES."""
    pending: list[tuple[object, State]] = [(root, state)]
    while pending:
        value, below = pending.pop()
        if isinstance(value, tuple):
            pending.extend((item, below) for item in value)
        elif isinstance(value, ast.Node):
            pending.extend(visit(value, below))


def _positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """The SQL with its ``:name`` binds as $1, $2, ... (in order of first appearance) and the names.

    PostgreSQL's lexer finds them: a ':' token directly followed by a name. A '::' cast is one token
    of its own, and a ':' inside a string, a quoted identifier or a comment is no token at all.
    pglast's token offsets count characters of the str (end inclusive)."""
    _check_size(sql)
    try:
        tokens = scan(sql)
    except ParseError as exc:
        raise SQLRefused(f"not valid SQL: {exc}", sql) from None
    significant = [token for token in tokens if token.name not in _COMMENTS and token.name != "ASCII_59"]
    if not significant:
        raise SQLRefused("no statement", sql)
    end = significant[-1].end + 1  # only semicolons and comments follow: dropped with the trailing ';'
    params: list[str] = []
    pieces: list[str] = []
    copied = 0
    for position, token in enumerate(tokens):
        if token.start >= end:
            break
        if token.name == "PARAM":
            raise SQLRefused("use :name binds, not $n", sql)
        if token.name != "ASCII_58":
            continue
        name, after = _bind(sql, token, tokens[position + 1] if position + 1 < len(tokens) else None)
        if name not in params:
            params.append(name)
        before = sql[token.start - 1] if token.start else " "
        # "LIMIT:n" must not become the identifier "LIMIT$1"
        space = " " if before.isalnum() or before in "_$" else ""
        pieces += [sql[copied : token.start], space, f"${params.index(name) + 1}"]
        copied = after
    pieces.append(sql[copied:end])
    return "".join(pieces).strip(), tuple(params)


def _bind(sql: str, colon: Token, following: Token | None) -> tuple[str, int]:
    """The name of the bind ``colon`` starts, and where the bind ends."""
    if (
        following is None
        or following.start != colon.end + 1
        or (following.name != "IDENT" and following.kind == "NO_KEYWORD")
    ):
        raise SQLRefused("a ':' that starts no :name bind", sql)
    name = sql[following.start : following.end + 1]
    if name[0] not in _BIND_START or not set(name) <= _BIND_CHARS:
        raise SQLRefused(f"bind names are lower_snake_case, not :{name}", sql)
    return name, following.end + 1


def _single(sql: str, shown: str | None = None) -> ast.Node:
    """The one statement in ``sql``; refusals quote ``shown`` (the user's text) when given."""
    shown = sql if shown is None else shown
    _check_size(sql)
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        raise SQLRefused(f"not valid SQL: {exc}", shown) from None
    if len(statements) != 1:
        raise SQLRefused("no statement" if not statements else "more than one statement", shown)
    node = statements[0].stmt
    assert node is not None  # libpg_query drops empty statements instead
    return node


def _check_size(sql: str) -> None:
    if len(sql.encode()) > MAX_SQL_BYTES:
        raise SQLRefused(f"longer than {MAX_SQL_BYTES // 1024} KiB", sql)


def _index_key(elem: ast.IndexElem, statement: str) -> IndexKey:
    """The key's parts; ``elem`` is rewritten with an order PostgreSQL takes by default left out, so
    that ``(a ASC NULLS LAST)`` and ``(a)`` are one definition."""
    descending = elem.ordering == SortByDir.SORTBY_DESC
    nulls: Literal["first", "last"] | None = None
    if elem.nulls_ordering == SortByNulls.SORTBY_NULLS_FIRST and not descending:
        nulls = "first"
    elif elem.nulls_ordering == SortByNulls.SORTBY_NULLS_LAST and descending:
        nulls = "last"
    elem.ordering = SortByDir.SORTBY_DESC if descending else SortByDir.SORTBY_DEFAULT
    elem.nulls_ordering = {
        None: SortByNulls.SORTBY_NULLS_DEFAULT,
        "first": SortByNulls.SORTBY_NULLS_FIRST,
        "last": SortByNulls.SORTBY_NULLS_LAST,
    }[nulls]
    opclass = None
    if elem.opclass:
        opclass = ".".join(maybe_double_quote_name(part.sval) for part in elem.opclass)
        if elem.opclassopts:
            opclass += f"({', '.join(_deparse(option, statement) for option in elem.opclassopts)})"
    bare = ast.IndexElem(
        name=elem.name,
        expr=elem.expr,
        collation=elem.collation,
        ordering=SortByDir.SORTBY_DEFAULT,
        nulls_ordering=SortByNulls.SORTBY_NULLS_DEFAULT,
    )
    plain = elem.name is not None and not elem.collation
    return IndexKey(
        sql=_deparse(bare, statement),
        column=elem.name if plain else None,
        opclass=opclass,
        descending=descending,
        nulls=nulls,
    )


def _included_column(elem: ast.IndexElem, statement: str) -> str:
    if (
        elem.name is None
        or elem.collation
        or elem.opclass
        or elem.ordering != SortByDir.SORTBY_DEFAULT
        or elem.nulls_ordering != SortByNulls.SORTBY_NULLS_DEFAULT
    ):
        raise SQLRefused("INCLUDE takes plain columns only", statement)
    return elem.name


def _deparse(node: ast.Node, statement: str) -> str:
    try:
        return RawStream()(node)
    except RecursionError:  # the printer recurses once per level of nesting
        raise SQLRefused("nested too deeply", statement) from None


def _digest(definition: str) -> str:
    return hashlib.sha256(definition.encode()).hexdigest()


def _text_literal(sql: str) -> str:
    """``sql`` as ``text()`` must receive it: text() takes ':word' for a bind parameter, so a lone ':'
    (in a string literal, say) is escaped; a '::' cast it already leaves alone."""
    return "".join(
        "\\:" if char == ":" and ":" not in (sql[i - 1 : i], sql[i + 1 : i + 2]) else char for i, char in enumerate(sql)
    )


def _build_options(concurrently: bool, if_flag: str, guarded: bool) -> list[str]:
    return (["postgresql_concurrently=True"] if concurrently else []) + ([f"{if_flag}=True"] if guarded else [])


def _abbreviate(statement: str) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= _ABBREVIATED else flat[: _ABBREVIATED - 3] + "..."
