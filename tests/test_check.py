"""The CI gate: base and head measured now on one server and judged against each other, on the real
embedded server; "before" from a directory, a git commit or a reference run."""

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from bench import results as results_io
from bench.catalogue.files import Variant
from bench.errors import EXIT_INPUT, EXIT_OK, EXIT_REGRESSION, InputError
from bench.judge.check import Before, before_catalogue, check, confirmed, judge_time, resolve_before
from bench.judge.compare import Comparison
from bench.judge.gates import Finding, Kind
from bench.judge.timegate import DEFAULT_TIME
from bench.measure.options import PairOptions, RunOptions
from bench.measure.paired import side_by_side
from bench.report import render
from bench.report.build import write_report
from bench.report.plans import diff_anchor
from bench.results import PairedSamples, SideBySide
from bench.runs import sides
from bench.runs.matrix import measure
from bench.targets import schema
from bench.targets.schema import model_ddl
from bench.targets.target import open_target
from seed.load import seed_database
from tests.support import SCENARIOS, SUITE_ROOT, TINY, edited_catalogue, judged, no_false_alarm, scalar, slowed
from tools.loopback_server import NEON_1CU

pytestmark = pytest.mark.usefixtures("no_figures")  # its reports are not its subject (tests/conftest.py)

OPTS = RunOptions(cold_samples=0, stability_rounds=0, concurrent=True)
PAIRS = PairOptions(pairs=30, concurrent=True)
CELLS = (["recent_tasks", "task_by_id", "create_task"], ["composite"])
READS = ["recent_tasks", "task_by_id"]
# A test that expects time judged side by side (its calibration, no time finding) runs alone: not
# beside another xdist worker (tests/workers.py). Rows, plans and refusals do not depend on it, nor
# does a test whose point is elsewhere and which takes "cannot judge" for an answer (no_false_alarm).
alone = pytest.mark.alone


@pytest.fixture(scope="module")
def head(catalogue):
    return catalogue.select(*CELLS)


@pytest.fixture(scope="module")
def reference(seeded, head):
    """A reference run of the cells, as a committed baseline would be."""
    return measure(seeded, head, OPTS)


def _sides(seeded, before, after, schema=None, everything=False):
    return sides.measure(seeded, before, after, sides.SidesOptions(OPTS, PAIRS, everything), base_schema=schema)


def _check(seeded, before, after, schema=None, everything=False, reference=None, measured=None):
    """The check of ``after`` against ``before``, both measured now; ``measured``: both sides as
    ``_sides`` measured them already for another check of the same catalogues (a check takes its
    measurement as a callable, and a repeated one would measure the same cells the same way)."""
    return check(
        after,
        Before(before, "test", schema),
        lambda b, a, s: measured if measured is not None else _sides(seeded, b, a, s, everything),
        lambda b, a, s, n: side_by_side(seeded, b, a, replace(PAIRS, pairs=n), base_schema=s),
        reference=reference,
    )


@pytest.fixture(scope="module")
def unchanged(seeded, head):
    """Both sides of an unchanged head, measured once for the checks that judge it with one reference
    run or another (its tests are ``alone``: set up in the first of them); measured once more when the
    gate refused them only because the sides' calibration ran unalike (``judged``: seen at 17:53, round_trip
    ×0.71 while nothing ran beside, which failed both tests at once)."""

    def measured():
        sides = _sides(seeded, head, head)
        return sides, _check(seeded, head, head, measured=sides)[1]

    return judged(measured)[0]


def _edited(tmp_path, edit, names=READS):
    return edited_catalogue(tmp_path, {f"queries/{name}.toml": edit for name in names}).select(*CELLS)


