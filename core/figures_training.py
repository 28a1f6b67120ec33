"""Pure builders for the Train page: the live curves and the progress numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.records import RunStatus

COLORS = {"train": "#2563eb", "val": "#f97316", "test": "#16a34a"}
MAX_BATCH_POINTS = 2000  # a longer batch curve is drawn from this many means of consecutive records
# points per batch curve while the run trains: about one per pixel of a panel on a wide screen (a panel is
# ~530 px wide at 1280 px), so the curve looks the same, and the live chart that is sent and redrawn every
# second stays small (in a bare page, 2,000 points took 18 ms of plotly.js per redraw, 500-600 points 11-12 ms)
LIVE_BATCH_POINTS = 800
# points per curve drawn with markers; denser curves are plain lines (restyling every marker took a quarter of
# plotly.js's time for each redraw of the live chart, and beyond this many they merge into a thick line)
MARKERS_UP_TO = 50
RAW_OPACITY = 0.25  # the unsmoothed batch curve stays visible behind the smoothed one, as in TensorBoard
SPLIT_LABELS = {"train": "train", "val": "validation", "test": "test"}
EPOCH_METRICS = {  # metric shown -> epoch-row column; test first: every run has it, validation may be off
    "test accuracy": "test_accuracy",
    "validation accuracy": "val_accuracy",
    "train accuracy": "accuracy",
    "validation loss": "val_loss",
    "test loss": "test_loss",
    "train loss": "loss",
}


def smooth(values: pd.Series | list | np.ndarray, weight: float) -> pd.Series:
    """TensorBoard's debiased exponential moving average; weight 0 returns the values unchanged.

    With adjust=True, pandas' ewm divides by the sum of the weights seen so far, which is exactly
    TensorBoard's debiasing, so the first points are not pulled towards zero.
    """
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight={weight!r} is out of range; allowed: [0, 1)")
    series = pd.Series(values, dtype="float64")
    if weight == 0:
        return series
    return series.ewm(alpha=1 - weight, adjust=True, ignore_na=True).mean()


def empty_spec(title: str, message: str) -> dict:
    return {"data": [], "layout": {"title": {"text": title}, "height": 320, "xaxis": {"visible": False},
                                   "yaxis": {"visible": False},
                                   "annotations": [{"text": message, "showarrow": False, "font": {"size": 14}}]}}


def empty_figure(title: str, message: str) -> go.Figure:
    return go.Figure(empty_spec(title, message))


def _two_panels(left: str, right: str) -> dict:
    """The layout of side-by-side panels (axes x/y and x2/y2), as plotly.js takes it. Laid out by hand:
    make_subplots costs ~0.1 s per call."""
    title = {"xref": "paper", "yref": "paper", "y": 1.0, "yanchor": "bottom", "showarrow": False, "font": {"size": 14}}
    return {"xaxis": {"domain": [0.0, 0.45]}, "xaxis2": {"domain": [0.55, 1.0], "anchor": "y2"}, "yaxis2": {"anchor": "x2"},
            "annotations": [{**title, "text": left, "x": 0.225, "xanchor": "center"},
                            {**title, "text": right, "x": 0.775, "xanchor": "center"}],
            "height": 320, "margin": {"t": 40, "b": 70, "l": 60, "r": 20}}


def live_axes(spec: dict, x_range: tuple[float, float]) -> dict:
    """Fix the axes of a live run's chart (a spec): x spans the whole run (as fastai's live plot does), loss goes
    from 0 to just above its largest value, accuracy from just below its smallest to 100%. New points then fall
    inside the axes, so the browser redraws only the curves (half the cost of a full redraw); the ranges change
    only when a value leaves them, and the ended run's chart is autoscaled again."""
    def values(axis: str):
        ys = [np.asarray(t["y"], dtype="float64") for t in spec["data"] if t.get("yaxis", "y") == axis]
        ys = [y[np.isfinite(y)] for y in ys]
        return np.concatenate(ys) if ys else np.array([])

    loss, accuracy = values("y"), values("y2")
    top = _nice_up(float(loss.max()) * 1.05) if loss.size else 1.0
    bottom = math.floor(float(accuracy.min()) * 20) / 20 if accuracy.size else 0.0
    bottom = min(max(bottom, 0.0), 0.95)
    # markers at 100% keep their top half, and points just past the ends stay whole
    pad = (x_range[1] - x_range[0]) * 0.01
    ranges = {"xaxis": [x_range[0] - pad, x_range[1] + pad], "xaxis2": [x_range[0] - pad, x_range[1] + pad],
              "yaxis": [0, top], "yaxis2": [bottom, 1 + (1 - bottom) * 0.03]}
    for axis, span in ranges.items():
        spec["layout"][axis] = {**spec["layout"].get(axis, {}), "range": span}
    return spec


