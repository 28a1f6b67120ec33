"""Pure builders for the Inside the model charts: C1's filters, feature maps, activations, C3's table."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from core.figures_audit import ACCENT, GRID, WRONG

KERNEL_SCALE = "RdBu"
MAP_SCALE = "Greys_r"


def _symmetric_limit(values: np.ndarray) -> float:
    limit = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    return limit if limit > 0 else 1.0


def montage(maps: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """Tile (C, H, W) maps into one (rows*(H+gap)-gap, columns*(W+gap)-gap) array, NaN between tiles.

    One heatmap instead of a subplot per map: see bench/RESULTS.md, "Why the dashboard's code is as it is".
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
    figure.update_yaxes(gridcolor=GRID)
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