@alone
def test_an_unchanged_head_passes_with_its_time_gate_on_each_cell_measured_once(seeded, head, reference, unchanged):
    current, result = _check(seeded, head, head, reference=reference, measured=unchanged)
    assert result.exit_code == EXIT_OK, result.findings
    assert result.time.startswith("side by side, 3 cells × 30 pairs") and result.time_refused is None
    sbs = current.side_by_side
    assert sbs is not None and len(sbs.cells) == 3 and sbs.base_cells == []
    assert "0 base cell(s) measured for themselves, 3 the same on both sides" in result.notes[0]
    assert all(c.differing_rows == 0 for c in sbs.cells if c.scenario in READS)
    # the reference run's environment is this server's: its drift is shown, and it is not judged
    assert result.drift_line is not None and result.drift_line.startswith(f"drift since {reference.run_id}: ")


@alone
def test_an_aa_check_measuring_every_cell_twice_finds_nothing(seeded, head):
    current, result = _check(seeded, head, head, everything=True)
    assert len(current.side_by_side.base_cells) == 3 and result.findings == [], result.findings
    no_false_alarm(result)


@alone
def test_a_query_made_slower_is_a_time_regression_confirmed_on_fresh_connections(seeded, head, tmp_path):
    # one cell: every cell is judged and confirmed alike, and the window nothing else runs beside is short
    one = (["task_by_id"], ["composite"])
    slow = _edited(tmp_path, slowed, one[0]).select(*one)  # several times the query's own time
    current, result = judged(lambda: _check(seeded, head.select(*one), slow))
    assert [(f.scenario, f.kind) for f in result.regressions] == [("task_by_id", Kind.TIME)], result.findings
    assert [c.scenario for c in current.side_by_side.confirmation] == ["task_by_id"]
    assert all(len(c.base_ms) == 60 for c in current.side_by_side.confirmation)  # twice the pairs
    assert "measured again on fresh connections" in result.time and result.exit_code == EXIT_REGRESSION


def test_a_rewrite_that_returns_other_rows_is_a_regression_on_both_sides_measured_now(seeded, head, tmp_path):
    fewer = _edited(tmp_path, lambda text: text.replace("LIMIT :page_size", "LIMIT :page_size - 1"), ["recent_tasks"])
    current, result = _check(seeded, head, fewer)
    rows = [f for f in result.regressions if f.kind == Kind.RESULTS and f.scenario == "recent_tasks"]
    # from the explained samples of both runs, and from the pairs
    assert len(rows) == 2 and result.exit_code == EXIT_REGRESSION
    assert [(c.scenario, c.variant) for c in current.side_by_side.base_cells] == [("recent_tasks", "composite")]


def test_an_index_dropped_from_a_variant_is_a_plan_regression_its_plans_drawn_and_linked(seeded, head, tmp_path):
    composite = next(v for v in head.variants if v.name == "composite")
    kept = [s for s in composite.statements if "created_at" not in s or "messages" in s]
    assert kept != composite.statements
    fewer = head.model_copy(update={"variants": [Variant(name="composite", statements=kept)]})
    current, result = _check(seeded, head, fewer)
    kinds = {f.kind for f in result.regressions if f.scenario == "recent_tasks"}
    assert kinds & {Kind.INDEX_DROPPED, Kind.SEQ_SCAN, Kind.SORT_ADDED}, result.findings
    assert result.exit_code == EXIT_REGRESSION
    # The head's report draws the base and head plans of the cell; the pull request's summary links there.
    assert current is not None
    html = write_report(results_io.save(current, tmp_path / "check"))[0]
    anchor = diff_anchor("recent_tasks", "composite")
    page = html.read_text()
    assert f'id="{anchor}"' in page
    section = page[page.index(f'id="{anchor}"') :]
    assert "vanished" in section and "appeared" in section  # the index scan went, another way of reading came
    summary = render.markdown(result, "base", "head", render.ReportLink.to(html, current, tmp_path / "summary.md"))
    link = f"](check/{html.parent.name}/index.html#{anchor})"
    assert any(line.startswith("- [recent_tasks × composite]") and link in line for line in summary)
    # and the plans themselves, folded, for a pull request to read where the report is an artifact away
    diff = summary[summary.index("```diff") : summary.index("```", summary.index("```diff") + 1)]
    assert any(line.startswith("- ") and "using tb_tasks_user_created" in line for line in diff)  # vanished
    assert any(line.startswith("+ ") for line in diff)  # what the head reads it with instead


