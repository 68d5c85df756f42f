"""The pgbench cross-check runs real pgbench against the embedded server (the check itself, with
its 15% criterion, is `make validate`: timing agreement is not asserted here)."""

import psycopg
import pytest

from bench.measure.options import RunOptions
from bench.runs.crosscheck import CrossCheckOptions, _statement_latency, measure
from tests.support import scalar


def test_statement_latency_is_read_from_the_per_statement_report():
    report = (
        "statement latencies in milliseconds and failures:\n"
        "         0.002           0  \\set i random(1, 50)\n"
        "         0.061           0  SELECT user_id FROM tb_pgbench_x WHERE i = :i \n"
        "         1.234           0  SELECT id, title FROM tasks WHERE user_id = :user_id;\n"
    )
    assert _statement_latency(report, "SELECT id, title\nFROM tasks WHERE user_id = :user_id") == 1.234


# pgbench beside the other xdist worker's tests twice came back with per-transaction latencies of 0
# (p50 0.0 ms) where it never did alone or in one process: not beside another worker (tests/workers.py)
@pytest.mark.alone
def test_check_runs_pgbench_on_a_scratch_copy(seeded, catalogue):
    chosen = catalogue.select(["task_by_id", "keyset_page_deep"], None)
    # beside other measurements, as every test measures (tests/support.py)
    agreements = measure(seeded, chosen, CrossCheckOptions("composite", 30, RunOptions(concurrent=True)))
    assert [a.scenario for a in agreements] == ["task_by_id", "keyset_page_deep"]
    for a in agreements:  # like with like: means of the statement, medians of the transaction
        assert a.pgbench_avg_ms > 0 and a.harness_mean_ms > 0 and a.pgbench_p50_ms > 0 and a.harness_p50_ms > 0
        assert a.mean_difference == a.harness_mean_ms / a.pgbench_avg_ms - 1
        assert a.p50_difference == a.harness_p50_ms / a.pgbench_p50_ms - 1
    with psycopg.connect(seeded.libpq_conninfo(), autocommit=True) as conn:
        left = scalar(
            conn, "SELECT count(*) FROM pg_database WHERE datname LIKE %s", (f"{seeded.database}_validate_%",)
        )
        tables = scalar(conn, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'tb_pgbench_%'")
    assert left == 0 and tables == 0
