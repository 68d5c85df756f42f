"""The command as a user runs it: real exit codes, one-line errors, and real processes where the process
is what is tested (what it imports, how it ends on a signal). The other commands run in this process
(``taskbench_here``: the same ``main``, without a new interpreter's imports, a few seconds each where
no bytecode is cached); the first test shows both ways end alike."""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from bench.errors import EXIT_INTERRUPTED, EXIT_OK
from bench.targets.majors import DATA_ROOT_ENV
from bench.targets.schema import dataset_info
from bench.targets.target import drop_database, open_target
from tests.support import (
    DATA_DIR,
    ROOT,
    SCENARIOS,
    SUITE_ROOT,
    cli_env,
    committed_scenarios,
    figures_left_out,
    judged_command,
    one_line_error,
    scalar,
    taskbench,
    taskbench_here,
    taskbench_started,
)


@pytest.mark.parametrize(
    "args", [("run", "--database-url", "mysql://x:s3cretpw@h/db"), ("report", "no-such-run"), ("run", "--bad")]
)
def test_a_refusal_in_this_process_is_what_a_user_sees_from_the_command(args):
    ran, started = taskbench_here(*args), taskbench(*args)
    assert (ran.returncode, ran.stdout, ran.stderr) == (started.returncode, started.stdout, started.stderr)
    assert ran.returncode == 2 and one_line_error(ran)


def test_unreachable_database_is_one_line_exit_3_and_hides_the_password():
    proc = taskbench_here("seed", env_extra={"DATABASE_URL": "postgresql://bob:s3cretpw@127.0.0.1:1/app"})
    assert proc.returncode == 3
    line = one_line_error(proc)
    assert "cannot connect" in line and "s3cretpw" not in proc.stderr + proc.stdout


# A Ctrl-C landing while Python runs a weakref callback: Python only prints it ("Exception ignored")
# and the command goes on, as a `taskbench report` once did, exiting 0. Here the callback raises it
# for certain, inside a command registered for the test.
_SWALLOWED = """
import importlib, sys, weakref
from bench.cli import main
command = importlib.import_module("bench.cli.app").command

@command("swallowed")
def swallowed() -> None:
    class Thing:
        pass
    thing = Thing()
    def interrupt(_ref):
        raise KeyboardInterrupt
    ref = weakref.ref(thing, interrupt)
    del thing
    print("finished")

sys.argv = ["taskbench", "swallowed"]
main()
"""


def test_an_interrupt_python_could_only_print_still_ends_the_command_as_interrupted():
    ran = subprocess.run(
        [sys.executable, "-c", _SWALLOWED], cwd=ROOT, env=cli_env(), capture_output=True, text=True, check=False
    )
    assert ran.returncode == EXIT_INTERRUPTED and ran.stdout == "finished\n"
    assert "interrupted" in one_line_error(ran) and "Exception ignored" not in ran.stderr


# What a taskbench process imports (issue 25), judged by the modules it holds when the command ends,
# not by time: every command module is imported to register its command, so each imports at its top
# only typer, bench.cli and the option modules (bench.cli's docstring); the library comes in the body
# of the command that uses it.
_IMPORTED = """
import sys
from bench.cli import main
sys.argv = ["taskbench", *sys.argv[1:]]
try:
    main()
finally:
    print(*(name for name, module in sys.modules.items() if not hasattr(module, "__path__")), file=sys.stderr)
"""
# The library modules a command may hold before its body runs: the option modules (``*.options``) and these.
LIGHT = {"bench.errors", "bench.output", "bench.progress", "bench.targets.majors", "seed.profiles"}
# What --help has no use for (pydantic is not here: typer imports it itself, to convert the options' values).
ANALYSIS = {"numpy", "scipy", "pandas", "matplotlib", "jinja2", "pglast"}  # statistics, figures, reports, SQL parser
CLIENTS = {"asyncpg", "psycopg", "sqlalchemy", "sqlmodel", "httpx"}  # the drivers, the models, the Neon API
# What a seed has no use for: the catalogue, measuring, judging, the kinds of run, reports, advice, merging.
STAGES = (
    *(f"bench.{stage}." for stage in ("catalogue", "measure", "judge", "runs", "report", "advise")),
    "bench.merge",
)


