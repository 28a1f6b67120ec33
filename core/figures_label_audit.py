"""Pure builders for the Label audit page: cleanlab's estimates in, go.Figure out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from core.figures_audit import DIAGONAL_FILL, ERROR_SCALE


def noise_matrix_figure(joint_counts: np.ndarray, class_names: Sequence[str], height: int = 420) -> go.Figure:
    """Estimated images per (given label, true class): the off-diagonal cells are the wrong labels, e.g. the
    row "4", column "9" cell counts images labelled 4 that are really 9s. The diagonal (right labels) is grey."""
    counts = np.asarray(joint_counts, np.int64)
    names = [str(n) for n in class_names]
    off = counts.astype(float)
    np.fill_diagonal(off, np.nan)
    text = np.where(np.isnan(off), "", off.astype(object).astype(str))
    text = np.vectorize(lambda t: t.removesuffix(".0") if t not in ("", "0.0") else "")(text)
    figure = go.Figure(go.Heatmap(
        z=off, x=names, y=names, text=text, texttemplate="%{text}", colorscale=ERROR_SCALE, zmin=0,
        zmax=max(1.0, float(np.nanmax(off)) if np.isfinite(off).any() else 1.0), showscale=False, xgap=1, ygap=1,
        hovertemplate="labelled %{y}, really %{x}: %{z:.0f} images (estimated)<extra></extra>"))
    diagonal = np.full(counts.shape, np.nan)
    np.fill_diagonal(diagonal, 1.0)
    figure.add_trace(go.Heatmap(z=diagonal, x=names, y=names, colorscale=[[0, DIAGONAL_FILL], [1, DIAGONAL_FILL]],
                                showscale=False, hoverinfo="skip", xgap=1, ygap=1))
    figure.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         title={"text": "Estimated wrong labels: given label (row) → true class (column)",
                                    "font": {"size": 14}},
                         xaxis={"title": "true class (estimated)", "type": "category", "side": "bottom"},
                         yaxis={"title": "given label", "type": "category", "autorange": "reversed"},
                         plot_bgcolor="white")
    return figure
