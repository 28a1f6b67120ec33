"""Deep links on a fresh server: the first request for /runs runs app.py, so the page comes with the app's
navigation, not as a Streamlit v1 multipage page.

Streamlit treats a folder named pages/ next to the main script as a v1 pages folder until st.navigation
has run once; the page scripts therefore live in dashboard/views/. The browser test starts
`streamlit run dashboard/app.py` on a free port and opens /runs as its very first request, with Debian's
Chromium driven by Playwright.
"""

from pathlib import Path

import pytest

from conftest import streamlit_server

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
FIRST_RENDER = 120_000  # ms: the first script run of a fresh server on a busy CPU


def test_streamlit_does_not_take_the_dashboard_for_a_v1_pages_app():
    """Streamlit's own test (PagesManager) for "run the page without the main script" is off for app.py."""
    from streamlit.runtime.pages_manager import PagesManager

    saved = PagesManager.uses_pages_directory
    PagesManager.uses_pages_directory = None  # what a fresh server process starts with
    try:
        PagesManager(str(APP))
        assert PagesManager.uses_pages_directory is False, "a dashboard/pages/ folder makes deep links skip app.py"
    finally:
        PagesManager.uses_pages_directory = saved


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
                           "to run the browser tests")
def test_browser_deep_link_as_first_request_runs_the_app(tmp_path):
    from playwright.sync_api import sync_playwright

    store = tmp_path / "runs"
    store.mkdir()
    with streamlit_server(store, tmp_path / "streamlit_navigation.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(10_000)
            page.goto(f"{url}/runs")  # nothing has run app.py yet
            page.get_by_role("heading", name="Runs", exact=True).wait_for(timeout=FIRST_RENDER)
            page.get_by_text("No runs yet.").wait_for()
            # app.py's st.navigation is drawn before the page runs: its titled links, grouped in sections.
            # A v1 pages run names the links after the files instead ("app", "runs", "gallery", ...).
            nav = page.get_by_test_id("stSidebarNav")
            nav.get_by_role("link").first.wait_for()
            links = [text.strip().splitlines()[-1] for text in nav.get_by_role("link").all_inner_texts()]  # after the icon
            from dashboard.pages import PAGES

            assert links[:6] == ["Train", "Runs", "Sweep", "Compare", "Evaluate", "Error gallery"], links
            assert links == [spec.title for spec in PAGES.values()], links  # every page of the registry, in order
            assert nav.get_by_text("Audit", exact=True).count() == 1
            assert page.url == f"{url}/runs"
            assert "LeNet Lab" in page.title()  # app.py's st.set_page_config
        finally:
            browser.close()
