#!/usr/bin/env python
"""What watching costs: training throughput while 0, 1 and 3 Train tabs are open in Chromium.

    python bench/watching.py              # 3 blocks of windows with 0, 1 and 3 tabs, in one training run
    python bench/watching.py --quick      # 1 block of 0 and 1 tab with short windows: a smoke check

One dashboard server and one long training run (`python -m core train`, the Quick demo recipe on the bundled
sample, 200 epochs of batches of 64, stopped once measured) serve the whole bench. The run is cut into windows; in each,
0, 1 or 3 tabs show the Train page, which follows the run live, and the other tabs show about:blank (each tab
has its own browser context, so its own renderer process, as separate windows would). Windows come in blocks
in the order 0, 1, 3, 3, 1, 0: the shared machine's speed drifts, and within a block a steady drift hits every
count of tabs alike. Separate runs per count of tabs (sessions 11-13) spread by ±20% from one run to the next,
more than the effect measured.

A window's throughput: the training images per second between consecutive batch records of the same epoch, by
the trainer's own clock (epoch ends, with their evaluation, are left out), for records seen after the window's
settling time, in which the tabs load. The cost of n tabs in a block: 1 - (their windows' throughput / the
windows' with none); the bench reports the median over blocks. Also measured in each window: the CPU the
server and Chromium spend (share of one core) and, in the first tab, the chart period (the time between two
updates of the batch chart's data). Headless Chromium reports every tab as visible; as in a browser window,
only the first tab is visible here and the others are background tabs: the page is told so the way a browser
tells it (`document.visibilityState` becomes "hidden" and a `visibilitychange` event fires). Targets: one tab
costs at most 5% of the throughput, three tabs at most 10%, with the chart period at most 1 s in the visible
tab. Results go to bench/results/watching.json.
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

from bench import common
from bench.page_latency import CHROMIUM, CHROMIUM_ARGS, ROOT, _process_tree, cpu_seconds, start_server

NAME = "watching"
TARGETS = {1: 0.05, 3: 0.10}
TARGET_PERIOD = 1.0
MAX_EPOCHS = 200  # what `core train` allows: ~2 s each on the sample, longer than 3 blocks of 14 s windows
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


HIDE_TAB = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def train_run(store: Path, name: str, epochs: int, subset: int, batch_size: int = 128) -> subprocess.Popen:
    env = {**os.environ, "LENET_RUNS": str(store), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "core", "train", "--preset", "Quick demo", "--data-source", "sample",
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
    """Up to three tabs, each in its own browser context; `show(n)`: the first n show the Train page."""

    def __init__(self, browser, url: str, count: int):
        self.url, self.shown = url, 0
        self.pages = [browser.new_context(viewport={"width": 1280, "height": 800}).new_page() for _ in range(count)]

    def show(self, n: int) -> None:
        for i, page in enumerate(self.pages):
            if self.shown > i >= n:  # no longer open: nothing shown
                page.goto("about:blank")
            elif n > i >= self.shown:
                page.goto(f"{self.url}/")
                page.get_by_role("heading", name="Train LeNet-5").wait_for(timeout=120_000)
                page.evaluate(WATCH_CHART if i == 0 else HIDE_TAB)
        self.shown = n

    def chart_gaps(self, since: float) -> list[float]:
        if not self.shown:
            return []
        changes = [t for t in self.pages[0].evaluate("window.__chartChanges") if t >= since]
        return [b - a for a, b in itertools.pairwise(changes)]

    def page_clock(self) -> float:
        return self.pages[0].evaluate("performance.now() / 1000") if self.shown else 0.0


def window(tabs: Tabs, follower: Follower, pids, n: int, args) -> dict:
    """One window with n tabs open: settle, then measure."""
    tabs.show(n)
    deadline = time.perf_counter() + args.settle
    while time.perf_counter() < deadline:
        follower.poll()
        time.sleep(0.1)
    ours = {os.getpid(), *_process_tree(pids[0]), *_process_tree(pids[1])}  # the server, the training run
    browser = [p for p in _process_tree(os.getpid()) if p not in ours]
    cpu = (cpu_seconds([pids[0]]), cpu_seconds(browser))
    started, page_started = time.perf_counter(), tabs.page_clock()
    while time.perf_counter() < started + args.measure:
        follower.poll()
        time.sleep(0.1)
    wall = time.perf_counter() - started
    result = {"tabs": n, "steps_per_s": follower.rate(started, started + wall),
              "cpu_share": {"server": (cpu_seconds([pids[0]]) - cpu[0]) / wall,
                            "browser": (cpu_seconds(browser) - cpu[1]) / wall}}
    gaps = tabs.chart_gaps(page_started)
    if gaps:
        result["chart_period"] = {"median": statistics.median(gaps), "p90": sorted(gaps)[int(0.9 * (len(gaps) - 1))],
                                  "updates": len(gaps) + 1}
    return result


def summarise(windows: list[dict], conditions: list[int], images_per_step: int) -> dict:
    blocks = itertools.groupby(windows, key=lambda w: w["block"])
    costs: dict[int, list[float]] = {n: [] for n in conditions}
    for _, block in blocks:
        block = list(block)
        rate = {n: statistics.mean(w["steps_per_s"] for w in block if w["tabs"] == n) for n in conditions}
        for n in conditions:
            costs[n].append(1 - rate[n] / rate[0])
    out = {}
    for n in conditions:
        mine = [w for w in windows if w["tabs"] == n]
        entry = {"images_per_s": statistics.median(w["steps_per_s"] for w in mine) * images_per_step,
                 "block_costs": costs[n], "cost": statistics.median(costs[n]),
                 "server_cpu": statistics.median(w["cpu_share"]["server"] for w in mine),
                 "browser_cpu": statistics.median(w["cpu_share"]["browser"] for w in mine)}
        periods = [w["chart_period"] for w in mine if "chart_period" in w]
        if periods:
            entry["chart_period_median"] = statistics.median(p["median"] for p in periods)
            entry["chart_period_p90"] = max(p["p90"] for p in periods)
        if n in TARGETS:
            entry["target"] = TARGETS[n]
            entry["met"] = entry["cost"] <= TARGETS[n] and entry.get("chart_period_median", 0) <= TARGET_PERIOD
        out[str(n)] = entry
    return out


def measure(store: Path, url: str, server_pid: int, conditions: list[int], args) -> list[dict]:
    from playwright.sync_api import sync_playwright

    order = conditions + conditions[::-1]  # 0, 1, 3, 3, 1, 0: a steady drift hits every count alike
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        tabs = Tabs(browser, url, max(conditions))
        run = train_run(store, "watched", MAX_EPOCHS, args.subset, args.batch_size)
        follower = Follower(store, "watched")
        try:
            while follower.poll() < 1:  # the first epoch includes compiling
                if run.poll() is not None:
                    sys.exit(f"training ended early ({run.returncode})")
                time.sleep(0.2)
            windows = []
            for block, n in itertools.product(range(args.rounds), order):
                if run.poll() is not None:
                    sys.exit(f"the training run ended after {len(windows)} windows: ask for fewer or shorter ones")
                windows.append({"block": block, **window(tabs, follower, [server_pid, run.pid], n, args)})
                w = windows[-1]
                print(f"block {block + 1}, {n} tab(s): {w['steps_per_s'] * args.batch_size:,.0f} images/s, server "
                      f"{w['cpu_share']['server']:.0%}, browser {w['cpu_share']['browser']:.0%} of a core"
                      + (f", chart every {w['chart_period']['median']:.2f} s" if "chart_period" in w else ""), flush=True)
        finally:
            run.terminate()
            run.wait(timeout=60)
            browser.close()
    return windows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="1 block of 0 and 1 tab, 3 s windows")
    parser.add_argument("--rounds", type=int, default=3, help="blocks of windows (0, 1, 3, 3, 1, 0 tabs)")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds for the tabs to load in each window")
    parser.add_argument("--measure", type=float, default=10.0, help="seconds measured in each window")
    parser.add_argument("--subset", type=int, default=19000, help="images per epoch (the sample's training pool)")
    parser.add_argument("--batch-size", type=int, default=64, help="the article's 64: epochs long enough for the bench")
    parser.add_argument("--tabs", default="0,1,3", help="comma-separated tab counts; 0 is the baseline")
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.settle, args.measure, args.tabs = 1, 3.0, 3.0, "0,1"
    conditions = sorted({0, *(int(t) for t in args.tabs.split(","))})
    store = Path(tempfile.mkdtemp(prefix="lenet-watch-"))
    server, url = start_server(store)
    try:
        windows = measure(store, url, server.pid, conditions, args)
    finally:
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(store, ignore_errors=True)
    summary = summarise(windows, conditions, args.batch_size)
    rows = [[tabs, f"{e['images_per_s']:,.0f}", f"{e['cost']:+.1%}", " ".join(f"{c:+.0%}" for c in e["block_costs"]),
             f"{e['server_cpu']:.0%}", f"{e['browser_cpu']:.0%}",
             f"{e['chart_period_median']:.2f} s" if "chart_period_median" in e else "–",
             f"≤{e['target']:.0%}: {'met' if e['met'] else 'NOT met'}" if "target" in e else ""]
            for tabs, e in summary.items()]
    common.print_table("Training throughput while Train tabs watch",
                       ["tabs", "images/s", "cost", "per block", "server CPU", "Chromium CPU", "chart period", "target"],
                       rows)
    result = {"machine": common.machine(), "rounds": args.rounds, "settle_s": args.settle, "measure_s": args.measure,
              "subset": args.subset, "windows": windows, "summary": summary}
    common.write_result(args, NAME, result)
    return result


if __name__ == "__main__":
    main()
