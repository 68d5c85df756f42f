"""A variant's row-level security, read by PostgreSQL's own parser like its index statements.

A policy variant file is untrusted input: its statements are executed by the role that owns the
scratch copy, and its expressions are evaluated for every row the samples read. So only two kinds
of statement are accepted, each printed back from its parse tree (only that canonical text runs):

- ``ALTER TABLE <canonical table> ENABLE ROW LEVEL SECURITY`` (not FORCE, nothing else in it);
- ``CREATE POLICY <name> ON <canonical table> [AS PERMISSIVE|RESTRICTIVE] [FOR <command>]
  [TO PUBLIC] [USING (...)] [WITH CHECK (...)]``, whose expressions are made of the canonical
  tables' columns, constants, comparisons, AND/OR/NOT, IS [NOT] NULL, casts to a few plain types,
  the session claim ``current_setting('<prefix>.<name>'[, missing_ok])`` and sub-selects
  (``EXISTS``, ``IN``, a scalar ``(SELECT ...)``) over the canonical tables. No other function or
  operator is called: a policy that called one could do anything its owner may, once per row.

``parse_policy`` refuses anything else with one line naming the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pglast import ast
from pglast.enums import AlterTableType, RoleSpecType, SetOperation, SubLinkType
from pglast.stream import maybe_double_quote_name

from bench.catalogue.sql import SQLRefused, _deparse, _single, walk_tree  # the parse and print of every statement
from bench.models import COLUMNS, TABLE_NAMES

CLAIM_FUNCTION = "current_setting"
# a custom setting has a prefix and a name; what the app's connection sets per request
_CLAIM = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
_OPERATORS = frozenset({"=", "<>", "!=", "<", "<=", ">", ">="})
# casts a claim or a column may take: plain types whose input functions read nothing but the text
_TYPES = frozenset({"uuid", "text", "varchar", "int4", "int8", "integer", "bigint", "bool", "boolean"})
_SUBLINKS = frozenset({SubLinkType.EXISTS_SUBLINK, SubLinkType.ANY_SUBLINK, SubLinkType.EXPR_SUBLINK})
# a policy's expression nodes: anything else (a function, a CASE, a row comparison...) is refused
_ALLOWED = (
    ast.A_Expr,
    ast.BoolExpr,
    ast.NullTest,
    ast.BooleanTest,
    ast.ColumnRef,
    ast.A_Const,
    ast.A_Star,
    ast.TypeCast,
    ast.TypeName,
    ast.FuncCall,
    ast.SubLink,
    ast.SelectStmt,
    ast.ResTarget,
    ast.RangeVar,
    ast.JoinExpr,
    ast.Alias,
    ast.String,
    ast.Integer,
    ast.Boolean,
    ast.Float,
)
# what a policy's sub-select may hold besides its target list, FROM and WHERE: nothing
_SELECT_EXTRAS = (
    "withClause",
    "intoClause",
    "lockingClause",
    "distinctClause",
    "groupClause",
    "havingClause",
    "windowClause",
    "valuesLists",
    "sortClause",
    "limitOffset",
    "limitCount",
    "larg",
    "rarg",
)


@dataclass(frozen=True)
class PolicyDef:
    """One checked row-level security statement: ``sql`` is its canonical text, the only one run."""

    kind: Literal["enable", "policy"]
    table: str
    name: str  # the policy's name; "" for ENABLE ROW LEVEL SECURITY
    command: str  # all, select, insert, update or delete
    sql: str
    claims: frozenset[str]  # the settings its expressions read through current_setting
    # every claim it reads sits in a scalar sub-select, evaluated once per query (an InitPlan)
    claim_in_subselect: bool
    # the tables its expressions read, its own included: an index on any of them can change the
    # plan of a statement on its table (messages' policy reads conversations)
    reads: frozenset[str] = frozenset()

    def undo(self) -> str:
        """The statement that reverts this one: DROP POLICY, or DISABLE ROW LEVEL SECURITY."""
        table = maybe_double_quote_name(self.table)
        if self.kind == "enable":
            return f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"
        return f"DROP POLICY {maybe_double_quote_name(self.name)} ON {table}"


def parse_policy(statement: str) -> PolicyDef:
    """Check one policy statement of a variant (see the module docstring)."""
    node = _single(statement)
    if isinstance(node, ast.AlterTableStmt):
        return _enable(node, statement)
    if not isinstance(node, ast.CreatePolicyStmt):
        raise SQLRefused(
            "a policy statement is ALTER TABLE ... ENABLE ROW LEVEL SECURITY or CREATE POLICY, not "
            f"{type(node).__name__}",
            statement,
        )
    table = _canonical(node.table, statement)
    assert node.policy_name is not None  # the grammar requires a name
    if any(role.roletype != RoleSpecType.ROLESPEC_PUBLIC for role in node.roles or ()):
        raise SQLRefused("a policy applies TO PUBLIC: the samples' role is made for each run", statement)
    if node.qual is None and node.with_check is None:
        raise SQLRefused("a policy needs USING or WITH CHECK", statement)
    walk = _Expression(statement, table)
    for expression in (node.qual, node.with_check):
        if expression is not None:
            walk.run(expression)
    return PolicyDef(
        kind="policy",
        table=table,
        name=node.policy_name,
        command=node.cmd_name or "all",
        sql=_deparse(node, statement),
        claims=frozenset(walk.claims),
        claim_in_subselect=bool(walk.claims) and not walk.bare_claim,
        reads=frozenset(walk.tables),
    )


def _enable(node: ast.AlterTableStmt, statement: str) -> PolicyDef:
    table = _canonical(node.relation, statement)
    commands = node.cmds or ()
    if len(commands) != 1 or commands[0].subtype != AlterTableType.AT_EnableRowSecurity:
        raise SQLRefused("ALTER TABLE may only ENABLE ROW LEVEL SECURITY here (not FORCE, nothing else)", statement)
    return PolicyDef("enable", table, "", "all", _deparse(node, statement), frozenset(), False, frozenset({table}))


def _canonical(relation: ast.RangeVar | None, statement: str) -> str:
    assert relation is not None and relation.relname is not None  # the grammar names the table
    if relation.catalogname is not None or relation.schemaname not in (None, "public"):
        raise SQLRefused("policies go on tables of the public schema", statement)
    if relation.relname not in TABLE_NAMES:
        raise SQLRefused(f"{relation.relname!r} is not one of the tables ({', '.join(TABLE_NAMES)})", statement)
    return relation.relname


class _Expression:
    """One pass over a policy's expressions: only the nodes of ``_ALLOWED``, columns of the tables
    it reads, the claim function with a constant setting name."""

    def __init__(self, statement: str, table: str) -> None:
        self.statement = statement
        self.tables = {table}
        self.columns: set[str] = set()
        self.claims: set[str] = set()
        self.bare_claim = False  # a claim read outside a scalar sub-select: once per row

    def run(self, root: ast.Node) -> None:
        walk_tree(root, False, self._visit)  # the state: inside a scalar sub-select
        unknown = sorted(self.columns - {c for t in self.tables for c in COLUMNS[t]})
        if unknown:
            raise SQLRefused(f"{unknown[0]!r} is no column of {', '.join(sorted(self.tables))}", self.statement)

    def _visit(self, node: ast.Node, wrapped: bool) -> Iterator[tuple[object, bool]]:
        if not isinstance(node, _ALLOWED):
            raise SQLRefused(f"a policy expression may not contain {type(node).__name__}", self.statement)
        if isinstance(node, ast.FuncCall):
            self._claim(node, wrapped)
            return
        if isinstance(node, ast.A_Expr):
            names = [part.sval for part in node.name or ()]
            if len(names) != 1 or names[0] not in _OPERATORS:
                raise SQLRefused(f"operator {'.'.join(map(str, names))} is not one a policy may use", self.statement)
        elif isinstance(node, ast.TypeName):
            names = [part.sval for part in node.names or ()]
            if names[-1] not in _TYPES or names[:-1] not in ([], ["pg_catalog"]) or node.arrayBounds:
                raise SQLRefused(f"a cast to {'.'.join(names)} is not one a policy may use", self.statement)
            return
        elif isinstance(node, ast.ColumnRef):
            last = (node.fields or ())[-1]
            if isinstance(last, ast.String):
                self.columns.add(last.sval or "")
            return
        elif isinstance(node, ast.RangeVar):
            self.tables.add(_canonical(node, self.statement))
            return
        elif isinstance(node, ast.SubLink):
            if node.subLinkType not in _SUBLINKS:
                raise SQLRefused("a policy's sub-select is EXISTS, IN or a scalar (SELECT ...)", self.statement)
            wrapped = wrapped or node.subLinkType == SubLinkType.EXPR_SUBLINK
        elif isinstance(node, ast.SelectStmt) and (
            node.op != SetOperation.SETOP_NONE or any(getattr(node, a) for a in _SELECT_EXTRAS)
        ):
            raise SQLRefused("a policy's sub-select is SELECT ... FROM ... WHERE ... only", self.statement)
        for attribute in node:
            yield getattr(node, attribute), wrapped

    def _claim(self, call: ast.FuncCall, wrapped: bool) -> None:
        names = [part.sval for part in call.funcname or ()]
        if names[-1] != CLAIM_FUNCTION or names[:-1] not in ([], ["pg_catalog"]):
            raise SQLRefused(
                f"a policy may call no function but {CLAIM_FUNCTION}, not {'.'.join(names)}", self.statement
            )
        args = call.args or ()
        setting = args[0].val if args and isinstance(args[0], ast.A_Const) else None
        missing_ok = args[1:] == () or (isinstance(args[1], ast.A_Const) and isinstance(args[1].val, ast.Boolean))
        if (
            not isinstance(setting, ast.String)
            or not _CLAIM.match(setting.sval or "")
            or len(args) > 2
            or not missing_ok
        ):
            raise SQLRefused(
                f"{CLAIM_FUNCTION} takes a constant custom setting ('app.user_id') and, optionally, true or false",
                self.statement,
            )
        self.claims.add(setting.sval or "")
        self.bare_claim = self.bare_claim or not wrapped
