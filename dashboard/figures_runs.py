"""Pure builders for the Runs page: the runs table, its columns, the overlay of runs and the HParams views.

The hyperparameter columns and axes come from the TrainConfig fields' descriptions (core.config.PARAMS): a new
field with in_runs=True shows up here without a change to this file."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from core.config import FIELD_TYPES, PARAMS
from core.figures_training import COLORS, EPOCH_METRICS, empty_figure
from core.store import RunInfo

HYPERPARAMETERS = [name for name, p in PARAMS.items() if p.in_runs]  # config fields shown as columns and axes
TRAIN_IMAGES = "train_images"  # the images a run trained on (its status), not the subset asked for
# The outcome first, so test accuracy is in view without scrolling; then what produced it.
RUN_COLUMNS = ["name", "status", "test_accuracy", "best_val_accuracy", "duration_s", "images_per_sec",
               *HYPERPARAMETERS, TRAIN_IMAGES, "created", "problems", "run_id"]
MISSING = "–"  # what an empty cell shows (Streamlit writes "None")
RUN_COLORS = plotly.colors.qualitative.D3  # compared runs: distinct hues, blue then orange, green, red...
NO_ACCURACY = "No finished run with a test accuracy yet"


@dataclass(frozen=True)
class Column:
    """How the Runs table shows one column: title, kind (text, number, duration, check, date) and, for numbers,
    Streamlit's format (a printf string or a named format) with the step that sets a named format's decimals.
    The browser writes the text and sorts by the values (a pandas Styler's text cost the page a second for
    1,000 rows)."""

    title: str
    kind: str = "text"
    format: str | None = None
    step: float | None = None


PERCENT = {"format": "percent", "step": 0.0001}  # 89.40%: two decimals for every accuracy ("percent" alone drops zeros)
WHOLE = {"format": "%,.0f"}  # 8,367: rounded, with separators


def whole(value: float) -> str:
    return f"{value:,.0f}"


def hyperparameter(config, name: str):
    """A config value as the table shows it: a list of indices as how many there are."""
    value = getattr(config, name)
    return len(value) if FIELD_TYPES[name] is tuple else value


def _hyperparameter_column(name: str) -> Column:
    p, kind = PARAMS[name], FIELD_TYPES[name]
    title = p.short[0].upper() + p.short[1:]
    if kind is bool:
        return Column(title, "check")
    if kind is float:
        return Column(title, "number", p.format or "%g")
    if kind in (int, tuple):  # a list of indices (exclude_train) shows its length
        return Column(title, "number", **WHOLE)
    return Column(title)


COLUMNS: dict[str, Column] = {
    "name": Column("Name"), "status": Column("Status"),
    "test_accuracy": Column("Test accuracy", "number", **PERCENT),
    "best_val_accuracy": Column("Best val. accuracy", "number", **PERCENT),
    "duration_s": Column("Duration", "duration"),  # 2 min, 43 sec
    "images_per_sec": Column("Images/s", "number", **WHOLE),
    **{name: _hyperparameter_column(name) for name in HYPERPARAMETERS},
    TRAIN_IMAGES: Column("Training images", "number", **WHOLE),
    "created": Column("Date", "date"), "problems": Column("Problems"), "run_id": Column("Run id"),
}


def table_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs frame as the table shows it: the durations as time spans of whole seconds (the browser writes
    them as "2 min, 43 sec" and sorts them by length)."""
    return frame.assign(duration_s=pd.to_timedelta(frame["duration_s"].round(), unit="s"))


NUMERIC = [n for n in HYPERPARAMETERS if FIELD_TYPES[n] in (int, float, tuple)] + [TRAIN_IMAGES]  # tuple: a count
CATEGORICAL = [n for n in HYPERPARAMETERS if PARAMS[n].choices]
SWITCHES = [n for n in HYPERPARAMETERS if FIELD_TYPES[n] is bool]
# the learning rate (a log-scaled field) first: what users tune most
SCATTER_CHOICES = sorted((n for n in NUMERIC + CATEGORICAL + SWITCHES if n != "dataset"),
                         key=lambda n: not (n in PARAMS and PARAMS[n].log))


def axis_label(column: str) -> str:
    return PARAMS[column].short if column in PARAMS else "training images" if column == TRAIN_IMAGES else column


