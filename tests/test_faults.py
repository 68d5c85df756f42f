"""The fault suite: each test reproduces a fault a user can meet (issue 23's probes) and asserts what
they see and what is left behind — the exit code, the one-line message, and the server processes,
databases and files that remain (none that taskbench made).

The kill -9 tests start an embedded server of their own (about 1.5 s for initdb and start): only
then can "no server left running" be checked, since the suite's own server runs for as long as the
suite does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from bench.targets import roles
from bench.targets.embedded import HANDLE_FILE, find_embedded
from bench.targets.server import stop_server
from tests.support import ROOT, SUITE_ROOT, cli_env, taskbench, taskbench_here, taskbench_started

DB = "tbfault"
# A process of its own lists the databases, as a taskbench command would: it starts the server and,
# being its last user, stops it again when it exits.
_LIST_DATABASES = """
import sys, psycopg
from pathlib import Path
from bench.targets.embedded import start_embedded
with psycopg.connect(start_embedded(Path(sys.argv[1])).render_as_string(hide_password=False)) as conn:
    names = conn.execute("SELECT datname FROM pg_database UNION ALL SELECT rolname FROM pg_roles")
    print("\\n".join(name for (name,) in names))
"""


@pytest.fixture
def data_dir():
    """The data directory of a server of the test's own; stopped and removed afterwards whatever the
    test left. Not under tmp_path: as root the server runs as another user, which must reach the
    directory, and every pytest session that starts makes /tmp/pytest-of-<user> private again."""
    workdir = Path(tempfile.mkdtemp(prefix="tbfault-", dir=SUITE_ROOT))
    workdir.chmod(0o755)
    yield workdir / "pgdata"
    try:
        stop_server(workdir / "pgdata", force=True)
    finally:
        shutil.rmtree(workdir)


def postmasters(data_dir: Path) -> list[int]:
    """The PostgreSQL servers running on ``data_dir``."""
    return [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and str(data_dir) in (p.info["cmdline"] or [])
    ]


def handle_pids(data_dir: Path) -> list[int]:
    pids: list[int] = json.loads((data_dir / HANDLE_FILE).read_text())
    return pids


def databases(data_dir: Path) -> list[str]:
    """The databases on the server of ``data_dir``, and its roles."""
    proc = subprocess.run(
        [sys.executable, "-c", _LIST_DATABASES, str(data_dir)],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.split()


def wait_for(sql: str, data_dir: Path, command: subprocess.Popen[str] | None = None, timeout: float = 60) -> object:
    """The first value of ``sql`` on the server of ``data_dir`` once it is true (polled), while
    ``command`` is still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if command is not None and command.poll() is not None:
            raise AssertionError(f"the command ended first (exit {command.returncode}): {command.communicate()[1]}")
        server = find_embedded(data_dir)
        if server.url is not None:
            with psycopg.connect(server.url.render_as_string(hide_password=False), autocommit=True) as conn:
                row = conn.execute(sql).fetchone()
            if row and row[0]:
                return row[0]
        time.sleep(0.05)
    raise AssertionError(f"never true within {timeout} s: {sql}")


def killed(proc: subprocess.Popen[str]) -> int:
    proc.kill()  # SIGKILL: no handler, no atexit, no finally runs
    proc.wait(timeout=30)  # reaped: no zombie stands in for a live process
    return proc.pid


