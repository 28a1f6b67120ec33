#!/usr/bin/env python
"""What watching costs: training throughput while 1 or 3 Train tabs watch it in Chromium, against none.

    python bench/watching.py              # 7 blocks of windows for 1 tab, then for 3 tabs
    python bench/watching.py --quick      # 1 block for 1 tab with short windows: a smoke check

One dashboard server serves the whole bench, and each count of tabs watches a long training run of its own
(`python -m core train`, the Quick demo recipe on the bundled sample, 200 epochs of batches of 64, stopped once
measured). The tabs open the Train page once (each in its own browser context, so its own renderer process, as
separate windows would be); the page follows the run live. Then the run is cut into short windows in which the first
tab is either visible (watching) or in the background, in the order visible, background, background, visible
(a block): the shared machine's speed drifts, and within a block a steady drift hits both alike. The other
tabs stay in the background throughout, as tabs behind the watched one in a browser window. A background tab
closes its live socket and draws nothing (dashboard/live_panel.py), so the windows with every tab in the background
are the baseline; what the tabs still cost then (Streamlit's connection) shows in the CPU figures, against
windows before any tab is open. Headless Chromium reports every tab as visible: the page is told the way a
browser tells it (`document.visibilityState` and a `visibilitychange` event).

Separate runs per count of tabs (sessions 11-13) spread by ±20% from one run to the next, more than the effect
measured; opening and closing tabs for each window put their loading into the windows.

A window's throughput: the training images per second between consecutive batch records of the same epoch, by
the trainer's own clock (epoch ends, with their evaluation, are left out), for records seen after a settling
time (a tab shown again catches up at once). The cost of n tabs in a block: 1 - (throughput while watched /
throughput with every tab in the background); the bench reports the median over blocks. Also measured in each
window: the CPU the server and Chromium spend (share of one core) and, in the watched tab, the chart period
(the time between two updates of the batch chart's data). Targets: one tab costs at most 5% of the throughput,
three tabs at most 10%, with the chart period at most 1 s in the visible tab. Results go to
bench/results/watching.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from bench import common
from bench.page_latency import CHROMIUM, CHROMIUM_ARGS, ROOT, _process_tree, cpu_seconds, start_server

NAME = "watching"
TARGETS = {1: 0.05, 3: 0.10}
TARGET_PERIOD = 1.0
MAX_EPOCHS = 200  # what `core train` allows: 1.3-2 s each on the sample (1 s on a fast day: then --data)
# In the page: note the time whenever the batch chart is drawn with new data (its number of points or last
# value), from plotly.js's own events: "plotly_afterplot" after a full redraw, "plotly_animated" after the
# curves alone are redrawn (dashboard/live_panel.py); a check every 20 ms woke the renderer 50 times a second.
WATCH_CHART = """() => {
  window.__chartChanges = [];
  let last = null, watched = null;
  const seen = (chart) => {
    const trace = chart._fullData && chart._fullData[0];  // decoded data (chart.data may be base64)
    if (!trace || !trace.y) return;
    const key = trace._length + ':' + trace.y[trace._length - 1];
    if (key !== last) { last = key; window.__chartChanges.push(performance.now() / 1000); }
  };
  setInterval(() => {  // the chart's element is made once the page has drawn it
    const chart = document.querySelector('.js-plotly-plot');
    if (chart && chart !== watched && chart.on) { watched = chart; chart.on('plotly_afterplot', () => seen(chart)); chart.on('plotly_animated', () => seen(chart)); seen(chart); }
  }, 500);
}"""


SET_VISIBILITY = """(hidden) => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => hidden ? 'hidden' : 'visible'});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def train_run(store: Path, name: str, epochs: int, subset: int, batch_size: int,
              data: Path | None = None) -> subprocess.Popen:
    """The Quick demo recipe on the bundled sample, or on the .npz at `data` (a fast machine trains the sample's
    200 epochs in about 200 s, less than 7 blocks for 3 tabs and the tabs' loading)."""
    env = {**os.environ, "LENET_RUNS": str(store), "TF_CPP_MIN_LOG_LEVEL": "2"}
    source = ["--data-source", "file", "--data", str(data)] if data else ["--data-source", "sample"]
    command = [sys.executable, "-m", "core", "train", "--preset", "Quick demo", *source,
               "--epochs", str(epochs), "--train-subset", str(subset), "--batch-size", str(batch_size),
               "--name", name, "--json"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


class Follower:
    """The training run's batch records as the bench sees them appear (through the run store's API)."""

    def __init__(self, store: Path, name: str):
        from core.store import RunStore

        self.store, self.name, self.run_id, self.rows = RunStore(store), name, None, 0
        self.pairs: list[tuple[float, int, float]] = []  # (seen at, steps, seconds) of consecutive records

    def poll(self) -> int:
        """Read what was appended; returns the epochs finished so far."""
        if self.run_id is None:
            self.run_id = next((r.run_id for r in self.store.list_runs() if r.name == self.name), None)
            if self.run_id is None:
                return 0
        batch, epoch = self.store.read_metrics(self.run_id)
        seen = time.perf_counter()
        if batch is not None and len(batch) > self.rows:
            rows = batch.iloc[max(self.rows - 1, 0):]
            for (_, a), (_, b) in itertools.pairwise(rows.iterrows()):
                if a["epoch"] == b["epoch"] and b["time"] > a["time"]:
                    self.pairs.append((seen, int(b["step"] - a["step"]), float(b["time"] - a["time"])))
            self.rows = len(batch)
        return 0 if epoch is None else len(epoch)

    def rate(self, start: float, end: float) -> float | None:
        """Steps per second of the record pairs seen between start and end (bench clock)."""
        mine = [(steps, seconds) for seen, steps, seconds in self.pairs if start <= seen <= end]
        return sum(s for s, _ in mine) / sum(t for _, t in mine) if mine else None


class Tabs:
    """n tabs on the Train page, each in its own browser context, loaded (chart drawn, start-up work done);
    the first one is visible or in the background (`watch`), the others in the background."""

    def __init__(self, browser, url: str, n: int):
        self.contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(n)]
        self.pages = [context.new_page() for context in self.contexts]
        for i, page in enumerate(self.pages):
            page.goto(f"{url}/")
            page.get_by_role("heading", name="Train LeNet-5").wait_for(timeout=120_000)
            if i == 0:
                page.evaluate(WATCH_CHART)
                page.locator(".lenet-live-batch .main-svg").first.wait_for(timeout=60_000)
            else:
                page.evaluate(SET_VISIBILITY, True)
            try:  # the page's last start-up work (dashboard/plotly_start.py), in the browser's idle time
                page.wait_for_function("() => window.lenetPlotlyState === 'started'", timeout=30_000)
            except PlaywrightTimeout:
                pass
        self.watched = True

    def watch(self, visible: bool) -> None:
        if visible != self.watched:
            self.pages[0].evaluate(SET_VISIBILITY, not visible)
            self.watched = visible

    def chart_gaps(self, since: float) -> list[float]:
        changes = [t for t in self.pages[0].evaluate("window.__chartChanges") if t >= since]
        return [b - a for a, b in itertools.pairwise(changes)]

    def page_clock(self) -> float:
        return self.pages[0].evaluate("performance.now() / 1000")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def _driver(pid: int) -> bool:
    """Playwright's node process, which drives Chromium for the bench: not part of what a user's browser does."""
    try:
        proc = Path(f"/proc/{pid}")
        return (proc / "comm").read_bytes().strip() == b"node" and b"playwright" in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def window(tabs: Tabs | None, follower: Follower, pids, n: int, args) -> dict:
    """One window: n tabs watching (0: every tab in the background, or none open); settle, then measure."""
    if tabs:
        tabs.watch(n > 0)
    deadline = time.perf_counter() + args.settle
    while time.perf_counter() < deadline:
        follower.poll()
        time.sleep(0.1)
    ours = {os.getpid(), *_process_tree(pids[0]), *_process_tree(pids[1])}  # the server, the training run
    browser = [p for p in _process_tree(os.getpid()) if p not in ours and not _driver(p)]
    cpu = (cpu_seconds([pids[0]]), cpu_seconds(browser))
    started, page_started = time.perf_counter(), tabs.page_clock() if tabs else 0.0
    while time.perf_counter() < started + args.measure:
        follower.poll()
        time.sleep(0.1)
    wall = time.perf_counter() - started
    result = {"tabs": n, "steps_per_s": follower.rate(started, started + wall),
              "cpu_share": {"server": (cpu_seconds([pids[0]]) - cpu[0]) / wall,
                            "browser": (cpu_seconds(browser) - cpu[1]) / wall}}
    gaps = tabs.chart_gaps(page_started) if tabs and n else []
    if gaps:
        result["chart_period"] = {"median": statistics.median(gaps), "p90": sorted(gaps)[int(0.9 * (len(gaps) - 1))],
                                  "updates": len(gaps) + 1}
    return result


