"""Runs: every run in the store; compare curves and hyperparameters, rename, delete and download."""

import os

import pandas as pd
import streamlit as st

from core.store import STATUSES, RunInfo, StoreError
from dashboard import common, figures_runs, pages, plotly_start, seed_groups_view, share, sidebar

TABLE = "runs_table"
TICKED = "runs_ticked"  # the run ids ticked in the table: the table itself knows only row positions
DRAWN_IDS = "runs_drawn_ids"  # the run id of each row of the table as last drawn
FILTER_TEXT = "runs_filter_text"
FILTER_STATUS = "runs_filter_status"
FILTER_DATASET = "runs_filter_dataset"
OVERLAY_METRIC = "runs_overlay_metric"
OVERLAY_CHART = "runs_overlay_chart"
AS_GROUPS = "runs_as_groups"
HPARAM_X = "runs_hparam_x"
HPARAMS_OPEN = "runs_hparams_open"
MANAGED = "runs_managed_run"  # the Manage box (widget)
MANAGED_CHOICE = "runs_managed_choice"  # the run chosen in it: the widget alone loses it when the run is renamed
NEW_NAME = "runs_new_name"
CONFIRM_DELETE = "runs_confirm_delete"
MESSAGE = "runs_message"  # (kind, text) left by the last rename or delete


def column_config(key: str, column: figures_runs.Column):
    """Streamlit's column for a figures_runs.Column: the browser writes each cell's text from the value."""
    if column.kind == "date":
        return st.column_config.DatetimeColumn(column.title, format="YYYY-MM-DD HH:mm")
    if column.kind == "duration":  # a time span: "localized" writes it as "2 min, 43 sec"
        return st.column_config.NumberColumn(column.title, format="localized")
    if column.kind == "number":
        return st.column_config.NumberColumn(column.title, format=column.format, step=column.step)
    if column.kind == "check":
        return st.column_config.CheckboxColumn(column.title)
    return st.column_config.TextColumn(column.title, pinned=key == "name")


COLUMNS = {key: column_config(key, column) for key, column in figures_runs.COLUMNS.items()}


def live(info: RunInfo) -> bool:
    """A run whose row can change with no status or config file changing: it is training (its metrics grow), or
    its status comes from a look at its writer's process, not from its file."""
    return not info.damaged and (info.active or info.status != info.stored_status)


@st.cache_data(max_entries=4, show_spinner=False)
def settled_frame(root: str, key: str, live_ids: tuple[str, ...], _runs: tuple[RunInfo, ...]) -> pd.DataFrame:
    """The rows of the runs that are not live, built once per run list (1,000 runs: a tenth of a second)."""
    settled = [info for info in _runs if info.run_id not in live_ids]
    return figures_runs.runs_frame(settled, common.epoch_records(info.run_id for info in settled if not info.damaged))


def runs_frame(runs: list[RunInfo], key: str) -> pd.DataFrame:
    """The table's rows, newest first: the settled runs' from the cache, the live runs' read again."""
    fresh = [info for info in runs if live(info)]
    frame = settled_frame(str(common.store().root), key, tuple(info.run_id for info in fresh), tuple(runs))
    if not fresh:
        return frame
    rows = figures_runs.runs_frame(fresh, common.epoch_records(info.run_id for info in fresh))
    frame = pd.concat([frame, rows], ignore_index=True) if len(frame) else rows
    order = {info.run_id: n for n, info in enumerate(runs)}
    return frame.sort_values("run_id", key=lambda ids: ids.map(order)).reset_index(drop=True)


