"""The report as a person sees it: index.html rendered by headless Chromium from disk, and driven
like a person would (tools/browser.py: a node of a plan tree collapsed and expanded, a plan diff
switched, the DOM read back). Skipped, with the reason shown, where Debian's chromium package is not
installed."""

import subprocess
from pathlib import Path

import pytest
from matplotlib.image import imread

from bench import results as results_io
from bench.report.build import write_report
from tools.browser import CHROMIUM, HEADLESS, Page

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
FLAGS = [*HEADLESS, "--virtual-time-budget=5000"]


@pytest.fixture(scope="module")
def page(small_results, tmp_path_factory):
    out = tmp_path_factory.mktemp("browser")
    results_io.save(small_results, out)
    run_dir = (out / "latest").resolve()
    write_report(run_dir)
    return run_dir / "index.html", out


def _chromium(*args: str, profile) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None  # the module is skipped without it
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120
    )


def test_every_image_loads(page):
    html, work = page
    dom = _chromium("--dump-dom", html.as_uri(), profile=work / "profile-dom").stdout
    assert 'data-images-loaded="3/3"' in dom  # set by the page once every figure has decoded
    assert "Recommendation" in dom


def test_the_page_is_not_blank(page):
    html, work = page
    shot = work / "screenshot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1400,2400", html.as_uri(), profile=work / "profile-shot")
    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] >= 2000
    assert pixels.std() > 0.05  # text, tables and figures, not a uniform page
    assert (pixels.mean(axis=2) < 0.5).mean() > 0.01  # a visible share of dark pixels (text)


@pytest.fixture(scope="module")
def full_page(small_results, tmp_path_factory):
    """The same run with a scale and a load section (constructed), so all five figures show."""
    from bench.judge.stats import summarize
    from bench.results import LoadResults, LoadScenario, ScalePoint, ScaleResults
    from bench.runs.scale import fits

    sizes = [1_000, 10_000, 50_000]
    points = [
        ScalePoint(
            scenario=c.scenario,
            variant=c.variant,
            tasks_per_user=n,
            p50_ms=c.client.p50.value * (n / 1_000) ** 0.8,
            p95_ms=c.client.p95.value * (n / 1_000) ** 0.8,
            p99_ms=c.client.p99.value * (n / 1_000) ** 0.8,
            execution_p50_ms=c.execution.p50.value,
            buffers=10.0 * n / 1_000,
            verdict="pass",
            samples=c.client.n,
        )
        for c in small_results.cells
        for n in sizes
    ]
    sla = {c.scenario: c.sla_ms for c in small_results.cells}
    scenarios = [
        LoadScenario(
            scenario=c.scenario,
            sla_ms=c.sla_ms,
            weight=1,
            requests=len(c.samples.client_ms),
            errors=0,
            latency=summarize(c.samples.client_ms),
            over_sla=0.01,
        )
        for c in small_results.cells
        if c.variant == small_results.cells[0].variant
    ]
    res = small_results.model_copy(
        update={
            "scale": ScaleResults(users=2, sizes=sizes, points=points, fits=fits(points, sla)),
            "load": LoadResults(
                variant=small_results.cells[0].variant,
                clients=4,
                duration_s=10.0,
                rate=None,
                requests=sum(s.requests for s in scenarios),
                errors=0,
                throughput=123.0,
                lag_ms=None,
                scenarios=scenarios,
            ),
        }
    )
    out = tmp_path_factory.mktemp("browser-full")
    path = results_io.save(res, out)
    write_report(path)
    return path.parent / "index.html", out


def test_scale_and_load_figures_load_too(full_page):
    html, work = full_page
    dom = _chromium("--dump-dom", html.as_uri(), profile=work / "profile-dom").stdout
    assert 'data-images-loaded="5/5"' in dom
    assert "Scale: how p95 grows" in dom and "Under load" in dom


NEWEST = Path(__file__).resolve().parent / "data" / f"results_v{results_io.SCHEMA_VERSION}.json"


@pytest.fixture(scope="module")
def plans_page(tmp_path_factory):
    """The committed newest fixture's report (recent_tasks: three variants, three plans), open in a tab;
    orm_recent_tasks × covering given composite's plans (two measurements, the same plans)."""
    out = tmp_path_factory.mktemp("browser-plans")
    res = results_io.load(NEWEST)
    composite, covering = (res.cell("orm_recent_tasks", v) for v in ("composite", "covering"))
    assert composite is not None and covering is not None
    res.cells[res.cells.index(covering)] = covering.model_copy(update={"plans": composite.plans})
    run_dir = results_io.save(res, out).parent
    write_report(run_dir)
    with Page((run_dir / "index.html").as_uri(), out / "profile-cdp") as page:
        yield page