def interval(costs: list[float], level: float = 0.95, resamples: int = 2000) -> list[float]:
    """A percentile bootstrap interval of the median block cost: where the median of as many blocks, drawn again
    from the same spread, falls `level` of the time. Blocks spread by ±20% on this shared machine, so it shows
    whether a median near a target can be told from it (one block: no spread, the interval is that block)."""
    import numpy as np

    medians = np.median(np.random.default_rng(0).choice(costs, size=(resamples, len(costs))), axis=1)
    return [float(np.quantile(medians, (1 - level) / 2)), float(np.quantile(medians, (1 + level) / 2))]


def _median(windows: list[dict], key) -> float:
    return statistics.median(key(w) for w in windows)


def summarise(windows: list[dict], phases: list[int], images_per_step: int) -> dict:
    """Per count of tabs: throughput, cost (median over blocks), CPU and chart period; "0": no tab open."""
    none = [w for w in windows if w["open"] == 0]
    out = {"0": {"images_per_s": _median(none, lambda w: w["steps_per_s"]) * images_per_step,
                 "server_cpu": _median(none, lambda w: w["cpu_share"]["server"]),
                 "browser_cpu": _median(none, lambda w: w["cpu_share"]["browser"])}}
    for n in phases:
        mine = [w for w in windows if w["open"] == n]
        watched, background = [w for w in mine if w["tabs"]], [w for w in mine if not w["tabs"]]
        costs = []
        for _, block in itertools.groupby(mine, key=lambda w: w["block"]):
            block = list(block)
            rate = {on: statistics.mean(w["steps_per_s"] for w in block if bool(w["tabs"]) == on) for on in (True, False)}
            costs.append(1 - rate[True] / rate[False])
        periods = [w["chart_period"] for w in watched if "chart_period" in w]
        entry = {"images_per_s": _median(watched, lambda w: w["steps_per_s"]) * images_per_step,
                 "background_images_per_s": _median(background, lambda w: w["steps_per_s"]) * images_per_step,
                 "block_costs": costs, "cost": statistics.median(costs), "cost_interval_95": interval(costs),
                 "server_cpu": _median(watched, lambda w: w["cpu_share"]["server"]),
                 "browser_cpu": _median(watched, lambda w: w["cpu_share"]["browser"]),
                 "background_cpu": _median(background, lambda w: w["cpu_share"]["server"] + w["cpu_share"]["browser"]),
                 "chart_period_median": statistics.median(p["median"] for p in periods) if periods else None,
                 "chart_period_p90": max(p["p90"] for p in periods) if periods else None, "target": TARGETS.get(n)}
        entry["met"] = (entry["target"] is not None and entry["cost"] <= entry["target"]
                        and periods != [] and entry["chart_period_median"] <= TARGET_PERIOD)
        out[str(n)] = entry
    return out


