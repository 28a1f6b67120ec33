#!/usr/bin/env python
"""How long each audit page takes to render on the shipped run: first visit (cold) and revisits (warm).

    python bench/page_latency.py              # AppTest, 5 warm rounds
    python bench/page_latency.py --browser    # also Chromium against a real server, click to rendered
    python bench/page_latency.py --quick      # AppTest, 1 warm round: a smoke check in seconds

AppTest times the server side: one script run of the page, the way Streamlit runs it on a page switch.
The browser mode adds what a user waits for: from the click in the sidebar until the page's last element
(its main chart or image) is drawn and the app is idle, and the CPU time the server and Chromium spent on
it, which on a shared, busy machine says more than the wall clock. The store is a temporary copy of the run, so
nothing in cached_models/ is touched. Results go to bench/results/page_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

APP = ROOT / "dashboard" / "app.py"
SHIPPED = ROOT / "cached_models" / "seed-article-full-mnist"
RESULTS = ROOT / "bench" / "results" / "page_latency.json"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
# page file, sidebar link title, an element that is drawn last on that page
PAGES = (
    ("evaluate", "Evaluate", ".st-key-evaluate_class_chart .main-svg"),
    ("gallery", "Error gallery", "[class*='st-key-gallery_tile_'] button"),
    ("inside", "Inside the model", ".st-key-inside_map_f6_dense .main-svg"),
    ("predict", "Predict", ".st-key-predict_probs .main-svg"),
)
TARGET = 1.0  # seconds: a warm page switch should render within about a second


def copy_store(source: Path) -> Path:
    from core.store import RunStore, StoreError

    try:
        has_model = RunStore(source.parent).has_model(source.name)
    except StoreError:
        has_model = False
    if not has_model:
        sys.exit(f"{source} is not a finished run with a model; pass --run PATH")
    store = Path(tempfile.mkdtemp(prefix="lenet_latency_"))
    shutil.copytree(source, store / source.name)
    return store


def measure_apptest(rounds: int) -> dict:
    """Cold: each page's first run in this fresh process. Warm: later visits, cycling through the pages."""
    from streamlit.testing.v1 import AppTest

    started = time.perf_counter()
    at = AppTest.from_file(str(APP), default_timeout=600).run()
    startup = time.perf_counter() - started
    results = {}
    for name, _, _ in PAGES:
        started = time.perf_counter()
        at.switch_page(f"views/{name}.py").run()
        results[name] = {"cold": time.perf_counter() - started, "warm": []}
        if at.exception:
            sys.exit(f"{name} raised: {at.exception[0].message}")
    for _ in range(rounds):
        for name, _, _ in PAGES:
            started = time.perf_counter()
            at.switch_page(f"views/{name}.py").run()
            results[name]["warm"].append(time.perf_counter() - started)
    return {"startup": startup, "pages": results}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(store: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "LENET_RUNS": str(store), "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read() == b"ok":
                    return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    sys.exit("streamlit did not start within 120 s")


def _process_tree(root: int) -> list[int]:
    """root and all its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes: on a shared, busy machine this, unlike the wall
    clock, is about what the same work takes on an idle one (rendering and a script run are serial)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def wait_rendered(page, selector: str) -> None:
    page.locator(selector).first.wait_for(state="visible", timeout=180_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')"
        " && !document.querySelector('[data-testid=stSkeleton]')", timeout=180_000)


def measure_browser(store: Path, rounds: int) -> dict:
    from playwright.sync_api import sync_playwright

    process, url = start_server(store)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            started = time.perf_counter()
            page.goto(url)
            # Startup ends when app.py's navigation is there and the first page has rendered.
            page.get_by_role("link", name="Error gallery").wait_for(timeout=180_000)
            wait_rendered(page, "[data-testid=stMain]")
            startup = time.perf_counter() - started
            results = {}
            server_pids = [process.pid]
            browser_pids = [pid for pid in _process_tree(os.getpid()) if pid not in (os.getpid(), process.pid)]
            for visit in range(rounds + 1):
                for name, title, selector in PAGES:
                    server_cpu, browser_cpu = cpu_seconds(server_pids), cpu_seconds(browser_pids)
                    started = time.perf_counter()
                    page.get_by_role("link", name=title, exact=True).click()
                    page.wait_for_url(f"**/{name}")
                    wait_rendered(page, selector)
                    elapsed = time.perf_counter() - started
                    cpu = {"server": cpu_seconds(server_pids) - server_cpu,
                           "browser": cpu_seconds(browser_pids) - browser_cpu}
                    entry = results.setdefault(name, {"cold": elapsed, "cold_cpu": cpu, "warm": [], "warm_cpu": []})
                    if visit:
                        entry["warm"].append(elapsed)
                        entry["warm_cpu"].append(cpu)
                browser_pids = [pid for pid in _process_tree(os.getpid()) if pid not in (os.getpid(), process.pid)]
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=15)
    return {"startup": startup, "pages": results}


def summarise(measured: dict) -> dict:
    pages = {}
    for name, times in measured["pages"].items():
        row = {"cold_s": round(times["cold"], 3),
               "warm_median_s": round(statistics.median(times["warm"]), 3) if times["warm"] else None,
               "warm_max_s": round(max(times["warm"]), 3) if times["warm"] else None,
               "warm_runs": len(times["warm"])}
        if times.get("warm_cpu"):
            row["cold_cpu_s"] = {k: round(v, 3) for k, v in times["cold_cpu"].items()}
            row["warm_cpu_median_s"] = {k: round(statistics.median(c[k] for c in times["warm_cpu"]), 3)
                                        for k in ("server", "browser")}
        pages[name] = row
    return {"startup_s": round(measured["startup"], 3), "pages": pages}


def print_table(method: str, summary: dict) -> None:
    print(f"\n{method}: app start (imports, first page) {summary['startup_s']:.2f} s")
    with_cpu = any("warm_cpu_median_s" in row for row in summary["pages"].values())
    header = f"{'page':<10} {'cold s':>8} {'warm median s':>14} {'warm max s':>11}"
    print(header + (f" {'warm CPU s: server + browser':>30}" if with_cpu else ""))
    for name, row in summary["pages"].items():
        median = "-" if row["warm_median_s"] is None else f"{row['warm_median_s']:.3f}"
        worst = "-" if row["warm_max_s"] is None else f"{row['warm_max_s']:.3f}"
        line = f"{name:<10} {row['cold_s']:>8.3f} {median:>14} {worst:>11}"
        if "warm_cpu_median_s" in row:
            cpu = row["warm_cpu_median_s"]
            line += f" {cpu['server']:>14.3f} + {cpu['browser']:.3f}"
        flag = "" if row["warm_median_s"] is None or row["warm_median_s"] <= TARGET else f"  (over {TARGET:g} s)"
        print(line + flag)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=SHIPPED, help="a finished run folder (default: the shipped run)")
    parser.add_argument("--rounds", type=int, default=5, help="warm visits of every page (default 5)")
    parser.add_argument("--browser", action="store_true", help="also measure in Chromium against a real server")
    parser.add_argument("--quick", action="store_true", help="one warm round, AppTest only")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else max(1, args.rounds)
    store = copy_store(args.run.resolve())
    os.environ["LENET_RUNS"] = str(store)
    try:
        report = {
            "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run": args.run.name,
            "machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
            "target_warm_s": TARGET,
            "apptest": summarise(measure_apptest(rounds)),
        }
        print_table("AppTest (server-side script run)", report["apptest"])
        if args.browser and not args.quick:
            if not CHROMIUM.exists():
                print(f"\nbrowser: skipped, Chromium not found at {CHROMIUM}")
            else:
                report["browser"] = summarise(measure_browser(store, rounds))
                print_table("Chromium (click to rendered)", report["browser"])
    finally:
        shutil.rmtree(store, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")


if __name__ == "__main__":
    main()
