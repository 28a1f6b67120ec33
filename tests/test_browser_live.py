"""Watching costs nothing in a hidden tab: the Train page's live view stops rerunning while its browser tab is
hidden, and catches up at once when the tab is shown again (issue 20, item 3; bench/watching.py measures
what watching costs a training run).

A run "trains" here by this test appending batch records under its own pid, so the timing is exact.
Chromium reports a background tab with `document.visibilityState == "hidden"` and a `visibilitychange`
event; headless Chromium never backgrounds a tab, so the test tells the page the same way.
"""

import os
import time
from pathlib import Path

import pytest
from conftest import streamlit_server

from bench.watching import SET_VISIBILITY  # how a browser tells a page it went to the background and back
from core import live_feed
from core.config import TrainConfig
from core.store import RunStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
BATCH_CHART = ".st-key-train_live .lenet-live-batch.js-plotly-plot"
POINTS = f"() => {{ const c = document.querySelector('{BATCH_CHART}'); return c && c._fullData ? c._fullData[0]._length : 0; }}"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
                                       "to run the browser tests")


def append_batches(store: RunStore, run_id: str, start: int, count: int) -> None:
    store.append_metrics(run_id, [{"type": "batch", "epoch": 1, "batch": step, "step": step, "loss": 1 / step,
                                   "accuracy": 0.5, "batches": 1, "time": step / 10}
                                  for step in range(start, start + count)])


def wait_for_points(page, points: int, seconds: float) -> float:
    started = time.monotonic()
    while page.evaluate(POINTS) < points:
        assert time.monotonic() - started < seconds, f"the chart did not reach {points} points in {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_hidden_tab_stops_rerunning_and_catches_up_when_shown(tmp_path):
    from playwright.sync_api import sync_playwright

    store = RunStore(tmp_path / "runs")
    run_id = store.create_run(TrainConfig(epochs=1, train_subset=600, validation_split=0.1), "watched run")
    store.write_status(run_id, status="running", pid=os.getpid(), started="2026-01-01T00:00:00+00:00",
                       epochs=1, steps_per_epoch=1000, batch_size=64)
    append_batches(store, run_id, 1, 1)
    with store.heartbeat(run_id), streamlit_server(store.root, tmp_path / "streamlit.log") as url, \
            sync_playwright() as playwright:  # the heartbeat: this test is the run's (pretend) trainer
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        wait_for_points(page, 1, 60)

        # Visible: a new record reaches the chart within the fragment's interval (and a little work).
        append_batches(store, run_id, 2, 1)
        assert wait_for_points(page, 2, 5) < live_feed.PERIOD_S + 2

        page.evaluate(SET_VISIBILITY, True)
        time.sleep(1.5)  # the rerun that learns the tab is hidden, and its messages
        append_batches(store, run_id, 3, 5)
        time.sleep(4)  # over four times the interval: a tab that reruns would have drawn them
        assert page.evaluate(POINTS) == 2, "the chart of a hidden tab was redrawn"

        shown = time.monotonic()
        page.evaluate(SET_VISIBILITY, False)
        wait_for_points(page, 7, 5)
        assert time.monotonic() - shown < live_feed.PERIOD_S + 2
        time.sleep(2)
        append_batches(store, run_id, 8, 1)  # and it goes on following the run
        wait_for_points(page, 8, live_feed.PERIOD_S + 2)
        browser.close()


# The live panel's script on its own, in a blank page: a stand-in plotly.js that counts what it is asked to do,
# and a stand-in WebSocket that sends the next of `feeds` every `everyMs` while it is open.
PANEL_HARNESS = """async ({html, js, feeds, everyMs}) => {
  window.calls = {react: 0, animate: 0, sockets: [], open: 0, sent: 0, triggers: []};
  window.Plotly = {
    react: async (element) => { window.calls.react += 1; element._fullLayout = {}; },
    animate: async () => { window.calls.animate += 1; },
  };
  window.WebSocket = class {
    constructor(url) {
      window.calls.sockets.push(String(url));
      window.calls.open += 1;
      this.timer = setInterval(() => {
        const feed = feeds[Math.min(window.calls.sent++, feeds.length - 1)];
        if (this.onmessage) this.onmessage({data: JSON.stringify(feed)});
      }, everyMs);
    }
    close() { clearInterval(this.timer); window.calls.open -= 1; }
  };
  const parentElement = document.createElement("div");
  parentElement.innerHTML = html;
  document.body.append(parentElement);
  const module = await import(URL.createObjectURL(new Blob([js], {type: "text/javascript"})));
  window.redraw = (feed, period) => module.default({parentElement, setTriggerValue: (...a) => window.calls.triggers.push(a),
    data: {feed, progress: true, poll: true, smoothing: 0.6, period, url: "http://127.0.0.1:8501/_lenet/live",
           plotly: "unused.js"}});
}"""


