"""A hostile or malformed catalogue file is refused with its reason (exit 2, one line naming the
file), and the server's own catalogs show that nothing it asked for ran."""

import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.targets import roles, schema
from tests.support import SCENARIOS, content_checksums, scalar, taskbench_here

PWNED = Path("/tmp/taskbench_hostile_copy_program")

_VARIANTS = {
    "two_statements": ('statements = ["CREATE INDEX tb_x ON tasks (id); DROP TABLE users"]', "more than one statement"),
    "after_a_comment": (
        'statements = ["CREATE INDEX tb_x ON tasks (id) -- harmless\\n; DROP TABLE messages"]',
        "more than one statement",
    ),
    "behind_a_comment": ('statements = ["/* an index */ DROP TABLE messages"]', "DropStmt"),
    "alter": ('statements = ["ALTER TABLE tasks ADD COLUMN evil int"]', "AlterTableStmt"),
    "create_role": ('statements = ["CREATE ROLE taskbench_evil SUPERUSER"]', "CreateRoleStmt"),
    "create_function": (
        'statements = ["CREATE FUNCTION tb_evil() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql"]',
        "CreateFunctionStmt",
    ),
    "do_block": ("statements = [\"DO $$ BEGIN EXECUTE 'DROP TABLE messages'; END $$\"]", "DoStmt"),
    "dollar_quoted": (
        'statements = ["CREATE INDEX tb_x ON tasks (id); DO $q$ BEGIN DROP TABLE messages; END $q$"]',
        "more than one statement",
    ),
    "copy_program": (f"statements = [\"COPY tasks TO PROGRAM 'touch {PWNED}'\"]", "CopyStmt"),
    "system_table": ('statements = ["CREATE INDEX tb_x ON pg_catalog.pg_authid (rolname)"]', "public schema"),
    "foreign_table": ('statements = ["CREATE INDEX tb_x ON taskbench_meta (key)"]', "not one of the tables"),
    # row-level security: only ENABLE ROW LEVEL SECURITY and CREATE POLICY over the tables' columns
    "policy_calls_a_function": (
        'policies = ["CREATE POLICY p ON tasks USING (pg_sleep(1) IS NULL)"]',
        "may call no function but current_setting",
    ),
    "policy_second_statement": (
        'policies = ["CREATE POLICY p ON tasks USING (true); DROP TABLE users"]',
        "more than one statement",
    ),
    "policy_drop": ('policies = ["DROP TABLE messages"]', "not DropStmt"),
    "policy_force": ('policies = ["ALTER TABLE tasks FORCE ROW LEVEL SECURITY"]', "only ENABLE ROW LEVEL SECURITY"),
    "policy_disable_elsewhere": ('policies = ["ALTER TABLE pg_catalog.pg_authid ENABLE ROW LEVEL SECURITY"]', "public"),
    "policy_for_a_role": ('policies = ["CREATE POLICY p ON tasks TO postgres USING (true)"]', "TO PUBLIC"),
    "policy_operator": ("policies = [\"CREATE POLICY p ON tasks USING (title ~ 'x')\"]", "operator ~"),
    "policy_unknown_column": ("policies = [\"CREATE POLICY p ON tasks USING (owner = 'x')\"]", "no column"),
    "policy_foreign_table": (
        'policies = ["CREATE POLICY p ON tasks USING (EXISTS (SELECT 1 FROM pg_authid))"]',
        "not one of the tables",
    ),
    "policy_claim_from_a_column": (
        'policies = ["CREATE POLICY p ON tasks USING (user_id = current_setting(title)::uuid)"]',
        "a constant custom setting",
    ),
    "policy_cte": (
        'policies = ["CREATE POLICY p ON tasks USING (id IN (WITH x AS (SELECT id FROM tasks) SELECT id FROM x))"]',
        "SELECT ... FROM ... WHERE ... only",
    ),
    "untrusted_extension": (
        'extensions = ["plpython3u"]\nstatements = ["CREATE INDEX tb_x ON tasks (id)"]',
        "not one a variant may create",
    ),
}


def _scenario(sql: str, kind: str = "read") -> str:
    return f'kind = "{kind}"\nsla_class = "list"\nsql = "{sql}"\n[params]\nu = "user"\n'


