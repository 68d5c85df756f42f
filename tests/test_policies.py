"""Row-level security as variants: policies applied and removed like indexes, samples run as the
sampled user (a non-owner role, the claim set per sample), and isolation checked, not assumed: a
policy that leaks fails its cell whatever its latency, and the gate and `run` exit 1."""

from __future__ import annotations

import shutil

import pytest

from bench import results as results_io
from bench.catalogue.files import load_catalogue
from bench.catalogue.options import POLICY_SCOPES
from bench.catalogue.policies import parse_policy
from bench.catalogue.sql import SQLRefused
from bench.catalogue.variants import applied_variant, secured_tables
from bench.cli.matrix import isolated
from bench.errors import EXIT_REGRESSION, InputError, IsolationFailure
from bench.judge.compare import compare
from bench.judge.gates import Kind
from bench.judge.recommend import recommend
from bench.judge.rls import policy_forms, rls_costs
from bench.measure import runner
from bench.measure.claims import claim_nobody, policy_subject
from bench.measure.isolation import ISOLATION_SETS, check_isolation
from bench.measure.options import RunOptions
from bench.measure.paired import pair_up
from bench.measure.runner import jobs_of, prepared, run_measurement
from bench.measure.timeout import Session
from bench.report.build import write_report
from bench.results import IsolationCheck
from bench.runs.matrix import measure
from bench.targets.roles import sampler
from bench.targets.target import Target, connected, scratch_copy
from tests.support import SCENARIOS, one_line_error, taskbench_here

pytestmark = pytest.mark.usefixtures("no_figures")  # its reports are not its subject (tests/conftest.py)

# A policy that forgets the messages table: tasks and conversations isolated, every message visible.
FORGETS_MESSAGES = """
description = "rls_subselect without the messages policy: a leak the isolation check must find"
policies = [
  "ALTER TABLE tasks ENABLE ROW LEVEL SECURITY",
  "ALTER TABLE conversations ENABLE ROW LEVEL SECURITY",
  "CREATE POLICY own_tasks ON tasks USING (user_id = (SELECT current_setting('app.user_id')::uuid))",
  "CREATE POLICY own_conversations ON conversations USING (user_id = (SELECT current_setting('app.user_id')::uuid))",
]
"""
# USING (true): every task to everyone, and any task written for anyone.
USING_TRUE = """
description = "USING (true) on tasks: a leak the isolation check must find"
policies = ["ALTER TABLE tasks ENABLE ROW LEVEL SECURITY", "CREATE POLICY everyone ON tasks USING (true)"]
"""
# The same leaky policies on one more index: a variant the isolation checks of the one above are lent to.
FORGETS_MESSAGES_INDEXED = FORGETS_MESSAGES.replace(
    "policies = [", 'statements = ["CREATE INDEX tb_messages_conversation ON messages (conversation_id)"]\npolicies = ['
)
SCENARIO_NAMES = ["task_by_id", "task_by_id_rls", "last_messages_owned", "last_messages_rls", "create_task_rls"]
RELYING = ("task_by_id_rls", "last_messages_rls", "create_task_rls")


@pytest.fixture(scope="module")
def leaky_catalogue(tmp_path_factory):
    d = tmp_path_factory.mktemp("rls") / "scenarios"
    shutil.copytree(SCENARIOS, d)
    (d / "variants" / "rls_forgets_messages.toml").write_text(FORGETS_MESSAGES, encoding="utf-8")
    (d / "variants" / "rls_using_true.toml").write_text(USING_TRUE, encoding="utf-8")
    (d / "variants" / "rls_forgets_messages_indexed.toml").write_text(FORGETS_MESSAGES_INDEXED, encoding="utf-8")
    return load_catalogue(d)


@pytest.fixture(scope="module")
def rls_run(seeded, leaky_catalogue):
    """One small real run: the explicit and RLS forms under no policy, a sound one and two leaks,
    every scenario under the policies (the policy scope all)."""
    variants = ["baseline", "rls_subselect", "rls_forgets_messages", "rls_forgets_messages_indexed", "rls_using_true"]
    chosen = leaky_catalogue.select(SCENARIO_NAMES, variants).model_copy(update={"policy_scope": "all"})
    return measure(seeded, chosen, RunOptions(cold_samples=1, stability_rounds=1, concurrent=True))


