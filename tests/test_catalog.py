import shutil
from pathlib import Path

import pytest

from bench.catalogue.files import load_catalog
from bench.errors import InputError
from tests.support import SCENARIOS


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, target)
    return target


def test_repository_catalogue_covers_every_sla_class(catalog):
    classes = {s.sla_class for s in catalog.scenarios}
    assert classes == {"isolation", "list", "history", "write"}
    assert {"baseline", "composite", "partial"} <= {v.name for v in catalog.variants}
    assert {s.sla_ms for s in catalog.scenarios} == {30.0, 50.0, 100.0}
    assert {s.sla_class for s in catalog.scenarios if s.kind == "write"} == {"write"}


def test_named_binds_become_positional_and_casts_survive(catalog):
    scenario = next(s for s in catalog.scenarios if s.name == "tag_contains")
    sql, order = scenario.positional()
    assert order == ["user_id", "tags", "page_size"]
    assert "$2::jsonb" in sql and ":user_id" not in sql


def test_adding_a_scenario_is_adding_a_file(tmp_path):
    d = _copy(tmp_path)
    (d / "queries" / "all_titles.toml").write_text(
        'sla_class = "list"\nsql = "SELECT title FROM tasks WHERE user_id = :u LIMIT 5"\n[params]\nu = "user"\n'
    )
    assert "all_titles" in {s.name for s in load_catalog(d).scenarios}


@pytest.mark.parametrize(
    "content, message",
    [
        ('sla_class = "list"\nsql = "SELECT 1 WHERE', "not valid TOML"),
        ('sla_class = "list"\nsql = "SELECT :x"\n', "does not define it"),
        ('sla_class = "list"\nsql = "SELECT :x"\n[params]\nx = "planet"\n', "unknown kind"),
        ('sla_class = "fast"\nsql = "SELECT 1"\n', "unknown sla_class"),
        ('sla_class = "list"\nsql = "SELECT 1"\nslo = 3\n', "Extra inputs"),
    ],
)
def test_malformed_scenario_names_file_and_problem(tmp_path, content, message):
    d = _copy(tmp_path)
    (d / "queries" / "broken.toml").write_text(content)
    with pytest.raises(InputError, match=message) as info:
        load_catalog(d)
    assert "broken.toml" in str(info.value)


def test_variant_accepts_only_create_index(tmp_path):
    d = _copy(tmp_path)
    (d / "variants" / "evil.toml").write_text('statements = ["DROP TABLE tasks"]\n')
    with pytest.raises(InputError, match="only CREATE INDEX"):
        load_catalog(d)


def test_unknown_variant_is_a_clear_error(catalog):
    with pytest.raises(InputError, match="unknown variant 'nope'"):
        catalog.select(None, ["nope"])
