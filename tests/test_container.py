"""--target docker: a real container where a Docker engine runs; the clear error where none does."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from bench.errors import EXIT_DATABASE, EXIT_INPUT, DatabaseError
from bench.measure.options import RunOptions
from bench.runs.matrix import measure
from bench.targets.container import docker_postgres
from bench.targets.majors import DEFAULT_PG_MAJOR
from bench.targets.options import TargetSpec
from bench.targets.provision import dataset_home, measurement_target
from seed.load import seed_database
from seed.profiles import get_profile
from tests.support import ROOT, taskbench_here

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def _engine_reachable() -> bool:
    import docker

    try:
        docker.from_env().ping()
        return True
    except docker.errors.DockerException:
        return False


def test_no_engine_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE["DOCKER_HOST"])
    with (
        pytest.raises(DatabaseError, match="no Docker engine is reachable at unix:///nonexistent") as info,
        docker_postgres(),
    ):
        pass
    assert "\n" not in str(info.value)


def test_the_cli_says_so_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "bench", "--target", "docker", "--reports-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, **NO_ENGINE},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_DATABASE
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taskbench: error: no Docker engine is reachable"), proc.stderr


@pytest.mark.parametrize("command", ["seed", "run", "load", "validate"])
def test_commands_that_need_a_lasting_database_refuse_docker_up_front(command):
    proc = taskbench_here(command, "--target", "docker", env_extra=NO_ENGINE)  # refused before any work
    assert proc.returncode == EXIT_INPUT, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "new, empty container for each command" in lines[0], proc.stderr


@pytest.mark.skipif(
    not _engine_reachable(),
    reason="no Docker engine on this machine (the docker client alone "
    "is not enough); the container path runs where one is",
)
def test_a_run_in_a_container(catalogue):
    spec = TargetSpec(kind="docker")
    small = replace(
        get_profile("ci", users=2, tasks_per_user=300),
        conversations_per_user=(1, 2),
        messages_per_conversation=(20, 30),
    )
    with dataset_home(spec) as home:
        seed_database(home, small)
        with measurement_target(spec, home) as target:
            res = measure(
                target,
                catalogue.select(["task_by_id"], ["baseline"]),
                RunOptions(cold_samples=0, stability_rounds=0, concurrent=True),
            )
    assert res.environment.target_kind == "docker" and res.environment.server_major == DEFAULT_PG_MAJOR
