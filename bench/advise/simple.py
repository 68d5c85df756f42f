"""The simple advisors the advice is set beside, both read from the same parse trees:

- **one B-tree per filtered column**: every column a statement compares with ``=``, ``IN``, a range
  or a constant filter gets a single-column B-tree — ``Field(index=True)`` on whatever appears in a
  WHERE clause;
- **the best two-column B-tree per query**: the first two keys of the candidate rule (equality
  first, then the range or sort column with its direction), the most a two-column advisor can give
  each query, without partial predicates or INCLUDE.

Indexes the models already create are left out of both, as from the candidates. Under row-level
security (``advise --policy``) both read the policies' equality columns like the candidates do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pglast.stream import maybe_double_quote_name

from bench.advise.candidates import PolicyKeys, accesses, describe, existing_indexes, key_lists, model_tables
from bench.catalogue.files import Catalogue, Variant
from bench.catalogue.sql import IndexDef, parse_index

PER_COLUMN = "per_column"
TWO_COLUMN = "two_column"


def _variant(name: str, description: str, statements: list[str]) -> Variant:
    existing = {e.fingerprint() for e in existing_indexes()}
    indexes: dict[str, IndexDef] = {}
    for statement in statements:
        index = parse_index(statement)
        if index.fingerprint() not in existing:
            indexes.setdefault(index.fingerprint(), replace(index, name=describe(index)))
    return Variant(name=name, description=description, statements=[i.ddl() for i in indexes.values()])


def per_column(catalogue: Catalogue, policies: Sequence[PolicyKeys] = ()) -> Variant:
    tables = model_tables()
    statements = []
    for scenario in catalogue.scenarios:
        for access in accesses(scenario, tables, policies):
            filtered = [*access.equality, *access.ranges, *(c for cs in access.constants.values() for c in sorted(cs))]
            statements += [
                f"CREATE INDEX ON {maybe_double_quote_name(access.table)} ({maybe_double_quote_name(c)})"
                for c in dict.fromkeys(filtered)
                if c not in access.primary_key
            ]
    return _variant(PER_COLUMN, "One single-column B-tree per filtered column (simple advisor)", statements)


def two_column(catalogue: Catalogue, policies: Sequence[PolicyKeys] = ()) -> Variant:
    tables = model_tables()
    statements = []
    for scenario in catalogue.scenarios:
        for access in accesses(scenario, tables, policies):
            lists = key_lists(access)
            if lists and len(lists[0]) >= 2:
                keys = ", ".join(k.sql() for k in lists[0][:2])
                statements.append(f"CREATE INDEX ON {maybe_double_quote_name(access.table)} ({keys})")
    return _variant(TWO_COLUMN, "The best two-column B-tree per query (simple advisor)", statements)
