"""One measurement at a time on a server (its advisory lock), and the machine's load, recorded.

On a server of its own: the shared embedded server may be measured on by anything else on this
machine, and the lock is the one thing these tests need to control.
"""

import json
import threading
import time
from dataclasses import replace

import psycopg
import pytest

from bench.errors import EXIT_DATABASE
from bench.measure.lock import LOCK_KEY, measurement_lock
from bench.results import Conditions
from bench.targets import schema
from bench.targets.target import open_target
from seed.load import seed_database
from tests.support import TINY, taskbench_here

pytestmark = pytest.mark.usefixtures("no_figures")  # its reports are not its subject (tests/conftest.py)

RUN = ("-s", "task_by_id", "-v", "baseline", "--cold-samples", "0", "--stability-rounds", "0", "-q")


# A taskbench session, started after this one, that has tried for the lock (pg_stat_activity keeps an
# idle session's last statement): while this session holds the lock, each of its tries was refused.
_TRIED = """
SELECT count(*) FROM pg_stat_activity
WHERE application_name LIKE 'taskbench %' AND query LIKE '%pg_try_advisory_lock%'
  AND backend_start > (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())
"""


@pytest.fixture(scope="module")
def lone(tmp_path_factory):
    """A seeded database on a server no other test or tool uses."""
    data_dir = tmp_path_factory.mktemp("lone") / "pgdata"
    target = open_target(None, "tblone", data_dir)
    schema.claim_database(target)
    seed_database(target, replace(TINY, users=3, tasks_per_user=200))
    return target


def lone_run(lone, *args: str):
    """``taskbench run`` on the lone server, in this process: what is tested is the lock, which a
    session holds, not the process."""
    return taskbench_here("run", "--data-dir", str(lone.data_dir), "--db-name", lone.database, *RUN, *args)


@pytest.fixture
def holder(lone):
    """Another measurement's session on the same server: it holds the lock in the maintenance database, where
    every run meets, whatever its --db-name."""
    with psycopg.connect(
        lone.libpq_conninfo(lone.maintenance_db), autocommit=True, application_name="taskbench holder test"
    ) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        yield conn.info.backend_pid


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_a_second_run_exits_with_one_line_naming_the_holder(lone, holder, tmp_path):
    started = time.monotonic()
    proc = lone_run(lone, "--lock-wait", "1", "--reports-dir", str(tmp_path))
    assert proc.returncode == EXIT_DATABASE and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]  # after the "target: ..." line
    assert line.startswith(
        f"taskbench: error: another measurement is running on this server: pid {holder} "
        "(taskbench holder test), measuring since 20"
    )
    assert "waited 1 s" in line and "--concurrent" in line
    assert time.monotonic() - started >= 1.0  # it waited for the holder first
    assert not list(tmp_path.iterdir())


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_with_concurrent_it_measures_and_the_results_say_so(lone, holder, tmp_path):
    proc = lone_run(lone, "--concurrent", "--reports-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    conditions = json.loads((tmp_path / "latest" / "results.json").read_text())["conditions"]
    assert conditions["concurrent"] is True
    assert conditions["lock"].startswith(f"not held: pid {holder} (taskbench holder test), measuring since ")
    assert "measured concurrently: not held: pid " in proc.stderr
    assert taskbench_here("report", str(tmp_path / "latest")).returncode == 0
    assert "⚠ measured concurrently: not held: pid" in (tmp_path / "latest" / "summary.md").read_text()


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_a_run_waits_for_a_holder_that_finishes(lone, tmp_path):
    conn = psycopg.connect(lone.libpq_conninfo(lone.maintenance_db), autocommit=True)
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    refused = threading.Event()  # the run was seen asking for the lock while this session held it

    def release_once_refused() -> None:
        deadline = time.monotonic() + 60
        with conn:  # closing its session releases the lock
            while time.monotonic() < deadline:
                if conn.execute(_TRIED).fetchone() != (0,):
                    refused.set()
                    return
                time.sleep(0.05)

    threading.Thread(target=release_once_refused).start()
    proc = lone_run(lone, "--lock-wait", "60", "--reports-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert refused.is_set()  # it waited for the holder first
    conditions = json.loads((tmp_path / "latest" / "results.json").read_text())["conditions"]
    assert conditions["lock"] == "held" and conditions["concurrent"] is False
    # The machine's load, before and after measuring (os.getloadavg: 1, 5 and 15 minutes).
    assert len(conditions["load_before"]) == len(conditions["load_after"]) == 3 and conditions["cpus"] >= 1


@pytest.mark.server  # a taskbench command or a server of its own (tests/conftest.py)
def test_the_lock_is_released_when_the_run_ends(lone):
    with measurement_lock(lone, "first") as measuring:
        assert measuring.lock == "held"
    with measurement_lock(lone, "second", wait=0) as measuring:
        assert measuring.lock == "held"


def test_a_busy_machine_is_flagged():
    def conditions(before: float, after: float) -> Conditions:
        return Conditions(concurrent=False, lock="held", cpus=2, load_before=[before, 0, 0], load_after=[after, 0, 0])

    assert not conditions(0.9, 1.9).busy  # after: about one is this run's own client or server process
    assert conditions(1.1, 1.0).busy  # more than half the CPUs busy before measuring
    assert conditions(0.2, 2.2).busy  # ... or, besides this run, after