_SCENARIOS = {
    "delete_as_read": (_scenario("DELETE FROM tasks WHERE user_id = :u RETURNING id"), "a read scenario is one SELECT"),
    "modifying_cte": (
        _scenario("WITH d AS (DELETE FROM tasks WHERE user_id = :u RETURNING id) SELECT * FROM d"),
        "modif",
    ),
    "locking": (_scenario("SELECT id FROM tasks WHERE user_id = :u FOR UPDATE"), "FOR UPDATE"),
    "foreign_read": (_scenario("SELECT rolpassword FROM pg_authid WHERE rolname <> :u::text"), "pg_authid"),
    "write_elsewhere": (_scenario("UPDATE taskbench_meta SET value = :u::text::jsonb", "write"), "taskbench_meta"),
    "dangling_colon": (_scenario("SELECT id FROM tasks WHERE user_id = :u AND title = :"), "no :name bind"),
    "undefined_bind": (_scenario("SELECT id FROM tasks WHERE user_id = :u AND title = :t"), "does not define"),
    # not hostile, mistaken: tied due dates under a LIMIT return other rows from run to run
    "limit_leaves_ties": (
        _scenario("SELECT id FROM tasks WHERE user_id = :u ORDER BY due_date LIMIT 50"),
        "its LIMIT keeps rows its ORDER BY leaves tied: end the ORDER BY with id of tasks",
    ),
}
# Volatile functions are the server's knowledge: refused when the run starts, before any variant.
_VOLATILE = {
    "sleeps": (_scenario("SELECT id, pg_sleep(5) FROM tasks WHERE user_id = :u"), "pg_sleep"),
    "sets_config": (
        _scenario("SELECT set_config('work_mem', '1GB', false) FROM tasks WHERE user_id = :u"),
        "set_config",
    ),
    "terminates": (_scenario("SELECT pg_terminate_backend(0) FROM tasks WHERE user_id = :u"), "pg_terminate_backend"),
}


def _server_state(target) -> dict[str, Any]:
    """Roles, databases, and every relation, function and row of the dataset: what an escaped
    statement would have changed."""
    with schema.connect(target) as conn:
        state = {
            # every run (other tests' too) makes a role for its samples and drops it: not an escape
            "roles": scalar(
                conn,
                "SELECT array_agg(rolname ORDER BY rolname) FROM pg_roles WHERE NOT starts_with(rolname, %s)",
                (roles.PREFIX,),
            ),
            # the dataset's own database and any copy of it (other tests create databases of their own)
            "databases": scalar(
                conn,
                "SELECT array_agg(datname ORDER BY datname) FROM pg_database WHERE starts_with(datname, %s)",
                (target.database,),
            ),
            "relations": scalar(
                conn,
                "SELECT array_agg(relname ORDER BY relname) FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE nspname = 'public'",
            ),
            "functions": scalar(
                conn,
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE nspname = 'public'",
            ),
            "extensions": scalar(conn, "SELECT array_agg(extname ORDER BY extname) FROM pg_extension"),
            "policies": scalar(conn, "SELECT count(*) FROM pg_policies"),
            "secured": scalar(conn, "SELECT count(*) FROM pg_class WHERE relrowsecurity OR relforcerowsecurity"),
        }
    return {**state, "rows": content_checksums(target)}


@pytest.fixture(scope="module")
def before(seeded):
    return _server_state(seeded)


def _catalogue(tmp_path: Path, folder: str, name: str, content: str | bytes) -> Path:
    d = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, d)
    path = d / folder / f"{name}.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return d


def _refused(seeded, d: Path, tmp_path: Path, *selection: str) -> str:
    proc = taskbench_here(
        "run",
        "--scenarios-dir",
        str(d),
        "--db-name",
        seeded.database,
        *selection,
        "--cold-samples",
        "0",
        "--stability-rounds",
        "0",
        "--reports-dir",
        str(tmp_path / "r"),
        "--quiet",
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("taskbench: error: ")]
    assert len(errors) == 1, proc.stderr  # (the target is announced first once the run connects)
    return errors[0]


@pytest.mark.parametrize("name", sorted(_VARIANTS))
def test_hostile_variant_is_refused_and_nothing_runs(seeded, before, tmp_path, name):
    content, reason = _VARIANTS[name]
    line = _refused(seeded, _catalogue(tmp_path, "variants", name, content), tmp_path)
    assert f"{name}.toml" in line and reason in line
    assert _server_state(seeded) == before and not PWNED.exists()


@pytest.mark.parametrize("name", sorted(_SCENARIOS))
def test_hostile_scenario_is_refused_and_nothing_runs(seeded, before, tmp_path, name):
    content, reason = _SCENARIOS[name]
    line = _refused(seeded, _catalogue(tmp_path, "queries", name, content), tmp_path)
    assert f"{name}.toml" in line and reason in line
    assert _server_state(seeded) == before


@pytest.mark.parametrize("name", sorted(_VOLATILE))
def test_volatile_call_in_a_read_is_refused_when_the_run_starts(seeded, before, tmp_path, name):
    content, reason = _VOLATILE[name]
    line = _refused(seeded, _catalogue(tmp_path, "queries", name, content), tmp_path, "-s", name, "-v", "baseline")
    assert name in line and reason in line and "volatile" in line
    assert _server_state(seeded) == before


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("huge", b"# padding\n" * 30_000 + b'sla_class = "list"\nsql = "SELECT 1"\n', "too large"),
        ("not_utf8", b'sla_class = "list"\nsql = "SELECT \xff FROM tasks"\n', "cannot read"),
    ],
)
def test_unreadable_scenario_file_is_refused(seeded, before, tmp_path, name, content, reason):
    line = _refused(seeded, _catalogue(tmp_path, "queries", name, content), tmp_path)
    assert f"{name}.toml" in line and reason in line
    assert _server_state(seeded) == before
