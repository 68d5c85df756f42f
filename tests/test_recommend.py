"""The recommendation and its SQLModel lines (each translation is built on a real database for
every shipped variant in test_sql.py); the choice follows the costs."""

import pytest

from bench.catalogue.sql import parse_index
from bench.judge.recommend import recommend, table_args
from bench.results import VariantResult


def test_table_args_group_by_table(catalogue):
    rec = next(v for v in catalogue.variants if v.name == "recommended")
    args = table_args(
        VariantResult(
            name=rec.name, description="", statements=rec.statements, indexes=[], index_size_bytes=0, build_seconds=0
        )
    )
    assert set(args) == {"tasks"}
    assert args["tasks"].startswith("__table_args__ = (\n") and args["tasks"].count("Index(") == len(rec.statements)
    assert "postgresql_where=text('NOT is_completed AND deleted_at IS NULL')" in args["tasks"]


def test_unnamed_and_schema_qualified_indexes_translate(catalogue):
    """Both are valid PostgreSQL; the regular expression this replaced ended the report in a traceback."""
    statements = [
        "CREATE INDEX ON public.tasks (user_id, due_date) WHERE NOT is_completed",
        "CREATE INDEX tb_msg ON public.messages USING btree (conversation_id, created_at DESC)",
    ]
    args = table_args(
        VariantResult(
            name="odd", description="", statements=statements, indexes=[], index_size_bytes=0, build_seconds=0
        )
    )
    assert set(args) == {"tasks", "messages"}
    unnamed = parse_index(statements[0]).name
    assert unnamed.startswith("tb_tasks_") and f"Index({unnamed!r}" in args["tasks"]
    assert "postgresql_where=text('NOT is_completed')" in args["tasks"]
    assert "text('created_at DESC')" in args["messages"]


def _verdicts(results, verdicts: dict[tuple[str, str], str]):
    cells = [c.model_copy(update={"verdict": verdicts.get((c.scenario, c.variant), c.verdict)}) for c in results.cells]
    return results.model_copy(update={"cells": cells})


def test_cheapest_variant_meeting_every_sla_is_chosen(small_results):
    every_pass = _verdicts(small_results, {(c.scenario, c.variant): "pass" for c in small_results.cells})
    cheapest = recommend(every_pass).variant
    assert cheapest is not None and cheapest.name == "baseline"  # no index at all is cheapest
    one_fail = _verdicts(every_pass, {("recent_tasks", "baseline"): "fail"})
    rec = recommend(one_fail)
    assert rec.variant is not None and rec.variant.name == "composite" and "tasks" in rec.table_args


def test_when_nothing_meets_every_sla_the_shortfall_is_named(small_results):
    failing = _verdicts(
        small_results,
        {(c.scenario, c.variant): "fail" if c.scenario == "recent_tasks" else "pass" for c in small_results.cells},
    )
    rec = recommend(failing)
    assert rec.variant is None and rec.closest is not None
    assert [s.scenario for s in rec.shortfalls] == ["recent_tasks"]
    best = min((c for c in failing.cells if c.scenario == "recent_tasks"), key=lambda c: c.client.p95.value)
    assert rec.shortfalls[0].best_variant == best.variant
    assert rec.shortfalls[0].over_by == pytest.approx(best.client.p95.value / best.sla_ms)