def _imported(*args: str) -> tuple[set[str], set[str]]:
    """The project's modules (bench.cli and the option modules aside) and the third-party packages a
    taskbench process has imported when the command ends."""
    ran = subprocess.run(
        [sys.executable, "-c", _IMPORTED, *args], cwd=ROOT, env=cli_env(), capture_output=True, text=True, check=False
    )
    modules = set(ran.stderr.splitlines()[-1].split())
    ours = {m for m in modules if m.startswith(("bench.", "seed.")) and not m.startswith("bench.cli.")}
    return {m for m in ours if not m.endswith(".options")}, {m.split(".")[0] for m in modules}


@pytest.mark.parametrize("args", [("--help",), ("seed", "--help"), ("run", "--help"), ("check", "--help")])
def test_help_imports_none_of_the_library(args):
    ours, packages = _imported(*args)
    assert ours <= LIGHT and not packages & (ANALYSIS | CLIENTS)


# A handler registered before bench.cli is imported runs after bench.cli's own (atexit runs them last
# registered first): it sees what Python's shutdown will see.
_AT_EXIT = """
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count()))
from bench.cli import main
sys.argv = ["taskbench", "--help"]
main()
"""


def test_a_command_leaves_what_its_imports_made_out_of_the_shutdowns_garbage_collection():
    # Python's shutdown would walk every object the imports made (0.3 s of `taskbench seed`'s 3,
    # measured by `taskbench seed-bench` as a whole process): the process freezes them at exit.
    ran = subprocess.run([sys.executable, "-c", _AT_EXIT], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert ran.returncode == 0 and "Usage: taskbench" in ran.stdout, ran.stderr
    assert int(ran.stdout.splitlines()[-1].removeprefix("frozen at exit: ")) > 10_000


def test_seed_imports_the_seeding_path_only():
    # refused by the server: as far as a seed goes before it makes rows
    ours, packages = _imported("seed", "--database-url", "postgresql://x@127.0.0.1:1/x")
    assert "bench.targets.provision" in ours and not {m for m in ours if m.startswith(STAGES)}
    # the seeder's generators use numpy and pandas; the Neon client (httpx) is for --target neon only
    assert not packages & ((ANALYSIS - {"numpy", "pandas"}) | {"httpx"})


@pytest.mark.server
def test_a_command_finds_its_embedded_servers_in_the_data_root_its_environment_names():
    # the suite's own root (tests/support.py), passed on to every command as TASKBENCH_DATA_ROOT
    status = taskbench("server", "status")
    assert status.returncode == EXIT_OK and f"embedded PostgreSQL {DATA_DIR.resolve()}: " in status.stdout
    assert os.environ[DATA_ROOT_ENV] == str(SUITE_ROOT)


def test_malformed_scenario_file_is_exit_2(tmp_path):
    scen = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scen)
    (scen / "queries" / "bad.toml").write_text("sla_class = [")
    proc = taskbench_here("run", "--scenarios-dir", str(scen))
    assert proc.returncode == 2 and "bad.toml" in one_line_error(proc)


def test_a_scenario_whose_sql_the_server_rejects_is_exit_2_naming_it(seeded, tmp_path):
    scen = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scen)
    query = scen / "queries" / "task_by_id.toml"
    query.write_text(query.read_text().replace("is_completed, created_at", "is_done, created_at"))
    proc = taskbench_here(
        "run",
        "--scenarios-dir",
        str(scen),
        "--db-name",
        seeded.database,
        "-s",
        "task_by_id",
        "-v",
        "baseline",
        "--cold-samples",
        "0",
        "--stability-rounds",
        "0",
        "--concurrent",
        "--reports-dir",
        str(tmp_path / "reports"),
        "--quiet",
    )
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]  # after the "target: ..." line
    assert proc.returncode == 2 and line.startswith("taskbench: error: scenario 'task_by_id'") and "is_done" in line
    assert not (tmp_path / "reports").exists()


