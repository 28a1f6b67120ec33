"""Pure Plotly builders for the audit pages: arrays in, go.Figure out, no Streamlit."""

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
KERNEL_SCALE = "RdBu"
MAP_SCALE = "Greys_r"

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
        colorbar={"title": {"text": "share of row" if normalize else "images"}, "thickness": 12},
    ))
    # The diagonal: grey squares drawn over the heatmap, their numbers in grey on top.
    for i in range(n):
        figure.add_shape(type="rect", x0=i - 0.5, x1=i + 0.5, y0=i - 0.5, y1=i + 0.5, layer="above",
                         fillcolor=DIAGONAL_FILL, line={"width": 1, "color": DIAGONAL_FILL}, name=DIAGONAL_SHAPE)
    figure.update_layout(annotations=[
        {"x": i, "y": i, "text": text[i, i], "showarrow": False, "font": {"color": DIAGONAL_TEXT, "size": 11}}
        for i in range(n)])
    if clickable:
        _add_cell_markers(figure, counts, names, height, cell_format)
    if selected is not None:
        row, col = selected
        figure.add_shape(type="rect", x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5,
                         line={"color": ACCENT, "width": 3})
    axis = {"tickmode": "array", "tickvals": positions, "ticktext": names, "showgrid": False, "zeroline": False}
    figure.update_xaxes(title_text="Predicted class", side="top", range=[-0.5, n - 0.5], **axis)
    figure.update_yaxes(title_text="True class", autorange="reversed", scaleanchor="x", constrain="domain", **axis)
    figure.update_layout(
        title=title, height=height, margin={"l": 70, "r": 85, "t": 95 if title else 75, "b": 10},
        clickmode="event+select", dragmode=False, plot_bgcolor="white",
    )
    return figure


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
        text=[f"{p:.1%}" if p >= 0.005 else "" for p in probs], textposition="outside",
        hovertemplate="class %{x}: %{y:.2%}<extra></extra>",
    ))
    figure.update_layout(title=title, height=height, margin={"l": 85, "r": 10, "t": 40 if title else 10, "b": 70},
                         showlegend=False, plot_bgcolor="white")
    figure.update_yaxes(range=[0, 1.15], tickformat=".0%", title_text="probability", gridcolor="#eef0f4")
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
    figure.update_yaxes(range=[max(0.0, low - 0.05), 1.0], title_text="score", gridcolor="#eef0f4")
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
    figure.update_xaxes(title_text="epoch", dtick=1)
    figure.update_yaxes(title_text="test accuracy", tickformat=".1%", gridcolor="#eef0f4")
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
    figure.update_xaxes(title_text="epoch", dtick=1)
    figure.update_yaxes(title_text="confidence", range=[0, 1.15], tickformat=".0%", gridcolor="#eef0f4")
    return figure


def _symmetric_limit(values: np.ndarray) -> float:
    limit = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    return limit if limit > 0 else 1.0


def montage(maps: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """Tile (C, H, W) maps into one (rows*(H+gap)-gap, columns*(W+gap)-gap) array, NaN between tiles.

    One heatmap of the montage draws in milliseconds where a subplot per map takes most of a second.
    Map i sits at rows r*(H+gap) : r*(H+gap)+H and columns c*(W+gap) : c*(W+gap)+W, r, c = divmod(i, columns).
    """
    maps = np.asarray(maps, dtype=float)
    count, height, width = maps.shape
    rows = int(np.ceil(count / columns))
    tiled = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan)
    for i, fmap in enumerate(maps):
        r, c = divmod(i, columns)
        tiled[r * (height + gap): r * (height + gap) + height, c * (width + gap): c * (width + gap) + width] = fmap
    return tiled