@pytest.mark.parametrize(
    "statement, kind, claims, wrapped",
    [
        ("ALTER TABLE tasks ENABLE ROW LEVEL SECURITY", "enable", set(), False),
        (
            "CREATE POLICY p ON tasks USING (user_id = current_setting('app.user_id')::uuid)",
            "policy",
            {"app.user_id"},
            False,
        ),
        (
            "CREATE POLICY p ON messages FOR SELECT USING (conversation_id IN (SELECT id FROM conversations "
            "WHERE user_id = (SELECT current_setting('app.user_id', true)::uuid)))",
            "policy",
            {"app.user_id"},
            True,
        ),
    ],
)
def test_a_policy_statement_is_read_by_the_parser(statement, kind, claims, wrapped):
    policy = parse_policy(statement)
    assert (policy.kind, set(policy.claims), policy.claim_in_subselect) == (kind, claims, wrapped)
    assert parse_policy(policy.sql).sql == policy.sql  # the canonical text is what runs, and reads back as itself


def test_a_variant_reads_one_claim_at_most():
    two = [
        "CREATE POLICY a ON tasks USING (user_id = current_setting('app.user_id')::uuid)",
        "CREATE POLICY b ON conversations USING (user_id = current_setting('app.tenant')::uuid)",
    ]
    with pytest.raises(ValueError, match="2 claims"):
        load_catalogue(SCENARIOS).variants[0].model_validate({"name": "x", "policies": two})
    with pytest.raises(SQLRefused, match="operator"):
        parse_policy("CREATE POLICY p ON tasks USING (title ~~ 'a%')")


def test_scenarios_relying_on_rls_are_measured_under_policy_variants_only():
    catalogue = load_catalogue(SCENARIOS)
    everything = catalogue.model_copy(update={"policy_scope": "all"})
    for (variant, scenarios), (_, all_of_them) in zip(jobs_of(catalogue), jobs_of(everything), strict=True):
        relying = [s.name for s in scenarios if s.relies_on_rls]
        assert bool(relying) == (variant.claim is not None), variant.name
        if variant.claim is None:
            assert scenarios == all_of_them
        else:  # by default only the scenarios relying on the policies; with all, every scenario too
            assert [s.name for s in scenarios] == relying
            assert [s.name for s in all_of_them] == [s.name for s in catalogue.scenarios]
    assert all(not s.relies_on_rls for s in catalogue.reads().scenarios)  # load, pgbench: no claim there


def test_a_check_pairs_the_cells_its_matrix_measures():
    """Side by side, base and head measure under each variant what a run of the head measures."""
    for scope in POLICY_SCOPES:
        catalogue = load_catalogue(SCENARIOS).model_copy(update={"policy_scope": scope})
        pairing = pair_up(catalogue, catalogue)
        for base, head in pairing.variants:
            paired = [s.name for s, _ in pairing.under((base, head))]
            assert paired == [s.name for s in catalogue.under(head)], (scope, head.name)
        # the two scopes differ under a policy variant, and only there
        policy = next(v for v in catalogue.variants if v.claim is not None)
        relying = [s for s in catalogue.scenarios if s.relies_on_rls]
        assert len(pairing.under((policy, policy))) == len(relying if scope == "relying" else catalogue.scenarios)


def test_an_unknown_policy_scope_is_one_line_and_exit_2():
    ran = taskbench_here("run", "--scenarios-dir", str(SCENARIOS), "--policy-scope", "some")
    assert ran.returncode == 2 and "--policy-scope: unknown scope 'some' (known: relying, all)" in one_line_error(ran)


def test_a_policy_variant_that_ran_the_relying_scenarios_only_is_never_recommended(rls_run, tmp_path):
    """Its explicit scenarios were not measured under the policies, which the app would send them
    under too: it cannot be shown to meet every SLA. With every scenario measured, it can."""
    policy, others = "rls_subselect", ("rls_forgets_messages", "rls_using_true")
    cells = [
        c.model_copy(update={"verdict": "pass" if c.variant == policy else "fail"})
        for c in rls_run.cells
        if c.variant not in others
    ]
    every = rls_run.model_copy(
        update={"cells": cells, "variants": [v for v in rls_run.variants if v.name not in others]}
    )
    chosen = recommend(every).variant
    assert chosen is not None and chosen.name == policy
    relying = every.model_copy(
        update={
            "cells": [c for c in cells if c.variant != policy or c.explicit is not None],
            "config": every.config.model_copy(update={"policy_scope": "relying"}),
        }
    )
    assert recommend(relying).variant is None
    path = results_io.save(relying, tmp_path)
    write_report(path)
    assert "(`--policy-scope relying`, the default)" in (path.parent / "summary.md").read_text(encoding="utf-8")


