"""Pure builders for the Evaluate, Error gallery and Predict charts: arrays in, go.Figure (or an image) out."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

RIGHT = "#16a34a"
WRONG = "#dc2626"
NEUTRAL = "#94a3b8"
ACCENT = "#2563eb"
DIAGONAL_FILL = "#e5e7eb"
DIAGONAL_TEXT = "#6b7280"
# Zero stays white so empty cells vanish; any error at all is visibly tinted.
ERROR_SCALE = [[0.0, "#ffffff"], [1e-6, "#fee5d9"], [0.25, "#fcae91"], [0.5, "#fb6a4a"], [0.75, "#de2d26"],
               [1.0, "#a50f15"]]
GRID = "#eef0f4"
THUMBNAIL_SCALE = 3  # 28x28 -> 84x84 with nearest-neighbour pixels, so digits stay crisp

# The invisible markers over the confusion matrix carry (true, predicted, count) so a click names its cell.
CELL_TRACE = "cells"
DIAGONAL_SHAPE = "diagonal"


def _row_normalised(cm: np.ndarray) -> np.ndarray:
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)


def confusion_matrix_figure(
    cm: np.ndarray,
    class_names: Sequence[str],
    normalize: bool = False,
    selected: tuple[int, int] | None = None,
    title: str | None = None,
    height: int = 520,
    clickable: bool = True,
) -> go.Figure:
    """Counts (or row-normalised rates) with the diagonal masked in grey, so the errors carry the colour.

    Traces: 0 = the heatmap of every cell (its z is the matrix shown, its text the off-diagonal
    numbers), 1 = one invisible square marker per cell that makes cells clickable (left out when
    clickable is False). The diagonal is covered by grey rectangle shapes with grey annotations:
    cheaper for the browser than a second heatmap.
    """
    counts = np.asarray(cm)
    n = len(class_names)
    if counts.shape != (n, n):
        raise ValueError(f"cm must be ({n}, {n}) for {n} class names; got shape {counts.shape}")
    z = _row_normalised(counts) if normalize else counts
    off_diagonal = ~np.eye(n, dtype=bool)
    top = float(z[off_diagonal].max()) if n > 1 else 0.0
    zmax = top if top > 0 else 1.0
    if normalize:
        text = np.where(z > 0, np.char.mod("%.1f%%", z * 100), "")
        cell_format = "%{customdata[3]:.2%} of the class (%{customdata[2]} images)"
    else:
        text = np.where(z > 0, z.astype(int).astype(str), "")
        cell_format = "%{customdata[2]:.0f} images"
    positions = np.arange(n)
    names = [str(c) for c in class_names]

    figure = go.Figure()
    figure.add_trace(go.Heatmap(
        z=z, x=positions, y=positions, zmin=0, zmax=zmax, colorscale=ERROR_SCALE,
        text=np.where(off_diagonal, text, ""), texttemplate="%{text}", textfont={"size": 11},
        hoverinfo="skip" if clickable else None, name="errors",
        hovertemplate=None if clickable else "true %{y}, predicted %{x}: %{z}<extra></extra>",
        colorbar=_colour_bar(normalize),
    ))
    _mask_diagonal(figure, text)
    if clickable:
        _add_cell_markers(figure, counts, names, height, cell_format)
    if selected is not None:
        row, col = selected
        figure.add_shape(type="rect", x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5,
                         line={"color": ACCENT, "width": 3})
    axis = {"tickmode": "array", "tickvals": positions, "ticktext": names, "showgrid": False, "zeroline": False}
    # constrain="domain" on both axes: whichever way the chart is wider, the square cells shrink the axis' domain;
    # on x the default widened the range instead (empty columns beside the matrix, clicks off by columns)
    figure.update_xaxes(title_text="Predicted class", side="top", range=[-0.5, n - 0.5], constrain="domain", **axis)
    figure.update_yaxes(title_text="True class", autorange="reversed", scaleanchor="x", constrain="domain", **axis)
    figure.update_layout(
        title=title, height=height, margin={"l": 75, "r": 10, "t": 95 if title else 75, "b": 110},
        clickmode="event+select", dragmode=False, plot_bgcolor="white",
    )
    return figure


def _colour_bar(normalize: bool) -> dict:
    """Below the matrix, not beside it: the cells get the width (the matrix was 170 px wide at 1024 px); in
    percent like the cells' text when row-normalised."""
    return {"title": {"text": "share of the true class" if normalize else "images", "side": "top"},
            "orientation": "h", "thickness": 10, "len": 0.8, "y": -0.02, "yanchor": "top",
            "tickformat": ".2~%" if normalize else None}


