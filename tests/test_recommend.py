"""The recommendation and its SQLModel lines: translated indexes must build exactly what the
variant's own statements build (checked on a real database), and the choice follows the costs."""

import psycopg
import pytest
from sqlalchemy import Index, MetaData, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from bench.targets import schema
from bench.models import TABLES
from bench.judge.recommend import index_construct, recommend, table_args
from bench.targets.target import scratch_copy


def _indexdefs(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'tb_%'").fetchall()
    return {r[0] for r in rows}


def test_translation_builds_the_same_indexes_as_every_variant(seeded, catalog):
    tables = {t.__tablename__: t.__table__ for t in TABLES}
    with scratch_copy(seeded, "rectest") as copy, schema.connect(copy) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for variant in catalog.variants:
            for stmt in variant.statements:
                conn.execute(stmt)
            expected = _indexdefs(conn)
            for name in [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'tb_%'")]:
                conn.execute(f'DROP INDEX "{name}"')
            for stmt in variant.statements:
                table, source = index_construct(stmt)
                index = eval(source, {"Index": Index, "text": text})  # the line a user pastes into the model
                copy_table = tables[table].to_metadata(MetaData())
                index._set_parent(copy_table)
                conn.execute(str(CreateIndex(index).compile(dialect=postgresql.dialect())))
            assert _indexdefs(conn) == expected, variant.name
            for name in [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'tb_%'")]:
                conn.execute(f'DROP INDEX "{name}"')


def test_table_args_group_by_table(catalog):
    rec = next(v for v in catalog.variants if v.name == "recommended")
    args = table_args(rec)
    assert set(args) == {"tasks"}
    assert args["tasks"].startswith("__table_args__ = (\n") and args["tasks"].count("Index(") == len(rec.statements)
    assert "postgresql_where=text('NOT is_completed AND deleted_at IS NULL')" in args["tasks"]
    with pytest.raises(ValueError):
        index_construct("DROP TABLE tasks")


def _verdicts(results, verdicts: dict[tuple[str, str], str]):
    cells = [c.model_copy(update={"verdict": verdicts.get((c.scenario, c.variant), c.verdict)}) for c in results.cells]
    return results.model_copy(update={"cells": cells})


def test_cheapest_variant_meeting_every_sla_is_chosen(small_results):
    every_pass = _verdicts(small_results, {(c.scenario, c.variant): "pass" for c in small_results.cells})
    assert recommend(every_pass).variant.name == "baseline"  # no index at all is cheapest
    one_fail = _verdicts(every_pass, {("recent_tasks", "baseline"): "fail"})
    rec = recommend(one_fail)
    assert rec.variant.name == "composite" and "tasks" in rec.table_args


def test_when_nothing_meets_every_sla_the_shortfall_is_named(small_results):
    failing = _verdicts(small_results, {(c.scenario, c.variant): "fail" if c.scenario == "recent_tasks" else "pass"
                                        for c in small_results.cells})
    rec = recommend(failing)
    assert rec.variant is None and rec.closest is not None
    assert [s.scenario for s in rec.shortfalls] == ["recent_tasks"]
    best = min((c for c in failing.cells if c.scenario == "recent_tasks"), key=lambda c: c.client.p95.value)
    assert rec.shortfalls[0].best_variant == best.variant
    assert rec.shortfalls[0].over_by == pytest.approx(best.client.p95.value / best.sla_ms)