def test_policies_are_applied_and_removed_like_indexes(seeded):
    variant = next(v for v in load_catalogue(SCENARIOS).variants if v.name == "rls_subselect_indexed")

    async def go() -> tuple[set[str], int, set[str], int, str | None]:
        async with connected(seeded) as conn:
            async with applied_variant(conn, variant):
                during = await secured_tables(conn), await conn.fetchval("SELECT count(*) FROM pg_policies")
            after = await secured_tables(conn), await conn.fetchval("SELECT count(*) FROM pg_policies")
            return *during, *after, await policy_subject(conn)

    secured, policies, secured_after, policies_after, owner = run_measurement(go())
    assert secured == {"tasks", "conversations", "messages"} and policies == 3
    assert secured_after == set() and policies_after == 0
    assert owner is not None and "bypasses" in owner  # the connecting role could not stand for a user


def test_samples_under_a_policy_run_as_the_user_and_the_policy_isolates(rls_run):
    sound = {c.scenario: c for c in rls_run.cells if c.variant == "rls_subselect"}
    assert set(sound) == set(SCENARIO_NAMES)
    assert all(c.claim == "app.user_id" for c in sound.values())
    for name in RELYING:
        check = sound[name].isolation
        assert check is not None and not check.failed, (name, check)
        assert check.parameter_sets == ISOLATION_SETS and check.cross_user == ISOLATION_SETS
    assert sound["create_task_rls"].isolation.refused == ISOLATION_SETS  # WITH CHECK: another user's task refused
    # the claim wrapped in a sub-select is one InitPlan per query, never a filter per row
    assert sound["task_by_id_rls"].plan.init_plans >= 1 and sound["task_by_id_rls"].plan.claim_filters == 0
    # under the policy the explicit filter returns what it returns without one, parameter set by parameter set
    plain = rls_run.cell("task_by_id", "baseline")
    assert plain is not None and plain.samples.result_hashes == sound["task_by_id"].samples.result_hashes
    assert rls_run.cell("task_by_id_rls", "baseline") is None  # nothing isolates it without a policy
    assert all(v.policies for v in rls_run.variants if v.name.startswith("rls_"))


def test_a_leaking_policy_fails_its_cell_whatever_its_latency(rls_run, tmp_path):
    forgot = rls_run.cell("last_messages_rls", "rls_forgets_messages")
    assert forgot is not None and forgot.isolation is not None
    assert forgot.isolation.leaks == forgot.isolation.cross_user > 0 and forgot.verdict == "fail"
    assert "isolation failure" in forgot.verdict_text
    # what that variant does isolate, it isolates
    kept = rls_run.cell("task_by_id_rls", "rls_forgets_messages")
    assert kept is not None and kept.isolation is not None and not kept.isolation.failed
    everyone = rls_run.cell("create_task_rls", "rls_using_true")
    assert everyone is not None and everyone.isolation is not None and everyone.isolation.leaks == ISOLATION_SETS
    # the gate judges isolation alone: the same run on both sides is still a regression
    found = compare(rls_run, rls_run)
    leaking = {(f.scenario, f.variant) for f in found.findings if f.kind == Kind.ISOLATION}
    assert found.exit_code == EXIT_REGRESSION
    assert ("last_messages_rls", "rls_forgets_messages") in leaking
    assert not any(variant == "rls_subselect" for _, variant in leaking)
    # run and bench: saved and reported first, then exit 1 with one line
    path = results_io.save(rls_run, tmp_path)
    with pytest.raises(IsolationFailure, match="last_messages_rls under rls_forgets_messages") as raised:
        isolated(path)
    assert raised.value.exit_code == EXIT_REGRESSION and "\n" not in str(raised.value)


def test_a_finished_isolation_check_is_lent_to_the_variants_with_the_same_policies(rls_run, seeded, leaky_catalogue):
    """What a statement returns does not depend on the indexes: the leaky policies on one more index
    take the checks made under them without it, and checked there afresh, find the same."""
    lent = {name: rls_run.cell(name, "rls_forgets_messages_indexed") for name in RELYING}
    for name, cell in lent.items():
        own = rls_run.cell(name, "rls_forgets_messages")
        assert own is not None and own.isolation is not None and own.isolation.checked_under is None
        assert cell is not None and cell.isolation is not None
        assert cell.isolation.checked_under == "rls_forgets_messages"
        assert cell.isolation.model_copy(update={"checked_under": None}) == own.isolation
    assert lent["last_messages_rls"].isolation.leaks > 0 and lent["last_messages_rls"].verdict == "fail"
    assert "checked under rls_forgets_messages" in lent["last_messages_rls"].isolation.describe()

    variant = next(v for v in leaky_catalogue.variants if v.name == "rls_forgets_messages_indexed")
    scenario = next(s for s in leaky_catalogue.scenarios if s.name == "last_messages_rls")
    _, _, pools = prepared(seeded, leaky_catalogue)

    async def check_here(copy: Target, samples_target: Target) -> IsolationCheck:
        assert variant.claim is not None
        async with connected(copy) as conn, connected(samples_target) as samples:
            await claim_nobody(samples, variant.claim)
            async with applied_variant(conn, variant):
                return await check_isolation(Session(conn), Session(samples), scenario, variant.claim, pools, 1, 1000)

    with scratch_copy(seeded, "lent") as copy, sampler(copy) as sampling:
        afresh = run_measurement(check_here(copy, sampling.target))
    assert afresh == lent["last_messages_rls"].isolation.model_copy(update={"checked_under": None})


