"""The comparison view's figure: B's confusion matrix minus A's, blue where B has more, red where A has more."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def confusion_difference_figure(difference: np.ndarray, class_names: list[str], height: int = 420) -> go.Figure:
    """Rows are true classes, columns predictions; a cell is B's count minus A's (off the diagonal: errors)."""
    difference = np.asarray(difference)
    limit = max(1, int(np.abs(difference).max()))
    text = [[f"{v:+d}" if v else "" for v in row] for row in difference.tolist()]
    figure = go.Figure(go.Heatmap(
        z=difference, x=class_names, y=class_names, zmin=-limit, zmax=limit, colorscale="RdBu", text=text,
        texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: B − A = %{z:+d}<extra></extra>",
        colorbar={"title": {"text": "B − A"}, "thickness": 12}))
    figure.update_layout(height=height, margin={"l": 70, "r": 20, "t": 10, "b": 60},
                         xaxis={"title": {"text": "Predicted"}, "type": "category", "side": "bottom"},
                         yaxis={"title": {"text": "True"}, "type": "category", "autorange": "reversed",
                                "scaleanchor": "x"})
    return figure
