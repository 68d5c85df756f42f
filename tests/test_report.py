"""The report from results.json alone: every file, the same facts in HTML, Markdown and CSV, and
no secret anywhere."""

import itertools
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from markupsafe import escape

from bench import results as results_io
from bench.catalogue.params import POWER_USER_RATIO
from bench.judge.compare import Comparison
from bench.judge.gates import Finding, Kind
from bench.judge.recommend import recommend
from bench.report import render
from bench.report.build import _templates, plan_diffs, power_ratio, write_report
from bench.report.plans import cell_diff, drawn, scenario_plans, tree
from bench.report.plots import _Boxes
from bench.results import Results
from tests.support import SHORT_PAUSE_S, cell_of

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def report_dir(small_results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    results_io.save(small_results, out)
    run_dir = (out / "latest").resolve()
    return run_dir, write_report(run_dir)


def test_every_file_is_written(report_dir):
    run_dir, written = report_dir
    names = {p.name for p in written}
    assert names == {"index.html", "summary.md", "results.csv", "heatmap.png", "latency.png", "tradeoff.png"}
    for png in run_dir.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_a_latency_box_spans_the_quartiles_its_whiskers_and_caps_p5_and_p95():
    boxes = _Boxes()
    boxes.add([float(v) for v in range(1, 102)], 2.0, 0.4, ("tab:blue", "xxx"))  # percentile q is 1 + q
    [box] = boxes.shapes[("tab:blue", "xxx")]
    assert sorted({x for x, _ in box}) == [26.0, 76.0] and sorted({y for _, y in box}) == [1.8, 2.2]
    assert boxes.medians == [[(51.0, 1.8), (51.0, 2.2)]]
    reaching = [segment for segment in boxes.whiskers if segment[0][1] == segment[1][1] == 2.0]
    assert reaching == [[(6.0, 2.0), (26.0, 2.0)], [(76.0, 2.0), (96.0, 2.0)]]
    caps = [segment for segment in boxes.whiskers if segment not in reaching]
    assert [{x for x, _ in cap} for cap in caps] == [{6.0}, {96.0}]


def test_html_is_self_contained_and_complete(report_dir, small_results):
    run_dir, _ = report_dir
    html = (run_dir / "index.html").read_text()
    assert html.count('src="data:image/png;base64,') == 3  # the figures travel inside the page
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    for text in (
        "Recommendation",
        "PostgreSQL " + small_results.environment.server_version,
        small_results.dataset.fingerprint,
        small_results.environment.git_commit,
        "recent_tasks",
        "composite",
        "WAL B/write",
        "post_message",
    ):
        assert text in html, text
    rec = recommend(small_results)
    adopted = rec.variant or rec.closest
    assert adopted is not None
    assert f"<code>{adopted.name}</code>" in html
    assert ("__table_args__" in html) == bool(adopted.statements)


def test_csv_has_one_row_per_cell(report_dir, small_results):
    run_dir, _ = report_dir
    df = pd.read_csv(run_dir / "results.csv")
    assert len(df) == len(small_results.cells)
    assert {
        "scenario",
        "variant",
        "p95_ms",
        "p95_low",
        "verdict",
        "index_size_bytes",
        "kind",
        "wal_bytes_per_statement",
        "cold_blocks_read_p50",
        "plan_flips",
    } <= set(df.columns)
    row = df[(df.scenario == "recent_tasks") & (df.variant == "composite")].iloc[0]
    assert row.p95_ms == small_results.cell("recent_tasks", "composite").client.p95.value


def test_markdown_says_what_the_html_says(report_dir):
    run_dir, _ = report_dir
    md = (run_dir / "summary.md").read_text()
    for text in (
        "## Recommendation",
        "## Verdicts",
        "## What each variant costs",
        "## Plans: baseline against",
        "![p95 ÷ SLA](heatmap.png)",
        "Where the run's time went",
    ):
        assert text in md, text


def test_plan_diff_names_what_changed(small_results):
    diffs = {d.scenario: d for d in plan_diffs(small_results)}
    recent = diffs.get("recent_tasks")
    assert recent is not None and recent.best.variant == "composite"
    assert "Sort" in recent.removed and "index tb_tasks_user_created" in recent.added


@pytest.fixture(scope="module")
def early_stopped(seeded, catalogue, tmp_path_factory):
    """A real run with a cell that fails at once (its SLA is a microsecond) and one that passes, reported."""
    from bench.measure.options import RunOptions
    from bench.runs.matrix import measure

    scenarios = [
        s.model_copy(update={"sla_ms": {"recent_tasks": 0.001, "task_by_id": 10_000}[s.name]})
        for s in catalogue.scenarios
        if s.name in ("recent_tasks", "task_by_id")
    ]
    res = measure(
        seeded,
        catalogue.model_copy(update={"scenarios": scenarios}).select(None, ["baseline"]),
        RunOptions(cold_samples=0, stability_rounds=0, concurrent=True, confirm_pause_s=SHORT_PAUSE_S),
    )
    out = tmp_path_factory.mktemp("early")
    write_report(results_io.save(res, out))
    return res, (out / "latest").resolve()


def test_an_early_stopped_cell_reads_as_it_was_decided_without_an_interval(early_stopped):
    res, run_dir = early_stopped
    failing = res.cell("recent_tasks", "baseline")
    stopped = failing.deciding
    # four samples, measured again after a pause: eight bound no p95 from above
    assert stopped.n == 4 and stopped.samples == 8 and stopped.p95.interval == ""
    fail = "fail at n = 4 (4/4 over 0.001 ms; measured again after a fail at n = 4)"
    said = f"{fail} — ordinary users"
    assert failing.verdict_text == said
    per_class = f"ordinary (2 users): {fail}, p95 {stopped.p95.value:.2f};"
    passing = res.cell("task_by_id", "baseline").deciding
    for page in ("summary.md", "index.html"):
        text = (run_dir / page).read_text()
        assert said in text and per_class in text, page  # no "[low, high]" after a p95 that has none
        assert f"pass at n = 77 (0/77 over 10000 ms), p95 {passing.p95.value:.2f} [" in text
        assert "[–" not in text and "–]" not in text
    assert "✗ ordinary" in (run_dir / "summary.md").read_text()
    csv = pd.read_csv(run_dir / "results.csv")
    assert csv[csv.scenario == "recent_tasks"].iloc[0].verdict_detail == said


def test_a_variant_returning_other_rows_is_named_in_the_report(small_results, tmp_path):
    from bench import results as results_io
    from bench.report.build import write_report

    cell = small_results.cell("recent_tasks", "composite")
    wrong = cell.model_copy(
        update={
            "samples": cell.samples.model_copy(update={"result_hashes": ["f" * 16] * len(cell.samples.result_hashes)})
        }
    )
    res = small_results.model_copy(update={"cells": [wrong if c is cell else c for c in small_results.cells]})
    run_dir = results_io.save(res, tmp_path).parent
    write_report(run_dir)
    summary = (run_dir / "summary.md").read_text()
    assert "Variants that return other rows than the baseline variant" in summary
    assert "recent_tasks × composite" in summary.split("Variants that return other rows")[1]


def test_the_class_rule_the_runner_records_is_the_one_the_report_reads(small_results):
    assert power_ratio(small_results) == POWER_USER_RATIO


@pytest.mark.parametrize("rule_recorded", [True, False])
def test_a_scale_report_relates_crossings_to_power_users_only_by_a_recorded_rule(rule_recorded, tmp_path):
    res = results_io.load(DATA / f"results_v{results_io.SCHEMA_VERSION}_scale.json")
    assert res.protocol is not None and res.scale is not None
    if not rule_recorded:
        res.protocol.parameters.pop("class_rule")
    results_io.save(res, tmp_path)
    run_dir = (tmp_path / "latest").resolve()
    write_report(run_dir)
    summary, html = (run_dir / "summary.md").read_text(), (run_dir / "index.html").read_text()
    for text in (summary, html):
        assert ("more than 2× the median user's tasks" in text) == rule_recorded
        assert ("every power user past it" in text) == rule_recorded
        assert ("records no class rule" in text) != rule_recorded


# Plan trees and plan diffs, from the committed newest fixture (a real run: 3 scenarios × 2 variants).
NEWEST = DATA / f"results_v{results_io.SCHEMA_VERSION}.json"


def _report_of(res: Results, out: Path) -> str:
    write_report(results_io.save(res, out).parent)
    return (out / "latest" / "index.html").read_text()


@pytest.fixture(scope="module")
def fixture_page(tmp_path_factory):
    res = results_io.load(NEWEST)
    return res, _report_of(res, tmp_path_factory.mktemp("plans"))


def test_each_measurement_has_a_tree_per_class_and_its_hottest_path(fixture_page):
    res, html = fixture_page
    for cell in res.cells:
        assert (f'id="tree-{cell.scenario}-{cell.variant}"' in html) == (cell.shared_with is None)
        for plan in cell.plans:
            root = tree(plan)
            views = list(root.walk())
            if plan.timed_out_ms:  # never_ends: cut off by its timeout, estimated only, nothing timed or hot
                assert root.total_ms is None and not any(v.hot for v in views)
                continue
            assert sum(v.self_ms or 0 for v in views) == pytest.approx(root.total_ms, abs=0.01)  # no time lost
            hottest = max(views, key=lambda v: v.self_ms or 0)
            hot = [v for v in views if v.hot]  # a path: the root, each next one a child of the one before
            assert hot[0] is root and hot[-1] is hottest and [v for v in views if v.hottest] == [hottest]
            assert all(b in a.children for a, b in itertools.pairwise(hot))
    shared = cell_of(res, "task_by_id", "composite")
    assert shared.shared_with == "baseline" and "baseline (and composite, covering: the same measurement)" in html
    timed = [p for c in res.cells if not c.shared_with for p in c.plans if p.execution_ms is not None]
    assert html.count('class="pn hot hottest"') == len(timed)  # a node in each timed tree, drawn once
    assert "generic plan (prepared statement; power users&#39; values)" in html  # recent_tasks × baseline's
    assert "estimated only (EXPLAIN ANALYZE reached the 1000 ms statement timeout)" in html  # never_ends
    # what a node shows, as the page writes it (escaped, as every text of the page is)
    drawn_nodes = [v for c in res.cells if not c.shared_with for p in c.plans for v in tree(p).walk()]
    flagged = [v for v in drawn_nodes if v.misestimate_flag]  # the Sorts under a LIMIT 20, and more
    assert {v.misestimate_flag for v in flagged} == {10, 100}
    assert all(f'<span class="mis{v.misestimate_flag}">rows {escape(v.rows)}</span>' in html for v in flagged)
    dirtied = [v for v in drawn_nodes if v.node.shared_dirtied]  # create_task's ModifyTable
    assert dirtied and all(f" · buffers {escape(v.buffers)}</summary>" in html for v in dirtied)
    assert "buffers hit 9 · dirtied 1</summary>" in html  # create_task × baseline's
    conditions = [v for v in drawn_nodes if "Index Cond" in v.node.details]
    assert len(conditions) > 10
    assert all(f"Index Cond: <code>{escape(v.node.details['Index Cond'])}</code>" in html for v in conditions)
    assert "Index Cond: <code>(user_id = $1)</code>" in html  # a generic plan's
    removed = [line for v in drawn_nodes for line in v.removed]
    assert "Filter: 6,301 rows removed" in removed
    assert all(f'<div class="d rm">{line}</div>' in html for line in removed)


def test_a_node_that_ran_more_than_once_shows_its_loops():
    """No committed fixture has a node that ran more than once (none has a nested loop's inner side):
    a real plan's Bitmap Heap Scan, given three loops, as the page draws it."""
    res = results_io.load(NEWEST)
    plan = cell_of(res, "open_task_count", "baseline").plans[0]
    aggregate = plan.root
    heap = aggregate.children[0]
    assert heap.node_type == "Bitmap Heap Scan" and heap.loops == 1 and heap.rows_removed == {"Filter": 1450}
    looped = aggregate.model_copy(update={"children": [heap.model_copy(update={"loops": 3})]})
    draw = _templates().get_template("_plans.html.j2").module.plan  # type: ignore[attr-defined]
    once, thrice = str(draw(plan)), str(draw(plan.model_copy(update={"root": looped})))
    assert "loops" not in once and "Filter: 1,450 rows removed</div>" in once
    assert "rows 550 of 577 estimated · loops 3 · buffers hit 493</summary>" in thrice
    assert "Filter: 1,450 rows removed per loop</div>" in thrice


def test_a_diff_pairs_the_nodes_by_what_they_do_and_marks_what_changed():
    res = results_io.load(NEWEST)
    baseline, composite = cell_of(res, "recent_tasks", "baseline"), cell_of(res, "recent_tasks", "composite")
    pairs = {p.label: p for p in cell_diff(baseline, composite)}
    assert list(pairs) == ["ordinary users", "power users", "generic plan"]
    rows = pairs["ordinary users"].rows
    assert rows[0].change == "changed" and rows[0].left and rows[0].left.title == "Limit"  # matched, buffers fell
    assert rows[0].changed == ("buffers",)
    gone = [r.left.title for r in rows if r.change == "vanished" and r.left]
    came = [r.right.title for r in rows if r.change == "appeared" and r.right]
    assert "Sort" in gone and "Index Scan using tb_tasks_user_created on tasks" in came
    # only the baseline's generic plan differs from its classes' plans: all of it vanished
    assert {r.change for r in pairs["generic plan"].rows} == {"vanished"}
    same = cell_diff(baseline, baseline)
    assert all(r.change == "same" for p in same for r in p.rows) and not any(p.changes for p in same)


def test_the_diff_shown_first_is_the_baseline_against_the_fastest_and_the_others_wait(fixture_page):
    res, html = fixture_page
    cells = [cell_of(res, "recent_tasks", v) for v in ("baseline", "composite", "covering")]
    scenario = scenario_plans(cells, "baseline")
    fastest = min(cells, key=lambda c: c.decided_p95).variant
    assert scenario.first == ("baseline", fastest) and len(scenario.diffs) == 3  # every two of three differ
    shown, left, right = scenario.shown("baseline", fastest)
    assert shown is not None and (left, right) == ("baseline", fastest)
    at = scenario.index
    after = html[html.index('id="tree-recent_tasks-baseline"') :]  # the scenario's blocks come next
    blocks = [b.split(">", 1)[0] for b in after.split('<div class="pd-pair" ')[1:4]]
    assert sum("hidden" not in b for b in blocks) == 1
    assert f'data-between="{at["baseline"]}-{at[fastest]}"' in next(b for b in blocks if "hidden" not in b)
    # a block for every diff drawn: not task_by_id's (one measurement), three of recent_tasks' (three
    # measurements, each two with other plans), and so on
    measurements = Counter(c.scenario for c in res.cells if c.shared_with is None)
    assert measurements["task_by_id"] == 1 and measurements["recent_tasks"] == 3
    variants = [v.name for v in res.variants]
    drawn = {
        s: scenario_plans([c for v in variants for c in res.cells if (c.scenario, c.variant) == (s, v)], "baseline")
        for s in measurements
    }
    assert (
        html.count('<div class="pd-pair"')
        == sum(len(sp.diffs) for sp in drawn.values())
        == sum(math.comb(k, 2) for k in measurements.values())
    )  # the fixture's measurements all have plans of their own


def test_each_diff_is_drawn_once_for_every_two_measurements_it_is_the_diff_of():
    """Two measurements with the same plans: no diff between them, and one drawing of each diff the
    two have with a third (in the order a reader sees it: the measurement listed first on the left)."""
    res = results_io.load(NEWEST)
    baseline, composite, covering = (cell_of(res, "recent_tasks", v) for v in ("baseline", "composite", "covering"))
    again = composite.model_copy(update={"variant": "composite_again"})  # measured apart, the same plans
    scenario = scenario_plans([baseline, composite, again, covering], "baseline")
    assert [d.between for d in scenario.diffs] == [[(0, 1), (0, 2)], [(0, 3)], [(1, 3), (2, 3)]]
    assert scenario.shown("composite", "composite_again") == (None, "composite", "composite_again")
    shown, left, right = scenario.shown("covering", "composite_again")  # listed first: on the left
    assert shown is scenario.diffs[2] and (left, right) == ("composite_again", "covering")
    for d in scenario.diffs:  # what is drawn is each pair's own diff
        for i, j in d.between:
            a, b = scenario.measurements[i].cell, scenario.measurements[j].cell
            assert drawn(cell_diff(a, b)) == drawn(d.pairs)
    # a mirrored diff is another drawing: composite_again before baseline is not baseline before composite
    mirrored = scenario_plans([again, baseline, composite], "baseline")
    assert [d.between for d in mirrored.diffs] == [[(0, 1)], [(1, 2)]]


def test_every_text_of_a_plan_is_escaped(tmp_path):
    """A plan's text is the server's, which writes a filter's constants as they were sent: anything."""
    res = results_io.load(NEWEST)
    cell = cell_of(res, "recent_tasks", "baseline")
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    root = cell.plans[0].root.model_copy(update={"details": {"Filter": hostile}, "index": hostile, "alias": hostile})
    plans = [cell.plans[0].model_copy(update={"root": root}), *cell.plans[1:]]
    res.cells[res.cells.index(cell)] = cell.model_copy(update={"plans": plans})
    html = _report_of(res, tmp_path)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html


def test_an_older_file_says_it_has_no_plan_trees(tmp_path):
    html = _report_of(results_io.load(DATA / "results_v11.json"), tmp_path)
    assert "No plan trees: this results file records none" in html and 'class="pn' not in html


def test_a_checks_summary_folds_each_plan_findings_plans_in_a_fence_no_plan_text_can_close():
    res = results_io.load(NEWEST)
    base, head = cell_of(res, "recent_tasks", "baseline"), cell_of(res, "recent_tasks", "composite")
    root = head.plans[0].root
    child = root.children[0].model_copy(update={"index": "ix```x"})  # a name may hold anything
    head = head.model_copy(
        update={"plans": [head.plans[0].model_copy(update={"root": root.model_copy(update={"children": [child]})})]}
    )
    finding = Finding(Kind.SORT_ADDED, "recent_tasks", "composite", "new Sort node")
    other = Finding(Kind.TIME, "task_by_id", "composite", "slower")
    link = render.ReportLink("run/index.html", "run/index.html", {("recent_tasks", "composite"): cell_diff(base, head)})
    lines = render.markdown(Comparison(time="", findings=[finding, other]), "base", "head", link)
    assert "- [recent_tasks × composite](run/index.html#base-head-recent_tasks-composite): sort_added" in lines
    assert not any("task_by_id" in line and "](run/" in line for line in lines)  # time is no plan finding
    start = lines.index("````diff")  # one backtick more than the name holds
    block = lines[start + 1 : lines.index("````", start)]
    assert block[0].startswith("@@ ordinary users:") and any("ix```x" in line for line in block)
