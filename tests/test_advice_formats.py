"""Every advice.json version this code reads, from committed files (tests/data/advice_v*.json: an
advise run on a small dataset, version 3's on the ci profile on PostgreSQL 17 with four scenarios,
version 4's `advise --policy rls_subselect` on the ci profile on PostgreSQL 18 with ten scenarios;
version 5's is version 4's file with its version and the setting version 5 adds, the 6 candidates
screened per failing scenario that search screened; version 1 is version 2's file as the version 1
writer wrote it, with no schema_version and its seconds to 0.1 s): each is read into the current
format, and a version or a file this code cannot read is one line. No server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.advise import model
from bench.advise.model import ADVICE_FILE, ADVICE_VERSION, Advice
from bench.errors import InputError

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = sorted(DATA.glob("advice_v*.json"))


def _version(path: Path) -> int:
    return int(json.loads(path.read_text(encoding="utf-8")).get("schema_version", 1))


def test_every_version_read_has_a_fixture():
    assert sorted(_version(p) for p in FIXTURES) == model.FORMAT.readable_versions()
    assert _version(DATA / f"advice_v{ADVICE_VERSION}.json") == ADVICE_VERSION


def test_advice_names_the_server_it_holds_for_and_an_older_file_says_it_did_not():
    recorded = model.load(DATA / "advice_v3.json")
    assert (recorded.server, recorded.server_major) == ("PostgreSQL 17.10", 17)
    assert model.load(DATA / "advice_v2.json").server is None  # not recorded then


def test_advice_names_the_policy_it_held_and_an_older_file_held_none():
    held = model.load(DATA / "advice_v4.json").policy
    assert held is not None and held.variant == "rls_subselect" and held.claim == "app.user_id"
    assert {k.table: k.columns for k in held.columns}["messages"] == ["conversation_id"]
    assert set(held.serving) == {"tb_tasks_open_user_due", "tb_tasks_user_created"}
    assert model.load(DATA / "advice_v3.json").policy is None  # no policy was held before version 4


def test_advice_says_how_many_candidates_it_screened_and_an_older_search_screened_6():
    assert model.load(DATA / "advice_v4.json").settings.screen_per_scenario == 6  # not an option then
    assert model.load(DATA / "advice_v5.json").settings.screen_per_scenario == 6


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_a_fixture_is_read_into_the_current_format(path, tmp_path):
    advice = model.load(path)
    assert advice.schema_version == ADVICE_VERSION and advice.advised and advice.seconds["total"] > 0
    assert Advice.model_validate_json(advice.model_dump_json()) == advice  # the current format reads back
    (tmp_path / ADVICE_FILE).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert model.load(tmp_path) == advice  # a run directory names its advice.json


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (json.dumps({"schema_version": ADVICE_VERSION + 1}), f"advice schema_version {ADVICE_VERSION + 1} is not"),
        (json.dumps({"schema_version": "2"}), 'advice schema_version "2" is not supported'),
        (json.dumps({"schema_version": 2, "run_id": 3}), "invalid advice file: run_id"),
        (json.dumps([1, 2]), "not a taskbench advice file"),
        ('{"schema_version": 2,', "not valid JSON"),
    ],
)
def test_a_file_this_code_cannot_read_is_one_clear_line(tmp_path, text, said):
    path = tmp_path / ADVICE_FILE
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        model.load(path)
    assert said in str(info.value) and "\n" not in str(info.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(InputError, match="no such advice file"):
        model.load(tmp_path)
