"""advise.md and advise.html from a committed advice.json and a committed run: every text of the page
escaped (an index's DDL and a scenario's miss are the catalogue's text). No server."""

from __future__ import annotations

from pathlib import Path

from bench import results as results_io
from bench.advise import model
from bench.advise.report import write_report

DATA = Path(__file__).resolve().parent / "data"
HOSTILE = "<script>alert(1)</script>"


def test_the_page_escapes_a_ddl_and_a_miss_that_hold_markup(tmp_path):
    advice = model.load(DATA / f"advice_v{model.ADVICE_VERSION}.json")
    candidates = [
        c.model_copy(update={"ddl": f"CREATE INDEX x ON tasks (due_date) WHERE due_date < now() -- {HOSTILE}"})
        if c.name == advice.advised[0]
        else c
        for c in advice.candidates
    ]
    baseline = advice.contenders[0]
    missed = baseline.misses[0].model_copy(update={"why": f"plan: {HOSTILE}"})
    contenders = [baseline.model_copy(update={"misses": [missed]}), *advice.contenders[1:]]
    hostile = advice.model_copy(update={"candidates": candidates, "contenders": contenders})
    res = results_io.load(DATA / f"results_v{results_io.SCHEMA_VERSION}.json")

    markdown, html = write_report(tmp_path, hostile, res)

    page = html.read_text(encoding="utf-8")
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert HOSTILE not in page
    assert f"WHERE due_date &lt; now() -- {escaped}" in page and f"plan: {escaped}" in page
    assert "<svg" in page  # the figure, markup of its own, goes in as it is
    assert HOSTILE in markdown.read_text(encoding="utf-8")  # Markdown is text: a reader's renderer escapes it
