"""The learning-rate finder's figure: the smoothed loss against the rate (log axis), the suggestion marked."""

from __future__ import annotations

import plotly.graph_objects as go


def lr_find_figure(rates: list[float], losses: list[float], smoothed: list[float], suggestion: float | None,
                   height: int = 260) -> go.Figure:
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=rates, y=losses, mode="lines", name="batch loss", line={"width": 1},
                                opacity=0.3, hovertemplate="rate %{x:.2g}: loss %{y:.3f}<extra></extra>"))
    figure.add_trace(go.Scatter(x=rates, y=smoothed, mode="lines", name="smoothed",
                                hovertemplate="rate %{x:.2g}: smoothed loss %{y:.3f}<extra></extra>"))
    if suggestion:
        figure.add_vline(x=suggestion, line_dash="dash", line_color="#2ca02c")
        figure.add_annotation(x=suggestion, y=1, yref="paper", text=f"{suggestion:.2g}", showarrow=False,
                              xanchor="left", yanchor="top", font={"color": "#2ca02c"})
    top = max(smoothed[: max(1, len(smoothed) // 3)] or [1.0]) * 1.5 if smoothed else None
    figure.update_layout(height=height, margin={"l": 40, "r": 10, "t": 10, "b": 40}, showlegend=False,
                         xaxis={"type": "log", "title": {"text": "learning rate"}, "exponentformat": "power"},
                         yaxis={"title": {"text": "loss"}, "range": [0, top] if top else None})
    return figure