def _visible(page: Page, selector: str) -> bool:
    return bool(page.evaluate(f"document.querySelector({selector!r}).checkVisibility()"))


def test_a_plan_node_collapses_and_expands(plans_page):
    page = plans_page
    tree = "#tree-recent_tasks-baseline"
    assert not _visible(page, f"{tree} .pn")  # its scenario's section is closed
    page.evaluate(f"document.querySelector({tree!r}).closest('details:not(.planset)').querySelector('summary').click()")
    page.evaluate(f"document.querySelector('{tree} > summary').click()")
    root, child = f"{tree} > details.pn", f"{tree} > details.pn > details.pn > summary"
    assert _visible(page, child) and page.evaluate(f"document.querySelector({root!r}).open")
    assert "ms self" in page.evaluate(f"document.querySelector({child!r}).textContent")
    page.evaluate(f"document.querySelector('{root} > summary').click()")  # collapse the root
    assert not page.evaluate(f"document.querySelector({root!r}).open") and not _visible(page, child)
    page.evaluate(f"document.querySelector('{root} > summary').click()")  # and expand it again
    assert page.evaluate(f"document.querySelector({root!r}).open") and _visible(page, child)
    assert page.evaluate(f"document.querySelectorAll('{tree} details.pn.hot').length") >= 2  # the hottest path


def _choose(page: Page, box: str, side: str, variant: str) -> None:
    page.evaluate(
        f"(function () {{ var s = document.querySelector({box!r} + ' .pd-{side}'); s.value = {variant!r};"
        " s.dispatchEvent(new Event('change')); })()"
    )


def _shown(page: Page, box: str) -> tuple[list[str], list[str]]:
    """What a person sees of ``box``'s diff: the two variants its columns name, left and right (none
    where they are hidden), and the diff blocks shown (each the pairs of measurements it serves)."""
    names: list[str] = page.evaluate(
        f"(function () {{ var b = document.querySelector({box!r});"
        " return b.querySelector('.pd-names').hidden ? [] : [b.querySelector('.pd-ln').textContent,"
        " b.querySelector('.pd-rn').textContent]; })()"
    )
    blocks: list[str] = page.evaluate(
        f"Array.from(document.querySelectorAll({box!r} + ' .pd-pair')).filter(p => !p.hidden)"
        ".map(p => p.dataset.between)"
    )
    return names, blocks


def _message(page: Page, box: str, name: str) -> bool:
    """Whether ``box`` shows its message ``name``: pd-same (one measurement) or pd-nodiff (the same plans)."""
    return page.evaluate(f"document.querySelector({box!r} + ' .{name}').hidden") is False


def test_a_plan_diff_switches_between_any_two_variants(plans_page):
    page = plans_page
    box = "#tree-recent_tasks-baseline ~ .plandiff"
    first = page.evaluate(f"document.querySelector({box!r} + ' .pd-right').value")
    names, blocks = _shown(page, box)
    assert names == ["baseline", first] and len(blocks) == 1  # the baseline against the fastest, at first
    _choose(page, box, "left", "composite")
    _choose(page, box, "right", "covering")
    assert _shown(page, box) == (["composite", "covering"], ["1-2"])
    changed = page.evaluate(
        f"Array.from(document.querySelectorAll({box!r} + ' .pd-pair:not([hidden]) .drow.changed'))"
        ".map(r => r.textContent)"
    )
    # the same node, read another way: Index Scan → Index Only Scan on the covering index
    assert any(
        "node, index" in row and "Index Only Scan using tb_tasks_user_created_covering" in row for row in changed
    )
    _choose(page, box, "right", "composite")  # one variant against itself: nothing to diff
    assert _shown(page, box) == ([], []) and _message(page, box, "pd-same") and not _message(page, box, "pd-nodiff")
    assert page.evaluate("document.querySelector('#tree-task_by_id-baseline ~ .plandiff')") is None  # one measurement


def test_a_diff_drawn_once_serves_every_two_variants_it_is_the_diff_of(plans_page):
    """orm_recent_tasks × covering has composite's plans: baseline against either is one diff drawn
    once, and composite against covering shows no diff but says the plans are the same."""
    page = plans_page
    box = "#tree-orm_recent_tasks-baseline ~ .plandiff"
    assert page.evaluate(f"document.querySelectorAll({box!r} + ' .pd-pair').length") == 1
    _choose(page, box, "left", "covering")
    _choose(page, box, "right", "baseline")  # the measurement listed first is drawn on the left
    assert _shown(page, box) == (["baseline", "covering"], ["0-1 0-2"])
    _choose(page, box, "left", "composite")
    assert _shown(page, box) == (["baseline", "composite"], ["0-1 0-2"])
    _choose(page, box, "right", "covering")
    assert _shown(page, box) == ([], [])
    assert _message(page, box, "pd-nodiff") and not _message(page, box, "pd-same")
