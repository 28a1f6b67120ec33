"""The live Train page in a real browser: the chart keeps moving, survives a page switch, and Stop works.

Starts `streamlit run dashboard/app.py` on a free port with its own run store, and drives Debian's Chromium
with Playwright. Also measures the time from pressing Train to the first point and how often the live
chart changes, and writes them to bench/results/live_update.json.
"""

import base64
import json
import os
import platform
import re
import statistics
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import streamlit_server

from core import live_feed
from core.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
RESULTS = ROOT / "bench" / "results" / "live_update.json"
BATCH_CHART = ".st-key-train_live .lenet-live-batch.js-plotly-plot"
# 16,200 training images in batches of 64: 254 steps per epoch, 16 executions of the compiled loop each;
# the batch chart gets a point at most every 0.25 s (the callback's throttle), the epoch chart one an epoch.
RUN = {"train_subset": 18000, "validation_split": 0.1, "batch_size": 64, "epochs": 3}
STOPPED_RUN = {**RUN, "epochs": 30}  # long enough that Stop always lands mid-training

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
                                       "to run the browser tests")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url, run store) of a real Streamlit server running the app on its own empty store."""
    runs = tmp_path_factory.mktemp("browser_runs")
    with streamlit_server(runs, runs.parent / "streamlit.log") as url:
        yield url, runs


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(server[0])
        page.wait_for_selector(".st-key-train_submit button")
        yield page
        browser.close()


# ----- driving the form ------------------------------------------------------------------------


def choose(page, key: str, option: str) -> None:
    page.locator(f".st-key-{key} input").click()
    page.locator("[role=option]", has_text=re.compile(f"^{re.escape(option)}$")).click()


def fill(page, key: str, value) -> None:
    field = page.locator(f".st-key-{key} input")
    field.fill(str(value))
    field.press("Tab")  # commit the value to the form without submitting it


def start_run(page, name: str, run: dict = RUN) -> float:
    choose(page, "train_cfg_data_source", "sample")
    for field, value in run.items():
        fill(page, f"train_cfg_{field}", value)
    fill(page, "train_name", name)
    page.locator(".st-key-train_submit button").click()
    return time.monotonic()


def run_named(runs: Path, name: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for info in RunStore(runs).list_runs():
            if info.name == name:
                return info.run_id
        time.sleep(0.05)
    raise AssertionError(f"no run named {name!r} was created")


# ----- reading the live chart ------------------------------------------------------------------


def decode(values) -> list:
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).tolist()
    return list(values or [])


def chart_steps(page) -> tuple | None:
    """The x values (steps) of the batch chart's first trace, as the browser holds them; None if no chart."""
    data = page.evaluate(f"""() => {{
        const plot = document.querySelector('{BATCH_CHART}');
        return plot && plot.data && plot.data.length ? {{x: plot.data[0].x, y: plot.data[0].y}} : null;
    }}""")
    if data is None:
        return None
    return tuple(zip(decode(data["x"]), decode(data["y"])))


def nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).click()


# ----- the test --------------------------------------------------------------------------------


def test_enter_in_a_form_field_does_not_start_a_run(server, page):
    # Streamlit forms submit on Enter by default: typing a run name and pressing Enter started a training run.
    field = page.locator(".st-key-train_name input")
    field.fill("pressed enter")
    field.press("Enter")
    time.sleep(3)
    assert RunStore(server[1]).list_runs() == []
    field.fill("")
    field.press("Tab")


