"""The Sweep page's figures: Optuna's own (optuna.visualization returns Plotly figures), sized for the page."""

from __future__ import annotations

import plotly.graph_objects as go

# name -> (title, the optuna.visualization function, what it needs beyond one completed trial)
FIGURES = {
    "history": ("Best so far", "plot_optimization_history", ""),
    "parallel": ("Parallel coordinates", "plot_parallel_coordinate", ""),
    "importance": ("Parameter importances", "plot_param_importances", "two completed trials with different values"),
    "slice": ("Slices", "plot_slice", ""),
    "contour": ("Contour", "plot_contour", "two searched parameters"),
}
OBJECTIVE_LABEL = "Validation accuracy"


def sweep_figures(study, searched: list[str]) -> dict[str, go.Figure | str]:
    """Each figure of FIGURES, or the reason it cannot be drawn yet (a sentence for the page)."""
    import optuna.visualization as vis

    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    shown: dict[str, go.Figure | str] = {}
    for name, (title, function, needs) in FIGURES.items():
        if not completed:
            shown[name] = "Appears when the first trial completes."
            continue
        if name == "contour" and len(searched) < 2:
            shown[name] = "Needs two searched parameters."
            continue
        if name == "importance" and len(completed) < 2:
            shown[name] = f"Needs {needs}."
            continue
        try:
            figure = getattr(vis, function)(study, target_name=OBJECTIVE_LABEL)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # optuna refuses what it cannot compute
            shown[name] = f"Not yet: {exc}"
            continue
        figure.update_layout(title=None, height=360, margin={"l": 60, "r": 30, "t": 30, "b": 50})
        shown[name] = figure
    return shown
