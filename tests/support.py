"""What the tests share besides fixtures: paths, the tiny profile, and content checks on a database.

The tests' runs measure with ``concurrent=True`` (``--concurrent``): they share the embedded server
with whatever else measures on this machine (another suite, a `make bench`, an index search), so they
measure beside it rather than wait for the measurement lock and fail after ``--lock-wait`` (they still
hold the lock while it is free). tests/test_lock.py tests the lock itself, on a server of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg.abc import Params

from bench.catalogue.files import Catalogue
from bench.errors import EXIT_INPUT, EXIT_OK
from bench.judge.compare import Comparison
from bench.results import Cell, Results
from bench.targets import schema
from bench.targets.majors import DATA_ROOT, default_data_dir
from bench.targets.target import Target
from seed.profiles import get_profile

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
# What a check says when its calibration workload ran unalike on the two sides (other work on a shared
# machine): time is refused, exit 2. A test not about the time gate itself accepts it (``no_false_alarm``).
CALIBRATION = "calibration workload differed"
T = TypeVar("T")
# The pause before an early fail is measured again (RunOptions.confirm_pause_s), a tenth of the
# default, for the tests whose cells fail early and which are about verdicts, searches and reports,
# not about how long a burst of other work lasts: at 2 s, the worker sat idle for it 11 s a suite.
SHORT_PAUSE_S = 0.2
# The suite makes and drops about 200 databases (every run's scratch copies, the Neon stand-in's
# branches), a few hundred files each. On the disk this was measured on (ext4 without a journal) the
# kernel spent most of a CREATE DATABASE looking for an inode not recently freed (perf: ext4_create →
# recently_deleted): 0.15-0.29 s a copy of an empty database, against 0.02 s in memory. So the
# suite's servers keep their data in memory where the machine has a tmpfs with room (Linux's
# /dev/shm), in a directory of this checkout's, removed at the end of the run (conftest.py); else
# in .taskbench beside `make bench`'s. The data there is the suite's own, never measured for speed.
SHARED_MEMORY = Path("/dev/shm")
SUITE_ROOM = 2 << 30  # bytes free: the server's WAL alone grows to max_wal_size (1 GB) between checkpoints


def _suite_root() -> Path:
    # os.access is False where there is no /dev/shm (macOS), so its size is only asked of one that is
    if not (os.access(SHARED_MEMORY, os.W_OK) and shutil.disk_usage(SHARED_MEMORY).free >= SUITE_ROOM):
        return ROOT / DATA_ROOT
    checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    return SHARED_MEMORY / f"taskbench-tests-{os.getuid()}-{checkout}"


SUITE_ROOT = _suite_root()  # TASKBENCH_DATA_ROOT for every command the tests start (conftest.py)
IN_MEMORY = SUITE_ROOT.parent == SHARED_MEMORY
DATA_DIR = default_data_dir(root=SUITE_ROOT)
DATA_DIR_17 = default_data_dir(17, root=SUITE_ROOT)  # the embedded PostgreSQL 17's (the pg17 tests)
# Small enough to seed in seconds, large enough for indexes to beat scans.
TINY = replace(
    get_profile("ci", users=3, tasks_per_user=1500), conversations_per_user=(2, 4), messages_per_conversation=(20, 60)
)


def one(conn: psycopg.Connection[Any], query: str, params: Params | None = None) -> tuple[Any, ...]:
    """The row ``query`` returns: a query of a test that returns no row fails it."""
    row: tuple[Any, ...] | None = conn.execute(query, params).fetchone()
    assert row is not None, f"no row from {query!r}"
    return row


def scalar(conn: psycopg.Connection[Any], query: str, params: Params | None = None) -> Any:
    """The first column of the row ``query`` returns."""
    return one(conn, query, params)[0]


def cell_of(results: Results, scenario: str, variant: str) -> Cell:
    """The results' cell of ``scenario`` under ``variant``, which the test expects to be there."""
    cell = results.cell(scenario, variant)
    assert cell is not None, f"no cell {scenario} × {variant}"
    return cell