def _montage_figure(z: np.ndarray, customdata: np.ndarray, count: int, shape: tuple[int, int], columns: int,
                    gap: int, labels: list[str], heatmap: dict, hovertemplate: str, title: str | None,
                    height: int) -> go.Figure:
    tile_h, tile_w = shape
    figure = go.Figure(go.Heatmap(z=z, customdata=customdata, hoverongaps=False, hovertemplate=hovertemplate,
                                  **heatmap))
    annotations = []
    for i, label in enumerate(labels[:count]):
        r, c = divmod(i, columns)
        annotations.append({"x": c * (tile_w + gap) + (tile_w - 1) / 2, "y": r * (tile_h + gap) - 0.5,
                            "text": label, "showarrow": False, "yanchor": "bottom", "font": {"size": 10}})
    figure.update_layout(title=title, height=height, annotations=annotations, plot_bgcolor="white",
                         margin={"l": 5, "r": 90 if heatmap.get("showscale", True) else 5, "t": 60 if title else 25,
                                 "b": 5})
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    return figure


def kernel_figure(kernels: np.ndarray, title: str | None = None, limit: float | None = None,
                  height: int = 230) -> go.Figure:
    """C1's filters side by side on a diverging scale centred on zero (blue positive, red negative).

    The single heatmap's z is montage(kernels, len(kernels)): the raw weights.
    """
    kernels = np.asarray(kernels, dtype=float)
    count = len(kernels)
    limit = _symmetric_limit(kernels) if limit is None else limit
    z = montage(kernels, count)
    number = montage(np.arange(1, count + 1)[:, None, None] * np.ones_like(kernels), count)
    return _montage_figure(
        z, number, count, kernels.shape[1:], count, 1, [f"filter {i + 1}" for i in range(count)],
        {"zmin": -limit, "zmax": limit, "zmid": 0, "colorscale": KERNEL_SCALE,
         "colorbar": {"thickness": 10, "len": 0.9, "title": {"text": "weight"}}},
        "filter %{customdata:.0f}: %{z:.3f}<extra></extra>", title, height)


def kernel_animation(epochs: Sequence[int], history: np.ndarray, height: int = 230) -> go.Figure:
    """The C1 filters epoch by epoch as Plotly animation frames, on one colour range for all epochs."""
    history = np.asarray(history, dtype=float)
    if len(epochs) != len(history) or not len(epochs):
        raise ValueError(f"need one (6, 5, 5) set of kernels per epoch; got {len(epochs)} epochs, {len(history)} sets")
    limit = _symmetric_limit(history)
    count = history.shape[1]
    figure = kernel_figure(history[-1], limit=limit, height=height)
    figure.frames = [go.Frame(name=str(epoch), data=[go.Heatmap(z=montage(kernels, count))], traces=[0])
                     for epoch, kernels in zip(epochs, history)]
    steps = [{"label": str(e), "method": "animate",
              "args": [[str(e)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}]} for e in epochs]
    figure.update_layout(
        sliders=[{"active": len(epochs) - 1, "currentvalue": {"prefix": "epoch "}, "steps": steps,
                  "pad": {"t": 10}, "x": 0.12, "len": 0.88}],
        updatemenus=[{"type": "buttons", "showactive": False, "x": 0, "y": 0, "xanchor": "left", "yanchor": "top",
                      "pad": {"t": 10}, "buttons": [{"label": "▶ play", "method": "animate", "args": [
                          None, {"frame": {"duration": 600, "redraw": True}, "fromcurrent": False}]}]}],
        margin={"l": 5, "r": 90, "t": 25, "b": 95}, height=height + 95,
    )
    return figure


def map_gap(size: int) -> int:
    """Pixels between feature maps in a montage: a fifth of a map, room for the next row's numbers."""
    return max(1, round(size / 5))


