import json


from bench import schema
from bench.plan import plan_facts, timings


def _explain(target, sql: str, *settings: str) -> list:
    with schema.connect(target) as conn:
        for s in settings:
            conn.execute(s)
        return conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql).fetchone()[0]


def test_seq_scan_and_sort_spill(seeded):
    doc = _explain(seeded, "SELECT * FROM tasks ORDER BY description", "SET work_mem = '64kB'")
    facts = plan_facts(doc)
    assert facts.seq_scans == ["tasks"] and facts.sorts == 1 and facts.sort_spills == 1
    assert facts.shared_hit + facts.shared_read > 0
    exec_ms, plan_ms = timings(doc)
    assert exec_ms > 0 and plan_ms >= 0


def test_index_scan_facts_and_stable_fingerprint(seeded):
    with schema.connect(seeded) as conn:
        uid = conn.execute("SELECT user_id FROM tasks GROUP BY 1 ORDER BY count(*), 1 LIMIT 1").fetchone()[0]
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