def _report(window_: dict, batch_size: int) -> None:
    w = window_
    what = f"{w['open']} tab(s), " + ("watched" if w["tabs"] else "in the background") if w["open"] else "no tab open"
    print(f"block {w['block'] + 1}, {what}: {w['steps_per_s'] * batch_size:,.0f} images/s, server "
          f"{w['cpu_share']['server']:.0%}, browser {w['cpu_share']['browser']:.0%} of a core"
          + (f", chart every {w['chart_period']['median']:.2f} s" if "chart_period" in w else ""), flush=True)


def phase(browser, store: Path, url: str, server_pid: int, n: int, first: bool, args) -> list[dict]:
    """n tabs watching a training run of their own (200 epochs outlast one count of tabs, not two)."""
    run = train_run(store, f"watched by {n}", MAX_EPOCHS, args.subset, args.batch_size, args.data)
    follower, windows, tabs = Follower(store, f"watched by {n}"), [], None

    def add(n_watching: int, block: int) -> None:
        if run.poll() is not None:
            sys.exit(f"the training run ended after {len(windows)} windows: ask for fewer or shorter ones")
        measured = window(tabs, follower, [server_pid, run.pid], n_watching, args)
        if measured["steps_per_s"] is None:
            sys.exit(f"no batch record in window {len(windows) + 1}: did the training run end?")
        windows.append({"open": n if tabs else 0, "block": block, **measured})
        _report(windows[-1], args.batch_size)

    try:
        while follower.poll() < 1:  # the first epoch includes compiling
            if run.poll() is not None:
                sys.exit(f"training ended early ({run.returncode})")
            time.sleep(0.2)
        for _ in range(2 if first else 0):
            add(0, 0)  # no tab open: what background tabs still cost is measured against this
        tabs = Tabs(browser, url, n)
        for block, watched in itertools.product(range(args.rounds), (True, False, False, True)):
            add(n if watched else 0, block)
        tabs.close()
    finally:
        run.terminate()
        run.wait(timeout=60)
    return windows