def feature_map_figure(maps: np.ndarray, columns: int | None = None, title: str | None = None,
                       cell_height: int = 110) -> go.Figure:
    """A (C, H, W) stack of feature maps in a grid, each stretched to its own range; hover shows raw values.

    z and customdata are montages with map_gap(H) between maps; customdata[..., 1] holds the raw values.
    """
    maps = np.asarray(maps, dtype=float)
    count, tile_h, tile_w = maps.shape
    columns = columns or min(count, 8)
    rows = int(np.ceil(count / columns))
    gap = map_gap(tile_h)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    shown = np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)
    raw = montage(maps, columns, gap)
    number = montage(np.arange(1, count + 1)[:, None, None] * np.ones_like(maps), columns, gap)
    return _montage_figure(
        montage(shown, columns, gap), np.stack([number, raw], axis=-1), count, (tile_h, tile_w), columns, gap,
        [str(i + 1) for i in range(count)], {"zmin": 0, "zmax": 1, "colorscale": MAP_SCALE, "showscale": False},
        "map %{customdata[0]:.0f}: %{customdata[1]:.3f}<extra></extra>", title,
        cell_height * rows + (60 if title else 25))


def feature_map_image(maps: np.ndarray, columns: int, tile_pixels: int = 112) -> np.ndarray:
    """The image counterpart of feature_map_figure: uint8 (H, W), each map stretched to its own range,
    enlarged with square pixels to about tile_pixels wide, on a white grid. A browser draws one PNG far
    faster than a heatmap, so this is the default view; the figure adds hover values."""
    maps = np.asarray(maps, dtype=float)
    count, tile_h, tile_w = maps.shape
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    shown = np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)
    scale = max(1, round(tile_pixels / tile_w))
    big = np.kron(shown, np.ones((1, scale, scale)))
    tiled = montage(big, columns, gap=max(2, scale // 2))
    return _grid_image(tiled)


def _grid_image(tiled: np.ndarray) -> np.ndarray:
    """Maps in [0, 1] to black..white; the gaps between them (NaN) white."""
    image = np.round(np.clip(tiled, 0, 1) * 255)
    image[np.isnan(tiled)] = 255
    return image.astype(np.uint8)


def activation_figure(values: np.ndarray, title: str | None = None, labels: Sequence[str] | None = None,
                      height: int = 200) -> go.Figure:
    """A dense layer's activations as bars (one per unit)."""
    values = np.asarray(values, dtype=float).ravel()
    x = [str(label) for label in labels] if labels is not None else list(range(len(values)))
    colours = [ACCENT if v >= 0 else WRONG for v in values]
    figure = go.Figure(go.Bar(x=x, y=values, marker_color=colours,
                              hovertemplate="unit %{x}: %{y:.3f}<extra></extra>"))
    figure.update_layout(title=title, height=height, margin={"l": 85 if labels is not None else 45, "r": 10,
                                                             "t": 35 if title else 10, "b": 70 if labels is not None else 20},
                         plot_bgcolor="white", bargap=0.1)
    figure.update_yaxes(gridcolor="#eef0f4")
    figure.update_xaxes(type="category" if labels is not None else "linear", showticklabels=labels is not None)
    return figure


def c3_table_figure(table: np.ndarray, height: int = 240) -> go.Figure:
    """LeCun et al.'s Table I: which S2 maps (rows) feed each C3 map (columns)."""
    table = np.asarray(table, dtype=bool)
    rows, cols = table.shape
    figure = go.Figure(go.Heatmap(
        z=table.astype(int), x=[str(j + 1) for j in range(cols)], y=[str(i + 1) for i in range(rows)],
        colorscale=[[0, "#f8fafc"], [1, ACCENT]], showscale=False, xgap=2, ygap=2, zmin=0, zmax=1,
        hovertemplate="S2 map %{y} → C3 map %{x}: %{z}<extra></extra>",
    ))
    figure.update_xaxes(title_text="C3 map", side="top", type="category")
    figure.update_yaxes(title_text="S2 map", autorange="reversed", type="category")
    figure.update_layout(height=height, margin={"l": 70, "r": 10, "t": 70, "b": 10}, plot_bgcolor="white")
    return figure
