"""tools/neon_check.sh — the workflow's Neon job — run as CI runs it, against the Neon API stand-in
whose branches are databases on a server with Neon's 1 CU settings (tests/neon_settings_server.py):
the seeded parent, `taskbench check` on a fixed-size child branch with base and head side by side,
its exit code, and what a cancel leaves behind."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_REGRESSION
from bench.targets.neon import SEEDED_NAME
from tests.neon_standin import NeonStandIn
from tests.support import CALIBRATION, ROOT, cli_env, committed_scenarios

KEY = "neon-check-key"
SCRIPT = ROOT / "tools" / "neon_check.sh"
READS, VARIANTS = ("recent_tasks", "task_by_id"), ("composite",)
# Every test here runs beside the other xdist worker: what the script adds to `taskbench check` is
# its branches, its seeding and its exit codes, and rows, plans, branches and cancels do not depend on
# the time gate. The gate's own judgement on a server with Neon's settings (an A/A check, exit 0) and a
# slower query found side by side are tests/test_check.py's, alone.
# The check's regressions depend on the check command's rework (REFERENCE optional, --before-ref
# defaulting to the merge base, exit 1 over "cannot judge"), which lands separately.


@pytest.fixture(scope="module")
def standin(neon_settings_server):
    api = NeonStandIn(neon_settings_server, KEY)
    api.page_size = 3  # the script's lookups follow the pages
    yield api
    api.close()


def _scenarios(root: Path) -> Path:
    """A repository whose commit holds a small catalogue (two reads, one variant): "before"."""
    scen = committed_scenarios(root)
    (scen / "mix.toml").unlink()
    for path in [*(scen / "queries").glob("*.*"), *(scen / "variants").glob("*.toml")]:
        if path.stem not in (*READS, *VARIANTS):
            path.unlink()
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "small"], cwd=root, check=True
    )
    return scen


def _env(standin: NeonStandIn, tmp_path: Path, **extra: str) -> dict[str, str]:
    return cli_env(
        {
            "NEON_API_KEY": KEY,
            "NEON_PROJECT_ID": standin.project_id,
            "NEON_API_URL": standin.url,
            "NEON_RUN_BRANCH": f"taskbench-pr-7-{tmp_path.name}-1",
            "BASE_REF": "HEAD",
            "PROFILE": "ci",
            "SEED_OPTIONS": "--users 3 --tasks-per-user 1500",  # tests/support.py TINY's size
            "DB_NAME": "tb_neoncheck",
            "REPORTS_DIR": str(tmp_path / "reports"),
            **extra,
        },
        unset=("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"),
    )


def _args(scen: Path, *more: str) -> list[str]:
    """The script's command line: its arguments go to `taskbench check`."""
    return ["bash", str(SCRIPT), "--scenarios-dir", str(scen), "--pairs", "8", "--concurrent", *more]


def _run(
    standin: NeonStandIn, tmp_path: Path, scen: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _args(scen, *args), cwd=ROOT, env=_env(standin, tmp_path, **extra), capture_output=True, text=True, timeout=600
    )


def _no_branch_left(standin: NeonStandIn, name: str) -> bool:
    return standin.branch_named(name) is None and not any(
        b["name"].startswith("taskbench-seeding-") for b in standin.branches.values()
    )


