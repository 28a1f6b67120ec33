"""Issue 21, items 1 and 2, in Chromium: a foreign host name cannot drive the dashboard (DNS rebinding), and a
run's name is shown as text, never as Markdown (no image loaded from it, no restyling)."""

import re
import shutil
import time

import pytest

from conftest import chromium, needs_chromium, streamlit_server
from core.store import RunStore

RESOLVER_RULE = "--host-resolver-rules=MAP evil.test 127.0.0.1"  # evil.test resolves to this machine: a rebinding
HOSTILE_NAME = "![p](http://pixel.test/p.png) :red[**HUGE**]"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_trained_run):
    root, run_id = tiny_trained_run
    store = tmp_path_factory.mktemp("hardening_runs")
    shutil.copytree(root / run_id, store / run_id)
    RunStore(store).rename(run_id, HOSTILE_NAME)
    with streamlit_server(store, store.parent / "streamlit.log") as url:
        yield url, run_id


@pytest.fixture(scope="module")
def browser():
    with chromium(RESOLVER_RULE) as launched:
        yield launched


def test_only_local_host_names_reach_the_app(served, browser):
    url, _ = served
    port = re.search(r":(\d+)$", url).group(1)
    for host in ("127.0.0.1", "localhost"):
        page = browser.new_page()
        page.goto(f"http://{host}:{port}/")
        page.get_by_role("heading", name="Train LeNet-5").wait_for(timeout=120_000)
        page.close()
    page = browser.new_page()
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.goto(f"http://evil.test:{port}/")  # the HTML shell may load; the app behind the WebSocket must not
    time.sleep(8)
    assert page.get_by_role("heading", name="Train LeNet-5").count() == 0
    assert not page.locator("[data-testid=stSidebarNav]").count()
    page.close()


# In a page: open a WebSocket to `url`; the run id of its first message, "refused" if it closes without one
SOCKET = """(url) => new Promise((resolve) => {
  const socket = new WebSocket(url);
  socket.onmessage = (event) => { resolve(JSON.parse(event.data).run || "error"); socket.close(); };
  socket.onclose = () => resolve("refused");
  setTimeout(() => resolve("no answer"), 10000);
})"""


def test_the_live_feed_answers_local_pages_only(served, browser):
    """The dashboard's own socket (dashboard/live_routes.py) sends a run's curves: neither a page of a foreign
    host name (DNS rebinding) nor another site's page opening a socket to the dashboard may read them."""
    url, run_id = served
    port = re.search(r":(\d+)$", url).group(1)
    path = f"/_lenet/live?run={run_id}&smoothing=0.6"
    page = browser.new_page()
    page.goto(f"http://localhost:{port}/_lenet/plotly.js")  # a page of the dashboard's origin
    assert page.evaluate(SOCKET, f"ws://localhost:{port}{path}") == run_id
    assert page.request.get(f"http://127.0.0.1:{port}/_lenet/plotly.js").status == 200
    answer = page.goto(f"http://evil.test:{port}/_lenet/plotly.js")  # Chromium resolves evil.test to this machine
    assert answer.status == 403
    assert page.evaluate(SOCKET, f"ws://evil.test:{port}{path}") == "refused"  # a foreign host name
    assert page.evaluate(SOCKET, f"ws://localhost:{port}{path}") == "refused"  # another site's page
    page.close()


def test_a_runs_name_is_shown_as_text(served, browser):
    url, _ = served
    page = browser.new_page()
    requested = []
    page.route("http://pixel.test/**", lambda route: (requested.append(route.request.url), route.abort()))
    page.goto(url)
    header = page.locator("[data-testid=stHeading]", has_text="HUGE").first
    header.wait_for(timeout=120_000)
    assert HOSTILE_NAME in header.inner_text()  # the Markdown shows as typed
    page.locator('[data-testid="stSidebarNav"] a', has_text="Evaluate").click()
    page.get_by_text(HOSTILE_NAME).first.wait_for(timeout=120_000)  # the audit caption
    time.sleep(1)
    assert requested == [], "a run's name made the browser load an image"
    assert page.locator("img[src*='pixel.test']").count() == 0
    page.close()
