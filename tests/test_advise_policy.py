"""`advise --policy`: the search held under a policy variant's row-level security, end to end on the
tiny dataset (one small run: recent_tasks as the app relying on the policies writes it, and with its
own filter), a leaking policy refused at the first trial, and a variant with no policies refused
before any work."""

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.advise import model
from bench.advise.options import FINAL_RUN, SEARCH_RUN, AdviseOptions
from bench.advise.run import advise
from bench.catalogue.files import load_catalogue
from bench.catalogue.sql import parse_index
from bench.errors import EXIT_REGRESSION, IsolationFailure
from bench.results import load
from tests.support import SCENARIOS, SHORT_PAUSE_S, one_line_error, taskbench_here

pytestmark = pytest.mark.usefixtures("no_figures")  # its reports are not its subject (tests/conftest.py)

SEARCH = replace(SEARCH_RUN, concurrent=True, confirm_pause_s=SHORT_PAUSE_S)
# the comparison's protocol minus the cold and stability passes, with the search's cell budget:
# what it measures here is which policies every contender ran under, not a fine p95
FINAL = replace(
    FINAL_RUN, cold_samples=0, stability_rounds=0, warmup_seconds=0.1, cell_budget=2.0, confirm_pause_s=SHORT_PAUSE_S
)
SCENARIOS_HELD = ["recent_tasks_rls", "recent_tasks"]
USING_TRUE = """
description = "USING (true) on tasks: every task to everyone"
policies = ["ALTER TABLE tasks ENABLE ROW LEVEL SECURITY", "CREATE POLICY everyone ON tasks USING (true)"]
"""


def _options(policy: str, **more: Any) -> AdviseOptions:
    return AdviseOptions(search_run=SEARCH, final_run=FINAL, concurrent=True, deploy=False, policy=policy, **more)


@pytest.fixture(scope="module")
def held(seeded, catalogue, tmp_path_factory):
    return advise(
        seeded,
        catalogue.select(SCENARIOS_HELD, None),
        # a headroom (the SLA ÷ 40: 1.25 ms) the models' indexes miss by far on the tiny dataset
        # (recent_tasks_rls sorts every task of its user), so that their cells fail in a few samples
        _options("rls_subselect", headroom=40.0, max_builds=10),
        tmp_path_factory.mktemp("held"),
    )


def test_every_trial_and_contender_runs_under_the_policies_and_isolates(held, catalogue):
    run_dir, advice = held
    policy = next(v for v in catalogue.variants if v.name == "rls_subselect")
    assert model.load(run_dir) == advice
    assert advice.policy is not None and advice.policy.variant == "rls_subselect"
    assert advice.policy.statements == [p.sql for p in policy.policy_defs] and advice.policy.claim == "app.user_id"
    assert {(k.table, tuple(k.columns)) for k in advice.policy.columns} == {
        ("tasks", ("user_id",)),
        ("conversations", ("user_id",)),
        ("messages", ("conversation_id",)),
    }
    # the scenarios relying on the policies were searched, and their candidates come from the policies
    assert sorted(advice.trials[0].measured) == sorted(SCENARIOS_HELD)
    assert any("recent_tasks_rls" in c.serves and c.ddl.startswith("CREATE INDEX") for c in advice.candidates)
    res = load(run_dir)
    assert {v.name for v in res.variants} == {"baseline", "advised", "recommended", "per_column", "two_column"}
    assert all(v.policies == advice.policy.statements and v.claim == "app.user_id" for v in res.variants)
    # the policy's own indexes are not carried: baseline is the models' indexes alone
    assert next(v for v in res.variants if v.name == "baseline").statements == []
    relying = [c for c in res.cells if c.scenario.endswith("_rls")]
    assert len(relying) == len(res.variants)
    assert all(c.isolation is not None and not c.isolation.failed for c in relying)
    # recent_tasks_rls has no user filter: the candidates screened for it are led by own_tasks' user_id
    assert "recent_tasks_rls" in advice.failing_at_baseline
    screened = [c for c in advice.candidates if c.screened and "recent_tasks_rls" in c.measured_with]
    assert screened and all(c.ddl.split(" ON ", 1)[1].startswith("tasks (user_id") for c in screened)
    assert set(advice.policy.serving) <= set(advice.advised)
    assert next(c for c in advice.contenders if c.variant == "advised").statements == advice.advised_ddl
    # an advised index is named as serving the policies when a policy's column leads it
    fixed = {(k.table, column) for k in advice.policy.columns for column in k.columns}
    for ddl, name in zip(advice.advised_ddl, advice.advised, strict=True):
        index = parse_index(ddl)
        assert (name in advice.policy.serving) == ((index.table, index.keys[0].column) in fixed)
    report = (run_dir / "advise.md").read_text(encoding="utf-8")
    assert "row-level security held**: policy variant `rls_subselect`" in report
    assert "Serving the policies' columns:" in report


def test_the_shipped_variant_is_a_policy_variant(held, tmp_path):
    _, advice = held
    scenarios = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scenarios)
    shutil.copy(advice.shipped["variant"], scenarios / "variants" / "advised.toml")
    shipped = next(v for v in load_catalogue(scenarios).variants if v.name == "advised")
    assert advice.policy is not None and shipped.policies == advice.policy.statements
    assert shipped.statements == advice.advised_ddl and shipped.claim == "app.user_id"
    revision = Path(advice.shipped["alembic"]).read_text(encoding="utf-8")
    assert "DROP POLICY own_tasks ON tasks" in revision and "ENABLE ROW LEVEL SECURITY" in revision


def test_a_leaking_policy_cannot_be_advised(seeded, tmp_path):
    scenarios = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scenarios)
    (scenarios / "variants" / "rls_using_true.toml").write_text(USING_TRUE, encoding="utf-8")
    leaky = load_catalogue(scenarios).select(["task_by_id_rls"], None)
    with pytest.raises(IsolationFailure) as raised:
        advise(seeded, leaky, _options("rls_using_true"), tmp_path / "reports")
    message = str(raised.value)
    assert raised.value.exit_code == EXIT_REGRESSION and "\n" not in message
    assert "policy variant 'rls_using_true' leaks: isolation failure in task_by_id_rls" in message
    assert not (tmp_path / "reports").exists()  # stopped at the first trial, before the final run


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("baseline", "--policy: 'baseline' has no row-level security policies (policy variants: rls_claim"),
        ("nothing", "--policy: 'nothing' is no variant of the catalogue"),
    ],
)
def test_a_variant_without_policies_is_refused_before_any_work(name, said):
    ran = taskbench_here("advise", "--policy", name, "--scenarios-dir", str(SCENARIOS))
    assert ran.returncode == 2 and said in one_line_error(ran)
