"""Index candidates read from the scenarios' parse trees, and the simple advisors: what each query
asks for, deduplicated against the catalogue and the models; every candidate builds for real."""

from typing import Any

import psycopg
import pytest

from bench.advise.candidates import accesses, candidates, existing_indexes, policy_keys
from bench.advise.run import held_under
from bench.advise.simple import per_column, two_column
from bench.catalogue.files import Catalogue, Scenario, Variant
from bench.catalogue.sql import parse_index
from bench.targets.target import scratch_copy


@pytest.fixture(scope="module")
def found(catalogue):
    return {c.index.ddl().split(" ON ", 1)[1]: c for c in candidates(catalogue)}


def _scenario(sql: str, params: dict[str, Any], name: str = "probe", kind: str = "read") -> Scenario:
    return Scenario(name=name, sla_class="list", sql=sql, params=params, kind=kind)


def test_equality_first_then_the_sort_with_its_direction_then_include_and_partial(found):
    keyset = [
        c
        for form, c in found.items()
        if form.startswith("tasks (user_id, created_at DESC, id DESC)") and "query keyset_page_deep" in c.sources
    ]
    forms = {c.index.ddl().split(" ON ", 1)[1] for c in keyset}
    assert forms == {
        "tasks (user_id, created_at DESC, id DESC)",
        "tasks (user_id, created_at DESC, id DESC) WHERE deleted_at IS NULL",
        "tasks (user_id, created_at DESC, id DESC) INCLUDE (title, priority, due_date, is_completed, deleted_at)",
        (
            "tasks (user_id, created_at DESC, id DESC) INCLUDE (title, priority, due_date, is_completed) "
            "WHERE deleted_at IS NULL"
        ),
    }
    assert all("keyset_page_deep" in c.serves for c in keyset)
    # the range column leads the sort: due_date, then due_time (NULLS LAST is the default ascending), id
    assert "tasks (user_id, due_date, due_time, id) WHERE NOT is_completed AND deleted_at IS NULL" in found
    assert "tasks (user_id, priority, category, created_at DESC, id DESC)" in found


def test_operators_get_their_index_methods(found, catalogue):
    variants = {v.name: v for v in catalogue.variants}
    by_variant = {
        name: variants[name].indexes[0].fingerprint()
        for name in ("gin_jsonb_path_ops", "gin_jsonb_ops", "gin_fts", "gin_trgm")
    }
    fingerprints = {c.fingerprint: c for c in found.values()}
    assert fingerprints[by_variant["gin_jsonb_path_ops"]].serves == {"tag_contains": 3}  # @>
    assert fingerprints[by_variant["gin_jsonb_ops"]].serves == {"tags_any": 3}  # ?|
    fts = fingerprints[by_variant["gin_fts"]]  # the expression exactly as the query writes it
    assert "query full_text_search" in fts.sources and fts.name == "tb_tasks_fts"
    trigram = fingerprints[by_variant["gin_trgm"]]
    assert trigram.extensions == ("pg_trgm",) and "query title_substring" in trigram.sources


def test_deduplicated_against_the_catalogue_and_the_models(found, catalogue):
    names = [c.name for c in found.values()]
    assert len(names) == len(set(names))
    composite = found["tasks (user_id, created_at DESC)"]
    assert composite.name == "tb_tasks_user_created"  # the catalogue's name is kept
    path_ops = found["tasks USING gin (tags jsonb_path_ops)"]
    assert path_ops.name == "tb_tasks_tags_gin_path" and path_ops.sources == (
        "variant gin_jsonb_path_ops",
        "query tag_contains",
    )
    # the recommended covering index, INCLUDE in another order, is the same candidate as a query's
    recent = _scenario(
        "SELECT id, title, priority, is_completed, due_date, created_at FROM tasks "
        "WHERE user_id = :u AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 20",
        {"u": "user"},
        "recent",
    )
    covering = [v for v in catalogue.variants if v.name == "covering"]
    merged = candidates(Catalogue(sla_classes=catalogue.sla_classes, scenarios=[recent], variants=covering))
    assert "query recent" in next(c for c in merged if c.name == "tb_tasks_user_created_covering").sources
    models = {e.fingerprint() for e in existing_indexes()}
    assert not models & {c.fingerprint for c in found.values()}
    # statements whose equality columns hold the primary key get nothing: it finds the row
    assert not any(s in c.serves for c in found.values() for s in ("task_by_id", "complete_task"))


def test_include_only_when_every_column_is_narrow(found):
    # last_messages reads content (text): no INCLUDE form of its index
    messages = {form for form in found if form.startswith("messages (conversation_id, created_at DESC")}
    assert messages == {
        "messages (conversation_id, created_at DESC)",
        "messages (conversation_id, created_at DESC, id DESC)",
    }


def test_joins_aliases_reversed_operands_and_patterns(catalogue):
    sql = """SELECT t.id, t.title FROM tasks t JOIN conversations c ON c.user_id = t.user_id
             WHERE c.id = :conversation_id AND :today >= t.due_date AND t.category IN (:category, 'other')
               AND t.title LIKE 'abc' || :fragment AND NOT t.is_completed ORDER BY t.created_at DESC LIMIT 5"""
    scenario = _scenario(
        sql, {"conversation_id": "conversation", "today": "today", "category": "category", "fragment": "fragment"}
    )
    by_table = {a.table: a for a in accesses(scenario)}
    tasks, conversations = by_table["tasks"], by_table["conversations"]
    assert tasks.equality == ["category", "user_id"] and tasks.ranges == ["due_date"]
    # a constant filter is written as an index predicate must be; 'abc' || ... needs no trigram
    assert list(tasks.constants) == ["NOT is_completed"] and not tasks.needs
    assert conversations.equality == ["id", "user_id"]
    found = candidates(Catalogue(sla_classes=catalogue.sla_classes, scenarios=[scenario], variants=[]))
    forms = {c.index.ddl().split(" ON ", 1)[1] for c in found}
    assert "tasks (category, user_id, due_date)" in forms and "tasks (category, user_id, created_at DESC)" in forms
    assert not any(form.startswith("conversations") for form in forms)  # its primary key is among the equalities