def content_checksums(target: Target) -> dict[str, str]:
    """One md5 per table over every row in key order: equal checksums mean identical content."""
    with schema.connect(target) as conn:
        return {
            t: scalar(conn, f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {t} t")
            for t in ("users", "tasks", "conversations", "messages")
        }


# Rows breaking a rule of the data model that the schema itself does not enforce, counted.
_VIOLATIONS = """
    SELECT
      (SELECT count(*) FROM tasks WHERE btrim(title) = '' OR length(title) > 200)
    + (SELECT count(*) FROM tasks WHERE completed_at IS NOT NULL AND NOT is_completed)
    + (SELECT count(*) FROM tasks WHERE is_completed AND completed_at IS NULL)
    + (SELECT count(*) FROM tasks WHERE updated_at < created_at)
    + (SELECT count(*) FROM tasks WHERE jsonb_typeof(tags) <> 'array')
    + (SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
       WHERE m.user_id <> c.user_id OR m.created_at < c.created_at)
    + (SELECT count(*) FROM conversations c WHERE updated_at <>
       (SELECT max(created_at) FROM messages m WHERE m.conversation_id = c.id))
"""


def constraint_violations(target: Target) -> int:
    """Rows breaking a rule of the data model that the schema itself does not enforce."""
    with schema.connect(target) as conn:
        return int(scalar(conn, _VIOLATIONS))


def cli_env(extra: dict[str, str] | None = None, unset: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment the command runs in: this one without DATABASE_URL (so that the embedded server
    is meant) or the names in ``unset``, plus ``extra``."""
    dropped = {"DATABASE_URL", *unset}
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, **(extra or {})}


def taskbench(
    *args: str, env_extra: dict[str, str] | None = None, unset: tuple[str, ...] = (), timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=cli_env(env_extra, unset),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def taskbench_started(
    *args: str, env_extra: dict[str, str] | None = None, background: bool = False
) -> subprocess.Popen[str]:
    """The command started in a process of its own, its output piped: for tests that interrupt it.
    ``background``: as a shell starts ``taskbench ... &`` in a script, with SIGINT ignored."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=cli_env(env_extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None,
    )


@dataclass(frozen=True)
class Ran:
    """What a command run in this process left: its exit code and what it wrote."""

    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _as_the_command(args: tuple[str, ...], env: dict[str, str]) -> Iterator[None]:
    """This process dressed as ``taskbench args`` started from the repository in ``env``, and
    undressed afterwards: the arguments, the environment, the working directory and the signal
    handlers ``main`` installs."""
    saved = (sys.argv, dict(os.environ), Path.cwd(), signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    sys.argv = ["taskbench", *args]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(ROOT)
    try:
        yield
    finally:
        sys.argv, environ, cwd, on_int, on_term = saved
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        signal.signal(signal.SIGINT, on_int)
        signal.signal(signal.SIGTERM, on_term)


def taskbench_here(*args: str, env_extra: dict[str, str] | None = None, unset: tuple[str, ...] = ()) -> Ran:
    """The command run in this process through the same ``main`` as the console script: for the
    refusals and one-line errors that come before any work, and commands whose process is not what is
    tested (no signal, no kill, no exit path of its own), without a new interpreter's second of
    imports each. ``taskbench`` above runs it as a user does, in a process of its own
    (tests/test_cli.py checks that both end alike)."""
    from bench.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with (
        _as_the_command(args, cli_env(env_extra, unset)),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    assert isinstance(code, int), code
    return Ran(code, stdout.getvalue(), stderr.getvalue())


@contextlib.contextmanager
def figures_left_out() -> Iterator[None]:
    """Reports written without their figures in this process (``bench.report.build.FIGURES``), for
    tests whose reports are not their subject: drawing them was a quarter of the workers' own CPU over
    a suite. The report's own tests (test_report.py, test_golden.py, test_results_formats.py,
    test_scale.py, test_load.py and test_cli.py's `bench`) draw them from every kind of run."""
    from bench.report import build  # matplotlib: not in the process that only starts the workers

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "FIGURES", {})
        yield


def one_line_error(proc: subprocess.CompletedProcess[str] | Ran) -> str:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("taskbench: error: ")
    return lines[0]


def committed_scenarios(root: Path) -> Path:
    """A repository at ``root`` whose one commit holds the shipped scenarios under ``scenarios/``."""
    shutil.copytree(SCENARIOS, root / "scenarios")
    for args in (["init", "-q"], ["add", "scenarios"], ["commit", "-qm", "scenarios"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True, capture_output=True
        )
    return root / "scenarios"


def edited_catalogue(root: Path, edits: dict[str, Callable[[str], str]]) -> Catalogue:
    """The catalogue of ``edited_scenarios``."""
    from bench.catalogue.files import load_catalogue

    return load_catalogue(edited_scenarios(root, edits))


def edited_scenarios(root: Path, edits: dict[str, Callable[[str], str]]) -> Path:
    """The shipped scenarios copied under ``root`` with each file (relative to scenarios/) passed
    through its edit; an edit that changes nothing fails, so a test cannot go on testing nothing."""
    copy = root / f"scenarios-{len(list(root.glob('scenarios-*')))}"
    shutil.copytree(SCENARIOS, copy)
    for relative, edit in edits.items():
        path = copy / relative
        text = path.read_text()
        assert edit(text) != text, f"the edit no longer changes {relative}"
        path.write_text(edit(text))
    return copy


# An initplan that counts for ever: no volatile function, nothing but the canonical tables.
_FOREVER = "(WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r)"


def never_ending(text: str) -> str:
    """A scenario file's text with a condition added that never finishes evaluating (an edit for
    ``edited_scenarios``): its first ``user_id = :user_id`` must first count to infinity."""
    return text.replace("user_id = :user_id", f"id > {_FOREVER} AND user_id = :user_id", 1)


def slowed(text: str) -> str:
    """A scenario file's text with an always-true, CPU-bound condition before its first WHERE
    clause: the same rows, about 4 ms more per execution. 60,000 terms stay in work_mem (100,000
    spilled to disk: 19 ms a sample); 30,000 (2 ms) was missed by a check beside other suites."""
    return text.replace("WHERE ", "WHERE (SELECT sum(i) FROM generate_series(1, 60000) AS s(i)) > 0 AND ", 1)


# Calls a write scenario may not make (state its rollback would not take back: a file, an advisory
# lock, a notification), each with the function the refusal names.
HOSTILE_WRITE_CALLS = [
    ("pg_read_file('/etc/passwd')", "pg_read_file"),
    ("CASE WHEN pg_try_advisory_lock(42) THEN title END", "pg_try_advisory_lock"),
    ("pg_notify('x', title)", "pg_notify"),
]


def calling(call: str) -> Callable[[str], str]:
    """An edit for ``edited_scenarios``: retag_task's UPDATE sets its title to ``call`` too."""
    return lambda text: text.replace("SET ", f"SET title = {call}, ", 1)


def judged(check: Callable[[], tuple[T, Comparison]]) -> tuple[T, Comparison]:
    """A check whose point is the time gate's judgement, run once more if the gate refused it only
    because the two sides' calibration workload ran unalike. This machine's speed can move within
    one check, whatever the tests' lock keeps out (seen: server_cpu ×0.73 between the sides while
    nothing else ran); twice in a row is what the test rules out. A time finding is never retried."""
    return _once_more(check, lambda done: _calibration_refused(done[1]))


def judged_command(run: Callable[[], Ran]) -> Ran:
    """``judged`` for a check run as a command: run once more if it exited 2 only because the two
    sides' calibration workload ran unalike (any regression is exit 1)."""
    return _once_more(run, lambda ran: ran.returncode == EXIT_INPUT and CALIBRATION in ran.stdout)


def _once_more(check: Callable[[], T], refused: Callable[[T], bool]) -> T:
    first = check()
    return check() if refused(first) else first


def _calibration_refused(result: Comparison) -> bool:
    """Whether the gate refused to judge time because the two sides' calibration ran unalike."""
    return result.time_refused is not None and CALIBRATION in result.time_refused


def no_false_alarm(result: Comparison) -> None:
    """A check of an unchanged cell: no regression, and time judged (exit 0) — or, where the two sides'
    calibration workload ran unalike (other work on the machine, whatever the tests' lock keeps
    out), time refused as the gate refuses it (exit 2, saying so): "cannot judge" is then the right
    answer, not a false alarm. For tests whose point is not the time gate's judgement itself."""
    assert not result.regressions, result.findings
    if result.time_refused is None:
        assert result.exit_code == EXIT_OK, result.findings
    else:
        assert _calibration_refused(result) and result.exit_code == EXIT_INPUT, result.time_refused