def test_a_check_cut_off_by_its_timeout_is_never_lent(rls_run, monkeypatch):
    """A faster index might not have cut it off: each variant checks again. (The checks here are made
    up; that a real check ends so is ``check_isolation``'s, above.)"""
    made: list[str] = []

    async def check(owner, samples, scenario, claim, pools, seed, timeout_ms):
        made.append(scenario.name)
        return IsolationCheck(parameter_sets=1, differing=1, cross_user=0, leaks=0, timed_out=True)

    monkeypatch.setattr(runner, "check_isolation", check)
    cell = rls_run.cell("task_by_id_rls", "rls_subselect")
    scenario = next(s for s in load_catalogue(SCENARIOS).scenarios if s.name == "task_by_id_rls")
    checks: dict[runner.CheckKey, IsolationCheck] = {}
    for _ in range(2):
        isolation = runner._Isolation(None, None, "app.user_id", ("p",), True, checks)  # type: ignore[arg-type]
        checked = run_measurement(isolation.checked(scenario, cell, None, RunOptions()))  # type: ignore[arg-type]
        assert checked.verdict == "fail" and checked.isolation is not None
        assert checked.isolation.checked_under is None
    assert made == ["task_by_id_rls"] * 2 and checks == {}


def test_the_report_says_so_first_and_answers_what_rls_costs(rls_run, tmp_path):
    costs = {(c.cell.scenario, c.cell.variant): c for c in rls_costs(rls_run)}
    sound = costs[("task_by_id_rls", "rls_subselect")]
    assert sound.explicit is not None and (sound.explicit.scenario, sound.explicit.variant) == (
        "task_by_id",
        "baseline",
    )
    # the cells compared sampled enough of each class for the ratio's interval
    assert {r.user_class for r in sound.ratios} == {"ordinary", "power"}
    assert all(r.low is not None and r.low <= r.value <= (r.high or 0) for r in sound.ratios)
    forms = {f.variant.name: f for f in policy_forms(rls_run)}
    assert forms["rls_subselect"].compared_with == "baseline" and forms["rls_subselect"].passed == 3
    assert forms["rls_subselect"].init_plans == 3 and forms["rls_subselect"].claim_filters == 0
    path = results_io.save(rls_run, tmp_path)
    write_report(path)
    summary = (path.parent / "summary.md").read_text(encoding="utf-8").splitlines()
    assert summary[2].startswith(
        "> **✗ Isolation failure in"
    ) and "`last_messages_rls` under `rls_forgets_messages`" in ("\n".join(summary[2:8]))
    assert "## Row-level security: what isolation costs" in summary
    html = (path.parent / "index.html").read_text(encoding="utf-8")
    assert html.index("Isolation failure") < html.index("Recommendation") < html.index("what isolation costs")


def test_a_scenario_relying_on_rls_must_draw_what_its_twin_draws(tmp_path):
    d = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, d)
    path = d / "queries" / "task_by_id_rls.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('task_id = "task"', 'task_id = "cursor_id"'))
    with pytest.raises(InputError, match=r"task_by_id_rls\.toml: \[params\] must draw what 'task_by_id' draws"):
        load_catalogue(d)
    path.write_text(path.read_text(encoding="utf-8").replace('explicit = "task_by_id"', 'explicit = "nothing"'))
    with pytest.raises(InputError, match="'nothing' is no TOML scenario with a user filter of its own"):
        load_catalogue(d)


def test_load_and_validate_refuse_a_policy_variant_before_any_work(seeded):
    from bench.runs import crosscheck, load

    catalogue = load_catalogue(SCENARIOS)
    with pytest.raises(InputError, match="'rls_subselect' has row-level security policies, which load cannot"):
        load.measure(seeded, catalogue.select(["task_by_id"], ["rls_subselect"]).with_mix({"task_by_id": 1}))
    with pytest.raises(InputError, match="which validate cannot measure"):
        crosscheck.measure(seeded, catalogue, crosscheck.CrossCheckOptions(variant="rls_subselect"))