def test_every_candidate_builds(seeded, catalogue):
    found = candidates(catalogue)
    with scratch_copy(seeded, "cand") as copy, psycopg.connect(copy.libpq_conninfo(), autocommit=True) as conn:
        for extension in sorted({e for c in found for e in c.extensions}):
            conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
        for c in found:
            conn.execute(c.index.ddl())
        valid = conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indisvalid AND c.relname = ANY(%s)",
            ([c.name for c in found],),
        ).fetchall()
        assert len(valid) == len(found)


def test_simple_advisors(catalogue):
    columns = {s.split(" ON ", 1)[1] for s in per_column(catalogue).statements}
    assert {"tasks (due_date)", "tasks (is_completed)", "tasks (deleted_at)", "tasks (priority)"} <= columns
    assert "tasks (user_id)" not in columns  # the models index it already
    pairs = {s.split(" ON ", 1)[1] for s in two_column(catalogue).statements}
    assert {
        "tasks (user_id, created_at DESC)",
        "tasks (user_id, due_date)",
        "messages (conversation_id, created_at DESC)",
    } <= pairs
    assert all(len(parse_index(s).keys) == 2 for s in two_column(catalogue).statements)


def _variant(catalogue: Catalogue, name: str) -> Variant:
    return next(v for v in catalogue.variants if v.name == name)


@pytest.mark.parametrize("variant", ["rls_claim", "rls_subselect", "rls_messages_in"])
def test_a_policys_using_is_read_like_a_where_clause(catalogue, variant):
    keys = {(k.policy, k.table): k.columns for k in policy_keys(_variant(catalogue, variant).policy_defs)}
    # the claim compared directly or through a scalar sub-select; messages through their
    # conversation, correlated in EXISTS (c.id = conversation_id) or with IN (SELECT id ...)
    assert keys == {
        ("own_tasks", "tasks"): ("user_id",),
        ("own_conversations", "conversations"): ("user_id",),
        ("own_messages", "messages"): ("conversation_id",),
    }


def test_scenarios_relying_on_rls_get_candidates_from_the_policies(catalogue):
    policy = _variant(catalogue, "rls_subselect")
    under = held_under(catalogue, policy)  # as advise --policy searches
    keys = policy_keys(policy.policy_defs)
    held = {c.index.ddl().split(" ON ", 1)[1]: c for c in candidates(under, policies=keys)}
    plain = {c.index.ddl().split(" ON ", 1)[1]: c for c in candidates(under)}
    # recent_tasks_rls has no user filter of its own: own_tasks' user_id leads its index (its score:
    # the sort key beyond the models' own index on user_id)
    composite = "tasks (user_id, created_at DESC)"
    assert held[composite].serves["recent_tasks_rls"] == 1 and "recent_tasks_rls" not in plain[composite].serves
    mine = "tasks (user_id, created_at DESC, id DESC) WHERE deleted_at IS NULL"
    assert "query recent_tasks_rls" in held[mine].sources and "query recent_tasks_rls" not in plain[mine].sources
    counted = "tasks (user_id) WHERE NOT is_completed AND deleted_at IS NULL"
    assert "query open_task_count_rls" in held[counted].sources
    assert "query open_task_count_rls" not in plain[counted].sources
    # task_by_id_rls: its id and the policy's user_id hold the primary key, which finds the row
    assert not any("task_by_id_rls" in c.serves for c in held.values())
    # the simple advisors read the policies too
    recent = under.select(["recent_tasks_rls"], None)
    pairs = [s.split(" ON ", 1)[1] for s in (*two_column(recent, keys).statements, *two_column(recent).statements)]
    assert pairs == [composite, "tasks (created_at DESC, id DESC)"]  # without them: the sort alone


def test_permissive_policies_fix_only_what_all_fix_and_a_command_policy_only_its_command():
    defs = Variant(
        name="p",
        policies=[
            "ALTER TABLE tasks ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY mine ON tasks USING (user_id = current_setting('app.user_id')::uuid)",
            "CREATE POLICY shared ON tasks USING (id = current_setting('app.user_id')::uuid)",
            "CREATE POLICY edits ON tasks AS RESTRICTIVE FOR UPDATE USING (category = current_setting('app.user_id'))",
        ],
    ).policy_defs
    keys = policy_keys(defs)
    assert [(k.policy, k.command, k.permissive, k.columns) for k in keys] == [
        ("mine", "all", True, ("user_id",)),
        ("shared", "all", True, ("id",)),
        ("edits", "update", False, ("category",)),
    ]
    read = _scenario("SELECT title FROM tasks WHERE due_date < :d", {"d": "today"})
    update = _scenario("UPDATE tasks SET title = 'x' WHERE due_date < :d", {"d": "today"}, kind="write")
    # mine OR shared: neither column is fixed; the restrictive FOR UPDATE policy holds the update only
    assert accesses(read, policies=keys)[0].equality == []
    assert accesses(update, policies=keys)[0].equality == ["category"]
