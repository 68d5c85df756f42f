import asyncio
import json
from typing import Any

from bench.catalogue.params import Drawn
from bench.measure.plan import plan_facts, plan_tree, timings
from bench.measure.trees import timed_plans
from bench.targets import schema
from bench.targets.target import connected, scratch_copy
from tests.support import scalar


def _explain(target, sql: str, *settings: str) -> list[dict[str, Any]]:
    with schema.connect(target) as conn:
        for s in settings:
            conn.execute(s)
        plan: list[dict[str, Any]] = scalar(conn, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
        return plan


def test_seq_scan_and_sort_spill(seeded):
    doc = _explain(seeded, "SELECT * FROM tasks ORDER BY description", "SET work_mem = '64kB'")
    facts = plan_facts(doc)
    assert facts.seq_scans == ["tasks"] and facts.sorts == 1 and facts.sort_spills == 1
    sort = next(n for n in facts.nodes if n.node_type == "Sort")
    assert facts.temp_blocks == sort.temp_blocks > 0  # the spill, counted where it happened and in the total
    in_memory = plan_facts(_explain(seeded, "SELECT * FROM tasks ORDER BY description", "SET work_mem = '64MB'"))
    assert in_memory.temp_blocks == 0
    assert facts.shared_hit + facts.shared_read > 0
    exec_ms, plan_ms = timings(doc)
    assert exec_ms > 0 and plan_ms >= 0


def test_index_scan_facts_and_stable_fingerprint(seeded):
    with schema.connect(seeded) as conn:
        uid = scalar(conn, "SELECT user_id FROM tasks GROUP BY 1 ORDER BY count(*), 1 LIMIT 1")
    sql = f"SELECT * FROM tasks WHERE user_id = '{uid}' AND id > 0"
    a, b = plan_facts(_explain(seeded, sql)), plan_facts(_explain(seeded, sql))
    assert "ix_tasks_user_id" in a.indexes
    assert a.fingerprint == b.fingerprint
    c = plan_facts(_explain(seeded, sql, "SET enable_bitmapscan = off", "SET enable_indexscan = off"))
    assert c.fingerprint != a.fingerprint and c.seq_scans == ["tasks"]


def test_misestimate_is_flagged(seeded):
    # The planner assumes 0.5% of rows satisfy an equality on an opaque expression (all do): a large misestimate.
    facts = plan_facts(_explain(seeded, "SELECT * FROM tasks WHERE md5(title) = md5(title || '')"))
    assert facts.max_misestimate >= 10 and facts.misestimate_flag >= 10


def test_plan_facts_accepts_the_document_or_its_item(seeded):
    doc = _explain(seeded, "SELECT 1")
    assert plan_facts(doc).fingerprint == plan_facts(json.loads(json.dumps(doc))[0]).fingerprint


def test_lossy_bitmap_heap_blocks(seeded):
    # A bitmap over more pages than work_mem can track exactly degrades to whole pages ("lossy").
    with schema.connect(seeded) as conn:
        conn.execute("CREATE TEMP TABLE spread AS SELECT g AS id, g % 10 AS k FROM generate_series(1, 300000) g")
        conn.execute("CREATE INDEX ON spread (k)")
        conn.execute("ANALYZE spread")
        for setting in ("SET work_mem = '64kB'", "SET enable_seqscan = off", "SET enable_indexscan = off"):
            conn.execute(setting)
        doc = scalar(conn, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT count(*) FROM spread WHERE k = 1")
    facts = plan_facts(doc)
    assert "Bitmap Heap Scan" in facts.node_types and facts.lossy_heap_blocks > 0


def test_hash_spill(seeded):
    facts = plan_facts(
        _explain(
            seeded,
            "SELECT count(*) FROM tasks a JOIN (SELECT id + 0 AS id FROM tasks) b ON a.id = b.id",
            "SET work_mem = '64kB'",
            "SET enable_mergejoin = off",
            "SET enable_nestloop = off",
        )
    )
    assert "Hash Join" in facts.node_types and facts.hash_spills >= 1


def test_index_only_scan_with_heap_fetches(seeded):
    # Rows changed since the last VACUUM are not all-visible: an index-only scan must visit the heap for them.
    with scratch_copy(seeded, "plantest") as copy, schema.connect(copy) as conn:
        conn.execute("UPDATE tasks SET title = title WHERE id <= 300")
        explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id FROM tasks WHERE "
        doc = scalar(conn, explain + "id <= 2000")
        clean = scalar(conn, explain + "id > 5000 AND id <= 7000")
    facts = plan_facts(doc)
    assert "Index Only Scan" in facts.node_types and facts.heap_fetches > 0
    assert plan_facts(clean).heap_fetches == 0


def test_rows_removed_by_a_filter_are_counted(seeded):
    facts = plan_facts(_explain(seeded, "SELECT id FROM tasks WHERE title LIKE '%zzzz-none%'"))
    scan = next(n for n in facts.nodes if n.relation == "tasks")
    with schema.connect(seeded) as conn:
        rows = scalar(conn, "SELECT count(*) FROM tasks")
    assert facts.rows_removed == rows and scan.rows_removed > 0  # every row read, none kept


def test_a_plan_without_analyze_has_no_misestimate():
    """The estimated plan a timed-out cell keeps has no actual rows: nothing was misestimated."""
    estimated = [{"Plan": {"Node Type": "Seq Scan", "Relation Name": "tasks", "Plan Rows": 5000}}]
    facts = plan_facts(estimated)
    assert facts.max_misestimate == 1.0 and facts.misestimate_flag == 0 and facts.seq_scans == ["tasks"]


def test_a_plan_tree_keeps_each_nodes_times_rows_buffers_conditions_and_rows_removed(seeded):
    """The tree the report draws, from a real EXPLAIN ANALYZE with per-node timing."""
    doc = _explain(seeded, "SELECT id FROM tasks WHERE title LIKE '%zzzz-none%' ORDER BY created_at LIMIT 5")
    root = plan_tree(doc)
    assert root.node_type == "Limit" and root.total_ms is not None and root.actual_rows == 0
    nodes = [root, *root.children, *(g for c in root.children for g in c.children)]
    scan = next(n for n in nodes if n.relation == "tasks")
    assert scan.details["Filter"] == "((title)::text ~~ '%zzzz-none%'::text)"  # the server's own text
    assert scan.rows_removed["Filter"] > 0 and scan.shared_hit + scan.shared_read > 0
    assert scan.total_ms is not None and scan.loops >= 1 and scan.plan_rows >= 1
    assert any("Sort Key" in n.details for n in nodes)


def _with_skew(target, work):
    """``work(conn)`` on a table where one value is nearly every row and another rare, indexed: a
    custom plan picks by the value, a generic plan cannot."""

    async def go():
        async with connected(target) as conn:
            await conn.execute(
                "CREATE TEMP TABLE skew AS SELECT CASE WHEN g % 1000 = 0 THEN 2 ELSE 1 END AS k, g AS v"
                " FROM generate_series(1, 50000) g; CREATE INDEX ON skew (k); ANALYZE skew"
            )
            return await work(conn)

    return asyncio.run(go())


def test_each_class_has_its_plan_timed_and_the_generic_plan_where_it_differs(seeded):
    query = "SELECT v FROM skew WHERE k = $1"
    first = {"common": Drawn(query, [1]), "rare": Drawn(query, [2])}
    plans = _with_skew(seeded, lambda conn: timed_plans(conn, first, 5000, False))
    common, rare, generic = plans
    assert (common.user_class, rare.user_class, generic.user_class) == ("common", "rare", "common")
    assert not common.generic and not rare.generic and generic.generic
    assert common.root.node_type == "Seq Scan" and rare.root.node_type == "Index Scan"  # by the value
    # planned for any value, the index: executed with the common value it reads nearly every row through it
    assert generic.root.node_type == "Index Scan" and generic.root.index == "skew_k_idx"
    assert generic.root.actual_rows == 49_950 and generic.execution_ms is not None
    assert all(p.root.total_ms is not None and p.timed_out_ms is None for p in plans)
    # a class whose plan the generic one is: no generic plan recorded
    alone = _with_skew(seeded, lambda conn: timed_plans(conn, {"rare": Drawn(query, [2])}, 5000, False))
    assert [p.generic for p in alone] == [False]


def test_a_plan_cut_off_by_the_statement_timeout_is_kept_estimated(seeded):
    async def slow(conn):
        await conn.execute("SET statement_timeout = 100")
        return await timed_plans(conn, {"all": Drawn("SELECT pg_sleep($1::float8 / 10)", [5])}, 100, False)

    (plan,) = _with_skew(seeded, slow)
    assert plan.timed_out_ms == 100 and plan.execution_ms is None and plan.root.actual_rows is None
    cut = _with_skew(
        seeded, lambda conn: timed_plans(conn, {"all": Drawn("SELECT v FROM skew WHERE k = $1", [1])}, 100, True)
    )
    assert [p.root.actual_rows for p in cut] == [None, None]  # a cell already cut off: planned only, generic too
