import shutil
import tomllib
from pathlib import Path

import pytest
from pglast import ast
from pglast.parser import parse_sql
from sqlmodel import SQLModel

from bench.catalogue.files import load_catalogue
from bench.catalogue.sql import parse_query
from bench.errors import InputError
from bench.models import TABLE_NAMES
from tests.support import SCENARIOS


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, target)
    return target


def test_repository_catalogue_covers_every_sla_class(catalogue):
    classes = {s.sla_class for s in catalogue.scenarios}
    assert classes == {"isolation", "list", "history", "write"}
    assert {"baseline", "composite", "partial"} <= {v.name for v in catalogue.variants}
    assert {s.sla_ms for s in catalogue.scenarios} == {30.0, 50.0, 100.0}
    assert {s.sla_class for s in catalogue.scenarios if s.kind == "write"} == {"write"}


def test_every_shipped_read_with_a_limit_orders_by_its_primary_key_last():
    # Read from the parse tree here, not by the loader's rule: ties under a LIMIT return other rows
    # from run to run and fire the results gate (overdue_tasks and due_next_7_days did, by due_date).
    primary = {name: [c.name for c in SQLModel.metadata.tables[name].primary_key.columns] for name in TABLE_NAMES}
    limited = []
    for path in sorted((SCENARIOS / "queries").glob("*.toml")):
        scenario = tomllib.loads(path.read_text())
        if scenario.get("kind", "read") != "read":
            continue
        node = parse_sql(parse_query(scenario["sql"], write=False).sql)[0].stmt  # binds as $n
        assert isinstance(node, ast.SelectStmt), path.name
        if node.limitCount is None and node.limitOffset is None:
            continue
        assert node.fromClause is not None and node.sortClause, f"{path.name}: a LIMIT without an ORDER BY"
        (table,) = node.fromClause
        last = node.sortClause[-1].node
        assert [f.sval for f in last.fields] == primary[table.relname], path.name
        limited.append(path.stem)
    assert {"overdue_tasks", "due_next_7_days", "recent_tasks", "last_messages"} <= set(limited)


def test_a_limit_whose_order_leaves_ties_is_refused_but_history_is_read_as_written(tmp_path):
    d = _copy(tmp_path)
    path = d / "queries" / "overdue_tasks.toml"
    path.write_text(path.read_text().replace("ORDER BY due_date, id", "ORDER BY due_date"))
    with pytest.raises(InputError, match=r"overdue_tasks.toml: sql: .* end the ORDER BY with id of tasks"):
        load_catalogue(d)
    # a check's "before" side (an older commit) is measured as it was written
    assert "ORDER BY due_date\n" in next(
        s.sql for s in load_catalogue(d, history=True).scenarios if s.name == "overdue_tasks"
    )


def test_named_binds_become_positional_and_casts_survive(catalogue):
    scenario = next(s for s in catalogue.scenarios if s.name == "tag_contains")
    sql, order = scenario.query.sql, list(scenario.query.params)
    assert order == ["user_id", "tags", "page_size"]
    assert "$2::jsonb" in sql and ":user_id" not in sql


def test_adding_a_scenario_is_adding_a_file(tmp_path):
    d = _copy(tmp_path)
    (d / "queries" / "all_titles.toml").write_text(
        'sla_class = "list"\nsql = "SELECT title FROM tasks WHERE user_id = :u ORDER BY id LIMIT 5"\n'
        '[params]\nu = "user"\n'
    )
    assert "all_titles" in {s.name for s in load_catalogue(d).scenarios}


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
        load_catalogue(d)
    assert "broken.toml" in str(info.value)


def test_variant_accepts_only_create_index(tmp_path):
    d = _copy(tmp_path)
    (d / "variants" / "evil.toml").write_text('statements = ["DROP TABLE tasks"]\n')
    with pytest.raises(InputError, match="only CREATE INDEX"):
        load_catalogue(d)


def test_unknown_variant_is_a_clear_error(catalogue):
    with pytest.raises(InputError, match="unknown variant 'nope'"):
        catalogue.select(None, ["nope"])
