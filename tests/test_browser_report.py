"""The audit report in a real browser (issue 19): Debian's Chromium opens the HTML file with every network
request blocked; the Plotly charts draw and the thumbnails show. Also the run without a model, the comparison
report, and --pdf printed through headless Chromium."""

import time
from pathlib import Path

import pytest

from conftest import chromium
from core import cli
from core.report import build_report
from core.report_compare import build_comparison
from core.store import RunStore

CHROMIUM = Path("/usr/bin/chromium")
DRAWN = ("() => { const charts = document.querySelectorAll('.plotly-graph-div');"
         " return charts.length > 0 && [...charts].every(c => c.querySelector('svg.main-svg')); }")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
                                       "to run the browser tests")


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def open_offline(browser, path: Path):
    """Open the file with every request that is not the file itself aborted; returns (page, blocked URLs, s)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    blocked = []

    def route(request_route):
        if request_route.request.url.startswith("file://"):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    started = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_function(DRAWN, timeout=30_000)
    return page, blocked, time.perf_counter() - started


def test_browser_report_draws_its_charts_offline(browser, finished_run, lenet_runs, tmp_path):
    store = RunStore(lenet_runs)
    path = tmp_path / "report.html"
    path.write_text(build_report(store, finished_run))
    page, blocked, _ = open_offline(browser, path)
    assert blocked == []
    assert page.locator(".js-plotly-plot").count() == 5
    assert page.locator(".js-plotly-plot svg.main-svg").count() >= 5
    assert page.locator(".js-plotly-plot .heatmaplayer image, .js-plotly-plot .hm image").count() >= 1  # the matrix
    tiles = page.locator("figure.thumb img")
    assert tiles.count() >= 1
    assert page.evaluate("() => [...document.querySelectorAll('figure.thumb img')]"
                         ".every(i => i.complete && i.naturalWidth === 28)")
    assert page.get_by_role("heading", name="Model").count() == 1
    page.close()


def test_browser_report_without_a_model_and_comparison(browser, finished_run, lenet_runs, tmp_path):
    import shutil

    store = RunStore(lenet_runs)
    other = "20990101-000000-no-model-0000"
    shutil.copytree(lenet_runs / finished_run, lenet_runs / other)
    (lenet_runs / other / "model.keras").unlink()
    path = tmp_path / "no-model.html"
    path.write_text(build_report(store, other))
    page, blocked, _ = open_offline(browser, path)
    assert blocked == [] and page.get_by_role("heading", name="Model").count() == 0
    assert page.locator(".js-plotly-plot svg.main-svg").count() >= 4
    page.close()
    path = tmp_path / "compare.html"
    path.write_text(build_comparison(store, finished_run, other))
    page, blocked, _ = open_offline(browser, path)
    assert blocked == [] and page.locator(".js-plotly-plot").count() == 4  # two curves, two matrices
    page.close()


def test_browser_report_printed_to_pdf(finished_run, lenet_runs, tmp_path, capsys):
    target = tmp_path / "report.pdf"
    assert cli.main(["--runs-dir", str(lenet_runs), "report", finished_run, "--pdf", "-o", str(target)]) == 0
    assert target.read_bytes().startswith(b"%PDF") and target.stat().st_size > 20_000