def measure(store: Path, url: str, server_pid: int, phases: list[int], args) -> list[dict]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            return [w for i, n in enumerate(phases) for w in phase(browser, store, url, server_pid, n, i == 0, args)]
        finally:
            browser.close()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="1 block for 1 tab, 3 s windows")
    parser.add_argument("--rounds", type=int, default=7, help="blocks per count of tabs (watched, background x2, watched)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds after the tab is shown or hidden (the page reruns once for each)")
    parser.add_argument("--measure", type=float, default=4.0, help="seconds measured in each window")
    parser.add_argument("--data", type=Path, help="train on this Keras-layout .npz (e.g. the full MNIST) instead "
                                                  "of the bundled sample: longer epochs, for a fast machine")
    parser.add_argument("--subset", type=int, help="training images (default: 19000, the sample's training pool; "
                                                   "0, all, with --data)")
    parser.add_argument("--batch-size", type=int, default=64, help="the article's batch size")
    parser.add_argument("--tabs", default="1,3", help="comma-separated counts of open tabs")
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.data and not args.data.is_file():
        parser.error(f"--data {args.data}: no such file; allowed: a Keras-layout .npz such as mnist.npz")
    if args.subset is None:
        args.subset = 0 if args.data else 19000
    if args.quick:
        args.rounds, args.settle, args.measure, args.tabs = 1, 1.0, 3.0, "1"
    phases = [int(t) for t in args.tabs.split(",")]
    store = Path(tempfile.mkdtemp(prefix="lenet-watch-"))
    server, url = start_server(store)
    try:
        windows = measure(store, url, server.pid, phases, args)
    finally:
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(store, ignore_errors=True)
    summary = summarise(windows, phases, args.batch_size)
    rows = [[tabs, f"{e['images_per_s']:,.0f}", f"{e['cost']:+.1%}" if "cost" in e else "–",
             "{:+.1%} to {:+.1%}".format(*e["cost_interval_95"]) if "cost" in e else "–",
             " ".join(f"{c:+.0%}" for c in e.get("block_costs", [])), f"{e['server_cpu']:.1%}", f"{e['browser_cpu']:.1%}",
             f"{e['background_cpu']:.1%}" if "background_cpu" in e else "–",
             f"{e['chart_period_median']:.2f} s" if e.get("chart_period_median") else "–",
             f"≤{e['target']:.0%}: {'met' if e['met'] else 'NOT met'}" if e.get("target") else ""]
            for tabs, e in summary.items()]
    common.print_table("Training throughput while Train tabs watch (0: no tab open)",
                       ["tabs", "images/s", "cost", "95% interval", "per block", "server CPU", "Chromium CPU", "in background",
                        "chart period", "target"], rows)
    result = {"machine": common.machine(), "rounds": args.rounds, "settle_s": args.settle, "measure_s": args.measure,
              "subset": args.subset, "data": args.data.name if args.data else "sample", "windows": windows, "summary": summary}
    common.write_result(args, NAME, result)
    return result


if __name__ == "__main__":
    main()
