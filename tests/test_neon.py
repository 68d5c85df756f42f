"""The whole Neon lifecycle, for real, against the loopback stand-in of the Neon API (Neon itself is
out of reach here) whose branches live on a PostgreSQL server of their own with the settings Neon gives
a 1 CU compute (tests/neon_settings_server.py, as tools/neon_check.sh's tests have): fsync off, as on
Neon, so that a branch's databases are made and dropped without flushing a busy shared server."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import IO

import psycopg
import pytest

from bench import results as results_io
from bench.errors import EXIT_DATABASE, EXIT_INPUT, EXIT_INTERRUPTED, InputError
from bench.measure.options import RunOptions
from bench.runs.matrix import measure
from bench.targets.neon import (
    RUN_BRANCH_PREFIX,
    SEEDED_NAME,
    SEEDING_PREFIX,
    NeonClient,
    NeonError,
    retry_after_seconds,
    schema_fingerprint,
    seed_parent,
    seeded_parent_name,
)
from bench.targets.options import NeonSettings, TargetSpec
from bench.targets.provision import dataset_home, for_dataset, measurement_target, measurement_targets, seeded_home
from bench.targets.schema import current_dataset, model_ddl
from seed.load import seed_database
from seed.profiles import get_profile
from tests.neon_standin import PASSWORD, NeonStandIn
from tests.support import ROOT, cli_env, scalar, taskbench, taskbench_here, taskbench_started

KEY = "neon-test-key"
PARENT = "taskbench-seeded-test"
SMALL = replace(
    get_profile("ci", users=2, tasks_per_user=400), conversations_per_user=(1, 2), messages_per_conversation=(20, 30)
)
QUICK = RunOptions(cold_samples=0, stability_rounds=0, concurrent=True)
# The longest back-off of the tests' own clients. The stand-in's operations run 0.2 s, and a branch
# deleted right after another meets the first one's as 423 Locked, as on Neon: the product's back-off
# (1 s, then 2 s, ...; tested as it is below) would wait out 0.2 s in whole seconds. Six retries of
# 0.1 s still outlast an operation.
BACKOFF_S = 0.1


@pytest.fixture(scope="module")
def standin(neon_settings_server):
    api = NeonStandIn(neon_settings_server, KEY)
    api.page_size = 2  # every branch listing takes several pages: the client must follow them
    yield api
    api.close()


@pytest.fixture(scope="module")
def spec(standin) -> TargetSpec:
    """A seeded parent branch, made through the API the way `taskbench seed --target neon` does."""
    spec = TargetSpec(
        kind="neon",
        neon=NeonSettings(
            api_key=KEY,
            project_id=standin.project_id,
            api_url=standin.url,
            parent=PARENT,
            compute_cu=0.5,
            max_wait=BACKOFF_S,
        ),
        db_name="taskbench",
    )
    with dataset_home(spec) as home:
        seed_database(home, SMALL)
    return spec


def run_branches(standin) -> list[str]:
    return [b["name"] for b in standin.branches.values() if b["name"].startswith(RUN_BRANCH_PREFIX)]


def hours_ahead(timestamp: str) -> float:
    return (datetime.fromisoformat(timestamp) - datetime.now(UTC)) / timedelta(hours=1)


def with_settings(spec: TargetSpec, **changes) -> TargetSpec:
    assert spec.neon is not None
    return replace(spec, neon=replace(spec.neon, **changes))


def test_seeding_creates_the_parent_branch_with_its_own_database(standin, spec):
    parent = standin.branch_named(PARENT)
    assert parent is not None and parent["parent_id"] == standin.branch_named("main")["id"]
    assert set(standin.databases_of(parent["id"])) == {"neondb", "taskbench"}
    with dataset_home(spec) as again:  # a second seed reuses the branch
        assert again.kind == "neon"
    assert sum(b["name"] == PARENT for b in standin.branches.values()) == 1


def test_a_run_measures_on_a_child_branch_and_deletes_it(standin, catalogue, spec, tmp_path):
    notes: list[str] = []
    with measurement_target(spec, announce=notes.append) as target:
        (child,) = run_branches(standin)
        branch_id = standin.branch_named(child)["id"]
        assert target.database == standin.physical_name(branch_id, "taskbench")
        res = measure(target, catalogue.select(["task_by_id", "recent_tasks"], ["baseline"]), QUICK)
    assert run_branches(standin) == []
    assert [n.split()[0] for n in notes] == ["created", "deleting", "deleted"]
    assert res.environment.target_kind == "neon" and len(res.cells) == 2
    assert res.connection is not None and res.connection.host_kind == "socket"
    assert res.connection.first_query_ms > 0 and res.connection.connect_ms > 0
    body = next(
        b for m, p, s, b in standin.log if m == "POST" and p.endswith("/branches") and b["branch"]["name"] == child
    )
    assert body["branch"]["parent_id"] == standin.branch_named(PARENT)["id"]
    assert body["endpoints"] == [
        {"type": "read_write", "autoscaling_limit_min_cu": 0.5, "autoscaling_limit_max_cu": 0.5}
    ]
    assert 5.9 < hours_ahead(body["branch"]["expires_at"]) <= 6  # a killed run's branch deletes itself
    saved = results_io.save(res, tmp_path).read_text()
    assert PASSWORD not in saved and KEY not in saved
    assert sorted(standin.databases_of(standin.branch_named(PARENT)["id"])) == ["neondb", "taskbench"]


def test_the_branch_is_deleted_after_a_failure_mid_run(standin, catalogue, spec):
    def fail_after_first_cell(phase: str, done: int, total: int | None) -> None:
        if done >= 1:
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected"), measurement_target(spec) as target:
        measure(target, catalogue.select(["task_by_id", "recent_tasks"], ["baseline"]), QUICK, fail_after_first_cell)
    assert run_branches(standin) == []


def test_a_failed_delete_after_a_failed_run_keeps_the_runs_error_and_says_how_to_finish(standin, spec):
    notes: list[str] = []
    impatient = replace(spec, neon=replace(spec.neon, max_retries=1, max_wait=0.0))
    standin.settle()
    with pytest.raises(RuntimeError, match="injected"), measurement_target(impatient, announce=notes.append):
        standin.unavailable["DELETE"] = 2  # the delete and its one retry fail
        raise RuntimeError("injected")
    (name,) = run_branches(standin)
    branch_id = standin.branch_named(name)["id"]
    assert any(n.startswith(f"deleting Neon branch {name}") for n in notes)
    assert f"neonctl branches delete {branch_id} --project-id {standin.project_id}" in notes[-1]
    # when the run itself succeeded, a failed delete is the error
    with pytest.raises(NeonError, match="HTTP 503"), measurement_target(impatient):
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


def _neon_env(standin, key: str = KEY) -> dict[str, str]:
    """What the command needs to reach the stand-in as Neon."""
    return {"NEON_API_KEY": key, "NEON_PROJECT_ID": standin.project_id, "NEON_API_URL": standin.url}


def _interrupted_at(proc: subprocess.Popen[str], phase: str, signum: int, timeout: float = 60) -> str:
    """Send ``signum`` to ``proc`` once a line of its stderr names ``phase``; its whole stderr once it
    has exited (read as it comes, so the line is seen when it is written)."""
    assert proc.stderr is not None
    lines: list[str] = []
    reached = threading.Event()

    def read(stream: IO[str]) -> None:
        for line in stream:
            lines.append(line)
            if phase in line:
                reached.set()

    reader = threading.Thread(target=read, args=(proc.stderr,), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not reached.wait(0.05):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
    proc.send_signal(signum)
    proc.wait(timeout=timeout)
    reader.join(timeout)
    return "".join(lines)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_branch_is_deleted_when_the_process_is_interrupted(standin, spec, tmp_path, signum):
    proc = taskbench_started(
        "run",
        "--target",
        "neon",
        "--neon-parent",
        PARENT,
        "--cold-samples",
        "0",
        "--stability-rounds",
        "0",
        "--concurrent",
        "--reports-dir",
        str(tmp_path),
        env_extra=_neon_env(standin),
    )
    # Well into the measurements: its progress (a line per phase without a terminal) says it samples.
    stderr = _interrupted_at(proc, "warm-up and samples", signum)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and "deleted Neon branch" in stderr
    assert run_branches(standin) == []
    assert not list(tmp_path.iterdir())  # no partial results


def test_rate_limits_without_retry_after_are_waited_out_exponentially_up_to_a_cap(standin, spec):
    waits: list[float] = []
    standin.throttled = 5  # answered 429 without Retry-After, as Neon does
    client = NeonClient(replace(spec.neon, max_wait=4.0), sleep=waits.append)
    mark = len(standin.log)
    assert client.find_branch(PARENT) is not None
    client.close()
    statuses = [s for _, _, s, _ in standin.log[mark:]]
    assert statuses[:6] == [429] * 5 + [200] and set(statuses[6:]) <= {200}  # then the next pages
    assert waits == [1, 2, 4, 4, 4]


def test_rate_limiting_that_never_ends_is_a_clear_error(standin, spec):
    standin.throttled = 3
    client = NeonClient(replace(spec.neon, max_retries=2), sleep=lambda seconds: None)
    with pytest.raises(NeonError, match="rate-limiting"):
        client.find_branch(PARENT)
    client.close()
    standin.throttled = 0


def test_a_locked_project_is_waited_out_until_its_operation_has_finished(standin, spec):
    """Neon runs one operation per project at a time and answers 423 Locked to a request that would
    start another: the client backs off exponentially until the first has finished."""
    standin.settle()
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the wait passes for the stand-in's operation, not sat out
        waits.append(seconds)
        standin.pass_time(seconds)

    # the product's own back-off (spec's is the tests' shorter one)
    client = NeonClient(NeonSettings(api_key=KEY, project_id=standin.project_id, api_url=standin.url), sleep=sleep)
    standin.operation_seconds = 1.5
    try:  # a create that is not waited for keeps its operation running for 1.5 s
        held = client.request("POST", "/branches", json={"branch": {"name": "lock-holder"}})
    finally:
        standin.operation_seconds = 0.2
    mark = len(standin.log)
    try:  # 423 while the create runs: 1 s waited, still running; 2 s more, finished
        client.delete_branch(held["branch"]["id"])
    finally:
        client.close()
    assert [s for _, _, s, _ in standin.log[mark:]] == [423, 423, 200]
    assert waits == [1, 2] and standin.branch_named("lock-holder") is None


def test_an_invalid_api_key_is_a_clear_error_and_creates_nothing(standin, spec, tmp_path):
    before = set(standin.branches)
    bad = replace(spec, neon=replace(spec.neon, api_key="expired-key"))
    with pytest.raises(NeonError, match="refused the API key"), measurement_target(bad):
        pass
    proc = taskbench_here(
        "bench", "--target", "neon", "--reports-dir", str(tmp_path), env_extra=_neon_env(standin, "expired-key")
    )
    assert proc.returncode == EXIT_DATABASE
    assert proc.stderr.strip().startswith("taskbench: error: the Neon API refused the API key (HTTP 401")
    assert "Traceback" not in proc.stderr and "expired-key" not in proc.stderr
    assert set(standin.branches) == before


def test_neon_needs_its_key_and_project(tmp_path):
    proc = taskbench_here("run", "--target", "neon", unset=("NEON_API_KEY", "NEON_PROJECT_ID"))
    assert proc.returncode == EXIT_INPUT and "NEON_API_KEY" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_parent_branch_says_to_seed_first(standin, spec):
    other = replace(spec, neon=replace(spec.neon, parent="never-seeded"))
    with pytest.raises(NeonError, match="seed it first"), measurement_target(other):
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


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"compute_cu": 0.1}, "--neon-compute 0.1: Neon computes are 0.25, 0.5 or whole CUs"),
        ({"compute_cu": 1.5}, "--neon-compute 1.5"),
        # a size Neon offers, above the setting's maximum
        (
            {"compute_cu": 12},
            "--neon-compute 12: Neon computes are 0.25, 0.5 or whole CUs (even above 16), here up to 8",
        ),
        ({"compute_cu": 17, "max_compute_cu": 56}, "--neon-compute 17"),  # above 16 only even sizes
        ({"max_compute_cu": 60}, "--neon-max-compute 60 is not a Neon compute size"),
        ({"suspend_timeout": 30}, "--neon-suspend-timeout 30: Neon takes 0 (its default), -1 (never suspend) or 60-"),
        ({"suspend_timeout": -2}, "--neon-suspend-timeout -2"),
        ({"suspend_timeout": 604_801}, "--neon-suspend-timeout 604801"),
        ({"branch": ""}, "--neon-branch must have 1 to 256 characters"),
        ({"expiry_hours": 24 * 31}, "0 (none) to 720 hours"),
    ],
)
def test_settings_neon_would_refuse_are_refused_before_any_request(changes, message):
    with pytest.raises(InputError) as info:
        NeonSettings(api_key=KEY, project_id="p", **changes)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"compute_cu": 0.25},
        {"compute_cu": 8},
        {"compute_cu": 18, "max_compute_cu": 56},
        {"suspend_timeout": -1},
        {"suspend_timeout": 60},
        {"suspend_timeout": 604_800},
        {"expiry_hours": 0},
    ],
)
def test_settings_neon_takes_are_taken(changes):
    NeonSettings(api_key=KEY, project_id="p", **changes)


def test_the_cli_refuses_a_compute_size_neon_would_refuse_in_one_line(standin, spec, tmp_path):
    before = len(standin.log)
    for option in (["--neon-compute", "0.1"], ["--neon-compute", "3.5"], ["--neon-suspend-timeout", "30"]):
        proc = taskbench_here(
            "run",
            "--target",
            "neon",
            "--neon-parent",
            PARENT,
            *option,
            "--reports-dir",
            str(tmp_path),
            env_extra=_neon_env(standin),
        )
        assert proc.returncode == EXIT_INPUT, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"taskbench: error: {' '.join(option)}: Neon ")
    assert len(standin.log) == before  # refused before any request


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"endpoints": [{"type": "read_write", "autoscaling_limit_min_cu": 0.3, "autoscaling_limit_max_cu": 0.3}]},
            400,
            "compute size 0.3 CU is not one Neon offers",
        ),
        (
            {"endpoints": [{"type": "read_write", "autoscaling_limit_min_cu": 2, "autoscaling_limit_max_cu": 1}]},
            400,
            "autoscaling_limit_min_cu must not be above",
        ),
        (
            {"endpoints": [{"type": "read_write", "autoscaling_limit_min_cu": 1, "autoscaling_limit_max_cu": 10}]},
            400,
            "range of at most 8 CU",
        ),
        (
            {"endpoints": [{"type": "read_write", "autoscaling_limit_min_cu": 32, "autoscaling_limit_max_cu": 32}]},
            400,
            "above the plan's maximum of 16 CU",
        ),
        (
            {"endpoints": [{"type": "read_write", "suspend_timeout_seconds": 30}]},
            400,
            "suspend_timeout_seconds must be",
        ),
        ({"branch": {"name": "x" * 257}}, 400, "branch name must have 1 to 256 characters"),
        ({"branch": {"name": PARENT}}, 409, "branch already exists"),
        ({"branch": {"name": "late", "expires_at": "2001-01-01T00:00:00Z"}}, 400, "expires_at must be in the future"),
        ({"branch": {"name": "far", "expires_at": "2999-01-01T00:00:00Z"}}, 400, "at most 30 days ahead"),
        ({"branch": {"name": "naive", "expires_at": "2999-01-01T00:00:00"}}, 400, "expires_at needs a time zone"),
    ],
)
def test_the_standin_refuses_what_neon_refuses(standin, spec, body, status, message):
    standin.settle()
    client = NeonClient(spec.neon)
    before = set(standin.branches)
    with pytest.raises(NeonError, match=message) as info:
        client.request("POST", "/branches", json=body)
    client.close()
    assert info.value.status == status and set(standin.branches) == before


def test_a_size_above_the_plan_is_refused_by_neon_and_leaves_nothing(standin, spec):
    """The plan's maximum is a setting (the API does not tell it); set too high, Neon's refusal is the
    error, and since Neon answered no, no branch of that name is looked for or deleted."""
    standin.settle()
    notes: list[str] = []
    big = with_settings(spec, compute_cu=32, max_compute_cu=56, branch="taskbench-run-too-big")
    mark = len(standin.log)
    with (
        pytest.raises(NeonError, match="above the plan's maximum of 16 CU"),
        measurement_target(big, announce=notes.append),
    ):
        pass
    assert standin.branch_named("taskbench-run-too-big") is None and notes == []
    assert "GET /branches" not in standin.calls(mark)[standin.calls(mark).index("POST /branches") :]


def test_a_given_branch_name_is_used_and_a_taken_one_refused(standin, spec):
    named = with_settings(spec, branch="taskbench-run-pr-7-123-1")
    with measurement_target(named):
        assert run_branches(standin) == ["taskbench-run-pr-7-123-1"]
        with (
            pytest.raises(InputError, match="Neon branch taskbench-run-pr-7-123-1 already exists"),
            measurement_target(named),
        ):
            pass
    assert run_branches(standin) == []


@pytest.mark.alone  # "at once" is a wall-time bound: not beside another xdist worker (tests/workers.py)
def test_a_sharded_run_gets_one_fixed_size_expiring_branch_per_shard_served_at_once(standin, spec):
    standin.settle()
    notes: list[str] = []
    mark = len(standin.log)
    with measurement_targets(with_settings(spec, branch=f"{RUN_BRANCH_PREFIX}shards"), 3, notes.append) as targets:
        names = run_branches(standin)
        assert names == [f"{RUN_BRANCH_PREFIX}shards-{i}" for i in (1, 2, 3)]
        assert len({t.database for t in targets}) == 3
        for name in names:
            branch = standin.branch_named(name)
            (endpoint,) = [e for e in standin.endpoints.values() if e["branch_id"] == branch["id"]]
            assert endpoint["autoscaling_limit_min_cu"] == endpoint["autoscaling_limit_max_cu"] == 0.5
            assert 5.9 < hours_ahead(branch["expires_at"]) <= 6

        def count_slowly(target) -> int:
            with psycopg.connect(target.libpq_conninfo()) as conn:
                return int(scalar(conn, "SELECT count(*) FROM tasks, pg_sleep(1)"))

        started = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            counts = list(pool.map(count_slowly, targets))
        assert time.monotonic() - started < 2.5  # three 1 s queries, at once
        assert counts[0] > 0 and len(set(counts)) == 1  # each a copy of the seeded parent
    assert run_branches(standin) == []
    assert [n.split()[0] for n in notes] == ["created"] * 3 + ["deleting", "deleted"] * 3
    # API calls of this life cycle, as the stand-in counted them (423 retries included)
    calls = Counter(standin.calls(mark))
    answered = Counter(
        c for c, (_, _, status, _) in zip(standin.calls(mark), standin.log[mark:], strict=True) if status < 400
    )
    assert answered["POST /branches"] == 3 and answered["DELETE /branches/{branch}"] == 3
    assert answered["GET /connection_uri"] == 6 and answered["GET /endpoints"] == 1
    assert calls["GET /branches/{branch}/roles"] == 1  # the parent's: a child's come with its create response
    assert answered["GET /operations/{id}"] >= 6  # two operations per create, polled until finished


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_a_sharded_creation_interrupted_after_two_of_three_leaves_no_branch(standin, spec, interruption):
    notes: list[str] = []

    def announce(note: str) -> None:
        notes.append(note)
        if sum(n.startswith("created") for n in notes) == 2 and note.startswith("created"):
            raise interruption("injected")

    with pytest.raises(interruption, match="injected"), measurement_targets(spec, 3, announce):
        pass
    assert run_branches(standin) == []
    assert [n.split()[0] for n in notes] == ["created"] * 2 + ["deleting", "deleted"] * 2


def test_a_create_whose_answer_was_lost_is_found_by_name_and_deleted(standin, spec):
    notes: list[str] = []

    def announce(note: str) -> None:
        notes.append(note)
        if note.startswith("created"):
            standin.unanswered["POST"] = 1  # the next create is made, but its answer never arrives

    with pytest.raises(NeonError, match="cannot reach the Neon API"), measurement_targets(spec, 3, announce):
        pass
    assert run_branches(standin) == [] and standin.unanswered["POST"] == 0
    assert sum(n.startswith("deleted") for n in notes) == 2  # the first by its id, the second by its name


@pytest.mark.parametrize("allowance", ["max_branches", "max_active_computes"])
def test_a_sharded_run_above_the_allowance_is_refused_before_anything_is_created(standin, spec, allowance):
    branches = len(standin.branches)  # more than a page: counted page after page
    parents = sum(bool(SEEDED_NAME.fullmatch(b["name"])) for b in standin.branches.values())
    active = sum(e["current_state"] == "active" for e in standin.endpoints.values())  # main has none here
    tight = {"max_branches": branches + 2, "max_active_computes": active + 2}[allowance]
    mark = len(standin.log)
    with pytest.raises(InputError) as info, measurement_targets(with_settings(spec, **{allowance: tight}), 3):
        pass
    limits = {"max_branches": 10, "max_active_computes": 20, allowance: tight}
    assert str(info.value) == (
        f"3 Neon branches would exceed the project's allowance: it has {branches} of {limits['max_branches']} "
        f"branches ({parents} of them seeded parents: `taskbench neon parents --remove-old` removes old ones) "
        f"and {active} of {limits['max_active_computes']} active computes (the default branch's not "
        f"counted), and 3 more would make {branches + 3} and {active + 3}; nothing was created"
    )
    assert all(c.startswith("GET ") for c in standin.calls(mark)) and len(standin.branches) == branches


def test_ctrl_c_while_shard_branches_are_created_deletes_them(standin, spec):
    # Python's own SIGINT handler first: a suite started in the background (`make test &`, nohup)
    # has SIGINT ignored, and the child would inherit that (taskbench's main() installs it itself).
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from bench.targets.neon import NeonClient, NeonSettings, run_branches
        settings = NeonSettings(api_key=os.environ["NEON_API_KEY"], project_id=os.environ["NEON_PROJECT_ID"],
                                api_url=os.environ["NEON_API_URL"], parent={PARENT!r}, compute_cu=0.5,
                                max_wait={BACKOFF_S})
        try:
            with run_branches(NeonClient(settings), "taskbench", 3, lambda note: print(note, flush=True)):
                time.sleep(60)
        except KeyboardInterrupt:
            sys.exit(130)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=cli_env(_neon_env(standin)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    created = 0
    while created < 2:  # the second is created: its operations are being waited for
        line = proc.stdout.readline()
        assert line, proc.communicate()
        created += line.startswith("created")
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert rest.count("deleted Neon branch") == 2 and "created" not in rest
    assert run_branches(standin) == []


def test_settings_do_not_leak_the_key_in_errors(standin, spec):
    client = NeonClient(replace(spec.neon, api_url="http://127.0.0.1:9/api/v2"))  # nothing listens on port 9
    with pytest.raises(NeonError, match="cannot reach the Neon API") as info:
        client.find_branch(PARENT)
    client.close()
    assert KEY not in str(info.value)


PARALLEL = [
    "run",
    "--target",
    "neon",
    "--neon-parent",
    PARENT,
    "-s",
    "task_by_id",
    "-v",
    "baseline",
    "-v",
    "composite",
    "-v",
    "covering",
    "--cold-samples",
    "0",
    "--stability-rounds",
    "0",
    "--concurrent",
    "--quiet",
]


def test_a_parallel_run_measures_a_share_on_each_of_n_branches_at_once_and_deletes_them(standin, spec, tmp_path):
    standin.settle()
    mark = len(standin.log)
    # two shards for three variants, one with two of them (the sharded creation above makes three branches)
    proc = taskbench(
        *PARALLEL,
        "--parallel",
        "2",
        "--neon-branch",
        f"{RUN_BRANCH_PREFIX}par",
        "--reports-dir",
        str(tmp_path),
        env_extra=_neon_env(standin),
    )
    assert proc.returncode == 0, proc.stderr
    assert run_branches(standin) == []
    names = [f"{RUN_BRANCH_PREFIX}par-{i}" for i in (1, 2)]
    created = [
        b["branch"]["name"] for m, p, s, b in standin.log[mark:] if m == "POST" and p.endswith("/branches") and s == 201
    ]
    assert created == names and "2 shares (split by durations of run" in proc.stderr
    res = results_io.load(tmp_path / "latest")
    assert len(res.cells) == 3 and [v.name for v in res.variants] == ["baseline", "composite", "covering"]
    assert [s.shard.index for s in res.shards] == [1, 2] and len({s.target for s in res.shards}) == 2
    assert sorted(v for s in res.shards for v in s.shard.variants) == ["baseline", "composite", "covering"]
    # at once: every shard's process was measuring before the first one had finished
    lines = proc.stderr.splitlines()
    started = [i for i, line in enumerate(lines) if re.match(r"shard \d/2 \([\w, ]+\) measuring on ", line)]
    finished = {i: int(m[1]) for i, line in enumerate(lines) if (m := re.match(r"shard \d/2: (\d) cells in ", line))}
    assert len(started) == len(finished) == 2 and max(started) < min(finished)
    assert sorted(finished.values()) == [1, 2]  # two variants' cells on one branch, the third's on the other
    assert "Traceback" not in proc.stderr and proc.stderr.count("deleted Neon branch") == 2


def test_an_interrupted_parallel_run_stops_its_shards_and_leaves_no_branch(standin, spec, tmp_path):
    # two scenarios: each shard still measures when the other has started
    proc = taskbench_started(
        *PARALLEL, "-s", "recent_tasks", "--parallel", "2", "--reports-dir", str(tmp_path), env_extra=_neon_env(standin)
    )
    deadline = time.monotonic() + 120

    def measuring() -> int:  # branches whose shard has its scratch copy: measuring
        return sum(
            any(d.startswith("taskbench_run_") for d in standin.databases_of(b["id"]))
            for b in list(standin.branches.values())
            if b["name"].startswith(RUN_BRANCH_PREFIX)
        )

    while measuring() < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and stderr.count("deleted Neon branch") == 2
    assert run_branches(standin) == []
    assert not list(tmp_path.iterdir())  # no partial results


def test_the_branch_listing_follows_every_page(standin, spec):
    client = NeonClient(spec.neon)
    mark, standin.page_size = len(standin.log), 1
    try:
        listed = client.list_branches()
    finally:
        standin.page_size = 2
        client.close()
    assert sorted(b["id"] for b in listed) == sorted(standin.branches) and len(listed) > 1
    assert standin.calls(mark) == ["GET /branches"] * (len(listed) + 1)  # every page, then the empty one


def test_deleting_a_branch_that_is_gone_is_answered_204_and_counts_as_deleted(standin, spec):
    standin.settle()
    client = NeonClient(spec.neon)
    client.delete_branch("br-never-was")  # no error
    client.close()
    assert standin.log[-1][:3] == ("DELETE", f"/api/v2/projects/{standin.project_id}/branches/br-never-was", 204)


def _seeded_spec(spec: TargetSpec, db_name: str) -> TargetSpec:
    """``spec`` without --neon-parent: the parent named after the dataset and the models' schema."""
    assert spec.neon is not None
    return replace(spec, db_name=db_name, neon=replace(spec.neon, parent=None))


