"""The report from results.json alone: every file, the same facts in HTML, Markdown and CSV, and
no secret anywhere."""

import pandas as pd
import pytest

from bench import results as results_io
from bench.judge.recommend import recommend
from bench.report.build import plan_diffs, write_report


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


def test_html_is_self_contained_and_complete(report_dir, small_results):
    run_dir, _ = report_dir
    html = (run_dir / "index.html").read_text()
    assert html.count('src="data:image/png;base64,') == 3  # the figures travel inside the page
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    for text in ("Recommendation", "PostgreSQL " + small_results.environment.server_version,
                 small_results.dataset.fingerprint, small_results.environment.git_commit,
                 "recent_tasks", "composite", "WAL B/write", "post_message"):
        assert text in html, text
    rec = recommend(small_results)
    adopted = rec.variant or rec.closest
    assert f"<code>{adopted.name}</code>" in html
    assert ("__table_args__" in html) == bool(adopted.statements)


def test_csv_has_one_row_per_cell(report_dir, small_results):
    run_dir, _ = report_dir
    df = pd.read_csv(run_dir / "results.csv")
    assert len(df) == len(small_results.cells)
    assert {"scenario", "variant", "p95_ms", "p95_low", "verdict", "index_size_bytes", "kind", "wal_bytes_per_statement",
            "cold_blocks_read_p50", "plan_flips"} <= set(df.columns)
    row = df[(df.scenario == "recent_tasks") & (df.variant == "composite")].iloc[0]
    assert row.p95_ms == small_results.cell("recent_tasks", "composite").client.p95.value


def test_markdown_says_what_the_html_says(report_dir):
    run_dir, _ = report_dir
    md = (run_dir / "summary.md").read_text()
    for text in ("## Recommendation", "## Verdicts", "## What each variant costs", "## Plans: baseline against",
                 "![p95 ÷ SLA](heatmap.png)", "Where the run's time went"):
        assert text in md, text


def test_plan_diff_names_what_changed(small_results):
    diffs = {d.scenario: d for d in plan_diffs(small_results)}
    recent = diffs.get("recent_tasks")
    assert recent is not None and recent.best.variant == "composite"
    assert "Sort" in recent.removed and "index tb_tasks_user_created" in recent.added
