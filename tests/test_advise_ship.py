"""The advice shipped three ways, each applied for real on the embedded server: the Alembic revision
(upgrade, downgrade, upgrade again, with a policy variant's row-level security), the SQLModel
__table_args__, and the variant file (a policy variant when the advice held one)."""

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import CheckConstraint, Index, MetaData, create_engine, text
from sqlalchemy.schema import CreateIndex
from sqlmodel import SQLModel

from bench.advise import ship
from bench.advise.candidates import candidates
from bench.catalogue.files import load_catalogue
from bench.models import Task
from bench.targets import schema
from bench.targets.target import scratch_copy
from tests.support import SCENARIOS

ENV_PY = """
from alembic import context
from sqlalchemy import create_engine

engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""


@pytest.fixture(scope="module")
def advised(catalogue):
    """The recommended variant's indexes (an expression, partial and INCLUDE B-trees, GIN) and the
    trigram index, whose extension the migration must create."""
    found = {c.name: c for c in candidates(catalogue)}
    recommended = next(v for v in catalogue.variants if v.name == "recommended")
    return [found[i.name] for i in recommended.indexes] + [found["tb_tasks_title_trgm"]]


@pytest.fixture(scope="module")
def policies(catalogue):
    """The policies advise --policy rls_subselect ships with its indexes."""
    return next(v for v in catalogue.variants if v.name == "rls_subselect").policy_defs


def _secured(conn: psycopg.Connection) -> tuple[set[str], set[tuple[str, str]]]:
    """The tables with row-level security on, and the (table, policy) pairs."""
    tables = conn.execute("SELECT relname FROM pg_class WHERE relrowsecurity AND relkind = 'r'").fetchall()
    named = conn.execute("SELECT tablename, policyname FROM pg_policies WHERE schemaname = 'public'").fetchall()
    return {t for (t,) in tables}, {(t, p) for t, p in named}


def _definitions(conn: psycopg.Connection, names: list[str]) -> dict[str, tuple[str, bool]]:
    rows = conn.execute(
        "SELECT c.relname, pg_get_indexdef(c.oid), i.indisvalid FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = ANY(%s)",
        (names,),
    ).fetchall()
    return {name: (definition, valid) for name, definition, valid in rows}


def test_alembic_upgrade_downgrade_upgrade(seeded, advised, policies, tmp_path):
    files = ship.write(tmp_path / "ship", advised, "test advice", policies=policies)
    secured = {"tasks", "conversations", "messages"}
    named = {("tasks", "own_tasks"), ("conversations", "own_conversations"), ("messages", "own_messages")}
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (tmp_path / "migrations" / "env.py").write_text(ENV_PY)
    shutil.copy(files["alembic"], versions)
    names = [c.name for c in advised]
    with scratch_copy(seeded, "alembic") as copy, psycopg.connect(copy.libpq_conninfo(), autocommit=True) as conn:
        # what the server makes of the advised DDL itself, executed as printed
        conn.execute('CREATE EXTENSION IF NOT EXISTS "pg_trgm"')
        for c in advised:
            conn.execute(c.index.ddl())
        expected = _definitions(conn, names)
        for name in names:
            conn.execute(f'DROP INDEX "{name}"')
        assert len(expected) == len(advised) and all(valid for _, valid in expected.values())

        config = Config()
        config.set_main_option("script_location", str(tmp_path / "migrations"))
        # the ini parser reads '%' as interpolation: a socket path's %2F must be written %%2F
        url = copy.sqlalchemy_url().render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        assert _secured(conn) == (set(), set())
        command.upgrade(config, "head")
        assert _definitions(conn, names) == expected
        assert _secured(conn) == (secured, named)  # the policies after the indexes, committed
        command.downgrade(config, "base")
        assert _definitions(conn, names) == {}
        assert _secured(conn) == (set(), set())  # dropped and disabled
        command.upgrade(config, "head")
        assert _definitions(conn, names) == expected  # every one valid, as built directly
        assert _secured(conn) == (secured, named)


def test_table_args_build_the_same_indexes(make_target, advised):
    target = make_target("tbadvargs")
    schema.recreate_schema(target)
    sources = ship.table_args(advised)
    assert set(sources) == {"Task"}
    namespace: dict[str, Any] = {"Index": Index, "text": text, "CheckConstraint": CheckConstraint}
    exec(sources["Task"], namespace)  # noqa: S102 -- the shipped source, run as a model file runs it
    entries = namespace["__table_args__"]
    kept = [e for e in entries if isinstance(e, CheckConstraint)]
    assert [(str(c.sqltext), c.name) for c in kept] == [(str(c.sqltext), c.name) for c in Task.__table_args__]
    indexes = [e for e in entries if isinstance(e, Index)]
    table = SQLModel.metadata.tables["tasks"].to_metadata(MetaData())
    engine = create_engine(target.sqlalchemy_url())
    names = [c.name for c in advised]
    with schema.connect(target) as raw:
        raw.execute('CREATE EXTENSION IF NOT EXISTS "pg_trgm"')
        for c in advised:
            raw.execute(c.index.ddl())
        expected = _definitions(raw, names)
        for name in names:
            raw.execute(f'DROP INDEX "{name}"')
        raw.commit()
        with engine.begin() as conn:
            for index in indexes:
                index._set_parent(table)
                conn.execute(CreateIndex(index))
        assert _definitions(raw, names) == expected
    engine.dispose()


def test_variant_file_loads_as_a_catalogue_variant(advised, tmp_path):
    scenarios = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scenarios)
    (scenarios / "variants" / "advised.toml").write_text(ship.variant_toml(advised, 'advice "quoted" ÷ 1.5'))
    variant = next(v for v in load_catalogue(scenarios).variants if v.name == "advised")
    assert variant.statements == [c.index.ddl() for c in advised]
    assert variant.extensions == ["pg_trgm"] and variant.description == 'advice "quoted" ÷ 1.5'


def test_variant_file_with_policies_loads_as_a_policy_variant(advised, policies, tmp_path):
    scenarios = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scenarios)
    (scenarios / "variants" / "advised.toml").write_text(ship.variant_toml(advised[:2], "under rls", policies))
    catalogue = load_catalogue(scenarios)
    variant = next(v for v in catalogue.variants if v.name == "advised")
    assert variant.statements == [c.index.ddl() for c in advised[:2]]
    assert variant.policies == [p.sql for p in policies] and variant.claim == "app.user_id"
    assert "recent_tasks_rls" in {s.name for s in catalogue.under(variant)}  # later runs measure it under it


def test_revision_applies_policies_after_the_indexes_and_undoes_them_first(advised, policies):
    source = ship.alembic_revision(advised[:1], "m", policies=policies)
    upgrade, downgrade = source.split("def upgrade()")[1].split("def downgrade()")
    assert upgrade.index("op.create_index(") < upgrade.index("ENABLE ROW LEVEL SECURITY")
    assert downgrade.index("DROP POLICY own_messages ON messages") < downgrade.index("op.drop_index(")
    assert "ALTER TABLE tasks DISABLE ROW LEVEL SECURITY" in downgrade
    assert ship.revision_id(advised[:1], policies) != ship.revision_id(advised[:1])
    compile(source, "revision.py", "exec")


def test_revision_is_stable_and_drops_in_reverse(advised):
    source = ship.alembic_revision(advised, "m", down_revision="abc123")
    assert ship.revision_id(advised) == ship.revision_id(list(reversed(advised)))
    assert "down_revision = 'abc123'" in source and "autocommit_block()" in source
    creates = [line.split("'")[1] for line in source.splitlines() if "op.create_index(" in line]
    drops = [line.split("'")[1] for line in source.splitlines() if "op.drop_index(" in line]
    assert creates == [c.name for c in advised] and drops == creates[::-1]
    assert all("postgresql_concurrently=True" in line for line in source.splitlines() if "_index(" in line)
    compile(source, "revision.py", "exec")


def test_written_forms(advised, tmp_path):
    files = ship.write(tmp_path, advised, "d")
    assert {p.name for p in files.values()} == {
        "advised.toml",
        "table_args.py",
        f"{ship.revision_id(advised)}_advised_indexes.py",
    }
    compile(Path(files["table_args"]).read_text(), "table_args.py", "exec")
