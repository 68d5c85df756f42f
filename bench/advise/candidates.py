"""Index candidates read from each scenario's parse tree (PostgreSQL's own parser, through pglast),
plus every index of the catalogue's variants, deduplicated by what they build.

Per table a statement reads or writes, the tree says what an index could do for it (``Access``):

- equality columns (``col = value``, ``col IN (...)``) go first in a B-tree, in the order written;
- then the sort (``ORDER BY``, with its direction and NULLS order) when its first column is also the
  range column or there is no range; else the range column, and the sort as a second form;
- constant filters (no parameter, no function call: ``NOT is_completed``, ``deleted_at IS NULL``)
  become the partial predicate of a second form;
- the columns the statement reads beyond the keys become ``INCLUDE`` forms, so the scan can be
  index-only — only when every such column is narrow: one wide column (text, jsonb) means the heap
  is read anyway, and a wide INCLUDE only makes the index larger;
- ``@>`` on jsonb gets GIN with jsonb_path_ops (smaller, and it answers containment), ``?``, ``?|``
  and ``?&`` get GIN with the default jsonb_ops (jsonb_path_ops has no key-exists operators);
- ``@@`` gets GIN on the tsvector side exactly as the query writes it (an expression index is only
  used when the query's expression matches it);
- ``LIKE``/``ILIKE`` whose pattern may start with a wildcard gets a trigram GIN (pg_trgm).

A value is anything that refers to no column of the table: a parameter, a constant, a cast of one,
or a column of another table (a join). ``col IN (SELECT ...)`` and a correlated ``EXISTS (SELECT ...
WHERE inner.col = col)`` fix ``col`` by equality too (each probe of the semi-join is one). Statements
whose equality columns include the whole primary key get no B-tree: the primary key already finds
the row.

Under row-level security (``advise --policy``) a statement on a table is filtered by the table's
policies as if it wrote their USING expressions itself: ``policy_keys`` reads each policy's USING
the same way (``_access`` on ``SELECT FROM <table> WHERE <using>``), and ``accesses`` adds its
equality columns to every access of that table. So ``recent_tasks_rls``, which has no user filter of
its own, asks for ``tasks (user_id, created_at DESC, id DESC)`` under ``own_tasks``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, SortByDir, SortByNulls, SubLinkType
from pglast.parser import parse_sql
from pglast.stream import RawStream, maybe_double_quote_name
from sqlalchemy import Column, Table, UniqueConstraint
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import JSON, String, Text

from bench.catalogue.files import Catalogue, Scenario
from bench.catalogue.policies import PolicyDef
from bench.catalogue.sql import IndexDef, parse_index
from bench.models import TABLES

NARROW_CHARS = 200
"""The widest varchar an INCLUDE takes: a B-tree entry must fit a third of a page (~2,700 bytes)."""
_MAX_NAME = 63  # NAMEDATALEN - 1
_RANGE_OPS = frozenset({"<", "<=", ">", ">="})
_BETWEEN = frozenset(
    {
        A_Expr_Kind.AEXPR_BETWEEN,
        A_Expr_Kind.AEXPR_NOT_BETWEEN,
        A_Expr_Kind.AEXPR_BETWEEN_SYM,
        A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
    }
)
_KEY_EXISTS = frozenset({"?", "?|", "?&"})
_WILDCARDS = ("%", "_")
_STATEMENTS = (ast.SelectStmt, ast.UpdateStmt, ast.DeleteStmt)


def model_tables() -> dict[str, Table]:
    """The canonical tables as the SQLModel models define them: columns, types, keys, indexes."""
    return {str(model.__tablename__): model.__table__ for model in TABLES}  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SortKey:
    column: str
    descending: bool = False
    nulls: Literal["first", "last"] | None = None  # only where it is not the direction's default

    def sql(self) -> str:
        parts = [
            maybe_double_quote_name(self.column),
            "DESC" if self.descending else None,
            f"NULLS {self.nulls.upper()}" if self.nulls else None,
        ]
        return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class Need:
    """A non-B-tree index a predicate asks for: the key as CREATE INDEX writes it, its method and
    the extension that brings its operator class."""

    key: str
    using: str = "gin"
    extension: str | None = None


@dataclass
class Access:
    """What one statement (or sub-select) of a scenario asks of one table."""

    scenario: str
    table: str
    select: bool  # a SELECT: index-only scans (INCLUDE) apply
    equality: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    order: list[SortKey] = field(default_factory=list)
    constants: dict[str, set[str]] = field(default_factory=dict)  # conjunct as deparsed -> its columns
    read: set[str] = field(default_factory=set)  # columns needed beyond the constant conjuncts
    needs: list[Need] = field(default_factory=list)
    primary_key: set[str] = field(default_factory=set)

    def needed(self, implied: set[str]) -> set[str]:
        """The columns a scan must return or test, when an index predicate implies the constant
        conjuncts ``implied`` (PostgreSQL then drops them from the scan's filter)."""
        return self.read.union(*(columns for sql, columns in self.constants.items() if sql not in implied))


@dataclass(frozen=True)
class Candidate:
    index: IndexDef
    extensions: tuple[str, ...]
    serves: dict[str, int]  # scenario -> how much of its access the index delivers (see ``score``)
    sources: tuple[str, ...]  # where it came from: "query <scenario>" or "variant <name>"

    @property
    def fingerprint(self) -> str:
        return self.index.fingerprint()

    @property
    def name(self) -> str:
        return self.index.name

    @property
    def table(self) -> str:
        return self.index.table

    @property
    def btree(self) -> bool:
        return self.index.using == "btree"


# --- reading the parse tree -------------------------------------------------------------------


def _children(node: ast.Node) -> Iterator[object]:
    for attribute in node:
        value = getattr(node, attribute)
        if isinstance(value, tuple):
            yield from value
        else:
            yield value


def _nodes(root: object, into_selects: bool = True) -> Iterator[ast.Node]:
    """Every node under ``root`` (itself included), iteratively (deep operator chains); without
    ``into_selects`` a nested SELECT is not entered: its columns belong to its own scope."""
    pending: list[object] = [root]
    while pending:
        value = pending.pop()
        if not isinstance(value, ast.Node):
            continue
        if value is not root and not into_selects and isinstance(value, ast.SelectStmt):
            continue
        yield value
        pending.extend(_children(value))


def _deparse(node: object) -> str:
    assert isinstance(node, ast.Node)
    return str(RawStream()(node))


def _unqualified(node: ast.Node) -> str:
    """``node`` deparsed with its column references bare (``t.is_completed`` -> ``is_completed``),
    as an index predicate must write them."""
    bare = copy.deepcopy(node)
    for ref in _nodes(bare, into_selects=False):
        if isinstance(ref, ast.ColumnRef) and ref.fields:
            ref.fields = ref.fields[-1:]
    return _deparse(bare)


def _conjuncts(where: object) -> list[ast.Node]:
    if where is None:
        return []
    if isinstance(where, ast.BoolExpr) and where.boolop == BoolExprType.AND_EXPR:
        return [part for arg in where.args or () for part in _conjuncts(arg)]
    return [where] if isinstance(where, ast.Node) else []


def _operator(expr: ast.A_Expr) -> str:
    return expr.name[-1].sval if expr.name else ""


class _Scope:
    """The canonical tables one statement's FROM (or UPDATE/DELETE target) brings into scope."""

    def __init__(self, stmt: ast.Node, tables: dict[str, Table]) -> None:
        self.tables = tables
        self.aliases: dict[str, str] = {}
        relations: list[object] = []
        if isinstance(stmt, (ast.UpdateStmt, ast.DeleteStmt)):
            relations.append(stmt.relation)
        relations.extend(getattr(stmt, "fromClause", None) or ())
        relations.extend(getattr(stmt, "usingClause", None) or ())
        while relations:
            item = relations.pop()
            if isinstance(item, ast.JoinExpr):
                relations += [item.larg, item.rarg]
            elif isinstance(item, ast.RangeVar) and item.relname in tables and item.schemaname in (None, "public"):
                self.aliases[str(item.alias.aliasname if item.alias else item.relname)] = str(item.relname)

    def column(self, node: object, table: str) -> str | None:
        """The column ``node`` names when it is a plain column reference to ``table``."""
        if not isinstance(node, ast.ColumnRef):
            return None
        fields = node.fields or ()
        if not all(isinstance(f, ast.String) for f in fields):
            return None  # t.* and the like
        names = [f.sval for f in fields]
        if len(names) == 2 and self.aliases.get(names[0]) == table:
            return names[1] if names[1] in self.tables[table].columns else None
        if len(names) == 1:
            owners = [t for t in set(self.aliases.values()) if names[0] in self.tables[t].columns]
            return names[0] if owners == [table] else None
        return None

    def resolves(self, node: object) -> bool:
        """Whether ``node`` is a column of one of this scope's tables (not of an outer query's)."""
        return any(self.column(node, table) is not None for table in set(self.aliases.values()))

    def only(self, node: object, table: str) -> bool:
        """Whether every column ``node`` refers to is one of ``table``'s (no join condition)."""
        refs = [n for n in _nodes(node, into_selects=False) if isinstance(n, ast.ColumnRef)]
        return all(self.column(ref, table) is not None for ref in refs)

    def columns_in(self, node: object, table: str) -> set[str]:
        """The columns of ``table`` that ``node`` refers to, nested SELECTs aside."""
        if node is None:
            return set()
        return {c for n in _nodes(node, into_selects=False) if (c := self.column(n, table)) is not None}


def _has(node: object, kinds: tuple[type, ...]) -> bool:
    return any(isinstance(n, kinds) for n in _nodes(node, into_selects=False))


def _leading_wildcard(pattern: object) -> bool:
    """Whether a LIKE pattern may start with a wildcard: its leftmost piece is not a constant that
    starts with a literal character (a parameter may hold anything)."""
    while True:
        if isinstance(pattern, ast.A_Expr) and _operator(pattern) == "||" and pattern.lexpr is not None:
            pattern = pattern.lexpr
        elif isinstance(pattern, ast.TypeCast) and pattern.arg is not None:
            pattern = pattern.arg
        else:
            break
    if isinstance(pattern, ast.A_Const) and isinstance(pattern.val, ast.String):
        return str(pattern.val.sval).startswith(_WILDCARDS)
    return True


def _linked(conjunct: object, scope: _Scope, table: str) -> list[str]:
    """The column of ``table`` a sub-select conjunct fixes by equality: ``col IN (SELECT ...)`` (or
    ``= ANY``), or ``EXISTS (SELECT ... WHERE inner.x = col ...)`` correlated on it."""
    if not isinstance(conjunct, ast.SubLink) or not isinstance(conjunct.subselect, ast.SelectStmt):
        return []
    if conjunct.subLinkType == SubLinkType.ANY_SUBLINK:
        operator = [name.sval for name in conjunct.operName or ()]
        column = scope.column(conjunct.testexpr, table)
        return [column] if column and operator in ([], ["="]) else []
    if conjunct.subLinkType != SubLinkType.EXISTS_SUBLINK:
        return []
    inner = _Scope(conjunct.subselect, scope.tables)
    found = []
    for part in _conjuncts(conjunct.subselect.whereClause):
        if isinstance(part, ast.A_Expr) and part.kind == A_Expr_Kind.AEXPR_OP and _operator(part) == "=":
            for mine, theirs in ((part.lexpr, part.rexpr), (part.rexpr, part.lexpr)):
                # a name the sub-select's own tables have is theirs (SQL binds it innermost first)
                column = None if inner.resolves(mine) else scope.column(mine, table)
                if column and inner.resolves(theirs):
                    found.append(column)
    return found


def _access(scenario: str, stmt: ast.SelectStmt | ast.UpdateStmt | ast.DeleteStmt, scope: _Scope, table: str) -> Access:
    columns = scope.tables[table].columns
    access = Access(
        scenario,
        table,
        select=isinstance(stmt, ast.SelectStmt),
        primary_key={c.name for c in scope.tables[table].primary_key.columns},
    )

    def value(node: object) -> bool:
        if isinstance(node, tuple):  # an IN list
            return bool(node) and all(value(item) for item in node)
        return isinstance(node, ast.Node) and not scope.columns_in(node, table)

    joins = [n for item in getattr(stmt, "fromClause", None) or () for n in _nodes(item) if isinstance(n, ast.JoinExpr)]
    for conjunct in [*_conjuncts(stmt.whereClause), *(c for join in joins for c in _conjuncts(join.quals))]:
        linked = _linked(conjunct, scope, table)
        access.equality += linked
        access.read |= set(linked)
        used = scope.columns_in(conjunct, table)
        if not used:
            continue  # about other tables only, or constant
        if not _has(conjunct, (ast.ParamRef, ast.FuncCall, ast.SubLink)) and scope.only(conjunct, table):
            # no call at all, so the predicate is immutable, as an index predicate must be
            access.constants[_unqualified(conjunct)] = used
            continue
        access.read |= used
        if not isinstance(conjunct, ast.A_Expr):
            continue
        op, kind = _operator(conjunct), conjunct.kind
        left, right = scope.column(conjunct.lexpr, table), scope.column(conjunct.rexpr, table)
        if kind == A_Expr_Kind.AEXPR_OP and op == "=":
            column = left if value(conjunct.rexpr) else right if value(conjunct.lexpr) else None
            if column:
                access.equality.append(column)
        elif kind == A_Expr_Kind.AEXPR_IN and left and value(conjunct.rexpr):
            access.equality.append(left)
        elif kind == A_Expr_Kind.AEXPR_OP and op in _RANGE_OPS:
            if left and value(conjunct.rexpr):
                access.ranges.append(left)
            elif right and value(conjunct.lexpr):
                access.ranges.append(right)
            elif isinstance(conjunct.lexpr, ast.RowExpr) and value(conjunct.rexpr):
                # (a, b) < (x, y): a keyset cursor; its columns in order
                row = [scope.column(arg, table) for arg in conjunct.lexpr.args or ()]
                access.ranges += [c for c in row if c]
        elif kind in _BETWEEN and left:
            access.ranges.append(left)
        elif kind == A_Expr_Kind.AEXPR_OP and op in ("@>", "<@"):
            column = left if op == "@>" else right
            if (
                column
                and isinstance(columns[column].type, JSON)
                and value(conjunct.rexpr if op == "@>" else conjunct.lexpr)
            ):
                access.needs.append(Need(f"{maybe_double_quote_name(column)} jsonb_path_ops"))
        elif kind == A_Expr_Kind.AEXPR_OP and op in _KEY_EXISTS:
            if left and isinstance(columns[left].type, JSON) and value(conjunct.rexpr):
                access.needs.append(Need(maybe_double_quote_name(left)))
        elif kind == A_Expr_Kind.AEXPR_OP and op == "@@":
            for side, other in ((conjunct.lexpr, conjunct.rexpr), (conjunct.rexpr, conjunct.lexpr)):
                if side is not None and not value(side) and value(other):
                    access.needs.append(Need(f"({_deparse(side)})"))
        elif (
            kind in (A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE)
            and left
            and value(conjunct.rexpr)
            and _leading_wildcard(conjunct.rexpr)
        ):
            access.needs.append(Need(f"{maybe_double_quote_name(left)} gin_trgm_ops", extension="pg_trgm"))
    if isinstance(stmt, ast.SelectStmt):
        for part in (*(stmt.targetList or ()), *(stmt.groupClause or ()), stmt.havingClause, *(stmt.sortClause or ())):
            access.read |= scope.columns_in(part, table)
        access.order = _order(stmt, scope, table)
    return access


def _order(stmt: ast.SelectStmt, scope: _Scope, table: str) -> list[SortKey]:
    """The ORDER BY keys up to the first that is not a column of ``table``: an index can only
    deliver the order of a prefix of plain columns."""
    keys = []
    for sort in stmt.sortClause or ():
        column = scope.column(sort.node, table)
        if column is None or sort.sortby_dir == SortByDir.SORTBY_USING:
            break
        descending = sort.sortby_dir == SortByDir.SORTBY_DESC
        nulls: Literal["first", "last"] | None = None
        if sort.sortby_nulls == SortByNulls.SORTBY_NULLS_FIRST and not descending:
            nulls = "first"
        elif sort.sortby_nulls == SortByNulls.SORTBY_NULLS_LAST and descending:
            nulls = "last"
        keys.append(SortKey(column, descending, nulls))
    return keys


_COMMANDS = {ast.SelectStmt: "select", ast.UpdateStmt: "update", ast.DeleteStmt: "delete"}


@dataclass(frozen=True)
class PolicyKeys:
    """What one policy's USING fixes by equality on its table: columns every statement on the
    table it applies to is filtered on, as if the statement wrote them."""

    policy: str
    table: str
    command: str  # all, select, update or delete (an INSERT policy has no USING)
    permissive: bool
    columns: tuple[str, ...]


def policy_keys(policies: Iterable[PolicyDef], tables: dict[str, Table] | None = None) -> list[PolicyKeys]:
    """Each policy's USING read like a statement's WHERE: ``SELECT FROM <table> WHERE <using>``."""
    tables = tables or model_tables()
    found = []
    for policy in policies:
        stmt = parse_sql(policy.sql)[0].stmt  # the canonical text, as the server runs it
        if not isinstance(stmt, ast.CreatePolicyStmt) or stmt.qual is None:
            continue
        select = ast.SelectStmt(fromClause=(ast.RangeVar(relname=policy.table, inh=True),), whereClause=stmt.qual)
        access = _access(f"policy {policy.name}", select, _Scope(select, tables), policy.table)
        columns = tuple(dict.fromkeys(access.equality))
        found.append(PolicyKeys(policy.name, policy.table, policy.command, bool(stmt.permissive), columns))
    return found


def _held(access: Access, keys: Sequence[PolicyKeys], command: str) -> None:
    """Add to ``access`` the equality columns its table's policies hold it to. Permissive policies
    are OR-ed (only the columns all of them fix are fixed), restrictive ones AND-ed; a SELECT
    policy's USING also filters the rows an UPDATE or DELETE reads."""
    applying = [k for k in keys if k.table == access.table and k.command in ("all", "select", command)]
    permissive = [set(k.columns) for k in applying if k.permissive]
    fixed = set.intersection(*permissive) if permissive else set()
    fixed |= {c for k in applying if not k.permissive for c in k.columns}
    added = [c for k in applying for c in k.columns if c in fixed and c not in access.equality]
    access.equality += list(dict.fromkeys(added))
    access.read |= fixed


def accesses(
    scenario: Scenario, tables: dict[str, Table] | None = None, policies: Sequence[PolicyKeys] = ()
) -> list[Access]:
    """Every (statement, table) pair of the scenario's SQL: sub-selects and CTEs included; under
    ``policies`` (``policy_keys``) each with the equality columns its table's policies add."""
    tables = tables or model_tables()
    root = parse_sql(scenario.query.sql)[0].stmt
    assert root is not None  # parse_query accepted exactly one statement
    found = []
    for stmt in _nodes(root):
        if isinstance(stmt, _STATEMENTS):
            scope = _Scope(stmt, tables)
            for table in dict.fromkeys(scope.aliases.values()):
                access = _access(scenario.name, stmt, scope, table)
                _held(access, policies, _COMMANDS[type(stmt)])
                found.append(access)
    return found


# --- from accesses to index statements --------------------------------------------------------


def _narrow(column: Column[Any]) -> bool:
    kind = column.type
    if isinstance(kind, (Text, JSON)):
        return False
    return not isinstance(kind, String) or (kind.length is not None and kind.length <= NARROW_CHARS)


def key_lists(access: Access) -> list[list[SortKey]]:
    equality = list(dict.fromkeys(access.equality))
    if access.primary_key and access.primary_key <= set(equality):
        return []
    keys = [SortKey(c) for c in equality]
    order = [k for k in access.order if k.column not in equality]
    ranges = [c for c in dict.fromkeys(access.ranges) if c not in equality]
    lists = []
    if order and (not ranges or order[0].column in ranges):
        lists.append(keys + order)
    else:
        if ranges:
            lists.append(keys + [SortKey(ranges[0])])
        if order:
            lists.append(keys + order)
    if not lists and keys:
        lists.append(keys)
    return lists


def _statements(access: Access, table: Table) -> Iterator[tuple[str, tuple[str, ...]]]:
    """CREATE INDEX statements (unnamed) for one access, with the extensions each needs."""
    quoted = maybe_double_quote_name(access.table)
    where = " AND ".join(access.constants) or None
    for keys in key_lists(access):
        key_sql = ", ".join(k.sql() for k in keys)
        key_columns = {k.column for k in keys}
        forms: list[tuple[str | None, set[str]]] = [(None, set())]
        if where:
            forms.append((where, set()))
        if access.select:
            forms.append((None, access.needed(set()) - key_columns))
            if where:
                forms.append((where, access.needed(set(access.constants)) - key_columns))
        for predicate, include in forms:
            if include and not all(_narrow(table.columns[c]) for c in include):
                continue  # the heap is read for the wide column anyway
            ordered = [c.name for c in table.columns if c.name in include]
            statement = f"CREATE INDEX ON {quoted} ({key_sql})"
            if ordered:
                statement += f" INCLUDE ({', '.join(map(maybe_double_quote_name, ordered))})"
            if predicate:
                statement += f" WHERE {predicate}"
            yield statement, ()
    for need in access.needs:
        yield f"CREATE INDEX ON {quoted} USING {need.using} ({need.key})", (need.extension,) if need.extension else ()


def existing_indexes(tables: dict[str, Table] | None = None) -> list[IndexDef]:
    """Every index the models create (primary keys, unique constraints, ``index=True``): what a
    candidate must do better than, and what it must not build again."""
    tables = tables or model_tables()
    found = []
    for name, table in tables.items():
        found += [parse_index(str(CreateIndex(index).compile(dialect=PGDialect()))) for index in table.indexes]
        for constraint in [table.primary_key, *(c for c in table.constraints if isinstance(c, UniqueConstraint))]:
            columns = ", ".join(maybe_double_quote_name(c.name) for c in constraint.columns)
            index = parse_index(f"CREATE UNIQUE INDEX ON {maybe_double_quote_name(name)} ({columns})")
            found.append(replace(index, name=str(constraint.name or index.name)))
    return found


def describe(index: IndexDef) -> str:
    """A readable name: table, key columns and what kind of index, then a short fingerprint."""
    words = [key.column or "expr" for key in index.keys]
    if index.using != "btree":
        words.append(next((k.opclass.split("_")[0] for k in index.keys if k.opclass), index.using))
    if index.include:
        words.append("incl")
    if index.where:
        words.append("part")
    suffix = "_" + index.fingerprint()[:6]
    stem = "_".join(["tb", index.table, *words])
    return stem.encode()[: _MAX_NAME - len(suffix)].decode(errors="ignore").rstrip("_") + suffix


def _predicate(index: IndexDef) -> set[str]:
    if index.where is None:
        return set()
    stmt = parse_sql(index.definition)[0].stmt
    assert isinstance(stmt, ast.IndexStmt)
    return {_deparse(c) for c in _conjuncts(stmt.whereClause)}


def _same_key(index: IndexDef) -> str:
    """The fingerprint of ``index`` with its INCLUDE columns sorted: their order changes nothing a
    query sees, so two candidates differing only there are one."""
    stmt = parse_sql(index.definition)[0].stmt
    assert isinstance(stmt, ast.IndexStmt)
    stmt.indexIncludingParams = tuple(sorted(stmt.indexIncludingParams or (), key=lambda e: e.name))
    return parse_index(_deparse(stmt)).fingerprint()


def _btree_score(index: IndexDef, access: Access) -> int:
    """How much of what ``access`` asks a B-tree delivers: one point per leading equality key, per
    following sort key in the query's direction (or all reversed: a backward scan), for a range
    key instead, for a partial predicate the access implies, and for covering what it reads."""
    keys = list(index.keys)
    equality = set(access.equality)
    score = position = 0
    while position < len(keys) and keys[position].column in equality:
        score, position = score + 1, position + 1
    order = [k for k in access.order if k.column not in equality]
    matched: set[bool] = set()
    for wanted in order:
        if position == len(keys) or keys[position].column != wanted.column:
            break
        key = keys[position]
        matched.add((key.descending, key.nulls) == (wanted.descending, wanted.nulls))
        if len(matched) > 1:
            break  # mixed directions: neither a forward nor a backward scan gives the order
        score, position = score + 1, position + 1
    if not matched and position < len(keys) and keys[position].column in access.ranges:
        score += 1
    predicate = _predicate(index)
    if predicate and predicate == set(access.constants):
        score += 1  # the index holds exactly the rows the access filters to
    if access.select and access.needed(predicate) <= {k.column for k in keys} | set(index.include):
        score += 1
    return score


MATCHED_NEED = 3
"""The score of an index that is exactly what a predicate's operator asks for (GIN, trigram)."""


def score(index: IndexDef, access: Access, existing: Iterable[IndexDef] = ()) -> int:
    """How much more ``index`` can do for ``access`` than the best of the ``existing`` indexes
    (0: nothing): same table, its predicate among the access's constant filters, and for a B-tree
    the margin of its ``_btree_score`` over theirs, for another method ``MATCHED_NEED`` when its
    key is the one a predicate asks for. Nothing serves an access whose equality columns hold the
    whole primary key."""
    if index.table != access.table or not _predicate(index) <= set(access.constants):
        return 0
    if index.using == "btree":
        if access.primary_key and access.primary_key <= set(access.equality):
            return 0
        best = max(
            (
                _btree_score(e, access)
                for e in existing
                if e.table == access.table and e.using == "btree" and _predicate(e) <= set(access.constants)
            ),
            default=0,
        )
        return max(_btree_score(index, access) - best, 0)
    wanted = {
        key.ddl()
        for need in access.needs
        if need.using == index.using
        for key in parse_index(f"CREATE INDEX ON {access.table} USING {need.using} ({need.key})").keys
    }
    return MATCHED_NEED if any(key.ddl() in wanted for key in index.keys) else 0


def candidates(
    catalogue: Catalogue, tables: dict[str, Table] | None = None, policies: Sequence[PolicyKeys] = ()
) -> list[Candidate]:
    """Every candidate, catalogue indexes first (they keep their names), one per definition (the
    fingerprint, INCLUDE order aside); indexes the models already create are left out. ``policies``:
    the row-level security every statement runs under (``policy_keys``)."""
    tables = tables or model_tables()
    found = [a for scenario in catalogue.scenarios for a in accesses(scenario, tables, policies)]
    existing = existing_indexes(tables)
    built = {_same_key(e) for e in existing}
    merged: dict[str, tuple[IndexDef, set[str], list[str]]] = {}

    def add(index: IndexDef, extensions: Iterable[str], source: str) -> None:
        if (key := _same_key(index)) in built:
            return
        known = merged.setdefault(key, (index, set(), []))
        known[1].update(extensions)
        if source not in known[2]:
            known[2].append(source)

    for variant in catalogue.variants:
        for index in variant.indexes:
            add(replace(index, concurrently=False, if_not_exists=False), variant.extensions, f"variant {variant.name}")
    for access in found:
        for statement, extensions in _statements(access, tables[access.table]):
            index = parse_index(statement)
            add(replace(index, name=describe(index)), extensions, f"query {access.scenario}")
    return [
        Candidate(
            index=index,
            extensions=tuple(sorted(extensions)),
            serves={a.scenario: points for a in found if (points := score(index, a, existing))},
            sources=tuple(sources),
        )
        for index, extensions, sources in merged.values()
    ]
