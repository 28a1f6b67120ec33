#!/usr/bin/env python
"""Sharing the results (issue 19): the audit report's build time, size and open time in Chromium, and each
model export's time and parity figures, on the shipped runs.

    python bench/share.py            # both shipped runs, 3 repeats, Chromium open times
    python bench/share.py --quick    # the seed run, 1 repeat, no browser: a smoke check in seconds

The shipped runs are read in place (nothing is written to cached_models/). best-accuracy-full-mnist is a
20-epoch run, the issue's "report of a 20-epoch run". Limits from the issue: a report builds in at most 5 s, is
at most 5 MB and opens in Chromium in at most 2 s; an export with its parity check takes at most 10 s.
Results go to bench/results/share.json.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import common

RUNS = ("seed-article-full-mnist", "best-accuracy-full-mnist")
CHROMIUM = Path("/usr/bin/chromium")
LIMITS = {"build_s": 5.0, "size_mb": 5.0, "open_s": 2.0, "export_s": 10.0}
DRAWN = ("() => { const charts = document.querySelectorAll('.plotly-graph-div');"
         " return charts.length > 0 && [...charts].every(c => c.querySelector('svg.main-svg')); }")


def report_figures(store, run_id: str, repeats: int) -> tuple[dict, str]:
    from core.report import build_report

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        html = build_report(store, run_id)
        times.append(time.perf_counter() - started)
    size = len(html.encode())
    return {"build_first_s": round(times[0], 3), "build_median_s": round(statistics.median(times), 3),
            "bytes": size, "size_mb": round(size / 1e6, 3)}, html


def open_times(paths: dict[str, Path], repeats: int) -> dict[str, float]:
    """Median seconds from goto() until every chart has drawn, in Chromium with the network blocked."""
    from playwright.sync_api import sync_playwright

    found = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        for run_id, path in paths.items():
            times = []
            for _ in range(repeats + 1):  # the first open warms the browser up and is not counted
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
                started = time.perf_counter()
                page.goto(path.as_uri())
                page.wait_for_function(DRAWN, timeout=60_000)
                times.append(time.perf_counter() - started)
                page.close()
            found[run_id] = round(statistics.median(times[1:]), 3)
        browser.close()
    return found


def cli_seconds(run_id: str, folder: Path) -> float:
    """Wall seconds of `python -m core report RUN -o FILE` in a fresh process: Python and TensorFlow start too."""
    import subprocess

    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", "report", run_id, "-o", str(folder / f"cli-{run_id}.html")],
                   cwd=common.REPO, check=True, capture_output=True)
    return round(time.perf_counter() - started, 3)


def export_figures(store, run_id: str) -> dict:
    from core.export import FORMATS, export_model

    rows = {}
    for fmt in FORMATS:
        result = export_model(store, run_id, fmt)
        rows[fmt] = {"seconds": round(result.seconds, 3), "bytes": len(result.data),
                     "max_prob_diff": result.parity.max_prob_diff, "identical": result.parity.identical,
                     "images": result.parity.images, "runtime": result.parity.runtime}
        print(f"  export {fmt:7s}: {result.seconds:5.2f} s ({result.seconds / LIMITS['export_s']:.2f} of the limit), "
              f"{len(result.data) / 1e3:5.0f} kB; max |dp| {result.parity.max_prob_diff:.2e}, "
              f"identical {result.parity.identical:.2%}", flush=True)
    return rows


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[1])
    p.add_argument("--browser", action="store_true", help="with --quick: also time the report's open in Chromium")
    args = p.parse_args(argv)
    from core.store import RunStore

    store = RunStore(common.REPO / "cached_models")
    runs, repeats = (RUNS[:1], 1) if args.quick else (RUNS, 3)
    result = {"limits": LIMITS, "machine": common.machine(), "runs": {}}
    folder = Path(tempfile.mkdtemp(prefix="lenet_share_"))
    paths = {}
    started = time.perf_counter()
    import core.analysis  # noqa: F401  TensorFlow's import is paid once, not by the first report

    result["import_s"] = round(time.perf_counter() - started, 3)
    for run_id in runs:
        figures, html = report_figures(store, run_id, repeats)
        paths[run_id] = folder / f"{run_id}.html"
        paths[run_id].write_text(html)
        print(f"{run_id}: report {figures['size_mb']:.2f} MB ({figures['size_mb'] / LIMITS['size_mb']:.2f} of the "
              f"limit), built in {figures['build_median_s']:.2f} s (first {figures['build_first_s']:.2f} s; "
              f"{figures['build_median_s'] / LIMITS['build_s']:.2f} of the limit)", flush=True)
        if not args.quick:
            figures["cli_s"] = cli_seconds(run_id, folder)
            print(f"  python -m core report, fresh process: {figures['cli_s']:.2f} s", flush=True)
        result["runs"][run_id] = {"report": figures, "exports": export_figures(store, run_id)}
    if (not args.quick or args.browser) and CHROMIUM.exists():
        for run_id, seconds in open_times(paths, repeats).items():
            result["runs"][run_id]["report"]["open_s"] = seconds
            print(f"{run_id}: report opens in Chromium in {seconds:.2f} s ({seconds / LIMITS['open_s']:.2f} of "
                  "the limit)", flush=True)
    result["meets_limits"] = all(
        run["report"]["build_median_s"] <= LIMITS["build_s"] and run["report"]["size_mb"] <= LIMITS["size_mb"]
        and run["report"].get("open_s", 0) <= LIMITS["open_s"]
        and all(e["seconds"] <= LIMITS["export_s"] and e["identical"] >= 0.999 for e in run["exports"].values())
        for run in result["runs"].values())
    print(f"wrote {common.write_result(args, 'share', result)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