def _mask_diagonal(figure: go.Figure, text: np.ndarray) -> None:
    """Grey squares over the heatmap's diagonal, with its numbers (text[i, i]) in grey on top."""
    n = len(text)
    for i in range(n):
        figure.add_shape(type="rect", x0=i - 0.5, x1=i + 0.5, y0=i - 0.5, y1=i + 0.5, layer="above",
                         fillcolor=DIAGONAL_FILL, line={"width": 1, "color": DIAGONAL_FILL}, name=DIAGONAL_SHAPE)
    figure.update_layout(annotations=[
        {"x": i, "y": i, "text": text[i, i], "showarrow": False, "font": {"color": DIAGONAL_TEXT, "size": 11}}
        for i in range(n)])


def _add_cell_markers(figure: go.Figure, counts: np.ndarray, names: list[str], height: int, cell_format: str) -> None:
    """One invisible square marker per cell, carrying (true, predicted, count, share) for hover and clicks:
    st.plotly_chart reports no selection for clicks on a heatmap (streamlit#8760)."""
    n = len(names)
    positions = np.arange(n)
    true_idx, pred_idx = (a.ravel() for a in np.meshgrid(positions, positions, indexing="ij"))
    rates = _row_normalised(counts)
    # customdata per cell: (true index, predicted index, count, share of the true class)
    customdata = np.stack([true_idx, pred_idx, counts.ravel(), rates.ravel()], axis=1).astype(float)
    cell_names = [f"true {names[t]}, predicted {names[p]}" for t, p in zip(true_idx, pred_idx)]
    figure.add_trace(go.Scatter(
        x=pred_idx, y=true_idx, mode="markers", name=CELL_TRACE, text=cell_names,
        marker={"symbol": "square", "size": max(12, int(height * 0.8 / max(n, 1))), "color": "rgba(0,0,0,0)"},
        selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}},
        customdata=customdata, showlegend=False,
        hovertemplate="%{text}<br>" + cell_format + "<extra></extra>",
    ))


def selected_cell(event) -> tuple[int, int] | None:
    """(true, predicted) of the clicked cell in a st.plotly_chart selection event, or None.

    The cell markers carry (true, predicted, ...) as customdata, which the browser sends back as a
    list or as a {"0": .., "1": ..} mapping; the point's (x, y) = (predicted, true) is the fallback.
    """
    points = ((event or {}).get("selection") or {}).get("points") or []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, dict) and "0" in data and "1" in data:
            return int(data["0"]), int(data["1"])
        if isinstance(data, (list, tuple)) and len(data) >= 2:
            return int(data[0]), int(data[1])
        if point.get("x") is not None and point.get("y") is not None:
            return int(round(float(point["y"]))), int(round(float(point["x"])))
    return None


def probability_bars(probs: np.ndarray, class_names: Sequence[str], true: int | None = None,
                     height: int = 260, title: str | None = None) -> go.Figure:
    """One bar per class; the predicted class is green if right and red if wrong, the true class outlined."""
    probs = np.asarray(probs, dtype=float)
    pred = int(np.argmax(probs))
    colours = [NEUTRAL] * len(probs)
    colours[pred] = RIGHT if true is None or pred == true else WRONG
    outline = [3 if i == true else 0 for i in range(len(probs))]
    figure = go.Figure(go.Bar(
        x=[str(c) for c in class_names], y=probs, marker={"color": colours, "line": {"width": outline, "color": RIGHT}},
        # share(): the bar of a 99.99% prediction said "100.0%" beside "Confidence 99.99%"
        text=[share(p, 1) if p >= 0.005 else "" for p in probs], textposition="outside",
        customdata=[share(p, 2) for p in probs], hovertemplate="class %{x}: %{customdata}<extra></extra>",
    ))
    figure.update_layout(title=title, height=height, margin={"l": 85, "r": 10, "t": 40 if title else 10, "b": 70},
                         showlegend=False, plot_bgcolor="white")
    figure.update_yaxes(range=[0, 1.15], tickformat=".0%", title_text="probability", gridcolor=GRID)
    figure.update_xaxes(type="category", title_text="class")
    return figure