def test_changed_parameters_are_timed_each_side_with_its_own_and_rows_not_compared(seeded, head, tmp_path):
    renamed = _edited(
        tmp_path,
        lambda text: text.replace('user_id = "user"', 'user_id = "user"\nunused = 1').replace(
            "WHERE ", "WHERE :unused = 1 AND ", 1
        ),
    )
    current, result = _check(seeded, head, renamed)
    no_false_alarm(result)
    assert all(c.differing_rows is None for c in current.side_by_side.cells if c.scenario in READS)


def test_changed_models_are_timed_beside_the_recorded_schema(seeded, head, reference):
    # the reference run's models: title as text and a flag (with a default) the models have dropped since
    recorded = reference.schema_ddl.replace(
        "title VARCHAR(200)", "flagged BOOLEAN DEFAULT false NOT NULL, title TEXT", 1
    )
    current, result = _check(seeded, head, head, schema=recorded)
    no_false_alarm(result)
    assert "the models changed: the base side on its own schema (tasks.flagged: its " in (result.time)
    sbs = current.side_by_side
    assert sbs.rebuilt_schema == ["tasks.flagged: its recorded default (the models have no such column)"]
    assert len(sbs.base_cells) == 3  # another schema: nothing is the same measurement
    assert all(c.differing_rows in (0, None) for c in sbs.cells)


def test_rows_that_do_not_fit_the_recorded_schema_are_exit_2_not_a_silent_pass(seeded, head, reference):
    recorded = reference.schema_ddl.replace("title VARCHAR(200)", "extra INT NOT NULL, title TEXT", 1)
    current, result = _check(seeded, head, head, schema=recorded)
    assert current is None and result.exit_code == EXIT_INPUT
    assert 'null value in column "extra"' in result.time_refused
    assert "time could not be judged across the schema change" in result.time_refused


def test_a_regression_is_exit_1_even_where_time_could_not_be_judged():
    found = Comparison(findings=[Finding(Kind.PLAN_CHANGED, "a", "b", "x", "change")], time_refused="calibration")
    assert found.exit_code == EXIT_INPUT
    found.findings.append(Finding(Kind.SEQ_SCAN, "a", "b", "an index scan became a Seq Scan"))
    assert found.exit_code == EXIT_REGRESSION


def test_a_time_regression_must_show_again_in_the_confirmation():
    slow = PairedSamples(scenario="s", variant="v", base_ms=[1.0] * 30, head_ms=[2.0] * 30, differing_rows=0)
    same = slow.model_copy(update={"head_ms": [1.0, 1.01] * 15})
    finding = Finding(Kind.TIME, "s", "v", "×2.00")
    kept, dropped = confirmed([finding], [slow], DEFAULT_TIME, judged=10)
    assert kept == [finding] and dropped == []
    kept, dropped = confirmed([finding], [same], DEFAULT_TIME, judged=10)
    assert kept == [] and "did not show again" in dropped[0]
    faster = Finding(Kind.TIME, "s", "v", "×0.50", "improvement")  # an improvement is confirmed the same way
    assert confirmed([faster], [slow], DEFAULT_TIME, judged=10)[0] == []
    swapped = slow.model_copy(update={"base_ms": slow.head_ms, "head_ms": slow.base_ms})
    assert confirmed([faster], [swapped], DEFAULT_TIME, judged=10)[0] == [faster]


