#!/usr/bin/env python
"""The "why" views' speed: one attribution map warm, the representation map (PCA now, t-SNE once), the Why page's
tabs and Predict warm in AppTest, and a drawing's answer in Chromium from the stroke's end to the updated page.

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

    epoch = store.epochs_saved(run_id)[-1]
    model = model_at_epoch(store, run_id, epoch)
    x, y, _ = testset.run_test_set(store.read_config(run_id))
    out = {"attribution_s": {method: _timed(lambda m=method: attribution.attribution(model, x[0], int(y[0]), m))
                             for method in attribution.METHODS}}
    start = time.perf_counter()
    points = representation.pca_map(representation.features(model, x))
    out["pca_s"] = time.perf_counter() - start
    out["pca_images"] = len(points)
    if tsne:
        start = time.perf_counter()
        representation.tsne_map(representation.features(model, x))
        out["tsne_s"] = time.perf_counter() - start
    return out


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


def drawing(root: Path, strokes: int) -> list[float]:
    """Seconds from each stroke's pointer-up to the page showing the new answer, in Chromium."""
    sys.path.insert(0, str(common.REPO / "tests"))
    from conftest import chromium, streamlit_server
    from test_browser_explain import draw_stroke, open_drawing, prediction_text

    times = []
    with streamlit_server(root, root.parent / "server.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
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
            measured["drawing_s"] = drawing(store.root, 2 if args.quick else 6)
    worst = {"attribution_s": max(measured["engines"]["attribution_s"].values()),
             "pca_s": measured["engines"]["pca_s"], "page_s": max(measured["pages_s"].values())}
    if "drawing_s" in measured:
        worst["drawing_s"] = statistics.median(measured["drawing_s"])
    out = {"figure": "seconds, warm (median)", "targets": TARGETS, "measured": measured, "worst": worst,
           "meets_target": {k: v <= TARGETS[k] for k, v in worst.items()}, "machine": machine}
    common.write_result(args, NAME, out)
    common.print_table("Why views, warm seconds", ["figure", "measured", "target", "met"],
                       [[k, v, TARGETS[k], v <= TARGETS[k]] for k, v in worst.items()])
    common.print_table("One attribution map, warm", ["method", "seconds"],
                       [[k, v] for k, v in measured["engines"]["attribution_s"].items()])
    common.print_table("Pages, warm", ["page", "seconds"], [[k, v] for k, v in measured["pages_s"].items()])
    if "tsne_s" in measured["engines"]:
        print(f"t-SNE of {measured['engines']['pca_images']:,} images: {measured['engines']['tsne_s']:.1f} s")
    return out


if __name__ == "__main__":
    main()