def filtered(frame: pd.DataFrame) -> pd.DataFrame:
    left, middle, right = st.columns([2, 2, 1])
    text = left.text_input("Filter by name or run id", key=FILTER_TEXT, placeholder="e.g. adam")
    statuses = middle.multiselect("Status", [s for s in STATUSES if s in set(frame["status"])], key=FILTER_STATUS,
                                  placeholder="all statuses")
    datasets = right.multiselect("Dataset", sorted(frame["dataset"].dropna().unique()), key=FILTER_DATASET,
                                 placeholder="all datasets")
    keep = pd.Series(True, index=frame.index)
    if text.strip():
        needle = text.strip().lower()
        keep &= frame["name"].str.lower().str.contains(needle, regex=False) | frame["run_id"].str.contains(needle, regex=False)
    if statuses:
        keep &= frame["status"].isin(statuses)
    if datasets:
        keep &= frame["dataset"].isin(datasets)
    return frame[keep].reset_index(drop=True)


def ticked_runs() -> set[str]:
    """The ticked runs, by run id. The table reports ticks as row positions in the table as it was drawn; a
    delete, a filter or a new run (from any tab or a terminal) moves the rows, so the positions are turned into
    run ids at once, with the ids of the rows as drawn. Ticked runs that the filter hid stay ticked."""
    ticked = set(st.session_state.get(TICKED, ()))
    drawn, state = st.session_state.get(DRAWN_IDS), st.session_state.get(TABLE)
    if drawn is not None and state is not None:
        rows = state["selection"]["rows"]
        ticked = (ticked - set(drawn)) | {drawn[r] for r in rows if 0 <= r < len(drawn)}
    return ticked


def runs_table(frame: pd.DataFrame, all_ids: list[str]) -> pd.DataFrame:
    """The sortable table; returns the ticked runs among the rows shown."""
    ids, known = frame["run_id"].tolist(), set(all_ids)
    ticked = {run_id for run_id in ticked_runs() if run_id in known}  # a deleted run is no longer ticked
    st.session_state[TICKED] = sorted(ticked)
    st.session_state[DRAWN_IDS] = ids
    st.session_state[TABLE] = {"selection": {"rows": [i for i, run_id in enumerate(ids) if run_id in ticked],
                                             "columns": [], "cells": []}}
    st.dataframe(figures_runs.table_frame(frame), column_config=COLUMNS, hide_index=True, key=TABLE, on_select="rerun",
                 placeholder=figures_runs.MISSING,  # an empty cell: a dash, not "None"
                 selection_mode="multi-row", width="stretch")
    return frame[frame["run_id"].isin(ticked)]


@st.fragment
def table_and_curves(shown: pd.DataFrame, all_ids: list[str], runs: list[RunInfo], key: str) -> None:
    """The table and the curves of its ticked runs, on their own: a tick reruns only this part (with 1,000 runs,
    rerunning the whole page took seconds)."""
    selected = runs_table(shown, all_ids)
    compare(selected, runs, key)


def compare(selected: pd.DataFrame, runs: list[RunInfo], key: str) -> None:
    st.subheader("Compare runs")
    # No chart before the first tick: an empty one there cost every visit Plotly's start in the browser (0.6
    # CPU-s warm, 2.8 cold: bench/RESULTS.md, issue 21.12); the first tick pays it instead.
    if selected.empty:
        st.caption("Select rows in the table (the boxes on the left) to overlay their curves.")
        return
    metric = st.selectbox("Metric", list(figures_runs.EPOCH_METRICS), key=OVERLAY_METRIC)
    if st.toggle("As seed groups (mean ± std)", key=AS_GROUPS,
                 help="Each ticked run's seed group (runs differing only in the seed) as its mean and a ± std band"):
        groups = seed_groups_view.group_curves(runs, key, list(selected["run_id"]), metric)
        st.plotly_chart(figures_runs.group_overlay_figure(groups, metric), key="runs_group_overlay_chart")
    else:
        overlay(selected, metric)
    if len(selected) == 2:
        run_a, run_b = selected["run_id"]
        pages.link("compare", "Is the difference real? Compare the two", query_params={"a": run_a, "b": run_b})
        share.comparison_button(run_a, run_b)
    else:
        st.caption("Tick exactly two runs to test their difference and for a comparison report (one HTML file).")


