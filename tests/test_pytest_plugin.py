"""The scenarios as pytest-benchmark benchmarks: run for real, saved, and compared the way teams do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from bench.pytest_plugin import psycopg_sql
from bench.targets.target import drop_database, open_target
from tests.support import DATA_DIR, ROOT


def test_placeholders_become_psycopg_names_and_percent_signs_are_kept():
    assert (
        psycopg_sql("SELECT 1 WHERE a = $1 AND b LIKE '%' || $2 || '%' AND c = $1")
        == "SELECT 1 WHERE a = %(p1)s AND b LIKE '%%' || %(p2)s || '%%' AND c = %(p1)s"
    )


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_a_dollar_number_inside_a_literal_or_a_comment_is_left_alone():
    """PostgreSQL's lexer finds the parameters: '$1' in a string, a quoted name or a comment is none,
    and the server returns it as written beside the bound values."""
    sql = "SELECT '$1 %' AS \"$2\", $2::text AS b, $1::int + $1 AS a /* $3 */"
    assert psycopg_sql(sql) == "SELECT '$1 %%' AS \"$2\", %(p2)s::text AS b, %(p1)s::int + %(p1)s AS a /* $3 */"
    with psycopg.connect(open_target(None, "postgres", DATA_DIR).libpq_conninfo(direct=False)) as conn:
        cursor = conn.execute(psycopg_sql(sql), {"p1": 20, "p2": "x"}, prepare=True)
        assert cursor.fetchone() == ("$1 %", "x", 40)
        assert [c.name for c in cursor.description or ()] == ["$2", "b", "a"]


@pytest.fixture
def db_name():
    name = f"tbpytest_{uuid.uuid4().hex[:8]}"
    yield name
    drop_database(open_target(None, "postgres", DATA_DIR), name)


def _pytest_benchmarks(db_name: str, storage, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "composite-recent_tasks or baseline-task_by_id",
            "--tb-db-name",
            db_name,
            "--tb-users",
            "2",
            "--tb-tasks-per-user",
            "300",
            "--benchmark-storage",
            str(storage),
            "--benchmark-max-time",
            "0.2",
            *extra,
        ],
        cwd=ROOT,
        # Not xdist's worker variables: on a worker of `make test`, pytest-benchmark would take the
        # inner session for a worker too and disable itself (no benchmark run, no JSON written).
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_benchmarks_save_and_compare_fail_as_pytest_benchmark_does(db_name, tmp_path):
    storage = tmp_path / "store"
    first = _pytest_benchmarks(db_name, storage, "--benchmark-autosave", "--benchmark-json", str(tmp_path / "b.json"))
    assert first.returncode == 0, first.stdout[-2000:]
    data = json.loads((tmp_path / "b.json").read_text())
    by_name = {b["name"]: b for b in data["benchmarks"]}
    assert set(by_name) == {"test_scenario[baseline-task_by_id]", "test_scenario[composite-recent_tasks]"}
    assert by_name["test_scenario[composite-recent_tasks]"]["extra_info"] == {
        "scenario": "recent_tasks",
        "variant": "composite",
        "sla_ms": 50.0,
        "sla_class": "list",
    }
    assert all(b["stats"]["rounds"] > 5 for b in data["benchmarks"])

    # A saved run that was impossibly fast: the next run must fail its compare, as a regression would.
    (saved,) = storage.glob("*/0001_*.json")
    doctored = json.loads(saved.read_text())
    for bench in doctored["benchmarks"]:
        bench["stats"]["median"] = bench["stats"]["median"] / 1000
    saved.write_text(json.dumps(doctored))
    slower = _pytest_benchmarks(db_name, storage, "--benchmark-compare=0001", "--benchmark-compare-fail=median:10%")
    assert slower.returncode != 0 and "Performance has regressed" in slower.stdout + slower.stderr