def test_live_chart_moves_survives_a_page_switch_and_stop_works(server, page):
    url, runs = server
    store = RunStore(runs)
    pressed = start_run(page, "browser run 1")
    run_id = run_named(runs, "browser run 1")

    changes: list[tuple[float, int]] = []  # (time, number of batch points) whenever the chart's data changed
    store_seen: dict[int, float] = {}  # number of batch records -> when the store first had them
    lags: list[float] = []
    last, switched, changes_after_return, first_shown_wall, first_record_wall = None, False, 0, None, None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        state = store.read_status(run_id).status
        batch, _ = store.read_metrics(run_id)
        now = time.monotonic()
        if state == "running":
            store_seen.setdefault(len(batch), now)
            if len(batch) and first_record_wall is None:
                first_record_wall = time.time()
        steps = chart_steps(page)
        if steps is not None and steps != last and state == "running":
            shown = len(steps)
            changes.append((now, shown))
            if shown and first_shown_wall is None:
                first_shown_wall = time.time()
            if shown in store_seen and shown:
                lags.append(now - store_seen[shown])
            if switched:
                changes_after_return += 1
            last = steps
        if state not in ("queued", "running"):
            break
        if not switched and changes and changes[-1][1] >= 1:
            nav(page, "Runs")  # leave mid-run: the run lives in the worker, not in this page
            page.wait_for_selector(".st-key-runs_table")
            page.get_by_role("heading", name="Runs", exact=True).wait_for()
            nav(page, "Train")
            page.wait_for_selector(BATCH_CHART, state="attached")
            switched, last = True, None
        time.sleep(0.05)
    assert store.read_status(run_id).status == "completed"
    first_point = next(t for t, shown in changes if shown >= 1) - pressed
    built = datetime.fromisoformat(store.read_status(run_id).training_started).timestamp()
    first_point_after_model = first_shown_wall - built  # the model is built and compiled when training starts
    assert len(changes) >= 3, f"the live chart changed only {len(changes)} times while training"
    assert switched and changes_after_return >= 1, "after switching pages the chart no longer moved"
    page.get_by_text("Test accuracy").first.wait_for()
    final = chart_steps(page)
    assert final is not None and len(final) == len(store.read_metrics(run_id)[0])

    # A second run, stopped mid-training: the worker ends it as "stopped".
    start_run(page, "browser run 2", STOPPED_RUN)
    second = run_named(runs, "browser run 2")
    deadline = time.monotonic() + 120
    while store.read_metrics(second)[0].empty and time.monotonic() < deadline:  # training under way
        time.sleep(0.1)
    stop_button = page.locator(f".st-key-train_stop_{second} button")
    stop_button.wait_for()
    time.sleep(1.2)  # dashboard.common.ARM_SECONDS: a button that has just appeared ignores clicks (issue 21.7)
    stop_pressed = time.monotonic()
    stop_button.click()
    halted = None  # fit() returned: the trainer moved on to saving the model and scoring the test set
    while store.read_status(second).status == "running" and time.monotonic() < stop_pressed + 90:
        if halted is None and store.read_status(second).phase in ("saving", "stopped"):
            halted = time.monotonic() - stop_pressed
        time.sleep(0.05)
    stop_latency = time.monotonic() - stop_pressed
    assert store.read_status(second).status == "stopped"
    page.get_by_text("Stopped after").first.wait_for()
    page_latency = time.monotonic() - stop_pressed

    intervals = [b[0] - a[0] for a, b in zip(changes, changes[1:])]
    results = {
        "what": "Train page live chart, measured in Chromium against `streamlit run dashboard/app.py`",
        "notes": "time_to_first_point_s runs from pressing Train, model_built_to_first_point_s from the status' "
                 "training_started (the model built and compiled) to the chart, model_built_to_first_record_s to "
                 "the store's first batch record. Batch records arrive at most every 0.25 s "
                 "(one per execution of the compiled loop), with a pause at each "
                 "epoch end while the test set is scored, so the update period follows the training; "
                 "store_to_chart_lag_s is how long a new record takes to reach the chart. "
                 "After Stop, Keras ends the epoch in progress (validation, and the streaming callback scores the "
                 "10,000 test images), then the trainer saves the model and scores the test set again: "
                 "stop_to_fit_returned_s and stop_to_stopped_status_s include that work.",
        "run": {"data_source": "sample", **RUN},
        "live_panel_period_s": live_feed.PERIOD_S,
        "time_to_first_point_s": round(first_point, 2),
        "model_built_to_first_point_s": round(first_point_after_model, 2),
        "model_built_to_first_record_s": round(first_record_wall - built, 2),
        "chart_changes_while_training": len(changes),
        "store_batch_records_while_training": max(store_seen, default=0),
        "chart_update_period_s": {"median": round(statistics.median(intervals), 2), "min": round(min(intervals), 2),
                                  "max": round(max(intervals), 2)} if intervals else None,
        "store_to_chart_lag_s": {"median": round(statistics.median(lags), 2), "max": round(max(lags), 2)}
        if lags else None,
        "stop_to_fit_returned_s": round(halted if halted is not None else stop_latency, 2),
        "stop_to_stopped_status_s": round(stop_latency, 2),
        "stop_to_stopped_on_page_s": round(page_latency, 2),
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
