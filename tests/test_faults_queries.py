"""The fault suite, the scenarios' part: a query that never ends and writes that reach for what they
must not, through the CLI as a user meets them, and what each leaves behind on the server (no
scratch copy, no role)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench.targets import roles, schema
from tests.support import HOSTILE_WRITE_CALLS, Ran, calling, edited_scenarios, never_ending, taskbench_here

QUICK = ["--cold-samples", "1", "--stability-rounds", "1", "--concurrent", "-q"]


def _left_on(seeded) -> tuple[list[str], list[str]]:
    """Scratch copies of the seeded database, and sampler roles no run holds."""
    with schema.connect(seeded) as conn:
        copies = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (f"{seeded.database}_",)
        ).fetchall()
    return [name for (name,) in copies], roles.drop_orphans(seeded)


def _run(seeded, scenarios_dir: Path, reports: Path, *only: str) -> Ran:
    """``taskbench run`` of ``only`` (its -s/-v choices) from ``scenarios_dir`` on the seeded database, in
    this process: what is tested is what the server is sent and what the run does with it."""
    return taskbench_here(
        "run",
        "--db-name",
        seeded.database,
        "--scenarios-dir",
        str(scenarios_dir),
        *only,
        *QUICK,
        "--reports-dir",
        str(reports),
    )


def test_a_scenario_that_never_ends_fails_at_its_timeout_and_the_run_goes_on(seeded, tmp_path):
    catalogue = edited_scenarios(tmp_path, {"queries/recent_tasks.toml": never_ending})
    scenarios = ["-s", "recent_tasks", "-s", "task_by_id", "-v", "baseline", "-v", "composite"]
    started = time.monotonic()
    proc = _run(seeded, catalogue, tmp_path / "reports", *scenarios)
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "" and "4 cells: 2 pass, 2 fail" in proc.stderr
    saved = json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())
    cut = [c for c in saved["cells"] if c["scenario"] == "recent_tasks"]
    assert len(cut) == 2 and all(c["verdict"] == "fail" and c["statement_timeout_ms"] == 1000 for c in cut)
    assert all(c["classes"][0]["stopped_by"] == "timeout" and c["seconds"] < 3 for c in cut)
    assert wall < 60  # two variants' worth of a one-second timeout, not for ever
    assert _left_on(seeded) == ([], [])


@pytest.mark.parametrize(("call", "named"), HOSTILE_WRITE_CALLS[:2])
def test_a_hostile_write_is_refused_before_anything_runs(seeded, tmp_path, call, named):
    catalogue = edited_scenarios(tmp_path, {"queries/retag_task.toml": calling(call)})
    proc = _run(seeded, catalogue, tmp_path / "reports", "-s", "retag_task", "-v", "baseline")
    target, error = proc.stderr.strip().splitlines()  # the target it reached, then the one line
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and target.startswith("target: ")
    assert error.startswith("taskbench: error: scenario 'retag_task': ") and f"write scenario calls {named}" in error
    assert not (tmp_path / "reports").exists()
    assert _left_on(seeded) == ([], [])
