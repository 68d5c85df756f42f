"""The report as a person sees it: index.html rendered by headless Chromium from disk. Skipped,
with the reason shown, where Debian's chromium package is not installed."""

import shutil
import subprocess

import pytest
from matplotlib.image import imread

from bench import results as results_io
from bench.report.build import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]


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