def test_a_seeded_parent_is_named_after_dataset_and_schema_published_complete_and_found_to_measure(
    standin, spec, catalogue
):
    standin.settle()
    home_spec = _seeded_spec(spec, "tb_fingerprinted")
    name = seeded_parent_name("tb_fingerprinted", SMALL.fingerprint(), schema_fingerprint(model_ddl()))
    home_neon = for_dataset(home_spec, SMALL).neon
    assert home_neon is not None and home_neon.parent == name
    seen: list[str] = []

    def seed(target) -> None:  # while seeding, the parent's name is not taken yet: nobody can branch from it
        seen.extend(b["name"] for b in standin.branches.values())
        seed_database(target, SMALL)

    notes: list[str] = []
    with seeded_home(home_spec, SMALL, seed, notes.append) as home:
        dataset = current_dataset(home)
        assert dataset is not None and dataset["fingerprint"] == SMALL.fingerprint()
    assert name not in seen and any(n.startswith(SEEDING_PREFIX) for n in seen)
    assert standin.branch_named(name) is not None
    assert not [b for b in standin.branches.values() if b["name"].startswith(SEEDING_PREFIX)]
    mark = len(standin.log)
    with seeded_home(home_spec, SMALL, lambda target: seed_database(target, SMALL)):  # reused as it is
        pass
    assert "POST /branches" not in standin.calls(mark)
    with pytest.raises(InputError, match="never seeded again in place"):
        seeded_home(home_spec, SMALL, print, reload=True).__enter__()
    # a command that only measures finds it by its database and the models' schema
    with measurement_target(home_spec) as target:
        branch = standin.branches[standin.branch_named(name)["id"]]
        (child,) = [b for b in standin.branches.values() if b["parent_id"] == branch["id"]]
        assert target.database == standin.physical_name(child["id"], "tb_fingerprinted")


