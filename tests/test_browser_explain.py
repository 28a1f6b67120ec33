"""Issue 17 in a real browser: a digit drawn with mouse moves on Predict's canvas gets an answer that changes when
the drawing changes (Undo and Clear included); resting the mouse on a point of the Why page's representation map
shows that point's digit, and a click opens that image in the error gallery.

One `streamlit run dashboard/app.py` over a store holding a copy of the two-epoch audit run (it kept its weights
at every epoch), driven by Debian's Chromium through Playwright. bench/explain.py reuses the drawing helpers.
"""

import os
import re
import shutil
import time

import numpy as np
import pytest
from conftest import chromium, needs_chromium, streamlit_server

from core.data import load_test_set, unpad_images

FIRST_RENDER = 180_000  # ms: the first render imports TensorFlow on a busy CPU
CANVAS = "canvas[aria-label^='Drawing area']"
METRIC = "[data-testid='stMetricValue']"
ONE = [(140, 40), (140, 240)]
SEVEN = [(60, 60), (220, 60), (120, 240)]

pytestmark = needs_chromium


def open_drawing(page, url: str):
    """Predict with "A drawing" chosen; returns the canvas."""
    page.goto(f"{url}/predict")
    page.get_by_text("A drawing").wait_for(timeout=FIRST_RENDER)
    page.get_by_text("A drawing").click()
    canvas = page.locator(CANVAS)
    canvas.wait_for(timeout=60_000)
    return canvas


def draw_stroke(page, canvas, points) -> None:
    """One stroke through `points` (canvas pixels), with the mouse: down, moves, up."""
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=6)
    page.mouse.up()


def prediction_text(page) -> str:
    """The prediction metric and the confidence line, or "" before there is an answer."""
    metric = page.locator(METRIC)
    if not metric.count():
        return ""
    confidence = page.get_by_text(re.compile(r"^Confidence")).first
    return metric.first.inner_text() + " " + (confidence.inner_text() if confidence.count() else "")


@pytest.fixture(scope="module")
def server(audit_trained_runs, tmp_path_factory):
    root, run_ids = audit_trained_runs
    store = tmp_path_factory.mktemp("browser_explain_runs")
    shutil.copytree(root / run_ids["two_epochs"], store / run_ids["two_epochs"])
    with streamlit_server(store, store.parent / "streamlit_explain.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def test_a_drawn_digit_gets_an_answer_that_follows_the_drawing(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.set_default_timeout(60_000)
    canvas = open_drawing(page, server)
    assert prediction_text(page) == ""
    draw_stroke(page, canvas, ONE)
    page.get_by_text("Prediction for your drawing").wait_for()
    page.wait_for_timeout(1000)
    first = prediction_text(page)
    first_input = page.locator("[data-testid='stImage'] img").first.get_attribute("src")
    assert re.match(r"^\d Confidence \d+\.\d\d% \(the saved model\)$", first), first
    for points in (SEVEN[:2], SEVEN[1:]):  # a 7 in two strokes
        draw_stroke(page, canvas, points)
        page.wait_for_timeout(1500)
    page.wait_for_function("(old) => document.querySelector(\"[data-testid='stImage'] img\")?.src !== old",
                           arg=first_input)
    page.wait_for_timeout(1500)
    assert prediction_text(page) != first  # the answer (or its confidence) follows the new drawing
    page.get_by_role("button", name="Undo").click()
    page.wait_for_timeout(2500)
    page.get_by_role("button", name="Undo").click()
    page.wait_for_timeout(2500)
    assert prediction_text(page) == first  # back to the first stroke alone
    page.get_by_text("Why this answer?").wait_for()
    page.get_by_role("button", name="Clear").click()
    page.get_by_text("Draw one digit with the mouse").wait_for()
    assert prediction_text(page) == ""
    page.close()


# Plotly's label, the preview's caption and its pixels, read in one task so that no hover event falls between
# them (the mouse passes other points on its way, and each one is hovered in turn)
HOVER_SNAPSHOT = """box => {  // the preview lives in the component's shadow root, Plotly's label in the page
  const label = document.querySelector('.hoverlayer .hovertext'), canvas = box.querySelector('canvas');
  return {label: label ? label.textContent : '', caption: box.hidden ? '' : box.querySelector('span').textContent,
          pixels: Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data)};
}"""


def settled_hover(page, timeout: float = 5.0) -> dict:
    """The hover snapshot once the preview names the point Plotly's label names (the last hover event's point)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = page.locator(".digit-hover").evaluate(HOVER_SNAPSHOT)
        found = re.search(r"test image #(\d+)", seen["label"])
        if found and seen["caption"] == f"test image #{found.group(1)}" or time.monotonic() > deadline:
            return seen
        page.wait_for_timeout(50)


def test_a_click_on_the_representation_map_opens_the_image_in_the_gallery(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.set_default_timeout(60_000)
    page.goto(f"{server}/why?why_view=Representation+map")
    point = page.locator(".st-key-why_map_chart .scatterlayer .trace:first-child .points path").first
    point.wait_for(timeout=FIRST_RENDER)
    point.click(force=True)
    heading = page.get_by_text(re.compile(r"^Test image #\d+: true \d, predicted \d"))
    heading.wait_for()
    assert "/gallery" in page.url and "image=" in page.url
    index = re.search(r"#(\d+)", heading.inner_text()).group(1)
    assert f"image={index}" in page.url
    page.close()


def test_hovering_a_point_of_the_representation_map_shows_its_digit(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.set_default_timeout(60_000)
    page.goto(f"{server}/why?why_view=Representation+map")
    images = unpad_images(load_test_set("mnist", "sample")[0])
    for trace, nth in ((4, 11), (8, 3)):  # two points of two classes: the preview follows the mouse
        point = page.locator(f".st-key-why_map_chart .scatterlayer .trace:nth-child({trace}) .points path").nth(nth)
        point.wait_for(timeout=FIRST_RENDER)
        point.scroll_into_view_if_needed()
        box = point.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=4)
        page.locator(".hoverlayer .hovertext").first.wait_for()
        seen = settled_hover(page)
        index = int(re.search(r"test image #(\d+)", seen["label"]).group(1))  # the point plotly says is under the mouse
        assert seen["caption"] == f"test image #{index}"
        shown = np.array(seen["pixels"], np.uint8).reshape(112, 112, 4)[2::4, 2::4, 0]  # one pixel of each 4x4 cell
        assert np.array_equal(shown, images[index])  # that test image, pixel for pixel
        if os.environ.get("LENET_SCREENSHOTS"):
            page.screenshot(path=os.path.join(os.environ["LENET_SCREENSHOTS"], f"why_hover_{index}.png"))
    page.mouse.move(5, 5)
    page.locator(".digit-hover[hidden]").wait_for(state="attached", timeout=5_000)  # gone when the mouse leaves
    page.close()