def _other_models(root: Path) -> Path:
    """A copy of the harness whose models name one constraint differently: other DDL, same rows."""
    copy = root / "other-models"
    for package in ("bench", "seed"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    models = copy / "bench" / "models.py"
    models.write_text(models.read_text().replace("ck_tasks_title_not_blank", "ck_tasks_title_not_empty"))
    return copy


def _no_false_alarm(proc: subprocess.CompletedProcess[str]) -> None:
    """A check of unchanged code: no regression and no error, its time judged side by side (exit 0) or
    refused because the two sides' calibration workload ran unalike (exit 2, saying so): on a
    machine shared with other work that is the gate's right answer (tests/support.no_false_alarm)."""
    out = proc.stdout + proc.stderr
    judged = proc.returncode == EXIT_OK and "side by side" in proc.stdout
    refused = proc.returncode == EXIT_INPUT and "time: cannot judge" in out and CALIBRATION in out
    assert (judged or refused) and " 0 regression(s)" in out and "Traceback" not in out, out


def _constraints(standin: NeonStandIn, branch: dict[str, Any]) -> set[str]:
    url = standin.server.set(drivername="postgresql", database=standin.physical_name(branch["id"], "tb_neoncheck"))
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        rows = conn.execute("SELECT conname FROM pg_constraint WHERE conname LIKE 'ck_tasks_title%'").fetchall()
    return {r[0] for r in rows}


# First in the module: both runs seed their parent, at once; the checks after it find ours there.
def test_two_runs_with_different_models_at_once_never_see_each_others_tables(standin, tmp_path):
    scen = _scenarios(tmp_path / "repo")
    other = _other_models(tmp_path)
    runs = [
        (tmp_path / "ours", {}),
        (tmp_path / "theirs", {"PYTHONPATH": str(other)}),  # found before the editable install's own
    ]
    with ThreadPoolExecutor(2) as pool:  # one scenario each: what is tested is whose tables they measure
        procs = list(pool.map(lambda run: _run(standin, run[0], scen, "-s", "task_by_id", **run[1]), runs))
    for (path, _), proc in zip(runs, procs, strict=True):
        # unchanged code, no regression: the two checks measure at once on purpose, each the other's
        # load, so their time gates may well refuse
        _no_false_alarm(proc)
        assert KEY not in proc.stdout + proc.stderr
        assert _no_branch_left(standin, f"taskbench-pr-7-{path.name}-1")
    parents = [b for b in standin.branches.values() if SEEDED_NAME.fullmatch(b["name"] or "")]
    held = [_constraints(standin, b) for b in parents if "tb_neoncheck" in standin.databases_of(b["id"])]
    # a parent per schema, each holding its own models' tables only
    assert {"ck_tasks_title_not_blank"} in held and {"ck_tasks_title_not_empty"} in held
    assert all(len(constraints) == 1 for constraints in held)


# Two regressions, each of a kind of its own, in one head: a query returning other rows (recent_tasks:
# the rows gate) and the index it used dropped from the variant (its plan). Each is found as a
# regression on its own line, under its cell and kind, and either alone is exit 1, whatever the time
# gate says beside the other worker: one check proves both.
EDITS = {
    "queries/recent_tasks.toml": lambda text: text.replace("LIMIT :page_size", "LIMIT :page_size - 1"),
    "variants/composite.toml": lambda text: re.sub(r'\n  "CREATE INDEX tb_tasks_user_created[^\n]*', "", text),
}
FOUND = {
    "changed result": r"recent_tasks × composite \[results\]",
    "dropped index": r"recent_tasks × composite \[(index_dropped|seq_scan|sort_added)\]",
}


def test_a_regression_in_the_head_is_exit_1(standin, tmp_path):
    scen = _scenarios(tmp_path)
    for relative, edit in EDITS.items():
        path = scen / relative
        edited = edit(path.read_text())
        assert edited != path.read_text()
        path.write_text(edited)  # the head: the working tree; "before": the commit (BASE_REF=HEAD)
    proc = _run(standin, tmp_path, scen)
    assert proc.returncode == EXIT_REGRESSION, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    section = proc.stdout.partition("\nRegressions:\n")[2].splitlines()  # its lines are indented
    regressions = [line.strip() for line in itertools.takewhile(lambda line: line.startswith("  "), section)]
    for change, found in FOUND.items():
        assert any(re.match(found, line) for line in regressions), f"{change} not found: {proc.stdout}"


def test_a_cancel_mid_run_is_exit_130_and_leaves_no_branch(standin, tmp_path):
    scen = _scenarios(tmp_path)
    name = f"taskbench-pr-7-{tmp_path.name}-1"
    proc = subprocess.Popen(
        _args(scen), cwd=ROOT, env=_env(standin, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300

    def measuring() -> bool:  # the check's branch holds its scratch copies of the dataset: check measures
        branch = standin.branch_named(name)
        return branch is not None and any(d.startswith("tb_neoncheck_") for d in standin.databases_of(branch["id"]))

    while not measuring():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)  # the script's process: check, since the script execs it
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and _no_branch_left(standin, name)
    assert not list((tmp_path / "reports").glob("*/results.json"))  # nothing partial written


def test_a_cancel_while_seeding_is_exit_130_and_goes_no_further(standin, tmp_path):
    """SIGTERM to the script before its exec, while `taskbench seed` runs under it: passed on to the
    seed, which deletes its seeding branch; the script exits 130 without starting the check."""
    scen = _scenarios(tmp_path)
    name = f"taskbench-pr-7-{tmp_path.name}-1"
    env = _env(standin, tmp_path, DB_NAME=f"tb_cancel_{uuid.uuid4().hex[:8]}")  # a parent not seeded yet
    proc = subprocess.Popen(_args(scen), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(b["name"].startswith("taskbench-seeding-") for b in list(standin.branches.values())):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)  # the script's process: bash, waiting for the seed
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and _no_branch_left(standin, name)
