"""Runs page in a real browser: the Manage box keeps the run it was set to when that run is renamed.

Streamlit's selectbox tells its options apart by their labels, and the Manage box's labels carry each run's
name. AppTest sets widget values directly and cannot show what a browser does after a rename: the browser's
choice matched no option any more, the box fell back to the first run, and the next Rename (or Delete, or a
download) went to another run.
"""

import shutil
from pathlib import Path

import pytest

from conftest import streamlit_server
from core.store import RunStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
FIRST_RENDER = 120_000  # ms: the first script run of a fresh server on a busy CPU


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
                           "to run the browser tests")
def test_manage_box_stays_on_a_renamed_run(tmp_path, tiny_trained_run):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    template, target = tiny_trained_run
    store_root = tmp_path / "runs"
    shutil.copytree(template / target, store_root / target)
    other = "20990101-000000-other-0000"
    shutil.copytree(template / target, store_root / other)
    store = RunStore(store_root)
    store.write_status(other, name="other run", created="2099-01-01T00:00:00+00:00")  # newest: the box's first run
    with streamlit_server(store_root, tmp_path / "streamlit_runs.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{url}/runs")
            page.get_by_role("heading", name="Runs", exact=True).wait_for(timeout=FIRST_RENDER)
            box = page.locator(".st-key-runs_managed_run input")  # shows the chosen option's label as its value
            box.wait_for(timeout=FIRST_RENDER)
            # the box opens on the newest run
            expect(box).to_have_value(f"other run · completed · {other}", timeout=30_000)
            page.get_by_text("Config (.json)").wait_for(timeout=FIRST_RENDER)  # the page's last part is drawn
            for _ in range(5):  # a rerun of the page while the list is open closes it: open it again
                box.click()
                try:
                    page.locator("[role=option]", has_text=target).click(timeout=5_000)
                    break
                except PlaywrightTimeout:
                    page.keyboard.press("Escape")
            expect(box).to_have_value(f"tiny sample run · completed · {target}", timeout=30_000)
            for name in ("first new name", "second new name"):
                page.locator(".st-key-runs_new_name input").fill(name)
                page.get_by_role("button", name="Rename").click()
                page.get_by_text(f"Renamed to '{name}'.").wait_for()
                expect(box).to_have_value(f"{name} · completed · {target}", timeout=30_000)
            assert store.read_status(target).name == "second new name"
            assert store.read_status(other).name == "other run"
        finally:
            browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
                           "to run the browser tests")
def test_use_these_settings_fills_the_form_in_a_browser(tmp_path, tiny_trained_run):
    """Issue 20.6: Train's summary sits in the live fragment; a click there reran only the fragment, so the
    sidebar kept showing the old values (AppTest reruns the whole script and cannot show it)."""
    from playwright.sync_api import expect, sync_playwright

    template, run_id = tiny_trained_run
    store_root = tmp_path / "runs"
    shutil.copytree(template / run_id, store_root / run_id)
    subset = RunStore(store_root).read_config(run_id).train_subset
    with streamlit_server(store_root, tmp_path / "streamlit_form.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{url}/?epochs=7")  # the URL fills the form
            field = page.locator(".st-key-train_cfg_train_subset input")
            field.wait_for(timeout=FIRST_RENDER)
            expect(page.locator(".st-key-train_cfg_epochs input")).to_have_value("7")
            expect(field).to_have_value("0")
            page.get_by_role("button", name="Use these settings").click(timeout=FIRST_RENDER)
            expect(field).to_have_value(str(subset), timeout=15_000)
            expect(page.locator(".st-key-train_cfg_epochs input")).to_have_value("1")
            expect(page.locator(".st-key-train_name input")).to_have_value("tiny sample run (again)")
        finally:
            browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
                           "to run the browser tests")
