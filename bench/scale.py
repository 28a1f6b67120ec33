#!/usr/bin/env python
"""A heavy user's store: 1,000 runs (100 of them damaged) and a live run of 200,000 batch records.

    python bench/scale.py                 # build the stores, measure everything (a few minutes)
    python bench/scale.py --quick         # 100 runs, 20,000 records, fewer repeats: a smoke check
    python bench/scale.py --keep DIR      # build into DIR and keep it (to open it with the dashboard)

Measured (medians; targets from issue 21, item 12):
- `python -m core list --json`, a fresh process each time: <= 1 s;
- the Runs and Train pages in Chromium against a real server: cold (first visit after the server starts)
  <= 3 s, warm (a reload) <= 1.5 s; ticking a row of the Runs table until its curve is drawn: <= 0.5 s
  (a row per repeat, one after another: the first tick and the median are reported);
- the server's CPU while a Train tab is open and nothing trains: <= 3% of a core (once the training process the
  Train page starts has loaded TensorFlow);
- the Train page following the live run while it grows by 4 records a second: an update at least every
  1 s, the server at <= 10% of a core.
The stores are built from the shipped runs with hard links (a damaged run gets its own copies), in a
temporary folder that is removed at the end. Results go to bench/results/scale.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.common import REPO, machine, parser, write_result
from bench.page_latency import CHROMIUM, CHROMIUM_ARGS, _process_tree, cpu_seconds, start_server

SHIPPED = [REPO / "cached_models" / "seed-article-full-mnist", REPO / "cached_models" / "best-accuracy-full-mnist"]
LIVE_ID = "29990101-000000-live-run-0000"
RECORDS_PER_SECOND = 4  # the streaming callback writes a batch record about every 0.25 s


def _damage(run: Path, kind: int) -> None:
    """One of the ways a run folder is found damaged (the fault suite's, in rotation)."""
    if kind == 0:
        (run / "config.json").write_text("{not json")
    elif kind == 1:
        (run / "status.json").unlink()
    elif kind == 2:
        with open(run / "metrics.jsonl", "a") as handle:
            handle.write('{"type": "batch", "epoch": 6, "los')
    elif kind == 3:
        with open(run / "metrics.jsonl", "a") as handle:
            handle.write('{"type": "batch", "epoch": "x", "loss": "high"}\n')
    else:
        (run / "model.keras").write_bytes(os.urandom(4096))


def _linked_copy(source: Path, target: Path) -> None:
    shutil.copytree(source, target, copy_function=os.link)


def build_store(root: Path, runs: int, damaged: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(runs):
        run_id = f"20260101-{i:06d}-run-{i:04d}"
        source = SHIPPED[i % 2]
        target = root / run_id
        if i < damaged:
            shutil.copytree(source, target)  # its own files: the damage must not reach the shipped run
        else:
            _linked_copy(source, target)
        status = json.loads((source / "status.json").read_text())
        status.update(run_id=run_id, name=f"run {i:04d}", created=(start + timedelta(minutes=i)).isoformat())
        (target / "status.json").unlink()
        (target / "status.json").write_text(json.dumps(status))
        if i < damaged:
            _damage(target, i % 5)


def build_live_run(root: Path, records: int) -> Path:
    """A run 'training' in this process: status running, our pid, `records` batch records."""
    from core.config import TrainConfig
    from core.store import RunStore, now_iso, owner

    store = RunStore(root)
    folder = root / LIVE_ID
    folder.mkdir(parents=True)
    store.write_config(LIVE_ID, TrainConfig(epochs=200))
    steps = 938
    store.write_status(LIVE_ID, status="running", name="live run", created=now_iso(), started=now_iso(),
                       phase="training", epochs=200, steps_per_epoch=steps, batch_size=64, n_train=60_000, **owner())
    lines = []
    for n in range(records):
        lines.append(json.dumps({"type": "batch", "epoch": n // steps + 1, "batch": n % steps + 1, "step": n + 1,
                                 "batches": 1, "loss": 0.5, "accuracy": 0.9, "time": n * 0.25}) + "\n")
    (folder / "metrics.jsonl").write_text("".join(lines))
    return folder


class LiveWriter:
    """Appends RECORDS_PER_SECOND batch records a second to the live run and keeps its heartbeat."""

    def __init__(self, root: Path, first: int):
        from core.store import RunStore

        self.store = RunStore(root)
        self.step = first
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        # the heartbeat of a trainer (versions before issue 21 had none: the bench also measures those)
        beat = self.store.heartbeat(LIVE_ID) if hasattr(self.store, "heartbeat") else contextlib.nullcontext()
        with beat:
            while not self._done.wait(1 / RECORDS_PER_SECOND):
                self.step += 1
                self.store.append_metrics(LIVE_ID, [{"type": "batch", "epoch": self.step // 938 + 1,
                                                      "batch": self.step % 938 + 1, "step": self.step, "batches": 1,
                                                      "loss": 0.4, "accuracy": 0.9, "time": self.step * 0.25}])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_cli_list(root: Path, repeats: int) -> dict:
    """A fresh `python -m core list --json` each time: wall clock and CPU time (the CPU time is what the same
    listing takes on an idle machine; this one is shared). The first listing of a store also fills the check
    cache (the user's cache folder), so it is reported apart."""
    times, cpu = [], []
    for _ in range(repeats + 1):
        started, cpu_started = time.perf_counter(), _children_cpu()
        done = subprocess.run([sys.executable, "-m", "core", "list", "--json", "--runs-dir", str(root)],
                              cwd=REPO, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - cpu_started)
        if done.returncode != 0:
            sys.exit(f"core list failed: {done.stderr}")
    rows = json.loads(done.stdout)
    return {"first_seconds": times[0], "first_cpu_seconds": cpu[0], "seconds": times[1:],
            "median": statistics.median(times[1:]), "cpu_median": statistics.median(cpu[1:]), "runs": len(rows),
            "damaged": sum(1 for row in rows if row.get("problems"))}


def _ready(page, selector: str) -> None:
    from bench.page_latency import wait_rendered

    wait_rendered(page, selector)


def _timed_visit(page, url: str, selector: str) -> float:
    started = time.perf_counter()
    page.goto(url)
    _ready(page, selector)
    return time.perf_counter() - started


def _tick_row(page, row: int) -> float:
    """Tick a row of the Runs table (its box at the grid's left edge) until the overlay draws one more curve."""
    grid = page.locator(".st-key-runs_table [data-testid=stDataFrameResizable]").first
    box = grid.bounding_box()
    curves = ".st-key-runs_overlay_chart .scatterlayer .trace"
    before = page.locator(curves).count()
    time.sleep(1)  # a table drawn a moment ago may ignore a click
    started = time.perf_counter()
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 17 + 35 * row)  # the header row is 35 px, a row 35 px
    try:
        page.wait_for_function(f"() => document.querySelectorAll('{curves}').length > {before}", timeout=60_000)
    except Exception:
        page.screenshot(path=str(Path(tempfile.gettempdir()) / "scale_tick_failed.png"), full_page=True)
        raise
    _ready(page, curves)
    return time.perf_counter() - started


def _training_process_loaded(server: int, timeout: float = 120.0) -> None:
    """Wait until the training process that the Train page prestarts has loaded TensorFlow (its CPU time stops
    growing): a one-off cost of the first Train visit, not what an open tab costs."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        workers = [pid for pid in _process_tree(server) if b"dashboard.worker" in _cmdline(pid)]
        used = cpu_seconds(workers) if workers else None
        if used is not None and last is not None and used - last < 0.02:
            return
        last = used
        time.sleep(1.0)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _server_cpu_share(server: int, seconds: float) -> float:
    pids = _process_tree(server)
    before = cpu_seconds(pids)
    time.sleep(seconds)
    return (cpu_seconds(_process_tree(server)) - before) / seconds


def _update_period(page, seconds: float) -> list[float]:
    """Seconds between two redraws of the Train page's batch chart that reach a later step, watched for
    `seconds` (the curve is thinned to 2,000 points, so its length stays the same)."""
    script = ("() => { const p = document.querySelector('.st-key-train_live .lenet-live-batch.js-plotly-plot');"
              " const x = p && p._fullData && p._fullData[0] ? p._fullData[0].x : null;"  # decoded, unlike p.data
              " return x && x.length ? Number(x[x.length - 1]) : 0; }")
    changes, last, deadline = [], page.evaluate(script), time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = page.evaluate(script)
        if now != last:
            changes.append(time.monotonic())
            last = now
    return [b - a for a, b in zip(changes, changes[1:])] if len(changes) > 1 else [float(seconds)] * len(changes)


def measure_pages(root: Path, live_folder: Path | None, repeats: int, idle_seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    result: dict = {}
    # the live run's pretend trainer writes (and beats) from before the server starts: a run silent for 30 s
    # would rightly read "interrupted"
    writer = LiveWriter(root, first=sum(1 for _ in open(live_folder / "metrics.jsonl"))) if live_folder else None
    if writer:
        writer.__enter__()
    process, url = start_server(root)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            table = ".st-key-runs_table [data-testid=stDataFrameResizable]"
            result["runs_cold_s"] = _timed_visit(page, f"{url}/runs", table)
            result["runs_warm_s"] = [_timed_visit(page, f"{url}/runs", table) for _ in range(repeats)]
            if live_folder is None:  # the live run has no test accuracy to draw
                result["tick_s"] = [_tick_row(page, row) for row in range(repeats)]
            train = "[data-testid=stMain] h1, [data-testid=stMain] h3"
            result["train_cold_s"] = _timed_visit(page, url, train)
            result["train_warm_s"] = [_timed_visit(page, url, train) for _ in range(repeats)]
            if live_folder is None:  # nothing trains: what an open Train tab costs the server
                _training_process_loaded(process.pid)
                time.sleep(3)
                result["idle_tab_server_core_share"] = _server_cpu_share(process.pid, idle_seconds)
            else:
                page.goto(url)
                _ready(page, ".st-key-train_live .lenet-live-batch .main-svg")
                _training_process_loaded(process.pid)
                time.sleep(3)
                share = {}
                threading.Thread(target=lambda: share.update(
                    value=_server_cpu_share(process.pid, idle_seconds)), daemon=True).start()
                result["live_update_periods_s"] = _update_period(page, idle_seconds)
                time.sleep(0.5)
                result["live_server_core_share"] = share.get("value")
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        if writer:
            writer.__exit__(None, None, None)
    return result


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--keep", help="build the stores in this folder and keep them")
    args = p.parse_args(argv)
    runs, damaged, records = (100, 10, 20_000) if args.quick else (1000, 100, 200_000)
    repeats, idle = (1, 8.0) if args.quick else (3, 30.0)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lenet_scale_"))
    os.environ["LENET_CACHE"] = str(base / "cache")  # a cold cache: the first listing checks everything
    many, live = base / "many-runs", base / "live-run"
    try:
        build_store(many, runs, damaged)
        live_folder = build_live_run(live, records)
        result = {"runs": runs, "damaged": damaged, "live_records": records,
                  "cli_list": measure_cli_list(many, repeats),
                  "pages": measure_pages(many, None, repeats, idle),
                  "live": measure_pages(live, live_folder, 1, idle)}
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    summary = summarise(result)
    print(json.dumps(summary, indent=2))
    write_result(args, "scale", {"machine": machine(), **result, "summary": summary})
    return result


def summarise(result: dict) -> dict:
    median = statistics.median
    pages, live = result["pages"], result["live"]
    periods = live.get("live_update_periods_s") or [float("nan")]
    return {
        "core list, median s (CPU s)": f"{result['cli_list']['median']:.2f} ({result['cli_list']['cpu_median']:.2f})",
        "core list, first (fills the check cache) s": round(result["cli_list"]["first_seconds"], 2),
        "Runs page cold / warm s": f"{pages['runs_cold_s']:.2f} / {median(pages['runs_warm_s']):.2f}",
        "tick s, first / median": f"{pages['tick_s'][0]:.2f} / {median(pages['tick_s']):.2f}",
        "Train page cold / warm s": f"{pages['train_cold_s']:.2f} / {median(pages['train_warm_s']):.2f}",
        "idle Train tab, server % of a core": round(100 * pages["idle_tab_server_core_share"], 1),
        "live run: update period median / max s": f"{median(periods):.2f} / {max(periods):.2f}",
        "live run: server % of a core": round(100 * (live.get("live_server_core_share") or float("nan")), 1),
    }


if __name__ == "__main__":
    main()
