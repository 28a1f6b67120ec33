"""Pure builders for the "why" views: attribution overlays, the reliability diagram, confidence histograms, the
representation map and the layer-health charts (data in, a figure or an image array out)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from core.figures_audit import ACCENT, GRID, WRONG

FOR = np.array([230.0, 40.0, 20.0])  # red: pixels that raise the class's score
AGAINST = np.array([30.0, 90.0, 230.0])  # blue: pixels that lower it
OVERLAY_SCALE = 8  # 28x28 shown at 224 pixels
RUN_COLOURS = (ACCENT, "#e377c2")
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")


def attribution_overlay(image28: np.ndarray, attribution28: np.ndarray, signed: bool,
                        scale: int = OVERLAY_SCALE) -> np.ndarray:
    """(H*scale, W*scale, 3) uint8: the digit in grey with the map laid over it, red where a pixel speaks for the
    class and (signed maps) blue where it speaks against; the strength is the share of the map's largest value."""
    grey = np.asarray(image28, np.float64) / 255.0 * 0.55 * 255.0  # the digit dimmed, so the colours stand out
    base = np.repeat(grey[:, :, None], 3, axis=2)
    values = np.nan_to_num(np.asarray(attribution28, np.float64))
    limit = float(np.abs(values).max()) or 1.0
    strength = np.clip(np.abs(values) / limit, 0.0, 1.0)[:, :, None]
    colour = np.where((values >= 0)[:, :, None] | (not signed), FOR, AGAINST)
    blended = base * (1.0 - strength) + colour * strength
    return np.kron(np.round(blended).astype(np.uint8), np.ones((scale, scale, 1), np.uint8))


def reliability_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray, float]], height: int = 360) -> go.Figure:
    """The reliability diagram: each run's (name, mean confidence per bin, accuracy per bin, ECE) against the
    diagonal of perfect calibration."""
    figure = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                                  line={"color": GRID, "dash": "dash"}, hoverinfo="skip"))
    for (name, confidence, accuracy, ece), colour in zip(curves, RUN_COLOURS):
        figure.add_trace(go.Scatter(x=confidence, y=accuracy, mode="lines+markers", name=f"{name} (ECE {ece:.2%})",
                                    line={"color": colour},
                                    hovertemplate="mean confidence %{x:.3f}<br>accuracy %{y:.3f}<extra></extra>"))
    figure.update_layout(title="Reliability diagram", height=height, margin={"l": 50, "r": 10, "t": 50, "b": 40},
                         legend={"orientation": "h", "y": -0.2}, plot_bgcolor="white")
    figure.update_xaxes(title="confidence (binned)", range=[0, 1.01], gridcolor=GRID)
    figure.update_yaxes(title="accuracy in the bin", range=[0, 1.01], gridcolor=GRID)
    return figure


def confidence_histogram(runs: Sequence[tuple[str, np.ndarray]], bins: int = 20, height: int = 360) -> go.Figure:
    """How many test images get each confidence in their predicted class, per run, on a log count axis."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    figure = go.Figure()
    for (name, confidence), colour in zip(runs, RUN_COLOURS):
        counts = np.histogram(confidence, bins=edges)[0]
        figure.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=1 / bins, name=name, opacity=0.7,
                                marker_color=colour,
                                hovertemplate="confidence %{x:.2f}: %{y:,} images<extra></extra>"))
    figure.update_layout(title="Confidence in the predicted class", barmode="overlay", height=height,
                         margin={"l": 50, "r": 10, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2},
                         plot_bgcolor="white")
    figure.update_xaxes(title="confidence", range=[0, 1], gridcolor=GRID)
    figure.update_yaxes(title="images (log scale)", type="log", gridcolor=GRID)
    return figure


def representation_figure(points: np.ndarray, labels: np.ndarray, pred: np.ndarray, names: Sequence[str],
                          method: str, height: int = 560) -> go.Figure:
    """One point per test image coloured by its true class; the misclassified ones as red-edged crosses. Each
    point's customdata is its test index (the page opens it in the gallery on a click)."""
    figure = go.Figure()
    index = np.arange(len(labels))
    for cls, name in enumerate(names):
        shown = index[labels == cls]
        figure.add_trace(go.Scatter(
            x=points[shown, 0], y=points[shown, 1], mode="markers", name=str(name), customdata=shown,
            marker={"size": 4, "color": CLASS_COLOURS[cls % len(CLASS_COLOURS)], "opacity": 0.6},
            hovertemplate=f"test image #%{{customdata}}<br>true {name}<extra></extra>"))
    wrong = index[pred != labels]
    figure.add_trace(go.Scatter(
        x=points[wrong, 0], y=points[wrong, 1], mode="markers", name=f"misclassified ({len(wrong):,})",
        customdata=np.stack([wrong, labels[wrong], pred[wrong]], axis=1) if len(wrong) else None,
        marker={"size": 5, "symbol": "x-thin", "color": WRONG, "line": {"width": 1.5, "color": WRONG}},
        hovertemplate="test image #%{customdata[0]}<br>true %{customdata[1]}, predicted %{customdata[2]}"
                      "<extra></extra>"))
    figure.update_layout(title=f"Test images at F6, {method}", height=height, plot_bgcolor="white",
                         margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"itemsizing": "constant"},
                         clickmode="event+select", dragmode="pan")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, scaleanchor="x")
    return figure


def weight_heatmap(epochs: Sequence[int], centres: np.ndarray, counts: np.ndarray, layer: str,
                   height: int = 320) -> go.Figure:
    """One row per epoch: the histogram of the layer's weights, as a heatmap (log colour of the counts)."""
    figure = go.Figure(go.Heatmap(
        x=centres, y=[str(e) for e in epochs], z=np.log10(1 + np.asarray(counts, float)), customdata=counts,
        colorscale="Viridis", colorbar={"title": "log₁₀(1+n)"},
        hovertemplate="epoch %{y}<br>weight %{x:.3f}<br>%{customdata:,} weights<extra></extra>"))
    figure.update_layout(title=f"{layer}: weight distribution per epoch", height=height,
                         margin={"l": 50, "r": 10, "t": 50, "b": 40})
    figure.update_xaxes(title="weight value")
    figure.update_yaxes(title="epoch", type="category")
    return figure


def per_layer_lines(frame, value: str, title: str, axis: str, percent: bool = False, height: int = 320) -> go.Figure:
    """One line per layer over the epochs, from a tidy frame with epoch, layer and `value` columns."""
    figure = go.Figure()
    for layer, rows in frame.groupby("layer", sort=False):
        figure.add_trace(go.Scatter(x=rows["epoch"], y=rows[value], mode="lines+markers", name=layer,
                                    hovertemplate=f"{layer}<br>epoch %{{x}}<br>%{{y:{'.1%' if percent else '.4f'}}}"
                                                  "<extra></extra>"))
    figure.update_layout(title=title, height=height, margin={"l": 50, "r": 10, "t": 50, "b": 40},
                         plot_bgcolor="white")
    figure.update_xaxes(title="epoch", dtick=1, gridcolor=GRID)
    figure.update_yaxes(title=axis, tickformat=".0%" if percent else None, gridcolor=GRID, rangemode="tozero")
    return figure