def test_a_tick_redraws_only_the_table_and_the_curves(tmp_path, tiny_trained_run):
    """Issue 21.12: a tick reran the whole page (1,000 runs: 2.4 s). The table and the curves are a fragment of
    their own: after a tick the server sends them again, and nothing of the rest of the page (the Manage box)."""
    from playwright.sync_api import sync_playwright

    template, target = tiny_trained_run
    store_root = tmp_path / "runs"
    shutil.copytree(template / target, store_root / target)
    other = "20990101-000000-other-0000"
    shutil.copytree(template / target, store_root / other)
    RunStore(store_root).write_status(other, name="other run", created="2099-01-01T00:00:00+00:00")  # the top row
    curves = ".st-key-runs_overlay_chart .scatterlayer .trace"
    with streamlit_server(store_root, tmp_path / "streamlit_tick.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            frames: list[bytes] = []
            page.on("websocket", lambda socket: socket.on(
                "framereceived", lambda payload: frames.append(payload if isinstance(payload, bytes) else b"")))
            page.goto(f"{url}/runs")
            page.locator(".st-key-runs_managed_run input").wait_for(timeout=FIRST_RENDER)
            page.get_by_text("Select rows in the table").wait_for(timeout=FIRST_RENDER)
            page.wait_for_timeout(1_000)  # the page's own messages are in
            grid = page.locator(".st-key-runs_table [data-testid=stDataFrameResizable]").first.bounding_box()
            frames.clear()
            page.mouse.click(grid["x"] + 18, grid["y"] + 35 + 17)  # the first row's box (a row is 35 px)
            page.locator(curves).first.wait_for(timeout=FIRST_RENDER)
            page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')")
            page.wait_for_timeout(500)
            assert page.locator(curves).count() == 1
            assert page.locator(".st-key-runs_overlay_chart .legendtext").all_text_contents() == ["other run"]
            sent = b"".join(frames)
            assert b"runs_table" in sent and b"runs_overlay_chart" in sent  # the fragment, drawn again
            assert b"runs_managed_run" not in sent and b"runs_new_name" not in sent  # the rest was not rerun
        finally:
            browser.close()


# when the Runs page was first drawn: its table shown and its script run over (performance.now(), in ms)
DRAWN_AT = """
(() => {
  const look = () => {
    const app = document.querySelector('[data-testid=stApp]');
    if (document.querySelector('.st-key-runs_table [data-testid=stDataFrameResizable]')
        && app.getAttribute('data-test-script-state') === 'notRunning') window.drawnAt = performance.now();
    else requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
})();
"""


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
                           "to run the browser tests")
def test_the_runs_page_starts_plotly_once_drawn_and_the_chart_uses_that_start(tmp_path):
    """Issue 21.12: the first tick of a large store waited 1.5 s for Streamlit's Plotly script to start. The page
    imports that script (the same address the chart imports it from) once the page is drawn and idle, not while
    it is drawn (that made a fresh browser's first visit 0.8 s slower one time in two)."""
    from playwright.sync_api import sync_playwright

    from bench.scale import build_store
    from dashboard import figures_runs, plotly_start

    store_root = tmp_path / "runs"
    build_store(store_root, figures_runs.HPARAMS_OPEN_UP_TO + 1, 0)  # no chart on the page before a tick
    with streamlit_server(store_root, tmp_path / "streamlit_start.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.add_init_script(DRAWN_AT)
            page.goto(f"{url}/runs")
            page.get_by_text("Select rows in the table").wait_for(timeout=FIRST_RENDER)
            page.wait_for_function("() => window.lenetPlotlyState === 'started'", timeout=60_000)
            fetched = page.evaluate("performance.getEntriesByType('resource')"
                                    ".filter((e) => e.name.includes('PlotlyChart.'))[0].startTime")
            assert fetched > page.evaluate("window.drawnAt")  # not while the page was being drawn
            assert page.evaluate("typeof window.Plotly") == "object"  # plotly.js ran
            grid = page.locator(".st-key-runs_table [data-testid=stDataFrameResizable]").first.bounding_box()
            page.mouse.click(grid["x"] + 18, grid["y"] + 35 + 17)  # tick the first row
            page.locator(".st-key-runs_overlay_chart .scatterlayer .trace").first.wait_for(timeout=60_000)
            loaded = page.evaluate("performance.getEntriesByType('resource').map((e) => e.name)")
            assert [name for name in loaded if "PlotlyChart." in name] == [f"{url}/static/js/{plotly_start.chunk()}"]
        finally:
            browser.close()


def test_the_plotly_script_to_start_is_found_in_the_pinned_streamlit():
    """A Streamlit that names or splits its Plotly script otherwise starts nothing: this says so at once."""
    import streamlit as st

    from dashboard import plotly_start

    name = plotly_start.chunk()
    assert name is not None and name.startswith("PlotlyChart.")
    script = Path(st.__file__).parent / "static" / "static" / "js" / name
    assert b"plotly" in script.read_bytes()[-2_000_000:].lower()