def overlay(selected: pd.DataFrame, metric: str) -> None:
    labels, epochs = {}, common.epoch_records(selected["run_id"])
    for row in selected.itertuples():
        label = row.name if row.name not in labels else f"{row.name} ({row.run_id})"
        labels[label] = figures_runs.epoch_frame(epochs.get(row.run_id))
    st.plotly_chart(figures_runs.overlay_figure(labels, metric), key=OVERLAY_CHART)
    column = figures_runs.EPOCH_METRICS[metric]
    missing = [label for label, epoch in labels.items()
               if epoch is None or column not in epoch or epoch[column].isna().all()]
    if missing:
        st.caption(f"No {metric} recorded for: {', '.join(missing)}.")


def hparams(frame: pd.DataFrame, filtered_out: bool) -> None:
    # Open at first for a store of up to figures_runs.HPARAMS_OPEN_UP_TO runs. A larger one draws the charts only
    # once the user opens the section: 1,000 runs' parallel coordinates took the browser seconds on every rerun.
    section = st.expander("**Hyperparameters against test accuracy**", key=HPARAMS_OPEN, on_change="rerun",
                          expanded=len(frame) <= figures_runs.HPARAMS_OPEN_UP_TO)
    if not section.open:
        return
    with section:
        hparams_charts(frame, filtered_out)


def hparams_charts(frame: pd.DataFrame, filtered_out: bool) -> None:
    empty = "No run shown has a test accuracy: change the filters above" if filtered_out else None
    parallel, scatter = st.tabs(["Parallel coordinates", "Scatter"])
    with parallel:
        st.plotly_chart(figures_runs.hparams_figure(frame, empty), key="runs_hparams_chart")
        st.caption("One line per run with a test accuracy; drag along an axis to highlight a range.")
    with scatter:
        x = st.selectbox("Hyperparameter", figures_runs.SCATTER_CHOICES, key=HPARAM_X,
                         format_func=figures_runs.axis_label)
        st.plotly_chart(figures_runs.hparam_scatter(frame, x, empty), key="runs_scatter_chart")


def rename(run_id: str) -> None:
    try:
        common.store().rename(run_id, st.session_state[NEW_NAME])
        st.session_state[MESSAGE] = ("success", f"Renamed to {st.session_state[NEW_NAME].strip()!r}.")
    except StoreError as exc:
        st.session_state[MESSAGE] = ("error", str(exc))


def delete(run_id: str, name: str) -> None:
    st.session_state[CONFIRM_DELETE] = False
    if common.job_manager().owns(run_id):
        st.session_state[MESSAGE] = ("error", f"Run {name!r} is in the training queue; stop it on the Train page first.")
        return
    try:
        common.store().delete(run_id)
        st.session_state[MESSAGE] = ("success", f"Deleted run {name!r}.")
    except (StoreError, OSError) as exc:
        st.session_state[MESSAGE] = ("error", f"Not deleted: {exc}")


