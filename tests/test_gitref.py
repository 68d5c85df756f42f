"""``check --before-ref``: a scenarios directory as a git commit holds it, read without a checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.catalogue.files import load_catalogue
from bench.catalogue.gitref import scenarios_at
from bench.errors import InputError
from tests.support import SCENARIOS, committed_scenarios

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def test_the_scenarios_of_a_commit_are_read_and_the_working_tree_is_left_alone(tmp_path: Path) -> None:
    scenarios = committed_scenarios(tmp_path)
    query = scenarios / "queries" / "recent_tasks.toml"
    committed = query.read_text()
    query.write_text(committed.replace("LIMIT :page_size", "LIMIT :page_size - 1"))
    with scenarios_at("HEAD", scenarios) as before:
        assert (before / "queries" / "recent_tasks.toml").read_text() == committed
        assert {s.name for s in load_catalogue(before).scenarios} == {
            s.name for s in load_catalogue(SCENARIOS).scenarios
        }
    assert not before.exists() and "LIMIT :page_size - 1" in query.read_text()


@pytest.mark.parametrize(
    "ref, said",
    [("no-such-branch", "--before-ref no-such-branch: no such commit"), ("--output=/tmp/x", "is not a commit")],
)
def test_a_ref_that_is_not_a_commit_is_one_line(tmp_path: Path, ref: str, said: str) -> None:
    scenarios = committed_scenarios(tmp_path)
    with pytest.raises(InputError, match=said), scenarios_at(ref, scenarios):
        pass


def test_outside_a_repository_is_one_line(tmp_path: Path) -> None:
    shutil.copytree(SCENARIOS, tmp_path / "scenarios")
    with (
        pytest.raises(InputError, match="git rev-parse: fatal: not a git repository"),
        scenarios_at("HEAD", tmp_path / "scenarios"),
    ):
        pass
