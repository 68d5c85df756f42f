"""The whole Neon lifecycle, for real, against the loopback stand-in of the Neon API (Neon itself is
out of reach here) whose branches live on the embedded PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from bench import results as results_io
from bench.errors import EXIT_DATABASE, EXIT_INPUT, EXIT_INTERRUPTED
from bench.targets.neon import RUN_BRANCH_PREFIX, NeonClient, NeonError, NeonSettings, retry_after_seconds
from bench.targets.provision import TargetSpec, dataset_home, measurement_target
from bench.measure.runner import RunOptions, run
from bench.targets.target import start_embedded
from seed.load import seed_database
from seed.profiles import get_profile

from tests.support import DATA_DIR, ROOT
from tests.neon_standin import PASSWORD, NeonStandIn

KEY = "neon-test-key"
PARENT = "taskbench-seeded-test"
SMALL = replace(get_profile("ci", users=2, tasks_per_user=400), conversations_per_user=(1, 2),
                messages_per_conversation=(20, 30))
QUICK = RunOptions(cold_samples=0, stability_rounds=0, concurrent=True)


@pytest.fixture(scope="module")
def standin():
    api = NeonStandIn(start_embedded(DATA_DIR), KEY)
    yield api
    api.close()


@pytest.fixture(scope="module")
def spec(standin) -> TargetSpec:
    """A seeded parent branch, made through the API the way `taskbench seed --target neon` does."""
    spec = TargetSpec(kind="neon", neon=NeonSettings(api_key=KEY, project_id=standin.project_id,
                                                     api_url=standin.url, parent=PARENT, compute_cu=0.5),
                      db_name="taskbench")
    with dataset_home(spec) as home:
        seed_database(home, SMALL)
    return spec


def run_branches(standin) -> list[str]:
    return [b["name"] for b in standin.branches.values() if b["name"].startswith(RUN_BRANCH_PREFIX)]


def test_seeding_creates_the_parent_branch_with_its_own_database(standin, spec):
    parent = standin.branch_named(PARENT)
    assert parent is not None and parent["parent_id"] == standin.branch_named("main")["id"]
    assert set(standin.databases_of(parent["id"])) == {"neondb", "taskbench"}
    with dataset_home(spec) as again:  # a second seed reuses the branch
        assert again.kind == "neon"
    assert sum(b["name"] == PARENT for b in standin.branches.values()) == 1


def test_a_run_measures_on_a_child_branch_and_deletes_it(standin, catalog, spec, tmp_path):
    notes: list[str] = []
    with measurement_target(spec, announce=notes.append) as target:
        (child,) = run_branches(standin)
        branch_id = standin.branch_named(child)["id"]
        assert target.database == standin.physical_name(branch_id, "taskbench")
        res = run(target, catalog.select(["task_by_id", "recent_tasks"], ["baseline"]), QUICK)
    assert run_branches(standin) == []
    assert [n.split()[0] for n in notes] == ["created", "deleting", "deleted"]
    assert res.environment.target_kind == "neon" and len(res.cells) == 2
    assert res.connection is not None and res.connection.host_kind == "socket"
    assert res.connection.first_query_ms > 0 and res.connection.connect_ms > 0
    body = next(b for m, p, s, b in standin.log if m == "POST" and p.endswith("/branches")
                and b["branch"]["name"] == child)
    assert body["branch"]["parent_id"] == standin.branch_named(PARENT)["id"]
    assert body["endpoints"] == [{"type": "read_write", "autoscaling_limit_min_cu": 0.5,
                                  "autoscaling_limit_max_cu": 0.5}]
    saved = results_io.save(res, tmp_path).read_text()
    assert PASSWORD not in saved and KEY not in saved
    assert sorted(standin.databases_of(standin.branch_named(PARENT)["id"])) == ["neondb", "taskbench"]


def test_the_branch_is_deleted_after_a_failure_mid_run(standin, catalog, spec):
    def fail_after_first_cell(phase: str, done: int, total: int) -> None:
        if done >= 1:
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected"):
        with measurement_target(spec) as target:
            run(target, catalog.select(["task_by_id", "recent_tasks"], ["baseline"]), QUICK, fail_after_first_cell)
    assert run_branches(standin) == []


def test_a_failed_delete_after_a_failed_run_keeps_the_runs_error_and_says_how_to_finish(standin, spec):
    notes: list[str] = []
    impatient = replace(spec, neon=replace(spec.neon, max_retries=1, max_wait=0.0))
    with pytest.raises(RuntimeError, match="injected"):
        with measurement_target(impatient, announce=notes.append):
            standin.unavailable["DELETE"] = 2  # the delete and its one retry fail
            raise RuntimeError("injected")
    (name,) = run_branches(standin)
    branch_id = standin.branch_named(name)["id"]
    assert any(n.startswith(f"deleting Neon branch {name}") for n in notes)
    assert f"neonctl branches delete {branch_id} --project-id {standin.project_id}" in notes[-1]
    with pytest.raises(NeonError, match="HTTP 503"):  # when the run itself succeeded, a failed delete is the error
        with measurement_target(impatient):
            standin.unavailable["DELETE"] = 2
    assert standin.unavailable["DELETE"] == 0 and len(run_branches(standin)) == 2
    client = NeonClient(spec.neon)
    for leftover in run_branches(standin):
        client.delete_branch(standin.branch_named(leftover)["id"])
    client.close()
    assert run_branches(standin) == []


def test_a_post_is_not_retried_on_a_server_error_but_a_get_is(standin, spec):
    client = NeonClient(replace(spec.neon, max_wait=0.0))
    standin.unavailable["GET"] = 2
    assert client.find_branch(PARENT) is not None  # retried: a GET changes nothing
    standin.unavailable["POST"] = 1
    before = set(standin.branches)
    with pytest.raises(NeonError, match="HTTP 503"):  # a POST may have been done: never sent twice
        client.create_branch("taskbench-run-once", parent_id=None)
    client.close()
    assert set(standin.branches) == before
    assert [(m, s) for m, _, s, _ in standin.log[-1:]] == [("POST", 503)]


def test_keep_branch_keeps_it_and_says_how_to_delete_it(standin, spec):
    notes: list[str] = []
    kept = replace(spec, neon=replace(spec.neon, keep_branch=True))
    with measurement_target(kept, announce=notes.append):
        pass
    (name,) = run_branches(standin)
    assert "neonctl branches delete" in notes[-1]
    client = NeonClient(spec.neon)
    client.delete_branch(standin.branch_named(name)["id"])
    client.close()
    assert run_branches(standin) == []


def _cli_env(standin, key: str = KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return {**env, "NEON_API_KEY": key, "NEON_PROJECT_ID": standin.project_id, "NEON_API_URL": standin.url}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_branch_is_deleted_when_the_process_is_interrupted(standin, spec, tmp_path, signum):
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--target", "neon", "--neon-parent", PARENT,
                             "--cold-samples", "0", "--stability-rounds", "0", "--concurrent",
                             "--reports-dir", str(tmp_path), "--quiet"],
                            cwd=ROOT, env=_cli_env(standin), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(d.startswith("taskbench_run_") for b in list(standin.branches.values())
                  if b["name"].startswith(RUN_BRANCH_PREFIX) for d in standin.databases_of(b["id"])):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)  # well into the measurements
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and "deleted Neon branch" in stderr
    assert run_branches(standin) == []
    assert not list(tmp_path.iterdir())  # no partial results


def test_rate_limits_are_waited_out_as_retry_after_asks(standin, spec):
    standin.throttled, standin.retry_after = 2, "1"
    client = NeonClient(spec.neon)
    started = time.monotonic()
    assert client.find_branch(PARENT) is not None
    elapsed = time.monotonic() - started
    client.close()
    assert [s for _, _, s, _ in standin.log[-3:]] == [429, 429, 200]
    assert 2.0 <= elapsed < 10


def test_rate_limiting_that_never_ends_is_a_clear_error(standin, spec):
    standin.throttled, standin.retry_after = 3, "0"
    client = NeonClient(replace(spec.neon, max_retries=2))
    with pytest.raises(NeonError, match="rate-limiting"):
        client.find_branch(PARENT)
    client.close()
    standin.throttled = 0


def test_an_invalid_api_key_is_a_clear_error_and_creates_nothing(standin, spec, tmp_path):
    before = set(standin.branches)
    bad = replace(spec, neon=replace(spec.neon, api_key="expired-key"))
    with pytest.raises(NeonError, match="refused the API key"):
        with measurement_target(bad):
            pass
    proc = subprocess.run([sys.executable, "-m", "bench", "bench", "--target", "neon", "--reports-dir", str(tmp_path)],
                          cwd=ROOT, env=_cli_env(standin, "expired-key"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_DATABASE
    assert proc.stderr.strip().startswith("taskbench: error: the Neon API refused the API key (HTTP 401")
    assert "Traceback" not in proc.stderr and "expired-key" not in proc.stderr
    assert set(standin.branches) == before


def test_neon_needs_its_key_and_project(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NEON_API_KEY", "NEON_PROJECT_ID")}
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--target", "neon"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_INPUT and "NEON_API_KEY" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_parent_branch_says_to_seed_first(standin, spec):
    other = replace(spec, neon=replace(spec.neon, parent="never-seeded"))
    with pytest.raises(NeonError, match="seed it first"):
        with measurement_target(other):
            pass
    assert standin.branch_named("never-seeded") is None


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("3", attempt=0, cap=60) == 3
    assert retry_after_seconds("600", attempt=0, cap=60) == 60
    in_two = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    assert 0 < retry_after_seconds(in_two, attempt=0, cap=60) <= 2
    assert retry_after_seconds(None, attempt=3, cap=60) == 8
    assert retry_after_seconds("soon", attempt=1, cap=60) == 2
    assert "s3cret-api-key" not in repr(NeonSettings(api_key="s3cret-api-key", project_id="p"))


def test_settings_do_not_leak_the_key_in_errors(standin, spec):
    client = NeonClient(replace(spec.neon, api_url="http://127.0.0.1:9/api/v2"))  # nothing listens on port 9
    with pytest.raises(NeonError, match="cannot reach the Neon API") as info:
        client.find_branch(PARENT)
    client.close()
    assert KEY not in str(info.value)