def manage(runs: list[RunInfo], key: str, first_ticked: str | None) -> None:
    st.subheader("Manage a run")
    readable_first = sorted((r for r in runs if r.path.is_dir()), key=lambda r: r.damaged)
    choices = {r.run_id: r for r in readable_first}
    if not choices:
        st.caption("No run to manage.")
        return
    ids = list(choices)
    # The labels hold the run's name: kept by run id, the box stays on a run that is renamed (it used to fall
    # back to the first run, so the next Rename or Delete hit another run).
    current = st.session_state.get(MANAGED_CHOICE)
    if current not in ids:
        current = first_ticked if first_ticked in choices else ids[0]
    run_id = common.kept_selectbox(st, "Run", ids, current, choice_key=MANAGED_CHOICE, widget_key=MANAGED,
                                   format_func=lambda i: f"{choices[i].name} · {choices[i].status} · {i}")
    info = choices[run_id]
    rename_column, delete_column, download_column = st.columns(3)
    with rename_column.form("runs_rename_form", border=True):
        st.text_input("New name", key=NEW_NAME, max_chars=100, placeholder=info.name)
        st.form_submit_button("Rename", on_click=rename, args=(run_id,), disabled=info.damaged)
    with delete_column.container(border=True):
        if info.active:
            st.warning(f"This run is {info.status}; it cannot be deleted until it ends. Stop it on the Train page.")
        st.checkbox("I understand: this deletes the run folder, its model and its metrics for good",
                    key=CONFIRM_DELETE, disabled=info.active)
        st.button("Delete run", type="primary", on_click=delete, args=(run_id, info.name),
                  disabled=info.active or not st.session_state[CONFIRM_DELETE])
    with download_column.container(border=True):
        downloads(info)
    with st.container(border=True, key="runs_export"):
        share.export_section(info)
    seed_groups_view.repeat_section(info, runs, key)
    if st.button("Use these settings on the Train page", key="runs_use_settings", icon=":material/replay:",
                 disabled=info.damaged, on_click=sidebar.use_settings, args=(info.config, info.name)):
        pages.switch_to("train")


def downloads(info: RunInfo) -> None:
    store = common.store()
    if info.damaged:
        st.caption("Damaged runs have nothing reliable to download.")
        return
    has_model = store.has_model(info.run_id)
    st.download_button("Model (.keras)", data=lambda: store.model_bytes(info.run_id),
                       file_name=f"{info.run_id}.keras", mime="application/zip", on_click="ignore",
                       disabled=not has_model, key="runs_download_model", icon=":material/download:")
    if not has_model:
        st.caption("No model saved (yet) for this run.")
    st.download_button("Metrics (.csv)", data=lambda: store.metrics_csv(info.run_id),
                       file_name=f"{info.run_id}-metrics.csv", mime="text/csv", on_click="ignore",
                       key="runs_download_metrics", icon=":material/download:")
    st.download_button("Config (.json)", data=lambda: store.config_json(info.run_id),
                       file_name=f"{info.run_id}-config.json", mime="application/json", on_click="ignore",
                       key="runs_download_config", icon=":material/download:")


def damaged(runs: list[RunInfo]) -> None:
    table = figures_runs.damaged_frame(runs)
    if table.empty:
        return
    st.subheader("Damaged entries")
    st.caption("These folders or files in the store cannot be read as runs; they are left untouched.")
    st.dataframe(table, hide_index=True, key="runs_damaged_table", width="stretch")


def main() -> None:
    st.title("Runs")
    # the store's folder by its name, not its absolute path: the browser has no use for this machine's layout
    where = "the folder LENET_RUNS names" if "LENET_RUNS" in os.environ else "`cached_models/`"
    st.caption(f"Every run in {where}, newest first. Click a column header to sort.")
    message = st.session_state.pop(MESSAGE, None)
    if message:
        (st.success if message[0] == "success" else st.error)(common.plain(message[1]))  # it names a run
    runs, key = common.list_runs_cached(), common.run_list_key()
    frame = runs_frame(runs, key)
    if frame.empty:
        st.info("No runs yet. Start one on the Train page, or with `python -m core train` in a terminal.")
    else:
        shown = filtered(frame)
        st.caption(f"{len(shown)} of {len(frame)} runs shown.")
        table_and_curves(shown, frame["run_id"].tolist(), runs, key)
        seed_groups_view.groups_section(runs, key)
        hparams(shown, filtered_out=len(shown) < len(frame))
    if runs:
        ticked = set(st.session_state.get(TICKED, ()))
        manage(runs, key, next((run_id for run_id in frame["run_id"] if run_id in ticked), None))
    damaged(runs)
    plotly_start.start_when_idle()  # the curves appear only once a row is ticked: be ready when it is


main()