def test_a_seed_that_fails_leaves_no_parent_and_no_seeding_branch(standin, spec):
    standin.settle()
    before = set(standin.branches)

    def fail(target) -> None:
        raise RuntimeError("injected")

    with pytest.raises(RuntimeError, match="injected"), seeded_home(_seeded_spec(spec, "tb_failed_seed"), SMALL, fail):
        pass
    assert set(standin.branches) == before


def test_a_parent_published_by_another_seed_meanwhile_stands_and_this_seed_is_deleted(standin, spec):
    standin.settle()
    name = seeded_parent_name("taskbench", "0" * 16, schema_fingerprint("other models"))
    client = NeonClient(spec.neon)
    notes: list[str] = []
    with seed_parent(client, name, "taskbench", notes.append) as first:
        with seed_parent(client, name, "taskbench", notes.append):
            pass  # published first
        winner = standin.branch_named(name)["id"]
    client.close()
    assert standin.branch_named(name)["id"] == winner != first.id and first.id not in standin.branches
    assert "published by another seed meanwhile" in " ".join(notes)


def test_neon_parents_lists_them_and_removes_the_old_ones(standin, spec):
    standin.settle()
    env = {"NEON_API_KEY": KEY, "NEON_PROJECT_ID": standin.project_id, "NEON_API_URL": standin.url}
    listed = taskbench_here("neon", "parents", env_extra=env)
    assert listed.returncode == 0, listed.stderr
    parents = [b for b in standin.branches.values() if SEEDED_NAME.fullmatch(b["name"])]
    assert len(parents) >= 2 and all(p["name"] in listed.stdout for p in parents)
    assert "these models" in listed.stdout and "1 branches" not in listed.stdout
    removed = taskbench_here("neon", "parents", "--remove-old", "--keep", "1", env_extra=env)
    assert removed.returncode == 0, removed.stderr
    left = [b for b in standin.branches.values() if SEEDED_NAME.fullmatch(b["name"])]
    assert len(left) == 1 and left[0]["created_at"] == max(p["created_at"] for p in parents)
    assert "Traceback" not in removed.stderr and KEY not in removed.stdout + removed.stderr
