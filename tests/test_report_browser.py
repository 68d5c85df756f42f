"""The report as a person sees it: index.html rendered by headless Chromium from disk. Skipped,
with the reason shown, where Debian's chromium package is not installed."""

import shutil
import subprocess

import pytest
from matplotlib.image import imread

from bench import results as results_io
from bench.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--virtual-time-budget=5000"]


@pytest.fixture(scope="module")
def page(small_results, tmp_path_factory):
    out = tmp_path_factory.mktemp("browser")
    results_io.save(small_results, out)
    run_dir = (out / "latest").resolve()
    write_report(run_dir)
    return run_dir / "index.html", out


def _chromium(*args: str, profile) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


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
