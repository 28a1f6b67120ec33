"""The Evaluate page in a real browser: clicking a confusion-matrix cell shows exactly that cell's images,
and its button opens the error gallery filtered to them.

Starts `streamlit run dashboard/app.py` on a free port over a store holding one finished run, and drives
Debian's Chromium with Playwright.
"""

import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from core import analysis
from conftest import streamlit_server
from core.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
FIRST_RENDER = 180_000  # ms: the first render imports TensorFlow and reads the test set on a busy CPU
MATRIX = ".st-key-evaluate_confusion_chart"
CELL_GALLERY = ".st-key-evaluate_cell_gallery"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
                                       "to run the browser tests")


@pytest.fixture(scope="module")
def finished_store(audit_trained_runs, tmp_path_factory):
    """(store root, run id): a copy of the two-epoch audit run, alone in its store."""
    root, run_ids = audit_trained_runs
    store = tmp_path_factory.mktemp("browser_audit_runs")
    shutil.copytree(root / run_ids["two_epochs"], store / run_ids["two_epochs"])
    return store, run_ids["two_epochs"]


@pytest.fixture(scope="module")
def server(finished_store):
    store, _ = finished_store
    with streamlit_server(store, store.parent / "streamlit_audit.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.set_default_timeout(60_000)
        page.goto(f"{server}/evaluate")
        page.locator(f"{MATRIX} .nsewdrag").wait_for(timeout=FIRST_RENDER)
        yield page
        browser.close()


def worst_cell(labels: np.ndarray, probs: np.ndarray) -> tuple[int, int, int]:
    cm = analysis.confusion(labels, probs.argmax(axis=1), 10)
    errors = np.where(np.eye(10, dtype=bool), -1, cm)
    true_class, pred_class = np.unravel_index(np.argmax(errors), errors.shape)
    return int(true_class), int(pred_class), int(cm[true_class, pred_class])


def test_clicking_a_cell_shows_its_images_then_the_gallery(page, finished_store):
    store, run_id = finished_store
    _, probs, labels = RunStore(store).read_evaluation(run_id)
    true_class, pred_class, count = worst_cell(labels, probs)
    expected = analysis.misclassified(labels, probs, "confidence", true_class, pred_class)["index"].tolist()

    plot = page.locator(f"{MATRIX} .nsewdrag")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()  # the axes span the ten classes: -0.5 .. 9.5 in x (predicted) and y (true)
    page.mouse.click(box["x"] + box["width"] * (pred_class + 0.5) / 10,
                     box["y"] + box["height"] * (true_class + 0.5) / 10)

    cell = page.locator(CELL_GALLERY)
    heading = f"True {true_class}, predicted {pred_class}: {count:,} misclassified images"
    cell.get_by_text(heading).wait_for()
    caption_nodes = cell.locator("[data-testid=stImageCaption]")
    caption_nodes.nth(min(count, 40) - 1).wait_for()
    captions = caption_nodes.all_inner_texts()
    assert [int(re.match(r"#(\d+)", c).group(1)) for c in captions] == expected[:40]

    cell.get_by_role("button", name="Open in the error gallery").click()
    page.get_by_role("heading", name="Error gallery").wait_for()
    page.get_by_text(f"{count:,} misclassified test images").wait_for()
    assert urlparse(page.url).path == "/gallery"  # the query names the run: ?run=<id>
    tile_buttons = page.locator("[class*='st-key-gallery_tile_'] button")
    tile_buttons.nth(min(count, 40) - 1).wait_for()  # the grid renders after the count on a busy machine
    tiles = tile_buttons.all_inner_texts()
    assert [int(re.match(r"#(\d+)", t).group(1)) for t in tiles] == expected[:40]
    grid_captions = page.locator("[data-testid=stMain] [data-testid=stImageCaption]").all_inner_texts()
    assert sum(c.startswith(f"{true_class}→{pred_class} · ") for c in grid_captions) == min(count, 40)


def test_the_report_button_downloads_the_runs_report(page, finished_store):
    """Issue 19: the button builds the report when clicked (Streamlit's deferred download) and serves it."""
    _, run_id = finished_store
    page.locator('[data-testid="stSidebarNav"] a', has_text="Evaluate").click()
    button = page.locator(".st-key-evaluate_download_report button").first
    button.wait_for()
    with page.expect_download(timeout=60_000) as download:
        button.click()
    assert download.value.suggested_filename == f"{run_id}-report.html"
    html = Path(download.value.path()).read_text()
    assert html.startswith("<!DOCTYPE html>") and f"run {run_id}" in html and "plotly-graph-div" in html


# Each chart's margins as Plotly ended up drawing it, next to the margins its figure asked for.
GROWN_MARGINS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
    const key = (gd.closest('[class*="st-key-"]') || {className: ''}).className.match(/st-key-[\\w-]+/);
    const asked = gd._fullLayout.margin, drawn = gd._fullLayout._size;
    return [key ? key[0] : '?', ['l', 'r', 't', 'b'].filter(side => drawn[side] > asked[side])];
}).filter(([key, grown]) => grown.length)"""


@pytest.mark.parametrize("title, last_chart", [
    ("Evaluate", ".st-key-evaluate_class_chart .main-svg"),
    ("Inside the model", ".st-key-inside_map_f6_dense .main-svg"),
    ("Predict", ".st-key-predict_probs .main-svg"),
    ("Train", ".st-key-train_live .lenet-live-epoch .main-svg"),
])
def test_every_chart_is_laid_out_in_one_pass(page, title, last_chart):
    """A chart whose axis labels, legend or colour bar do not fit its margins makes Plotly grow the margins and
    draw the whole chart a second time: on the Evaluate page that was a quarter of the browser's work."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).click()
    page.locator(last_chart).first.wait_for()
    page.wait_for_timeout(500)  # the other charts of the page finish drawing
    assert page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length") >= 1
    assert page.evaluate(GROWN_MARGINS) == []
