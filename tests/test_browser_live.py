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

from core import live_feed
from core.config import TrainConfig
from core.store import RunStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
BATCH_CHART = ".st-key-train_live .lenet-live-batch.js-plotly-plot"
SET_VISIBILITY = """(hidden) => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => hidden ? 'hidden' : 'visible'});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
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