def panel_feed(points: int, top: float = 2.5) -> dict:
    """A feed as core.live_feed builds it, for a running run whose batch chart has `points` points."""
    chart = {"data": [{"type": "scatter", "mode": "lines", "x": list(range(points)), "y": [1.0] * points,
                       "xaxis": "x", "yaxis": "y"}],
             "layout": {"yaxis": {"range": [0, top]}, "xaxis": {"range": [0, 1000]}},
             "look": f"top {top}"}  # the server's digest of the layout and the traces' make-up
    return {"run": "r1", "status": "running", "phase": "training", "active": True, "stamp": f"s{points}-{top}",
            "keys": {"batch": f"r1:{points}:{top}", "epoch": "r1:0"},
            "progress": {"fraction": points / 1000, "text": f"batch {points}", "metrics": []},
            "batch": chart, "epoch": {"data": [], "layout": {}, "look": "empty"}}


def open_panel(browser, feeds: list[dict], every_ms: int):
    from dashboard import live_panel

    page = browser.new_page()
    page.goto("about:blank")
    page.evaluate(PANEL_HARNESS, {"html": live_panel.HTML, "js": live_panel.JS, "feeds": feeds, "everyMs": every_ms})
    return page


def test_the_live_panel_holds_one_socket_however_often_the_page_redraws_it():
    """One socket per panel: a redraw of the page while an answer was awaited used to start a second polling
    loop, and during a long run the loops piled up (4.4 asks a second, the browser at 28% of a core)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = open_panel(browser, [panel_feed(n) for n in range(2, 60)], every_ms=400)
        redraw = "([feed, period]) => window.redraw(feed, period)"
        page.evaluate(redraw, [panel_feed(1), 0.5])
        for _ in range(8):  # the page redraws the panel every 0.15 s, some redraws between two messages
            page.wait_for_timeout(150)
            page.evaluate(redraw, [panel_feed(1), 0.5])
        page.wait_for_timeout(1000)
        calls = page.evaluate("window.calls")
        browser.close()
    assert len(calls["sockets"]) == 1 and calls["open"] == 1, calls["sockets"]
    assert "run=r1&smoothing=0.6&since=s1-2.5" in calls["sockets"][0] and calls["sockets"][0].startswith("ws://")


def test_a_hidden_panel_closes_its_socket_and_opens_one_from_its_last_feed_when_shown():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = open_panel(browser, [panel_feed(n) for n in range(2, 60)], every_ms=100)
        page.evaluate("([feed, period]) => window.redraw(feed, period)", [panel_feed(1), 0.5])
        page.wait_for_function("() => window.calls.sent >= 3", timeout=10_000)
        page.evaluate(SET_VISIBILITY, True)
        hidden = page.evaluate("window.calls")
        page.wait_for_timeout(500)
        assert page.evaluate("window.calls.react + window.calls.animate") == hidden["react"] + hidden["animate"]
        page.evaluate(SET_VISIBILITY, False)
        shown = page.evaluate("window.calls")
        browser.close()
    assert hidden["open"] == 0 and shown["open"] == 1 and len(shown["sockets"]) == 2
    last = hidden["sent"] + 1  # panel_feed(n) is the (n - 1)th sent
    assert shown["sockets"][1].endswith(f"since=s{last}-2.5")


def test_new_points_inside_the_axes_redraw_only_the_curves():
    """Plotly.animate (the curves alone) while the layout stays the same; Plotly.react when it changes."""
    from playwright.sync_api import sync_playwright

    feeds = [panel_feed(3), panel_feed(4), panel_feed(5, top=4.0), panel_feed(6, top=4.0)]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = open_panel(browser, feeds, every_ms=10)
        page.evaluate("([feed, period]) => window.redraw(feed, period)", [panel_feed(2), 0.2])
        page.wait_for_function("() => window.calls.sent >= 5", timeout=10_000)
        calls = page.evaluate("window.calls")
        browser.close()
    # the first draw (2 points) and the new loss range (5 points) take a full redraw of the batch chart, the
    # others (3, 4 and 6 points) only the curves; the epoch chart, empty and unchanged, is drawn once
    assert (calls["react"], calls["animate"]) == (3, 3)
    assert calls["triggers"] == []  # status and phase stayed the same: no rerun asked for


def test_the_panel_reruns_the_page_when_the_status_changes_not_the_phase():
    """A new phase (building model, saving) is drawn in the panel; a rerun of the page at each one fell inside
    the run's first epochs. Only a new status (started, ended) reruns the page, and the socket closes."""
    from playwright.sync_api import sync_playwright

    saving = {**panel_feed(3), "phase": "saving", "stamp": "saving"}
    ended = {**panel_feed(3), "phase": "completed", "status": "completed", "active": False, "stamp": "ended"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = open_panel(browser, [saving, saving, ended], every_ms=300)
        page.evaluate("([feed, period]) => window.redraw(feed, period)", [panel_feed(2), 0.2])
        page.wait_for_function("() => window.calls.sent >= 2", timeout=10_000)
        assert page.evaluate("window.calls.triggers") == []
        page.wait_for_function("() => window.calls.triggers.length > 0", timeout=10_000)
        assert page.evaluate("window.calls.triggers") == [["changed", "ended"]]
        assert page.evaluate("window.calls.open") == 0
        browser.close()


def plotly_page(browser, width: int):
    """A blank page with the panel's plotly.js bundle and its HTML (window.panelHtml), `width` px wide."""
    from dashboard import live_panel
    from dashboard.live_routes import PLOTLY_JS

    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto("about:blank")
    page.add_script_tag(path=str(PLOTLY_JS))
    page.evaluate("(html) => { window.panelHtml = html; }", live_panel.HTML)
    return page


PANEL = """async ({js, feed, width}) => {
  const parentElement = document.createElement("div");
  parentElement.style.width = `${width}px`;
  parentElement.innerHTML = window.panelHtml;
  document.body.append(parentElement);
  const module = await import(URL.createObjectURL(new Blob([js], {type: "text/javascript"})));
  window.drawPanel = (feed) => module.default({parentElement, setTriggerValue: () => {},
    data: {feed, progress: false, poll: false, smoothing: 0.6, period: 0.9, url: "/_lenet/live", plotly: "unused.js"}});
  window.animated = 0;  // curves-only redraws
  const animate = window.Plotly.animate;
  window.Plotly.animate = (...args) => { window.animated += 1; return animate(...args); };
  window.drawPanel(feed);
}"""


def test_a_narrow_panel_keeps_the_epoch_legend_clear_of_the_axis_title(lenet_runs):
    """Below 760 px the panel titles take two lines, so the plot is shorter; the legend, placed below it in
    fractions of its height, met the x-axis title (seen at 1024×768)."""
    from playwright.sync_api import sync_playwright

    from dashboard import live_panel

    store = RunStore()
    run_id = store.create_run(TrainConfig(epochs=8, train_subset=600, validation_split=0.1), "ended")
    store.append_metrics(run_id, [{"type": "epoch", "epoch": e, "loss": 1 / e, "accuracy": 1 - 0.1 / e,
                                   "val_loss": 1.1 / e, "val_accuracy": 1 - 0.12 / e, "time": 3.0 * e}
                                  for e in range(1, 9)])
    store.write_status(run_id, status="completed", phase="completed", epochs=8)
    feed = live_feed.feed(store, run_id, 0.6)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = plotly_page(browser, 800)
        page.evaluate(PANEL, {"js": live_panel.JS, "feed": feed, "width": 620})
        page.locator(".lenet-live-epoch .legend").wait_for(timeout=20_000)
        titles = [page.locator(f".lenet-live-epoch .{axis}title").bounding_box() for axis in ("x", "x2")]
        legend = page.locator(".lenet-live-epoch .legend").bounding_box()
        lines = page.locator(".lenet-live-epoch .annotation-text").first.locator("tspan.line").count()
        browser.close()
    assert lines == 2  # the narrow layout was drawn: "Loss", "(per epoch)"
    assert legend["y"] >= max(t["y"] + t["height"] for t in titles)


def test_the_panel_gives_every_curve_the_steps_and_hover_texts_sent_once(lenet_runs):
    """The feed sends the batch chart's shared steps and hover texts once (core.live_feed._plain); the panel
    gives them to each of the four curves, in the full redraw and in the curves-only redraw."""
    from playwright.sync_api import sync_playwright

    from dashboard import live_panel

    store = RunStore()
    run_id = store.create_run(TrainConfig(epochs=2, train_subset=600, validation_split=0.1), "watched")
    store.write_status(run_id, status="running", phase="training", epochs=2, steps_per_epoch=50, batch_size=64)
    records = [{"type": "batch", "epoch": 1, "batch": b, "step": b, "loss": 1 / b, "accuracy": b / 100, "batches": 1,
                "time": b / 10} for b in range(1, 21)]
    store.append_metrics(run_id, records[:10])
    first = live_feed.feed(store, run_id, 0.6)
    store.append_metrics(run_id, records[10:])
    more = live_feed.feed(store, run_id, 0.6)
    assert more["batch"]["look"] == first["batch"]["look"]  # the second draw redraws the curves alone
    texts = ("() => document.querySelector('.lenet-live-batch')._fullData"
             ".map((trace) => [Array.from(trace.text || []), Array.from(trace.x || [])])")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = plotly_page(browser, 1280)
        page.evaluate(PANEL, {"js": live_panel.JS, "feed": first, "width": 1200})
        page.locator(".lenet-live-batch .scatterlayer .trace").first.wait_for(timeout=20_000)
        drawn = page.evaluate(texts)
        page.evaluate("(feed) => window.drawPanel(feed)", more)
        page.wait_for_function("() => document.querySelector('.lenet-live-batch')._fullData[0]._length === 20",
                               timeout=20_000)
        redrawn, animated = page.evaluate(texts), page.evaluate("window.animated")
        browser.close()
    steps = list(range(1, 21))
    assert drawn == [[first["batch"]["shared"]["text"], steps[:10]]] * 4
    assert animated >= 1 and redrawn == [[more["batch"]["shared"]["text"], steps]] * 4
    assert len(more["batch"]["shared"]["text"]) == 20
