"""Faults around what taskbench writes and says (issue 23): an output directory that cannot take the
results (a file in its way, a read-only mount, a full disk) is refused before anything is measured;
a disk that fills while measuring loses nothing (the results go to the temporary directory, named in
the error, and no partial file stays); every error is one line (usage errors, results files of the
wrong shape, a server's HINT) and never shows a password. Real processes, the real embedded server,
real file systems: a small or read-only tmpfs mounted in a user namespace of the command's own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bench import results as results_io
from bench.errors import EXIT_DATABASE, EXIT_INPUT
from bench.output import MIN_FREE_MB
from tests.support import ROOT, SCENARIOS, cli_env, one_line_error, scalar, taskbench_here
from tests.test_cli import slow_catalogue

PASSWORD = "s3cretpw"
# the newest committed matrix run (results_v<N>.json)
MATRIX_RUNS = {int(p.stem[9:]): p for p in (ROOT / "tests" / "data").glob("results_v*.json") if p.stem[9:].isdigit()}
FIXTURE = MATRIX_RUNS[max(MATRIX_RUNS)]


def _namespaces() -> str | None:
    """Why a user namespace with a mount of its own cannot be made here (None: it can)."""
    if shutil.which("unshare") is None:
        return "no unshare(1)"
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"no user namespaces here: {probe.stderr.strip()}"


needs_namespace = pytest.mark.skipif(_namespaces() is not None, reason=str(_namespaces()))


def on_tmpfs(
    mount: Path, size_mb: int, *args: str, tmpdir: Path, read_only: bool = False, before: str = "", after: str = ""
) -> subprocess.Popen[str]:
    """``taskbench args`` with a tmpfs of ``size_mb`` mounted at ``mount`` in a mount namespace of its
    own, as an unprivileged user can; ``before``: shell run there first (then the mount is made
    read-only if asked); ``after``: shell run there once the command ended (its exit code is kept).
    The system's temporary directory is ``tmpdir``, off the tmpfs."""
    mount.mkdir(parents=True, exist_ok=True)
    script = " && ".join(
        [
            f'mount -t tmpfs -o size={size_mb}m taskbench-test "$0"',
            before or ":",
            'mount -o remount,ro "$0"' if read_only else ":",
        ]
    )
    script += f' || exit 99; "$@"; rc=$?; {after or ":"}; exit $rc'
    return subprocess.Popen(
        ["unshare", "-rm", "sh", "-c", script, str(mount), sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=cli_env({"TMPDIR": str(tmpdir)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _results(tmp: Path) -> Path:
    run_dir = tmp / "a-run"
    run_dir.mkdir(parents=True)
    shutil.copy(FIXTURE, run_dir / "results.json")
    return run_dir


# Every command that writes results or a report, with its output directory given as ``where``.
WRITERS = {
    "run": lambda where, tmp: ["run", "--reports-dir", where],
    "bench": lambda where, tmp: ["bench", "--db-name", "tb_never_made", "--reports-dir", where],
    "check": lambda where, tmp: ["check", "--reports-dir", where],
    "scale": lambda where, tmp: ["scale", "--reports-dir", where],
    "load": lambda where, tmp: ["load", "--reports-dir", where],
    "advise": lambda where, tmp: ["advise", "--reports-dir", where],
    "merge": lambda where, tmp: ["merge", str(_results(tmp)), "--out", where],
    "baseline": lambda where, tmp: ["baseline", "save", str(_results(tmp)), "--reason", "r", "--to", f"{where}/b.json"],
    "report": lambda where, tmp: ["report", str(_results(Path(where)))],
}


@pytest.mark.server  # it asks the embedded server that nothing was made (tests/conftest.py)
@pytest.mark.parametrize("command", [c for c in WRITERS if c != "report"])  # report: its run's own directory
def test_an_output_directory_with_a_file_in_its_way_is_refused_before_any_work(command, tmp_path):
    (tmp_path / "taken").write_text("a file where the directory should be")
    started = time.monotonic()
    proc = taskbench_here(*WRITERS[command](str(tmp_path / "taken" / "reports"), tmp_path))
    # one line and nothing before it: no target opened, nothing seeded or measured
    assert proc.returncode == EXIT_INPUT and "is not a directory" in one_line_error(proc), proc.stderr
    assert time.monotonic() - started < 20
    with psycopg.connect(_maintenance(), autocommit=True) as conn:
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'tb_never_made'").fetchall()


def _maintenance() -> str:
    from bench.targets.target import open_target
    from tests.support import DATA_DIR

    return open_target(None, "postgres", DATA_DIR).libpq_conninfo()


def test_the_readme_states_the_free_space_needed():
    assert f"less than {MIN_FREE_MB} MB free" in (ROOT / "README.md").read_text()


@needs_namespace
@pytest.mark.parametrize(
    "read_only, size_mb, said",
    [
        (True, MIN_FREE_MB * 2, "Read-only file system"),
        (False, 1, f"MB free on its disk, taskbench needs {MIN_FREE_MB} MB"),
    ],
    ids=["read-only", "full"],
)
@pytest.mark.parametrize("command", ["run", "bench", "report"])
def test_a_read_only_or_full_output_disk_is_refused_before_any_work(command, read_only, size_mb, said, tmp_path):
    disk = tmp_path / "disk"
    if command == "report":  # the run's own directory, on that disk
        args, before = ["report", str(disk)], f'cp {FIXTURE} "$0/results.json"'
    else:
        args, before = WRITERS[command](str(disk / "reports"), tmp_path), ""
    proc = on_tmpfs(disk, size_mb, *args, tmpdir=tmp_path, read_only=read_only, before=before)
    _, stderr = proc.communicate(timeout=60)
    lines = stderr.strip().splitlines()
    assert proc.returncode == EXIT_INPUT and len(lines) == 1 and said in lines[0], stderr
    assert lines[0].startswith(f"taskbench: error: cannot write in {disk}")


@needs_namespace
def test_a_disk_that_fills_while_measuring_loses_nothing(neon_settings_server, tmp_path):
    """bench seeds and measures with room on its disk, which fills meanwhile (another process writes
    a file until ENOSPC): the results go to the temporary directory, named in the one-line error, and
    the reports directory holds no run directory and no partial file. On the second server: in the
    namespace the embedded one's socket, in its 0700 data directory, cannot be reached."""
    disk, name = tmp_path / "disk", f"tbfull_{uuid.uuid4().hex[:8]}"
    server = neon_settings_server.render_as_string(hide_password=False)
    scenarios = slow_catalogue(tmp_path / "scenarios")
    proc = on_tmpfs(
        disk,
        MIN_FREE_MB + 8,
        *["bench", "--database-url", server, "--data-dir", str(tmp_path), "--db-name", name, "--profile", "ci"],
        *["--users", "2", "--tasks-per-user", "400", "--scenarios-dir", str(scenarios)],
        *["-s", "pairs", "-v", "composite"],
        *["--cell-budget", "4", "--cold-samples", "0", "--stability-rounds", "0", "--concurrent", "-q"],
        *["--reports-dir", str(disk / "reports")],
        tmpdir=tmp_path,
        after=f'echo "left: $(find {disk} -mindepth 1 -printf "%P\\n" | sort | tr "\\n" " ")"',
    )
    try:
        with psycopg.connect(server, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            copies = ("SELECT count(*) FROM pg_database WHERE datname LIKE %s", (f"{name}\\_%",))
            while not scalar(conn, *copies):  # seeded: measuring on a scratch copy
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.05)
            # the namespace's tmpfs, seen through the command's own root
            with pytest.raises(OSError, match="No space left"), open(f"/proc/{proc.pid}/root{disk}/filler", "wb") as f:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    line = stderr.strip().splitlines()[-1]
    assert proc.returncode == EXIT_INPUT and "Traceback" not in stderr, stderr
    assert line.startswith(f"taskbench: error: cannot write {disk}/reports/") and "No space left on device" in line
    rescued = Path(line.split("the results were written to ")[1].removesuffix(" instead"))
    assert rescued.parent.parent == tmp_path and rescued.name == "results.json"
    assert [c.scenario for c in results_io.load(rescued).cells] == ["pairs"]  # nothing measured is lost
    assert stdout.strip().splitlines()[-1] == "left: filler reports"  # no run directory, no partial file


def _set(path: str, value: object):
    def edit(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value

    return edit


@pytest.mark.parametrize(
    "field, value",
    [
        ("cells.0.samples", "fast"),  # a string where an object is expected
        ("cells.0.samples.client_ms", 5),  # a number where a list is expected
        ("cells.0.sla_ms", "fifty"),
        ("dataset.row_counts", [1, 2]),
        ("created_at", "yesterday"),
    ],
)
@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_results_file_with_a_wrong_type_is_one_line_naming_the_field_and_the_file(command, field, value, tmp_path):
    raw = json.loads(FIXTURE.read_text())
    _set(field, value)(raw)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(raw))
    proc = taskbench_here(command, str(path), *([str(FIXTURE)] if command == "compare" else []))
    line = one_line_error(proc)
    assert proc.returncode == EXIT_INPUT and f"{path}: invalid results file: {field}: " in line, line


@pytest.mark.parametrize(
    "args, said",
    [
        (["run", "--no-such-option"], "No such option: --no-such-option (see taskbench run --help)"),
        (["compare"], "Missing argument 'baseline'. (see taskbench compare --help)"),
        (["run", "--cell-budget", "soon"], "Invalid value for '--cell-budget'"),
        (["no-such-command"], "No such command 'no-such-command'. (see taskbench --help)"),
        (["baseline", "save"], "Missing argument 'run_dir'. (see taskbench baseline save --help)"),
        (["report", "a", f"postgresql://u:{PASSWORD}@h/db"], "unexpected extra argument"),
    ],
    ids=["unknown-option", "missing-argument", "bad-value", "unknown-command", "sub-command", "extra-with-password"],
)
def test_a_usage_error_is_one_line_and_exit_2(args, said):
    proc = taskbench_here(*args)
    assert proc.returncode == EXIT_INPUT and said in one_line_error(proc)
    assert PASSWORD not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "url, code, said",
    [
        (f"mysql://u:{PASSWORD}@h/db", EXIT_INPUT, "must be a postgresql:// URL, not mysql://"),
        (f"http://u:{PASSWORD}@h/db", EXIT_INPUT, "must be a postgresql:// URL, not http://"),
        (f"u:{PASSWORD}@h/db", EXIT_INPUT, "not a valid URL"),
        (f"postgresql://u:{PASSWORD}@h:port/db", EXIT_INPUT, "port is not a number"),
        (f"postgresql://u:{PASSWORD}@127.0.0.1:1/db", EXIT_DATABASE, "cannot connect to postgresql://u:***@"),
        (f"postgresql://u@127.0.0.1:1/db?password={PASSWORD}", EXIT_DATABASE, "cannot connect"),
    ],
    ids=["mysql", "http", "no-scheme", "bad-port", "unreachable", "password-in-query"],
)
def test_a_bad_or_unreachable_url_is_one_line_without_its_password(url, code, said):
    proc = taskbench_here("run", "--database-url", url)
    assert proc.returncode == code and said in one_line_error(proc), proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr


def test_a_server_error_with_a_hint_is_one_line(seeded, tmp_path):
    """A variant statement the server refuses with a HINT: line (no default operator class for a GIN
    index on an integer): its first line only, exit 2, and the variant left nothing behind."""
    scen = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scen)
    (scen / "variants" / "hinted.toml").write_text(
        'description = "refused by the server"\nstatements = ["CREATE INDEX tb_hinted ON tasks USING gin (priority)"]\n'
    )
    proc = taskbench_here(
        *["run", "--db-name", seeded.database, "--scenarios-dir", str(scen), "-s", "task_by_id", "-v", "hinted"],
        *["--cold-samples", "0", "--stability-rounds", "0", "--concurrent", "-q", "--reports-dir", str(tmp_path / "r")],
    )
    line = proc.stderr.strip().splitlines()[-1]  # after the "target: ..." line
    assert proc.returncode == EXIT_INPUT and "HINT" not in proc.stderr and "Traceback" not in proc.stderr
    assert line.startswith("taskbench: error: variant 'hinted': a statement failed: ") and "operator class" in line