@alone
def test_drift_against_a_reference_from_another_setting_is_one_line_never_exit_2(seeded, head, reference, unchanged):
    elsewhere = reference.model_copy(
        update={
            "environment": reference.environment.model_copy(
                update={"settings": {**reference.environment.settings, "effective_cache_size": "3GB"}}
            )
        }
    )
    _, result = _check(seeded, head, head, reference=elsewhere, measured=unchanged)
    assert result.exit_code == EXIT_OK and result.drift == []
    assert result.drift_line is not None and "not shown (different planner settings: effective_cache_size" in (
        result.drift_line
    )
    assert "effective_cache_size 3GB → 4GB" in result.drift_line  # in their real unit


def test_before_is_rebuilt_from_the_reference_run_through_the_parser(head, reference):
    before = before_catalogue(reference, head)
    assert {s.name for s in before.scenarios} == set(CELLS[0])
    assert next(s for s in before.scenarios if s.name == "create_task").kind == "write"
    assert [i.ddl() for i in before.variants[0].indexes] == reference.variants[0].statements
    smuggled = reference.model_copy(
        update={
            "variants": [
                reference.variants[0].model_copy(
                    update={"statements": ["CREATE INDEX x ON tasks (id); DROP TABLE users"]}
                )
            ]
        }
    )
    with pytest.raises(Exception, match="more than one statement"):
        before_catalogue(smuggled, head)


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_before_defaults_to_the_merge_base_with_the_default_branch(tmp_path, head, reference):
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(SCENARIOS, repo / "scenarios")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "root")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "scenarios")
    _git(repo, "checkout", "-q", "-b", "feature")
    (repo / "scenarios" / "queries" / "task_by_id.toml").unlink()
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "drop one")
    with resolve_before(head, repo / "scenarios", None, None, reference, model_ddl()) as before:
        assert "the merge base with main" in before.source and before.schema_ddl is None
        assert "task_by_id" in {s.name for s in before.catalogue.scenarios}  # the base still has it
    # outside a repository the reference run stands for "before"; with neither, a clear error
    outside = tmp_path / "plain"
    shutil.copytree(SCENARIOS, outside)
    with resolve_before(head, outside, None, None, reference, model_ddl()) as before:
        assert before.source.startswith(f"reference run {reference.run_id}")
    with (
        pytest.raises(InputError, match="nothing stands for 'before'"),
        resolve_before(head, outside, None, None, None, model_ddl()),
    ):
        pass
    with pytest.raises(InputError, match="give one"), resolve_before(head, outside, outside, "main", None, model_ddl()):
        pass


def test_a_calibration_that_differs_between_the_sides_refuses_to_judge():
    same = {"round_trip": [0.1, 0.11, 0.1, 0.12] * 8, "server_cpu": [1.0, 1.1, 1.05, 0.98] * 8}
    slow = {k: [v * 2 for v in vs] for k, vs in same.items()}
    ok = SideBySide(pairs=32, calibration_base_ms=same, calibration_head_ms=same, cells=[], new=[])
    assert judge_time(ok, DEFAULT_TIME)[1] is None
    refused = judge_time(ok.model_copy(update={"calibration_head_ms": slow}), DEFAULT_TIME)[1]
    assert refused and "calibration workload differed" in refused


def test_a_round_trip_that_differs_alone_is_reported_not_judged():
    same = {"round_trip": [0.05, 0.06] * 16, "server_cpu": [1.0, 1.1, 1.05, 0.98] * 8}
    rt_only = {**same, "round_trip": [v * 1.9 for v in same["round_trip"]]}
    sbs = SideBySide(pairs=32, calibration_base_ms=same, calibration_head_ms=rt_only, cells=[], new=[])
    refused, account = judge_time(sbs, DEFAULT_TIME)[1:]
    assert refused is None and "round_trip ×1.90" in account


@pytest.fixture(scope="module")
def other_major():
    """Debian's PostgreSQL server, another major than the embedded one's, where it is installed."""
    from tools.loopback_server import loopback_server

    servers = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    if not servers:
        pytest.skip("no Debian PostgreSQL server on this machine (package postgresql): nothing to check by URL")
    with loopback_server(bin_dir=servers[0].parent, parent=SUITE_ROOT) as urls:
        target = open_target(urls["TCP_URL"], "tb_other_major")
        schema.claim_database(target)
        seed_database(target, TINY)
        yield target