def _created(created: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(created).astimezone().replace(tzinfo=None)
    except (TypeError, ValueError):
        return None


HPARAMS_OPEN_UP_TO = 200  # runs shown: the Runs page draws the hyperparameter charts at once up to this many


def _numbers(records: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in records if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]


def epoch_summary(records: list[dict] | None) -> tuple[float | None, float | None]:
    """(best validation accuracy, median images per second) of a run's epoch records, in plain Python: the
    Runs table computes it for every run of the store (1,000 DataFrames took seconds)."""
    val, speed = _numbers(records or [], "val_accuracy"), _numbers(records or [], "images_per_sec")
    return (max(val) if val else None), (statistics.median(speed) if speed else None)


def epoch_frame(records: list[dict] | None) -> pd.DataFrame:
    """Epoch records as the overlay's rows (only for the ticked runs)."""
    if not records:
        return pd.DataFrame(columns=["epoch"])
    return pd.DataFrame.from_records(records).drop(columns="type", errors="ignore")


def runs_frame(runs: list[RunInfo], epochs: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per readable run, for the Runs table and the HParams view. `epochs` maps run id -> its epoch
    records (RunStore.read_epoch_records)."""
    rows = []
    for info in runs:
        if info.damaged:
            continue
        config, record = info.config, info.record
        best_val, images_per_sec = epoch_summary(epochs.get(info.run_id))
        rows.append({
            "name": info.name, "status": info.status,
            **{name: hyperparameter(config, name) for name in HYPERPARAMETERS}, "dataset": record.dataset or config.dataset,
            TRAIN_IMAGES: record.n_train or (config.train_subset or None),
            "best_val_accuracy": best_val, "test_accuracy": record.test_accuracy, "duration_s": record.duration,
            "images_per_sec": images_per_sec, "created": _created(record.created),
            "problems": "; ".join(info.problems) or None, "run_id": info.run_id,
        })
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    floats = [n for n in HYPERPARAMETERS if FIELD_TYPES[n] is float]
    for column in (*floats, "best_val_accuracy", "test_accuracy", "duration_s", "images_per_sec", TRAIN_IMAGES):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def damaged_frame(runs: list[RunInfo]) -> pd.DataFrame:
    """The store entries that cannot be shown as runs, with the reasons."""
    rows = [{"folder": info.run_id, "reason": "; ".join(info.problems) or "unreadable run folder"}
            for info in runs if info.damaged]
    return pd.DataFrame(rows, columns=["folder", "reason"])


def overlay_figure(curves: dict[str, pd.DataFrame], metric: str) -> go.Figure:
    """One line per run of an epoch metric (a key of EPOCH_METRICS), to compare runs; each run its own hue
    (Streamlit's theme would give the first two runs two blues)."""
    column = EPOCH_METRICS[metric]
    figure = go.Figure()
    for n, (label, epoch) in enumerate(curves.items()):
        if epoch is None or epoch.empty or column not in epoch or epoch[column].isna().all():
            continue
        figure.add_trace(go.Scatter(x=epoch["epoch"], y=epoch[column].astype("float64"), mode="lines+markers",
                                    name=label, line_color=RUN_COLORS[n % len(RUN_COLORS)],
                                    hovertemplate=f"{label}<br>epoch %{{x}}: %{{y:.4f}}"))
    if not figure.data:
        return empty_figure(metric, f"No {metric} recorded for the selected runs")
    longest = max(len(epoch) for epoch in curves.values() if epoch is not None)
    figure.update_layout(height=380, xaxis=dict(title="epoch", dtick=1 if longest <= 20 else None), yaxis_title=metric,
                         margin=dict(t=30, b=100, l=90, r=20), showlegend=True, legend=dict(orientation="h", y=-0.2))
    if "accuracy" in metric:
        figure.update_yaxes(tickformat=".2~%")
    return figure


def group_overlay_figure(groups: dict[str, pd.DataFrame], metric: str) -> go.Figure:
    """One line per seed group (its mean per epoch) inside a band of ± one standard deviation; the size in the
    label."""
    figure = go.Figure()
    for n, (label, curve) in enumerate(groups.items()):
        if curve is None or curve.empty:
            continue
        color = RUN_COLORS[n % len(RUN_COLORS)]
        upper, lower = curve["mean"] + curve["std"], curve["mean"] - curve["std"]
        figure.add_trace(go.Scatter(x=[*curve["epoch"], *curve["epoch"][::-1]], y=[*upper, *lower[::-1]],
                                    fill="toself", line_width=0, fillcolor=color, opacity=0.2, hoverinfo="skip",
                                    showlegend=False, name=f"{label} ± std"))
        figure.add_trace(go.Scatter(x=curve["epoch"], y=curve["mean"], mode="lines+markers", name=label,
                                    line_color=color, customdata=curve[["std", "n"]].to_numpy(),
                                    hovertemplate=f"{label}<br>epoch %{{x}}: %{{y:.4f}} ± %{{customdata[0]:.4f}} "
                                                  f"(n=%{{customdata[1]}})<extra></extra>"))
    if not figure.data:
        return empty_figure(metric, f"No {metric} recorded for the selected runs' groups")
    figure.update_layout(height=380, xaxis_title="epoch", yaxis_title=f"{metric} (mean ± std)",
                         margin={"t": 30, "b": 100, "l": 90, "r": 20}, legend={"orientation": "h", "y": -0.2})
    if "accuracy" in metric:
        figure.update_yaxes(tickformat=".2~%")
    return figure


def _dimension(rows: pd.DataFrame, column: str) -> dict:
    """One axis of the parallel coordinates: categories as ticks, a log axis for a rate, whole numbers for counts."""
    label = axis_label(column).replace(" ", "<br>")  # two lines: a dozen axes' labels fit side by side
    if column in CATEGORICAL:
        categories = sorted(rows[column].astype(str).unique())
        codes = rows[column].astype(str).map({c: i for i, c in enumerate(categories)})
        return dict(label=label, values=codes, tickvals=list(range(len(categories))), ticktext=categories)
    if column in SWITCHES:
        return dict(label=label, values=rows[column].astype(int), tickvals=[0, 1], ticktext=["no", "yes"])
    values = rows[column].astype("float64")
    if column in PARAMS and PARAMS[column].log:
        logs = np.log10(values)
        ticks = np.arange(math.floor(logs.min()), math.ceil(logs.max()) + 1)
        return dict(label=label, values=logs, tickvals=ticks, ticktext=[f"1e{int(t)}" for t in ticks])
    # whole numbers on the counts' axes (Plotly's SI ticks wrote 90 training images as 0.09k)
    integer = column == TRAIN_IMAGES or FIELD_TYPES.get(column) is int
    if values.nunique() == 1:  # one value: one tick at it (Plotly spanned -1 to 1 around it)
        value = float(values.iloc[0])
        text = whole(value) if integer else f"{value:g}"
        return dict(label=label, values=values, range=[value - 1, value + 1], tickvals=[value], ticktext=[text])
    return dict(label=label, values=values, **({"tickformat": ",d"} if integer else {}))


def hparams_figure(table: pd.DataFrame, empty: str | None = None) -> go.Figure:
    """Parallel coordinates of the hyperparameters of finished runs, coloured by test accuracy (`empty`: what to say
    when no run has one)."""
    rows = table.dropna(subset=["test_accuracy"]) if "test_accuracy" in table else table.iloc[0:0]
    if rows.empty:
        return empty_figure("Hyperparameters", empty or NO_ACCURACY)
    # The dataset first: a Fashion-MNIST run's accuracy is not comparable with an MNIST run's.
    order = ["dataset", *(c for c in CATEGORICAL if c != "dataset"), *NUMERIC, *SWITCHES]
    dimensions = [_dimension(rows, column) for column in order if column in rows]
    dimensions.append(dict(label="test<br>accuracy", values=rows["test_accuracy"].astype("float64"), tickformat=".2%"))
    figure = go.Figure(go.Parcoords(
        # reversed Viridis: the best runs dark purple (the plain scale drew them pale yellow on white)
        line=dict(color=rows["test_accuracy"].astype("float64"), colorscale="Viridis_r", showscale=True,
                  colorbar=dict(title="test acc.", tickformat=".1%")),
        dimensions=dimensions,
    ))
    figure.update_layout(height=440, margin=dict(t=85, b=30, l=60, r=115))  # room for two-line labels
    return figure


def hparam_scatter(table: pd.DataFrame, hyperparameter: str, empty: str | None = None) -> go.Figure:
    """Test accuracy against one hyperparameter; one point per finished run."""
    rows = table.dropna(subset=["test_accuracy"]) if "test_accuracy" in table else table.iloc[0:0]
    if rows.empty:
        return empty_figure("Test accuracy", empty or NO_ACCURACY)
    label = axis_label(hyperparameter)
    figure = go.Figure(go.Scatter(x=rows[hyperparameter], y=rows["test_accuracy"], mode="markers",
                                  marker=dict(size=11, color=COLORS["test"]), text=rows["name"],
                                  hovertemplate="%{text}<br>" + label + " %{x}<br>test accuracy %{y:.2%}"))
    figure.update_layout(height=380, xaxis_title=label, yaxis_title="test accuracy",
                         yaxis_tickformat=".1%", margin=dict(t=30, b=90, l=90, r=50))
    if hyperparameter in PARAMS and PARAMS[hyperparameter].log:
        figure.update_xaxes(type="log")
    return figure
