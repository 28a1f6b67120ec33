#!/usr/bin/env python
"""What watching costs: training throughput with 0, 1 and 3 Train tabs open in Chromium.

    python bench/watching.py              # 3 rounds of 0, 1 and 3 tabs, 6 epochs of 6,000 images each
    python bench/watching.py --quick      # 1 round of 0 and 1 tab, 3 short epochs: a smoke check

One dashboard server runs for the whole bench on a temporary store. For each condition the tabs open
the Train page first (each tab in its own browser context, so its own renderer process, as separate
windows would be), then a run of the Quick demo recipe with more epochs starts from a terminal
(`python -m core train`), which the Train page follows live. Throughput is the median images/s of
epochs 2.. from the run's own epoch records (epoch 1 includes compiling). The conditions alternate
within each round (0, 1, 3, then 3, 1, 0, ...) so a drift in the machine's load hits each alike.

Also measured while the run trains: the CPU the server and Chromium spend (share of one core), and in
the first tab the chart period, the time between two updates of the batch chart's data (its median and
90th percentile). Headless Chromium reports every tab as visible; as in a browser window, only the first
tab is visible here and the others are background tabs: the page is told so the way a browser tells it
(`document.visibilityState` becomes "hidden" and a `visibilitychange` event fires). `--all-visible`
keeps them all visible, as windows side by side would be. Targets: one tab costs at most 5% of the
throughput, three tabs at most 10%, with the chart period at most 1 s in the visible tab. Results go to
bench/results/watching.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common
from bench.page_latency import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    _process_tree,
    cpu_seconds,
    start_server,
)

NAME = "watching"
TARGETS = {1: 0.05, 3: 0.10}
TARGET_PERIOD = 1.0
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


def train_run(store: Path, name: str, epochs: int, subset: int) -> subprocess.Popen:
    env = {**os.environ, "LENET_RUNS": str(store), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "core", "train", "--preset", "Quick demo", "--data-source", "sample",
               "--epochs", str(epochs), "--train-subset", str(subset), "--name", name, "--json"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def steady_images_per_s(store: Path, run_id: str) -> float:
    from core.store import RunStore

    epochs = RunStore(store).read_metrics(run_id)[1]
    return float(epochs["images_per_sec"].iloc[1:].median())


def measure(browser, url: str, server_pid: int, store: Path, tabs: int, label: str, args) -> dict:
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(tabs)]
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.goto(f"{url}/")
        page.get_by_role("heading", name="Train LeNet-5").wait_for(timeout=120_000)
    if pages:
        pages[0].evaluate(WATCH_CHART)
    if not args.all_visible:
        for page in pages[1:]:
            page.evaluate(HIDE_TAB)
    time.sleep(2)  # the pages settle before the clocks start
    browser_pids = [pid for pid in _process_tree(os.getpid()) if pid not in (os.getpid(), server_pid)]
    cpu_before = {"server": cpu_seconds([server_pid]), "browser": cpu_seconds(browser_pids)}
    started = time.perf_counter()
    process = train_run(store, label, args.epochs, args.subset)
    out, _ = process.communicate(timeout=1800)
    wall = time.perf_counter() - started
    cpu = {"server": (cpu_seconds([server_pid]) - cpu_before["server"]) / wall,
           "browser": (cpu_seconds(browser_pids) - cpu_before["browser"]) / wall}
    if process.returncode != 0:
        sys.exit(f"training failed ({process.returncode}): {out[-500:]}")
    run_id = json.loads(out)["run_id"]
    result = {"tabs": tabs, "run_id": run_id, "images_per_s": steady_images_per_s(store, run_id), "wall": wall,
              "cpu_share": cpu}
    if pages:
        changes = pages[0].evaluate("window.__chartChanges")
        gaps = [b - a for a, b in itertools.pairwise(changes)]
        if gaps:
            result["chart_period"] = {"median": statistics.median(gaps),
                                      "p90": sorted(gaps)[int(0.9 * (len(gaps) - 1))], "updates": len(changes)}
    for context in contexts:
        context.close()
    return result


def summarise(runs: list[dict], conditions: list[int]) -> dict:
    base = statistics.median(r["images_per_s"] for r in runs if r["tabs"] == 0)
    out = {}
    for tabs in conditions:
        mine = [r for r in runs if r["tabs"] == tabs]
        speed = statistics.median(r["images_per_s"] for r in mine)
        entry = {"images_per_s": speed, "runs": [round(r["images_per_s"]) for r in mine],
                 "cost": 1 - speed / base,
                 "server_cpu": statistics.median(r["cpu_share"]["server"] for r in mine),
                 "browser_cpu": statistics.median(r["cpu_share"]["browser"] for r in mine)}
        periods = [r["chart_period"] for r in mine if "chart_period" in r]
        if periods:
            entry["chart_period_median"] = statistics.median(p["median"] for p in periods)
            entry["chart_period_p90"] = max(p["p90"] for p in periods)
        if tabs in TARGETS:
            entry["target"] = TARGETS[tabs]
            entry["met"] = entry["cost"] <= TARGETS[tabs] and entry.get("chart_period_median", 0) <= TARGET_PERIOD
        out[str(tabs)] = entry
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="1 round of 0 and 1 tab, 3 epochs of 2,000 images")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--subset", type=int, default=6000, help="training images per epoch (before the 10%% split)")
    parser.add_argument("--tabs", default="0,1,3", help="comma-separated tab counts; 0 is the baseline")
    parser.add_argument("--all-visible", action="store_true", help="every tab visible (windows side by side)")
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.epochs, args.subset, args.tabs = 1, 3, 2000, "0,1"
    conditions = sorted({0, *(int(t) for t in args.tabs.split(","))})
    from playwright.sync_api import sync_playwright

    store = Path(tempfile.mkdtemp(prefix="lenet-watch-"))
    server, url = start_server(store)
    runs = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            train_run(store, "warm-up", 2, 1000).communicate(timeout=600)  # the data cache and first compile
            for round_ in range(args.rounds):
                order = conditions if round_ % 2 == 0 else conditions[::-1]
                for tabs in order:
                    run = measure(browser, url, server.pid, store, tabs, f"watch r{round_} t{tabs}", args)
                    print(f"round {round_ + 1}, {tabs} tab(s): {run['images_per_s']:,.0f} images/s, "
                          f"server {run['cpu_share']['server']:.0%}, browser {run['cpu_share']['browser']:.0%} of a core"
                          + (f", chart every {run['chart_period']['median']:.2f} s" if "chart_period" in run else ""),
                          flush=True)
                    runs.append(run)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(store, ignore_errors=True)
    summary = summarise(runs, conditions)
    rows = [[tabs, f"{e['images_per_s']:,.0f}", f"{e['cost']:+.1%}", f"{e['server_cpu']:.0%}", f"{e['browser_cpu']:.0%}",
             f"{e['chart_period_median']:.2f} s" if "chart_period_median" in e else "–",
             f"≤{e['target']:.0%}: {'met' if e['met'] else 'NOT met'}" if "target" in e else ""]
            for tabs, e in summary.items()]
    common.print_table("Training throughput while Train tabs watch",
                       ["tabs", "images/s", "cost", "server CPU", "Chromium CPU", "chart period", "target"], rows)
    result = {"machine": common.machine(), "rounds": args.rounds, "all_visible": args.all_visible, "epochs": args.epochs, "subset": args.subset,
              "runs": runs, "summary": summary}
    common.write_result(args, NAME, result)
    return result


if __name__ == "__main__":
    main()