# Beside the other worker, and first: it starts and seeds the other server (other_major) there, not in
# the time judged alone below; a changed result is found whatever the gate says about time.
def test_check_finds_other_rows_on_another_major_given_by_url(other_major, head, tmp_path):
    fewer = _edited(tmp_path, lambda text: text.replace("LIMIT :page_size", "LIMIT :page_size - 1"), ["recent_tasks"])
    current, result = _check(other_major, head, fewer)
    assert current.environment.server_major != 18 and current.environment.target_kind == "url"
    assert {f.kind for f in result.regressions} == {Kind.RESULTS} and result.exit_code == EXIT_REGRESSION


@alone
def test_check_judges_on_another_major_given_by_url(other_major, head):
    current, result = judged(lambda: _check(other_major, head, head, everything=True))
    assert current.environment.server_major != 18 and current.environment.target_kind == "url"
    assert result.exit_code == EXIT_OK and result.findings == [] and result.time.startswith("side by side")


def test_a_commit_brings_its_models_and_the_base_side_is_built_on_them(tmp_path, head):
    import shutil

    from tests.support import ROOT

    repo = tmp_path / "repo"
    shutil.copytree(SCENARIOS, repo / "scenarios")
    shutil.copytree(ROOT / "bench", repo / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    models = repo / "bench" / "models.py"
    models.write_text(models.read_text().replace("ck_tasks_title_not_blank", "ck_tasks_title_not_empty"))
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "models of another day")
    with resolve_before(head, repo / "scenarios", None, "HEAD", None, model_ddl()) as before:
        # the commit's models, imported in a process of their own: another constraint name than ours
        assert before.schema_ddl is not None and "ck_tasks_title_not_empty" in before.schema_ddl
        assert before.schema_ddl.replace("not_empty", "not_blank") == model_ddl()
    with resolve_before(head, repo / "scenarios", None, "HEAD", None, before.schema_ddl) as same:
        assert same.schema_ddl is None  # the same models on both sides: nothing to rebuild
    shutil.rmtree(repo / "bench")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "no models")
    with resolve_before(head, repo / "scenarios", None, "HEAD", None, model_ddl()) as without:
        assert (
            without.schema_ddl is None and "could not be read" in without.source
        ) or "did not match" in without.source


@pytest.fixture(scope="module")
def neon_settings_seeded(neon_settings_server):
    """The tiny dataset on the server with Neon's 1 CU settings."""
    target = open_target(neon_settings_server.render_as_string(hide_password=False), "tb_neon_settings")
    schema.claim_database(target)
    seed_database(target, TINY)
    return target


# Beside the other worker, and first: the server with Neon's settings starts and is seeded here, not
# in the time judged alone below.
def test_the_server_with_neons_settings_runs_under_each_of_them_and_holds_the_dataset(neon_settings_seeded):
    with schema.connect(neon_settings_seeded) as conn:
        set_here = conn.execute(
            "SELECT name FROM pg_settings WHERE name = ANY(%s) AND source <> 'default'", (list(NEON_1CU),)
        ).fetchall()
        assert scalar(conn, "SHOW effective_cache_size") == NEON_1CU["effective_cache_size"]
    assert {name for (name,) in set_here} == set(NEON_1CU)
    assert schema.seeded_dataset(neon_settings_seeded).row_counts["users"] == TINY.users


@alone
def test_check_judges_with_neons_planner_settings_and_finds_nothing_in_an_aa_check(neon_settings_seeded, head):
    current, result = _check(neon_settings_seeded, head, head, everything=True)
    assert current.environment.settings["effective_cache_size"] == "3GB"  # Neon's at 1 CU, not the embedded 4GB
    assert result.findings == []
    no_false_alarm(result)
    assert len(current.side_by_side.base_cells) == 3
