"""What the Train page shows of a live run, as one JSON-ready dict: the progress bar, the numbers next to it and
the two charts (issue 20, item 3: watching must not slow training).

The page draws it once; while the run trains, the dashboard server sends it again over a WebSocket whenever the
run's files change, looked at every PERIOD_S (dashboard/live_routes.py), and the browser redraws only the live panel, without rerunning any Streamlit script:
a fragment rerun cost ~0.1 s of the browser's CPU and ~0.07 s of the server's each time, whatever it drew.
Both callers go through `feed`, so the page and the updates cannot disagree. No Streamlit here.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict

import numpy as np
from _plotly_utils.utils import convert_to_base64

from core import figures_training as figures
from core.records import RunStatus
from core.store import RunStore, StoreError

PERIOD_S = 0.96  # s: how often the server looks at a watched run for news: the chart's period stays within 1 s
# s: while a run trains, its epoch chart takes new epochs at most this often. Epochs shorter than that (a small
# subset) changed it at every ask: the server built both figures and the browser redrew both charts each second
# (bench/RESULTS.md, session 13). At most every 3 s it still took 10-15% of the watching tab's main thread
# (session 15); the batch chart and the numbers follow every second, and an ended run shows every epoch
EPOCH_CHART_EVERY_S = 5.0
_CACHE_SIZE = 16
_cache: OrderedDict[tuple, dict] = OrderedDict()  # (root, run, version, smoothing) -> feed: tabs share one build
_charts: OrderedDict[tuple, dict] = OrderedDict()  # (root, run, chart, key) -> figure: rebuilt when its records change
_lock = threading.Lock()
_epochs_drawn: dict[tuple, tuple[float, int]] = {}  # (root, run) -> (when its epoch chart last grew, epochs drawn)


def stamp(version: tuple) -> str:
    """Changes whenever any of the run's files changes (the store's version of the run), short enough for a URL."""
    return hashlib.sha1(repr(version).encode()).hexdigest()[:16]


def metrics(shown: figures.Progress, status: RunStatus, configured_rate: float | None) -> list[dict]:
    """The five numbers next to the progress bar, formatted as the page shows them."""
    rate = shown.learning_rate if shown.learning_rate is not None else configured_rate
    return [
        {"label": "Epoch", "value": f"{shown.epoch}/{shown.epochs}" if shown.epoch else f"0/{shown.epochs}"},
        {"label": "Batch", "value": f"{shown.batch}/{shown.steps_per_epoch}" if shown.steps_per_epoch else "–"},
        {"label": "ETA", "value": figures.format_seconds(shown.eta_seconds)},
        {"label": "Images/s", "value": f"{shown.images_per_sec:,.0f}" if shown.images_per_sec else "–"},
        {"label": "Learning rate", "value": f"{rate:.3g}" if rate is not None else "–",
         "help": "At the end of the last finished epoch (the configured rate before the first one ends)"},
    ]


def _build(store: RunStore, run_id: str, smoothing: float) -> dict:
    status = store.read_status(run_id)
    batch, epoch = store.read_metrics(run_id)
    try:
        config = store.read_config(run_id)
    except StoreError:  # a damaged config: the status still names the epochs once the data is loaded
        config = None
    shown = figures.progress(status, batch, epoch, config.epochs if config else None)
    ended = not status.active
    drawn = _count(epoch) if ended else _epochs_to_draw((str(store.root), run_id), _count(epoch))
    epoch = epoch.iloc[:drawn] if drawn < _count(epoch) else epoch
    # what each chart is drawn from: the browser redraws a chart only when its key changes, and the server
    # builds it only then (the epoch chart changes once an epoch, the run's files every quarter of a second)
    keys = {"batch": f"{run_id}:{_count(batch)}:{smoothing}:{ended}", "epoch": f"{run_id}:{_count(epoch)}:{ended}"}
    points = figures.MAX_BATCH_POINTS if ended else figures.LIVE_BATCH_POINTS  # the live chart stays small
    charts = {"batch": lambda: _live(figures.batch_spec(batch, smoothing, run_id, ended, points), status, "batch"),
              "epoch": lambda: _live(figures.epoch_spec(epoch, revision=run_id, ended=ended), status, "epoch")}
    return {
        "run": run_id,
        "status": status.status,
        "phase": status.phase or "",
        "active": status.active,
        "keys": keys,
        "progress": {"fraction": shown.fraction, "text": _progress_text(shown, status),
                     "metrics": metrics(shown, status, config.learning_rate if config else None)},
        **{name: _chart((str(store.root), run_id, name, keys[name]), build) for name, build in charts.items()},
    }


def _epochs_to_draw(run: tuple, available: int) -> int:
    """How many epoch records a training run's epoch chart shows: all of them, unless it grew less than
    EPOCH_CHART_EVERY_S ago (its first epoch comes at once)."""
    now = time.monotonic()
    with _lock:
        when, drawn = _epochs_drawn.get(run, (0.0, 0))
        if available != drawn and (drawn == 0 or available < drawn or now - when >= EPOCH_CHART_EVERY_S):
            _epochs_drawn[run] = (now, available)
            drawn = available
        return drawn


def _live(spec: dict, status: RunStatus, chart: str) -> dict:
    """While the run trains, its charts' axes span the whole run (figures.live_axes): the browser then redraws
    only the curves when new points arrive."""
    if not status.active or not status.epochs or not spec["data"]:
        return spec
    if chart == "epoch":
        if status.epochs > 20:  # one tick per epoch fits up to 20 epochs
            for axis in ("xaxis", "xaxis2"):
                spec["layout"][axis].pop("dtick", None)
        return figures.live_axes(spec, (0.5, status.epochs + 0.5))
    if not status.steps_per_epoch:
        return spec
    return figures.live_axes(spec, (0, status.steps_per_epoch * status.epochs))


def _progress_text(shown: figures.Progress, status: RunStatus) -> str:
    """Where the run is; while it is active and not training, its phase (loading data, building model, saving,
    waiting for another run): the page does not rerun for a new phase, the panel shows it."""
    training = (status.phase or "training") == "training" or not status.active
    return shown.text if shown.epoch and training else f"{status.phase or status.status}…"


def _chart(key: tuple, build) -> dict:
    return _cached(_charts, key, lambda: _plain(build()))


def _cached(cache: OrderedDict, key: tuple, build):
    """cache[key], built on a miss (outside the lock: a build reads files); the oldest entries go first."""
    with _lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    built = build()
    with _lock:
        cache[key] = built
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return built


def _plain(spec: dict) -> dict:
    """The spec as JSON takes it: numeric arrays as base64 typed arrays (Plotly's own encoder, as plotly.py writes
    figures: a quarter of the time of a list of numbers, and NaN stays NaN), the hover texts as lists. It has no
    template: Streamlit's, which plotly.py applies once Streamlit is imported, has placeholder colours only
    st.plotly_chart fills in, and plotly.js's own defaults (white, light grid) draw these charts as the page's
    other charts look. What every curve shares (the batch chart's steps and hover texts) is sent once, in the
    spec's `shared`, which the panel gives each curve: the four copies of the texts were 55% of the answer.
    Values are sent as 32-bit floats, as plotly.js draws them: the browser parses and holds half the bytes."""
    shared = _shared(spec["data"])
    for trace in spec["data"]:
        for key in shared:
            del trace[key]
    for arrays in [shared, *spec["data"]]:
        arrays.update({key: value.astype(np.float32) for key, value in arrays.items()
                       if isinstance(value, np.ndarray) and value.dtype == np.float64})
    texts = {key: value.tolist() for key, value in shared.items() if value.dtype.kind in "OUS"}
    numbers = {key: value for key, value in shared.items() if key not in texts}
    convert_to_base64(spec)  # before the texts join: the encoder walks every list it is given
    convert_to_base64(numbers)
    for trace in spec["data"]:
        trace.update({key: value.tolist() for key, value in trace.items() if isinstance(value, np.ndarray)})
    if shared:
        spec["shared"] = {**numbers, **texts}
    # what a redraw of the whole chart depends on: the browser compares this instead of the layout's JSON
    modes = [(t.get("type"), t.get("mode"), t.get("xaxis"), t.get("yaxis")) for t in spec["data"]]
    spec["look"] = stamp((json.dumps(spec["layout"], sort_keys=True), tuple(modes)))
    return spec


def _shared(data: list[dict]) -> dict:
    """The arrays that every trace of a chart of several holds as one object (the batch chart's x and text)."""
    if len(data) < 2:
        return {}
    return {key: value for key, value in data[0].items()
            if isinstance(value, np.ndarray) and all(trace.get(key) is value for trace in data[1:])}


def feed(store: RunStore, run_id: str, smoothing: float, version: tuple | None = None) -> dict:
    """The live panel of `run_id`, with its `stamp`. Built once per change of the run's files and smoothing, for
    every tab and page that asks; raises StoreError for a run that cannot be read. version: the store's
    version of the run, if the caller has just read it."""
    smoothing = min(max(float(smoothing), 0.0), 0.99)
    version = store.version(run_id) if version is None else version
    key = (str(store.root), run_id, version, round(smoothing, 2))
    return _cached(_cache, key, lambda: {**_build(store, run_id, smoothing), "stamp": stamp(version)})


def _count(records) -> int:
    return 0 if records is None else len(records)