def _nice_up(value: float) -> float:
    """The value rounded up to two significant figures: 2.318 -> 2.4, 0.0734 -> 0.074."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    scale = 10 ** (math.floor(math.log10(value)) - 1)
    return float(math.ceil(value / scale) * scale)


def _axes(col: int) -> dict:
    return {"xaxis": "x", "yaxis": "y"} if col == 1 else {"xaxis": "x2", "yaxis": "y2"}


def _titles(layout: dict, x_title: str, dtick: float | None = None) -> dict:
    """Both x axes titled (and ticked every dtick), accuracy in percent: ".2~%" writes 98.5%, 99%, 99.25%;
    ".0%" wrote "99% 99% 99%" once accuracy passed 98.5%."""
    for axis in ("xaxis", "xaxis2"):
        layout[axis] = {**layout[axis], "title": {"text": x_title}, **({"dtick": dtick} if dtick else {})}
    layout["yaxis2"] = {**layout["yaxis2"], "tickformat": ".2~%"}
    return layout


def batch_figure(batch: pd.DataFrame, smoothing: float = 0.0, revision: str = "", ended: bool = False) -> go.Figure:
    return go.Figure(batch_spec(batch, smoothing, revision, ended))


def batch_spec(batch: pd.DataFrame, smoothing: float = 0.0, revision: str = "", ended: bool = False,
               points: int = MAX_BATCH_POINTS) -> dict:
    """Training loss and accuracy per logged batch (x = global step), raw and smoothed, as plotly.js takes them
    (the live panel sends it as is; plotly.py's checks took ~25 ms a build). `ended`: the run has ended, so an
    empty chart says it will stay empty instead of waiting. `points`: a curve of more records is drawn from
    this many means (thin_batches)."""
    if batch is None or batch.empty or "step" not in batch:
        return empty_spec("Training loss and accuracy per batch",
                          "The run ended before its first batch." if ended else "Waiting for the first batch…")
    chunks = "batches" in batch and batch["batches"].notna().all()
    # Runs recorded before the chunk means logged Keras' running mean of the epoch so far: say which it is.
    what = "mean since the previous point" if chunks else "running mean of the epoch"
    layout = _two_panels(f"Training loss ({what})", f"Training accuracy ({what})")
    if chunks and len(batch) > points:
        batch = thin_batches(batch, points)
    if chunks:
        hover = [_stretch(int(e), int(b), int(n)) for e, b, n in zip(batch["epoch"], batch["batch"], batch["batches"])]
    else:
        hover = [f"epoch {int(e)}, batch {int(b)}" for e, b in zip(batch["epoch"], batch["batch"])]
    data, steps = [], batch["step"].to_numpy()
    common = {"text": np.array(hover), "showlegend": False, "hovertemplate": "%{text}<br>%{y:.4f}"}
    for col, metric in ((1, "loss"), (2, "accuracy")):
        raw = batch[metric].to_numpy(dtype="float64")
        if smoothing > 0:
            data.append({"type": "scatter", "x": steps, "y": raw, "mode": "lines", "name": f"{metric} (raw)",
                         "line": {"color": COLORS["train"], "width": 1}, "opacity": RAW_OPACITY, **common, **_axes(col)})
        data.append({"type": "scatter", "x": steps, "y": smooth(raw, smoothing).to_numpy(),
                     "mode": "lines+markers" if len(batch) <= MARKERS_UP_TO else "lines", "marker": {"size": 4},
                     "name": metric if smoothing == 0 else f"{metric} (smoothed)",
                     "line": {"color": COLORS["train"], "width": 2}, **common, **_axes(col)})
    return {"data": data, "layout": {**_titles(layout, "step"), "uirevision": revision}}


def _stretch(epoch: int, batch: int, batches: int) -> str:
    """Which batches a point of the batch curve is the mean of."""
    if batches <= 1:
        return f"epoch {epoch}, batch {batch}"
    if batches <= batch:
        return f"epoch {epoch}, batches {batch - batches + 1}–{batch}"
    return f"{batches} batches up to epoch {epoch}, batch {batch}"  # a thinned point across an epoch's end


def thin_batches(batch: pd.DataFrame, points: int = MAX_BATCH_POINTS) -> pd.DataFrame:
    """Consecutive batch records merged into `points` records, each the mean over the batches it covers
    (weighted by each record's batches), so a run of 200,000 records draws 2,000 points, which the browser can
    redraw every second while the run trains. TensorBoard samples instead; a mean keeps every batch in the
    curve. A point's hover says how many batches it covers."""
    n = len(batch)
    starts = np.searchsorted((np.arange(n) * points) // n, np.arange(points))
    ends = np.append(starts[1:], n) - 1
    weights = batch["batches"].to_numpy(dtype="float64")
    covered = np.add.reduceat(weights, starts)
    mean = {name: np.add.reduceat(batch[name].to_numpy(dtype="float64") * weights, starts) / covered
            for name in ("loss", "accuracy")}
    return pd.DataFrame({"epoch": batch["epoch"].to_numpy()[ends], "batch": batch["batch"].to_numpy()[ends],
                         "step": batch["step"].to_numpy()[ends], "batches": covered, **mean})


def epoch_figure(epoch: pd.DataFrame, revision: str = "", ended: bool = False) -> go.Figure:
    return go.Figure(epoch_spec(epoch, revision, ended))


def epoch_spec(epoch: pd.DataFrame, revision: str = "", ended: bool = False) -> dict:
    """Loss and accuracy per epoch for the training, validation and test sets, as plotly.js takes them."""
    if epoch is None or epoch.empty or "epoch" not in epoch:
        return empty_spec("Loss and accuracy per epoch", "No epoch finished before the run ended."
                          if ended else "Waiting for the first epoch to end…")
    layout = _two_panels("Loss (per epoch)", "Accuracy (per epoch)")
    # An epoch cut short by Stop is drawn hollow, and its hover says how many batches it covers.
    partial = epoch["partial"].eq(True) if "partial" in epoch else pd.Series(False, index=epoch.index)
    steps = epoch["steps_done"] if "steps_done" in epoch else pd.Series(np.nan, index=epoch.index)
    notes = [f" (stopped after {int(s)} batches)" if p and pd.notna(s) else " (stopped mid-epoch)" if p else ""
             for p, s in zip(partial, steps)]
    # one symbol for every point unless an epoch was cut short: plotly.py checks a list of symbols item by item
    symbols = ["circle-open" if p else "circle" for p in partial] if partial.any() else "circle"
    data = []
    for col, metric in ((1, "loss"), (2, "accuracy")):
        for split, column in (("train", metric), ("val", f"val_{metric}"), ("test", f"test_{metric}")):
            if column not in epoch or epoch[column].isna().all():
                continue
            data.append({"type": "scatter", "x": epoch["epoch"].to_numpy(), "y": epoch[column].to_numpy(dtype="float64"),
                         "mode": "lines+markers", "name": SPLIT_LABELS[split], "legendgroup": split,
                         "showlegend": col == 1, "line": {"color": COLORS[split], "width": 2},
                         "marker": {"symbol": symbols, "size": 8}, "customdata": notes,
                         "hovertemplate": f"{SPLIT_LABELS[split]} {metric}<br>epoch %{{x}}%{{customdata}}: %{{y:.4f}}",
                         **_axes(col)})
    layout = _titles(layout, "epoch", 1 if len(epoch) <= 20 else None)
    return {"data": data, "layout": {**layout, "uirevision": revision, "legend": {"orientation": "h", "y": -0.25},
                                     "margin": {**layout["margin"], "b": 95}}}


@dataclass
class Progress:
    """What the progress bar and the numbers next to it show for a live run."""

    fraction: float  # 0..1 of all training steps
    epoch: int  # the epoch in progress (1-based), 0 before the first batch
    epochs: int
    batch: int  # batch within the epoch
    steps_per_epoch: int | None
    eta_seconds: float | None
    images_per_sec: float | None
    learning_rate: float | None

    @property
    def text(self) -> str:
        parts = [f"epoch {self.epoch}/{self.epochs}"]
        if self.steps_per_epoch:
            parts.append(f"batch {self.batch}/{self.steps_per_epoch}")
        if self.eta_seconds is not None:
            parts.append(f"ETA {format_seconds(self.eta_seconds)}")
        if self.images_per_sec:
            parts.append(f"{self.images_per_sec:,.0f} images/s")
        return " · ".join(parts)


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else (f"{minutes}m {secs:02d}s" if minutes else f"{secs}s")


def format_duration(seconds: float | None) -> str:
    """A run's duration as the Runs table writes it (Streamlit's localized durations, the browser's
    Intl.DurationFormat): "19 sec", "2 min, 43 sec", "1 hr, 5 min, 12 sec"; zero parts are left out."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{value} {unit}" for value, unit in ((hours, "hr"), (minutes, "min"), (secs, "sec")) if value]
    return ", ".join(parts) or "0 sec"


def progress(status: RunStatus, batch: pd.DataFrame, epoch: pd.DataFrame, configured_epochs: int | None = None) -> Progress:
    """Progress from the stored status and metrics; ETA assumes the rate of the steps done so far. The status
    names the epochs once the data is loaded; before, the run's config does (it said "Epoch 0/1")."""
    epochs = int(status.epochs or configured_epochs or 0) or 1
    steps_per_epoch = status.steps_per_epoch
    total = steps_per_epoch * epochs if steps_per_epoch else None
    step = done_epochs = 0
    current_epoch, current_batch, elapsed = 0, 0, None
    if epoch is not None and not epoch.empty:
        done_epochs = int(epoch["epoch"].max())
        current_epoch = done_epochs
        current_batch = steps_per_epoch or 0
        step = done_epochs * (steps_per_epoch or 0)
        elapsed = float(epoch["time"].iloc[-1]) if "time" in epoch else None
    if batch is not None and not batch.empty:
        last = batch.iloc[-1]
        if int(last["step"]) > step:
            step, current_epoch, current_batch = int(last["step"]), int(last["epoch"]), int(last["batch"])
            elapsed = float(last["time"])
    fraction = min(1.0, step / total) if total else 0.0
    eta = None
    if total and step and elapsed:
        eta = (total - step) * elapsed / step
    images_per_sec = None
    if step and elapsed and status.batch_size:
        images_per_sec = min(step * status.batch_size, (status.n_train or math.inf) * epochs) / elapsed
    if epoch is not None and "images_per_sec" in epoch and epoch["images_per_sec"].notna().any():
        images_per_sec = float(epoch["images_per_sec"].dropna().iloc[-1])
    learning_rate = None
    if epoch is not None and "learning_rate" in epoch and epoch["learning_rate"].notna().any():
        learning_rate = float(epoch["learning_rate"].dropna().iloc[-1])
    return Progress(fraction, current_epoch, epochs, current_batch, steps_per_epoch, eta, images_per_sec,
                    learning_rate)


def median_images_per_sec(epoch: pd.DataFrame | None) -> float | None:
    """The run's typical throughput: the median over its epochs (the first one includes compiling)."""
    if epoch is None or epoch.empty or "images_per_sec" not in epoch or epoch["images_per_sec"].isna().all():
        return None
    return float(epoch["images_per_sec"].median())