def test_unknown_variant_is_exit_2():
    proc = taskbench_here("run", "--variant", "nope")
    assert proc.returncode == 2 and "unknown variant 'nope'" in one_line_error(proc)


def test_unreadable_results_file_is_exit_2(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text('{"schema_version": 1, "run_id": ')
    for args in (("report", str(bad)), ("compare", str(bad), str(bad)), ("report", str(tmp_path / "none"))):
        proc = taskbench_here(*args)
        assert proc.returncode == 2, args
        one_line_error(proc)
    bad.write_text('{"schema_version": 99}')
    assert "schema_version 99" in one_line_error(taskbench_here("report", str(bad)))


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_foreign_database_is_refused_with_exit_3():
    name = f"tbforeign_{uuid.uuid4().hex[:8]}"
    target = open_target(None, name, DATA_DIR)
    try:
        import psycopg

        with psycopg.connect(target.libpq_conninfo(), autocommit=True) as conn:
            conn.execute("CREATE TABLE invoices (id int)")
        proc = taskbench_here("seed", "--db-name", name, "--profile", "ci")
        assert proc.returncode == 3 and "did not create" in one_line_error(proc)
        with psycopg.connect(target.libpq_conninfo(), autocommit=True) as conn:
            tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert tables == ["invoices"]
    finally:
        drop_database(target, name)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports")
    name = f"tbcli_{uuid.uuid4().hex[:8]}"
    # the two variants the tests below read (the check measures them again): every phase of every cell
    proc = taskbench_here(
        "bench",
        "--db-name",
        name,
        "--profile",
        "ci",
        "--users",
        "2",
        "--tasks-per-user",
        "400",
        "-s",
        "recent_tasks",
        "-s",
        "last_messages",
        "-v",
        "baseline",
        "-v",
        "composite",
        "--concurrent",
        "--reports-dir",
        str(reports),
    )
    yield proc, reports, name
    drop_database(open_target(None, name, DATA_DIR), name)


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_bench_seeds_runs_and_reports(bench_run):
    proc, reports, _ = bench_run
    assert proc.returncode == 0, proc.stderr
    run_dir = (reports / "latest").resolve()
    for name in ("results.json", "summary.md", "latency.png"):
        assert (run_dir / name).stat().st_size > 0
    assert "recent_tasks" in (run_dir / "summary.md").read_text()
    # Each cell's verdict as it was reached, in the terminal too; a pass names every class's
    line = next(line for line in proc.stdout.splitlines() if "recent_tasks × baseline: " in line)
    assert line.count("pass at n = ") == 2 and " — power users" in line and " — ordinary users" in line, line
    # without a terminal, progress names the phase under way, the cold and plan-stability passes too
    for phase in ("warm-up and samples", "cold samples", "plan stability"):
        assert f"measure cells · composite: {phase}: " in proc.stderr, proc.stderr
    assert ", ETA " in proc.stderr
    assert (run_dir / "latency.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_run_measures_the_profile_it_is_given_and_quiet_says_one_line(bench_run, tmp_path):
    _, _, name = bench_run  # seeded with the ci profile's options overridden: another dataset
    quick = ["--cold-samples", "0", "--stability-rounds", "0", "--concurrent", "-q", "--reports-dir", str(tmp_path)]
    args = ["run", "--db-name", name, "-s", "recent_tasks", "-v", "baseline", *quick]
    refused = taskbench_here(*args, "--profile", "ci")
    assert refused.returncode == 3 and not list(tmp_path.iterdir()), refused.stderr
    (error,) = [line for line in refused.stderr.splitlines() if line.startswith("taskbench: error: ")]
    assert "not the ci profile's" in error and "run `taskbench seed --profile ci`" in error
    done = taskbench_here(*args)  # without --profile: whichever dataset is seeded there
    assert done.returncode == 0, done.stderr
    # -q: no line per cell (stdout), one summary line
    assert done.stdout == "" and [line[:9] for line in done.stderr.splitlines() if " cells: " in line] == ["1 cells: "]


def test_neon_options_have_a_help_panel_of_their_own():
    shown = taskbench_here("run", "--help", env_extra={"COLUMNS": "200"}).stdout
    options, neon = shown.split("Neon (--target neon)")
    assert "--neon-compute" in neon and "--pooled" in neon and "--neon-api-url" in neon
    assert "--neon" not in options and "--pooled" not in options and "--db-name" in options


def test_compare_cli_identical_run_exits_0_and_writes_markdown(bench_run, tmp_path):
    _, reports, _ = bench_run
    md = tmp_path / "compare.md"
    latest = str(reports / "latest")
    proc = taskbench_here("compare", latest, latest, "--markdown", str(md))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 regression(s)" in md.read_text()


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
@pytest.mark.alone  # the check's time gate: not beside another xdist worker (tests/workers.py)
@figures_left_out()  # the gate is the subject: no figures drawn in the window it runs alone
def test_check_cli_measures_the_baselines_cells_again_and_exits_0(bench_run, tmp_path):
    _, reports, name = bench_run
    md = tmp_path / "check.md"
    scenarios = committed_scenarios(tmp_path / "repo")  # "before": the scenarios as the repository's HEAD holds them
    proc = judged_command(
        lambda: taskbench_here(
            "check",
            str(reports / "latest"),
            "--scenarios-dir",
            str(scenarios),
            "--before-ref",
            "HEAD",
            "-s",  # one of the baseline's scenarios, under both its variants: the window nothing runs beside is short
            "recent_tasks",
            "-v",
            "baseline",
            "-v",
            "composite",
            "--db-name",
            name,
            "--cold-samples",
            "0",
            "--stability-rounds",
            "0",
            "--quiet",
            "--concurrent",
            "--reports-dir",
            str(tmp_path / "check"),
            "--markdown",
            str(md),
        )
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = md.read_text()
    assert "0 regression(s)" in summary and "### Drift since the baseline" in summary
    assert (tmp_path / "check" / "latest" / "results.json").exists()


PAIRS_FROM = "FROM tasks a, tasks b"  # the slow scenario's, as its SQL reaches the server


def slow_catalogue(directory):
    """The shipped catalogue plus one scenario that takes seconds to pass: its time grows with the square of
    the user's tasks (~0.1 s for a power user of the tiny dataset) and its SLA is far above that."""
    shutil.copytree(SCENARIOS, directory)
    sla = directory / "sla.toml"
    sla.write_text(sla.read_text().replace("[classes]", "[classes]\nslow = 10000"))
    (directory / "queries" / "pairs.toml").write_text(
        f'sla_class = "slow"\nsql = "SELECT count(*) {PAIRS_FROM} WHERE a.user_id = :user_id '
        'AND b.user_id = :user_id AND a.id % 50 = 0"\n[params]\nuser_id = "user"\n'
    )
    return directory


@dataclass(frozen=True)
class Interruptible:
    """A long command to interrupt: its arguments (given the seeded database's name, a fresh database
    name and a scratch directory), its scratch copies (a LIKE pattern) and when it is busy enough to
    interrupt."""

    args: Callable[[str, str, Path], list[str]]
    copies: Callable[[str, str], str | None]
    busy: Callable[[psycopg.Connection, str, str, Path], bool]
    seeding: bool = False  # interrupted while seeding the fresh database


def _exists(conn: psycopg.Connection, pattern: str) -> bool:
    return bool(scalar(conn, "SELECT count(*) FROM pg_database WHERE datname LIKE %s", (pattern,)))


def _slow_run_args(tmp: Path) -> list[str]:
    """Measure the slow scenario under one variant for up to ten minutes: busy until interrupted."""
    scenarios = slow_catalogue(tmp / "scenarios")
    return ["-s", "pairs", "-v", "composite", "--scenarios-dir", str(scenarios), "--cell-budget", "600"]


QUIET_RUN = ["--cold-samples", "0", "--stability-rounds", "0", "--concurrent", "-q"]


def _copied(database: Callable[[str, str], str]) -> Callable[[psycopg.Connection, str, str, Path], bool]:
    """Busy once a session on a scratch copy of ``database`` has sent the slow scenario's SQL: the
    copy is made, the variant built on it, and its cell is being measured (planned or sampled)."""

    def busy(conn: psycopg.Connection, seeded: str, fresh: str, tmp: Path) -> bool:
        return bool(
            scalar(
                conn,
                "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE %s AND strpos(query, %s) > 0",
                (f"{database(seeded, fresh)}\\_%", PAIRS_FROM),
            )
        )

    return busy


def _copy_made(database: Callable[[str, str], str]) -> Callable[[psycopg.Connection, str, str, Path], bool]:
    """Busy once a scratch copy of ``database`` exists, a second after: for scale, whose sessions on a
    size's copy can come and go between two looks (its cell at 200 tasks per user is over in moments)."""

    def busy(conn: psycopg.Connection, seeded: str, fresh: str, tmp: Path) -> bool:
        if not _exists(conn, f"{database(seeded, fresh)}\\_%"):
            return False
        time.sleep(1.0)
        return True

    return busy


def _seeding(conn: psycopg.Connection, seeded: str, fresh: str, tmp: Path) -> bool:
    if not _exists(conn, fresh):
        return False
    time.sleep(1.5)  # the default profile's COPY takes far longer
    return True


def _reporting(conn: psycopg.Connection, seeded: str, fresh: str, tmp: Path) -> bool:
    return (tmp / "run" / "heatmap.png").exists()  # the first figure: the others and the pages follow


def _report_args(seeded: str, fresh: str, tmp: Path) -> list[str]:
    # the committed baseline: a whole matrix, seconds of figures to interrupt
    (tmp / "run").mkdir()
    shutil.copy(ROOT / "reports" / "baseline.json", tmp / "run" / "results.json")
    return ["report", str(tmp / "run")]


COMMANDS = {
    "run": Interruptible(
        lambda seeded, fresh, tmp: ["run", "--db-name", seeded, *_slow_run_args(tmp), *QUIET_RUN],
        lambda seeded, fresh: f"{seeded}\\_%",
        _copied(lambda seeded, fresh: seeded),
    ),
    "check": Interruptible(
        lambda seeded, fresh, tmp: (
            ["check", "--db-name", seeded, "--before", str(SCENARIOS), *_slow_run_args(tmp)] + QUIET_RUN
        ),
        lambda seeded, fresh: f"{seeded}\\_%",
        _copied(lambda seeded, fresh: seeded),
    ),
    "bench": Interruptible(
        lambda seeded, fresh, tmp: (
            ["bench", "--db-name", fresh, "--profile", "ci", "--users", "2"]
            + ["--tasks-per-user", "400", *_slow_run_args(tmp), *QUIET_RUN]
        ),
        lambda seeded, fresh: f"{fresh}\\_%",
        _copied(lambda seeded, fresh: fresh),
    ),
    "scale": Interruptible(
        lambda seeded, fresh, tmp: (
            ["scale", "--db-name", fresh, "--sizes", "200,400", "--users", "2"]
            + ["--min-samples", "0", *_slow_run_args(tmp), "--concurrent", "-q"]
        ),
        lambda seeded, fresh: f"{fresh}\\_tpu%\\_%",
        _copy_made(lambda seeded, fresh: f"{fresh}_tpu200"),
    ),
    "seed": Interruptible(
        lambda seeded, fresh, tmp: ["seed", "--db-name", fresh, "--profile", "default", "-q"],
        lambda seeded, fresh: None,
        _seeding,
        seeding=True,
    ),
    "report": Interruptible(_report_args, lambda seeded, fresh: None, _reporting),
}
SIGNALS = {"sigint": (signal.SIGINT, False), "sigterm": (signal.SIGTERM, False)}
# In the background (a script's `taskbench run &`) SIGINT starts ignored: it is honoured all the same;
# SIGTERM is what a CI runner sends on a cancel. Both take one path (SIGTERM re-sends SIGINT): `run` is
# interrupted in the foreground by each, every other command in the background by one of them in turn
# (the background's handling is the main's, whatever the command: SIGINT three times, SIGTERM twice).
BACKGROUND = {"sigint-background": (signal.SIGINT, True), "sigterm-background": (signal.SIGTERM, True)}
OTHERS = [command for command in COMMANDS if command != "run"]
CASES = [("run", mode) for mode in SIGNALS] + [(command, list(BACKGROUND)[i % 2]) for i, command in enumerate(OTHERS)]


def _stopped(proc: subprocess.Popen[str], within: float) -> str:
    """What ``proc`` wrote to stderr once it exited. Still running ``within`` seconds after its signal,
    it fails the test with what each of its threads was doing: the dump faulthandler writes on SIGABRT
    (started with PYTHONFAULTHANDLER=1). Seen once in a loaded make test, and not since in 40 runs."""
    try:
        return proc.communicate(timeout=within)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        pytest.fail(f"still running {within:.0f} s after the signal; its threads:\n{proc.communicate(timeout=30)[1]}")


@pytest.mark.parametrize("command, mode", CASES, ids=[f"{c}-{m}" for c, m in CASES])
def test_an_interrupted_command_exits_130_within_seconds_and_leaves_nothing(seeded, command, mode, tmp_path):
    case, (signum, background) = COMMANDS[command], {**SIGNALS, **BACKGROUND}[mode]
    fresh = f"tbsig_{uuid.uuid4().hex[:8]}"
    reports = tmp_path / "reports"
    args = case.args(seeded.database, fresh, tmp_path)
    if command != "report":
        args += ["--reports-dir", str(reports)] if command != "seed" else []
    proc = taskbench_started(*args, env_extra={"PYTHONFAULTHANDLER": "1"}, background=background)
    # Watch from the maintenance database: a session on the seeded one would block its copy.
    with psycopg.connect(seeded.libpq_conninfo("postgres"), autocommit=True) as conn:
        try:
            deadline = time.monotonic() + 120
            while not case.busy(conn, seeded.database, fresh, tmp_path):
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.05)
            proc.send_signal(signum)
            sent = time.monotonic()
            stderr = _stopped(proc, within=60)
            took = time.monotonic() - sent
        finally:
            proc.kill()  # never leave a hung command behind
        copies = case.copies(seeded.database, fresh)
        left = copies is not None and _exists(conn, copies)
        seeded_fresh = _exists(conn, fresh) and dataset_info(open_target(None, fresh, DATA_DIR)) is not None
        # what the command made itself is the test's to drop (a seed is redone by the next command)
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname = %s OR datname LIKE %s", (fresh, f"{fresh}\\_%")
        ).fetchall():
            drop_database(open_target(None, name, DATA_DIR), name)
    with psycopg.connect(seeded.libpq_conninfo(), autocommit=True) as conn:
        left_indexes = scalar(conn, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'tb_%'")
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("taskbench: error: interrupted")
    assert took < 15, f"{command} took {took:.1f} s to stop"
    assert not left and left_indexes == 0  # scratch copies dropped, applied indexes removed
    assert not (case.seeding and seeded_fresh)  # not taken for a dataset: the next command seeds again
    assert not reports.exists() or not any(reports.rglob("*"))  # nothing partial written
    # A SIGINT that lands in a weakref callback cannot stop the command (Python only prints it): it
    # then ends whole and exits 130 saying so (seen twice with report): whole files, never partial.
    whole = "the command had finished what it was doing" in stderr
    assert not list(tmp_path.rglob("*.partial*")) and (whole or not (tmp_path / "run" / "index.html").exists())
