#!/usr/bin/env python
"""The "why" views' speed: one attribution map warm, the representation map (an epoch's first PCA view, t-SNE once),
the Why page's tabs and Predict warm in AppTest, and in Chromium a drawing's answer from the stroke's end to the
updated page, the representation map page's weight and the time from a hover to the digit on screen.

    python bench/explain.py --data /path/to/mnist.npz   # a 2-epoch run on the full MNIST, t-SNE of 10,000 images
    python bench/explain.py --quick                     # a 1-epoch run on the bundled sample, no t-SNE

The run is trained into a temporary store (the shipped runs kept no weights per epoch).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from bench import common

NAME = "explain"
TARGETS = {"attribution_s": 0.2, "pca_s": 1.0, "page_s": 1.0, "drawing_s": 0.3}
ROUNDS = 5
WHY_TABS = ("Attribution", "Representation map", "Calibration", "Layer health")


def _timed(function, rounds: int = ROUNDS) -> float:
    """The median seconds of `rounds` calls after one warm-up call."""
    function()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def engines(store, run_id: str, tsne: bool) -> dict:
    from core import attribution, representation, testset
    from core.epoch_model import model_at_epoch

    epochs = store.epochs_saved(run_id)
    model = model_at_epoch(store, run_id, epochs[-1])
    x, y, _ = testset.run_test_set(store.read_config(run_id))
    out = {"attribution_s": {method: _timed(lambda m=method: attribution.attribution(model, x[0], int(y[0]), m))
                             for method in attribution.METHODS}}
    # the Why page's first view of an epoch's PCA map: its weights read and swapped into the run's one FeaturePass,
    # F6 of every test image in one compiled pass, PCA. The run's first map also builds the model and traces the pass.
    first, passer = {}, None
    for n, epoch in enumerate([epochs[-1], *epochs[:-1]]):
        start = time.perf_counter()
        passer = passer or representation.FeaturePass(store.read_config(run_id))
        rows = passer(store.read_epoch_snapshot(run_id, epoch).weights, x)
        points = representation.pca_map(rows)
        first[f"epoch {epoch}" + (" (the run's first map)" if n == 0 else "")] = time.perf_counter() - start
    out["pca_first_view_s"] = first
    out["pca_s"] = statistics.median(list(first.values())[1:] or list(first.values()))
    out["pca_images"] = len(points)
    if tsne:
        start, cpu = time.perf_counter(), _children_cpu()
        representation.tsne_map(rows)
        out["tsne_s"], out["tsne_cpu_s"] = time.perf_counter() - start, _children_cpu() - cpu
    return out


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pages() -> dict:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(common.REPO / "dashboard" / "app.py"), default_timeout=600).run()
    found = {}
    for tab in WHY_TABS:
        at.switch_page("views/why.py")
        at.session_state["why_view"] = tab
        found[f"why: {tab}"] = _timed(lambda: at.run(), rounds=3)
    at.switch_page("views/predict.py")
    found["predict"] = _timed(lambda: at.run(), rounds=3)
    if at.exception:
        raise RuntimeError(f"a page raised: {[e.message for e in at.exception]}")
    return found


def browser_figures(root: Path, strokes: int) -> dict:
    """In Chromium: seconds from each stroke's pointer-up to the page showing the new answer; the bytes the
    representation map's page receives (first view, and a rerun that redraws the same map); the time from a
    mouse move onto a point to its digit on screen."""
    sys.path.insert(0, str(common.REPO / "tests"))
    from conftest import chromium, streamlit_server

    with streamlit_server(root, root.parent / "server.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        times = _drawing(page, url, strokes)
        page.close()
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        weight = _map_weight(page, url)
    return {"drawing_s": times, **weight}


def _drawing(page, url: str, strokes: int) -> list[float]:
    from test_browser_explain import draw_stroke, open_drawing, prediction_text

    times = []
    canvas = open_drawing(page, url)
    shapes = [[(140, 40), (140, 240)], [(60, 60), (220, 60), (120, 240)]]
    for n in range(strokes):
        page.get_by_role("button", name="Clear").click()
        page.wait_for_timeout(1500)
        before = prediction_text(page)
        draw_stroke(page, canvas, shapes[n % 2])
        start = time.perf_counter()
        page.wait_for_function("([old]) => { const m = document.querySelector('[data-testid=\"stMetricValue\"]');"
                               " return m && m.innerText !== old && document.querySelector("
                               "'[data-testid=\"stApp\"]').dataset.teststate !== 'running'; }",
                               arg=[before], timeout=30000, polling=10)
        times.append(time.perf_counter() - start)
    return times


def _map_weight(page, url: str) -> dict:
    received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: received.append(len(frame))))
    page.goto(f"{url}/why?why_view=Representation+map")
    point = page.locator(".st-key-why_map_chart .scatterlayer .trace:nth-child(2) .points path").nth(5)
    point.wait_for(timeout=300_000)
    page.wait_for_timeout(2000)
    first = sum(received)
    received.clear()
    page.get_by_text("t-SNE", exact=True).click()
    page.wait_for_timeout(2000)
    page.get_by_text("PCA", exact=True).click()
    point.wait_for()
    page.wait_for_timeout(2000)
    again = sum(received)
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    start = time.perf_counter()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.locator(".digit-hover:not([hidden])").wait_for(timeout=10_000)
    return {"map_page_bytes": first, "map_rerun_bytes": again, "hover_s": time.perf_counter() - start}


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = common.parser(__doc__.splitlines()[1])
    p.add_argument("--no-browser", action="store_true", help="skip the Chromium drawing timing")
    args = p.parse_args(argv)
    path = common.data_path(args)
    machine = common.machine()  # before the work: its load average is the start's
    config = common.data_config(path, epochs=1 if args.quick else 2, validation_split=0.0)
    folder, store = common.temp_store()
    with folder:
        from core.trainer import train

        result = train(config, store, name="bench explain")
        os.environ["LENET_RUNS"] = str(store.root)
        os.environ["LENET_WORKER_PRESTART"] = "0"
        measured = {"engines": engines(store, result.run_id, tsne=not args.quick), "pages_s": pages()}
        if not args.no_browser and Path("/usr/bin/chromium").exists():
            measured["browser"] = browser_figures(store.root, 2 if args.quick else 6)
    worst = {"attribution_s": max(measured["engines"]["attribution_s"].values()),
             "pca_s": measured["engines"]["pca_s"], "page_s": max(measured["pages_s"].values())}
    if "browser" in measured:
        worst["drawing_s"] = statistics.median(measured["browser"]["drawing_s"])
    out = {"figure": "seconds, warm (median)", "targets": TARGETS, "measured": measured, "worst": worst,
           "meets_target": {k: v <= TARGETS[k] for k, v in worst.items()}, "machine": machine}
    common.write_result(args, NAME, out)
    common.print_table("Why views, warm seconds", ["figure", "measured", "target", "met"],
                       [[k, v, TARGETS[k], v <= TARGETS[k]] for k, v in worst.items()])
    common.print_table("One attribution map, warm", ["method", "seconds"],
                       [[k, v] for k, v in measured["engines"]["attribution_s"].items()])
    common.print_table("Pages, warm", ["page", "seconds"], [[k, v] for k, v in measured["pages_s"].items()])
    common.print_table("PCA map, an epoch's first view", ["epoch", "seconds"],
                       [[k, v] for k, v in measured["engines"]["pca_first_view_s"].items()])
    if "browser" in measured:
        found = measured["browser"]
        print(f"Representation map page: {found['map_page_bytes'] / 1e6:.2f} MB received on the first view, "
              f"{found['map_rerun_bytes'] / 1e6:.3f} MB on a rerun; hover to digit {found['hover_s']:.3f} s; "
              f"strokes {', '.join(f'{t:.2f}' for t in found['drawing_s'])} s")
    if "tsne_s" in measured["engines"]:
        print(f"t-SNE of {measured['engines']['pca_images']:,} images: {measured['engines']['tsne_s']:.1f} s "
              f"({measured['engines']['tsne_cpu_s']:.1f} CPU-s in its process)")
    print(f"load average at the start {machine['load_average_start']}, at the end {common.load_average()}")
    return out


if __name__ == "__main__":
    main()