def seeded_data_dir(data_dir: Path) -> None:
    # as small as a dataset of the ci profile's shape can usefully be: what is tested is what the processes leave
    proc = taskbench(
        *["seed", "--data-dir", str(data_dir), "--db-name", DB, "--profile", "ci", "--users", "2"],
        *["--tasks-per-user", "400", "--quiet"],
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert postmasters(data_dir) == [] and handle_pids(data_dir) == []  # the seed stopped the server it started


def assert_nothing_left(data_dir: Path) -> None:
    assert postmasters(data_dir) == []
    assert not (data_dir / "postmaster.pid").exists()
    assert handle_pids(data_dir) == []


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_kill_9_of_a_run_leaves_nothing_after_the_next_command(data_dir, tmp_path):
    seeded_data_dir(data_dir)
    run = taskbench_started(
        "run",
        "--data-dir",
        str(data_dir),
        "--db-name",
        DB,
        "-v",
        "baseline",
        "-v",
        "composite",
        "--concurrent",
        "-q",
        "--reports-dir",
        str(tmp_path / "reports"),
    )
    try:
        copy = wait_for(f"SELECT max(datname) FROM pg_database WHERE starts_with(datname, '{DB}_run_')", data_dir, run)
        role = wait_for(
            f"SELECT max(rolname) FROM pg_roles WHERE starts_with(rolname, '{roles.PREFIX}')", data_dir, run
        )
    finally:
        pid = killed(run)
    # The fault as it was: the server runs on with no owner, the dead pid listed, the copy there.
    assert postmasters(data_dir) and handle_pids(data_dir) == [pid]
    # Its sessions end as the server notices the closed sockets; then the copy's lock is gone.
    wait_for(f"SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = '{copy}'", data_dir)

    # `server status` and `server stop` start no server and do nothing at exit: they run in this process
    status = taskbench_here("server", "status", "--data-dir", str(data_dir))
    assert status.returncode == 0, status.stderr
    assert f"{data_dir}: running, pid {postmasters(data_dir)[0]}" in status.stdout
    assert f"dead but still listed: {pid}\n" in status.stdout
    assert f"scratch copies of dead runs: {copy}\n" in status.stdout
    assert f"samples' roles of dead runs: {role}\n" in status.stdout
    assert handle_pids(data_dir) == [pid]  # status changes nothing

    again = taskbench(
        "run",
        "--data-dir",
        str(data_dir),
        "--db-name",
        DB,
        "-s",
        "task_by_id",
        "-v",
        "baseline",
        "--cold-samples",
        "0",
        "--stability-rounds",
        "0",
        "--concurrent",
        "-q",
        "--reports-dir",
        str(tmp_path / "reports"),
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert_nothing_left(data_dir)  # the next run reused the server and, its last user, stopped it
    left = databases(data_dir)
    assert DB in left and not [name for name in left if "_run_" in name or name.startswith(roles.PREFIX)]
    assert_nothing_left(data_dir)


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_kill_9_of_a_seed_is_not_taken_as_seeded_and_server_stop_leaves_nothing(data_dir, tmp_path):
    seed = taskbench_started(
        "seed", "--data-dir", str(data_dir), "--db-name", DB, "--profile", "ci", "--tasks-per-user", "40000"
    )
    try:  # killed while a table is being loaded
        wait_for(f"SELECT count(*) FROM pg_stat_progress_copy WHERE datname = '{DB}'", data_dir, seed)
    finally:
        pid = killed(seed)
    assert postmasters(data_dir) and handle_pids(data_dir) == [pid]

    status = taskbench_here("server", "status", "--data-dir", str(data_dir))
    assert status.returncode == 0 and f"dead but still listed: {pid}\n" in status.stdout

    stop = taskbench_here("server", "stop", "--data-dir", str(data_dir))
    assert stop.returncode == 0, stop.stderr
    assert f"removed dead processes from its list: {pid}\n" in stop.stdout
    assert f"{data_dir}: stopped (pid " in stop.stdout
    assert_nothing_left(data_dir)

    run = taskbench(
        "run", "--data-dir", str(data_dir), "--db-name", DB, "--reports-dir", str(tmp_path / "reports"), timeout=60
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 3 and "Traceback" not in run.stderr and len(lines) == 2, run.stderr
    assert lines[0].startswith("target: embedded ")  # then the one line:
    assert lines[1] == f"taskbench: error: database '{DB}' holds no complete dataset: run `taskbench seed` first"
    assert_nothing_left(data_dir)