def class_metrics_figure(report, height: int = 320) -> go.Figure:
    """Grouped precision, recall and F1 bars per class (the rows of core.analysis.class_report)."""
    classes = [row for row in report.index if not str(row).endswith(" avg")]
    figure = go.Figure()
    for column, colour in (("precision", ACCENT), ("recall", "#f59e0b"), ("f1", "#10b981")):
        figure.add_trace(go.Bar(x=[str(c) for c in classes], y=report.loc[classes, column], name=column,
                                marker_color=colour, hovertemplate=f"class %{{x}}: {column} %{{y:.3f}}<extra></extra>"))
    low = float(report.loc[classes, ["precision", "recall", "f1"]].min().min()) if classes else 0.0
    figure.update_layout(barmode="group", height=height, margin={"l": 75, "r": 10, "t": 55, "b": 65},
                         legend={"orientation": "h", "y": 1.12}, plot_bgcolor="white")
    figure.update_yaxes(range=[max(0.0, low - 0.05), 1.0], title_text="score", gridcolor=GRID)
    figure.update_xaxes(type="category", title_text="class")
    return figure


def epoch_accuracy_figure(epochs: Sequence[int], accuracies: Sequence[float], selected: int | None = None,
                          height: int = 220) -> go.Figure:
    """Test accuracy after each saved epoch, the scrubbed epoch marked."""
    figure = go.Figure(go.Scatter(x=list(epochs), y=list(accuracies), mode="lines+markers", line={"color": ACCENT},
                                  hovertemplate="epoch %{x}: %{y:.2%}<extra></extra>", name="test accuracy"))
    if selected is not None and selected in epochs:
        value = accuracies[list(epochs).index(selected)]
        figure.add_trace(go.Scatter(x=[selected], y=[value], mode="markers", marker={"size": 14, "color": WRONG},
                                    hoverinfo="skip", name="shown"))
    figure.update_layout(height=height, margin={"l": 90, "r": 20, "t": 10, "b": 70}, showlegend=False,
                         plot_bgcolor="white")
    figure.update_xaxes(title_text="epoch", dtick=epoch_dtick(len(epochs)))
    figure.update_yaxes(title_text="test accuracy", tickformat=".2~%", gridcolor=GRID)
    return figure


def history_figure(history, class_names: Sequence[str], label: int, height: int = 240) -> go.Figure:
    """One image across epochs: the predicted class and its confidence, green when right, red when wrong."""
    names = [str(c) for c in class_names]
    colours = [RIGHT if ok else WRONG for ok in history["correct"]]
    figure = go.Figure(go.Scatter(
        x=history["epoch"], y=history["confidence"], mode="lines+markers+text",
        marker={"color": colours, "size": 14}, line={"color": NEUTRAL},
        text=[names[p] for p in history["pred"]], textposition="top center",
        hovertemplate="epoch %{x}: predicted %{text} (%{y:.1%})<extra></extra>",
    ))
    figure.update_layout(height=height, margin={"l": 85, "r": 10, "t": 30, "b": 70}, plot_bgcolor="white",
                         title={"text": f"predicted class per epoch (true: {names[label]})", "font": {"size": 13}})
    figure.update_xaxes(title_text="epoch", dtick=epoch_dtick(len(history)))
    figure.update_yaxes(title_text="confidence", range=[0, 1.15], tickformat=".0%", gridcolor=GRID)
    return figure


def epoch_dtick(epochs: int) -> int | None:
    """A tick per epoch up to 10 epochs; beyond, Plotly's own spacing (20 ticks overlapped in a narrow chart)."""
    return 1 if epochs <= 10 else None


def share(probability: float, decimals: int = 0) -> str:
    """A probability as a percentage, rounded towards 50%: 0.9996 is "99%" (or "99.9%"), never "100%", so one
    image is not called certain on a tile and 99.96% in its details."""
    scale = 10 ** (decimals + 2)
    value = np.floor(probability * scale) if probability >= 0.5 else np.ceil(probability * scale)
    return f"{value / scale:.{decimals}%}"


def count(n: int, noun: str) -> str:
    """"1 test image", "2 test images" (the pages wrote "1 test images")."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def after_epochs(epochs) -> str:
    """"after epoch 1", "after epochs 1, 2", "after no epoch"."""
    epochs = [str(e) for e in epochs]
    return f"after epoch{'s' if len(epochs) > 1 else ''} {', '.join(epochs)}" if epochs else "after no epoch"


def thumbnail(image28: np.ndarray, scale: int = THUMBNAIL_SCALE) -> np.ndarray:
    """A test image enlarged `scale` times with square pixels, uint8."""
    return np.kron(np.asarray(image28, np.uint8), np.ones((scale, scale), np.uint8))
