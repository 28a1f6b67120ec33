"""Sweep: define an Optuna search over the sidebar's config, run it in the training queue, and follow its trials."""

import pandas as pd
import streamlit as st

from core.config import PARAMS, PRESETS
from core.store import StoreError
from core.sweep_space import MODES, SAMPLERS, SEARCHABLE, SpaceError, make_spec, space_from_rows
from dashboard import common, live, loaders, pages, sidebar
from dashboard.figures_sweep import FIGURES

SWEEP_PARAM = "sweep"  # the query parameter naming the sweep shown
CHOSEN = "sweep_chosen"
MESSAGE = "sweep_message"  # (kind, text) left by the last button
SPACE_EDITOR = "sweep_space_editor"
TRIALS = "sweep_trials"  # the trials table: a click on a row opens that trial's run
TRIALS_DRAWN = "sweep_trials_drawn"  # the drawn rows' trial numbers, in table order (the click names a row)
LISTED = "sweep_trial_listed"  # the clicked trial whose runs are listed (several seeds, or none)
SIDEBAR_BASE = "The sidebar's values"
DEFAULT_SPACE = {"learning_rate": ("log range", "0.0001:0.01"), "batch_size": ("choices", "64,128,256"),
                 "dropout": ("range", "0:0.5")}
STATE_ICONS = {"running": ":material/directions_run:", "finished": ":material/check_circle:",
               "stopped": ":material/stop_circle:", "waiting": ":material/pause_circle:"}


def task_id(sweep_id: str) -> str:
    return f"sweep-{sweep_id}"


def busy(sweep_id: str, summary) -> bool:
    """A trial runs, or this dashboard has the sweep in its queue: follow it once a second."""
    return summary.state == "running" or common.job_manager().owns(task_id(sweep_id))


def start(sweep_id: str, parallel: int, name: str) -> None:
    common.job_manager().submit_task("sweep", {"sweep_id": sweep_id, "parallel": int(parallel)}, task_id(sweep_id),
                                     label=f"sweep {name}")


def space_table() -> pd.DataFrame:
    rows = [{"field": name, "parameter": PARAMS[name].label, "how": DEFAULT_SPACE.get(name, ("fixed", ""))[0],
             "values": DEFAULT_SPACE.get(name, ("fixed", ""))[1]} for name in SEARCHABLE]
    return pd.DataFrame(rows)


def new_sweep_form() -> None:
    with st.expander("New sweep", icon=":material/add:", expanded=not common.store().list_sweeps()):
        name = st.text_input("Sweep name", value="lr and batch", max_chars=80)
        left, right = st.columns(2)
        base_name = left.selectbox("Base config", [SIDEBAR_BASE, *PRESETS],
                                   help="Every field that is fixed below keeps this config's value")
        sampler = right.selectbox("Search", SAMPLERS, format_func={"tpe": "TPE (Optuna's default)",
                                  "random": "Random", "grid": "Grid (choices only)"}.get)
        st.caption("Search space: each field fixed (empty keeps the base config's value), a list of choices "
                   "(64,128,256) or a range (0:0.5; a log range for rates, 0.0001:0.01).")
        edited = st.data_editor(space_table(), key=SPACE_EDITOR, hide_index=True, width="stretch", column_config={
            "field": None, "parameter": st.column_config.TextColumn("Parameter", disabled=True),
            "how": st.column_config.SelectboxColumn("How", options=list(MODES), required=True),
            "values": st.column_config.TextColumn("Values")})
        columns = st.columns(4)
        trials = columns[0].number_input("Trials", 1, 1000, 8)
        seeds = columns[1].number_input("Seeds per configuration", 1, 10, 1,
                                        help="Runs per trial, seeds base, base + 1, …; the objective is their mean")
        parallel = columns[2].number_input("Trials at once", 1, 8, 1, help="More than 1 starts more workers")
        pruning = columns[3].toggle("Pruning", value=True, help="Optuna's median pruner on each epoch's "
                                    "validation accuracy: a poor trial ends early, as pruned, and its run is kept")
        st.caption("Objective: validation accuracy (never the test set; test accuracy is shown beside it).")
        if st.button("Create and run", type="primary", icon=":material/play_arrow:"):
            create(name, base_name, edited, int(trials), int(seeds), sampler, pruning, int(parallel))


def create(name, base_name, edited, trials, seeds, sampler, pruning, parallel) -> None:
    from core.sweep import create_sweep

    try:
        base = sidebar.config_from_state() if base_name == SIDEBAR_BASE else PRESETS[base_name]
        space = space_from_rows(list(edited[["field", "how", "values"]].itertuples(index=False, name=None)))
        spec = make_spec(name, base, space, n_trials=trials, seeds=seeds, sampler=sampler, pruning=pruning)
        sweep_id = create_sweep(common.store(), spec)
        start(sweep_id, parallel, spec.name)
    except (SpaceError, ValueError, StoreError) as exc:
        st.error(f"Not created: {exc}", icon=":material/block:")
        return
    st.session_state[CHOSEN] = sweep_id
    st.session_state[MESSAGE] = ("success", f"Sweep {spec.name} created and queued: {spec.n_trials} trials.")
    st.rerun()


def sweep_names(sweeps: tuple[str, ...]) -> dict[str, str]:
    from core.sweep import read_spec

    names = {}
    for sweep_id in sweeps:
        try:
            names[sweep_id] = read_spec(common.store(), sweep_id).name
        except StoreError:
            names[sweep_id] = "(unreadable)"
    return names


def chosen_sweep(sweeps: list[str]) -> str | None:
    requested = st.query_params.get(SWEEP_PARAM)
    if requested in sweeps and CHOSEN not in st.session_state:
        st.session_state[CHOSEN] = requested
    if st.session_state.get(CHOSEN) not in sweeps:
        st.session_state[CHOSEN] = sweeps[0] if sweeps else None
    if not sweeps:
        return None
    names = sweep_names(tuple(sweeps))
    chosen = st.selectbox("Sweep", sweeps, key=CHOSEN, format_func=lambda s: f"{names.get(s, s)} · {s}")
    st.query_params[SWEEP_PARAM] = chosen
    return chosen


def controls(sweep_id: str, summary) -> None:
    from core.sweep import request_stop

    manager = common.job_manager()
    row = st.container(horizontal=True)
    if summary.state == "running" or manager.owns(task_id(sweep_id)):
        if row.button("Stop", icon=":material/stop:", type="primary", key="sweep_stop",
                       help="Running trials end as stopped; no more start"):
            request_stop(common.store(), sweep_id)
            manager.stop(task_id(sweep_id))
            st.session_state[MESSAGE] = ("info", "Stop requested: running trials end as stopped within a second.")
            st.rerun()
        return
    if summary.state in ("waiting", "stopped") and row.button("Resume", icon=":material/play_arrow:",
                                                              key="sweep_resume", help="Run the trials left"):
        start(sweep_id, 1, summary.name)
        st.rerun()
    if row.button("Delete sweep", icon=":material/delete:", key="sweep_delete",
                     help="Deletes the study; its trials' runs stay on the Runs page"):
        common.store().delete_sweep(sweep_id)
        st.session_state.pop(CHOSEN, None)
        st.session_state[MESSAGE] = ("info", f"Sweep {summary.name} deleted; its runs stay in the store.")
        st.rerun()


def headline(summary, frame: pd.DataFrame) -> None:
    st.subheader(f"{STATE_ICONS.get(summary.state, '')} {common.plain(summary.name)}")
    st.caption(f"Sweep `{summary.sweep_id}` · **{summary.state}** · {summary.sampler}, pruning "
               f"{'on' if summary.pruning else 'off'}, {summary.seeds} seed(s) per trial · space: {summary.space}")
    best = summary.best or {}
    columns = st.columns(4)
    columns[0].metric("Trials", f"{len(frame)}/{summary.n_trials}")
    columns[1].metric("Best validation accuracy", f"{best['val_accuracy']:.2%}" if best else "–")
    test = best.get("test_accuracy")
    columns[2].metric("Its test accuracy", f"{test:.2%}" if test is not None else "–")
    columns[3].metric("Pruned / failed", f"{summary.counts['pruned']} / {summary.counts['failed']}")


def clicked_trial() -> int | None:
    """The trial whose row was clicked since the last script run, else None. The click is taken once: the table
    is drawn again with no row selected, so coming back to this page opens nothing by itself."""
    state, drawn = st.session_state.get(TRIALS), st.session_state.get(TRIALS_DRAWN)
    st.session_state[TRIALS] = {"selection": {"rows": [], "columns": [], "cells": []}}
    rows = state["selection"]["rows"] if state else []
    if not rows or drawn is None or not 0 <= rows[0] < len(drawn):
        return None
    return drawn[rows[0]]


def open_trial(trial: pd.Series) -> None:
    """A clicked trial of one run: that run opens on Evaluate, chosen as the "Audit this run" links choose it (the
    audit pages' run selector takes ?run= from the URL)."""
    if len(trial["runs"]) == 1:
        pages.switch_to("evaluate", {common.RUN_PARAM: trial["runs"][0]})


def trial_links(trial: pd.Series) -> None:
    """A clicked trial of several seeds lists their runs; a trial without a run says why."""
    if not trial["runs"]:
        st.info(f"Trial {trial['trial']} has no run: {trial['error'] or 'it ended before training began'}.")
    for run_id in trial["runs"]:
        pages.link("evaluate", f"Open trial {trial['trial']}'s run {run_id}", query_params={common.RUN_PARAM: run_id})


def trials_table(sweep_id: str, frame: pd.DataFrame, searched: list[str]) -> None:
    clicked = clicked_trial()
    st.session_state[TRIALS_DRAWN] = [int(n) for n in frame["trial"]]
    shown = frame.drop(columns=["runs"]).assign(error=frame["error"].fillna(""))
    config = {"trial": st.column_config.NumberColumn("Trial", pinned=True),
              "state": st.column_config.TextColumn("State"), "node": st.column_config.TextColumn("Node"),
              "error": st.column_config.TextColumn("Error"),
              "val_accuracy": st.column_config.NumberColumn("Validation acc.", format="percent"),
              "test_accuracy": st.column_config.NumberColumn("Test acc.", format="percent"),
              "duration_s": st.column_config.NumberColumn("Duration (s)", format="%.1f"),
              **{name: st.column_config.Column(PARAMS[name].short) for name in searched}}
    st.dataframe(shown, hide_index=True, column_config=config, on_select="rerun", placeholder="–",
                 selection_mode="single-row", key=TRIALS, width="stretch")
    listed_sweep, listed = st.session_state.get(LISTED, (None, None))
    rows = frame[frame["trial"] == (clicked if clicked is not None else listed if listed_sweep == sweep_id else -1)]
    if clicked is not None and len(rows):
        open_trial(rows.iloc[0])
        st.session_state[LISTED] = (sweep_id, clicked)  # several runs or none: listed below until another click
    if len(rows):
        trial_links(rows.iloc[0])
    else:
        st.caption("Click a trial to open its run on the audit pages.")


def figures(sweep_id: str, version: tuple, searched: list[str]) -> None:
    built = loaders.sweep_figures(str(common.store().root), sweep_id, version, tuple(searched))
    for names in (("history", "parallel"), ("importance", "slice"), ("contour",)):
        for column, name in zip(st.columns(len(names)), names):
            column.markdown(f"**{FIGURES[name][0]}**")
            shown = built[name]
            if isinstance(shown, str):
                column.caption(shown)
            else:
                column.plotly_chart(shown, key=f"sweep_fig_{name}", config={"displaylogo": False})


def sweep_view(sweep_id: str, running: bool) -> None:
    store = common.store()
    version = store.sweep_version(sweep_id)
    try:
        spec, frame, summary = loaders.sweep_state(str(store.root), sweep_id, version)
    except StoreError as exc:
        st.warning(str(exc))
        return
    if busy(sweep_id, summary) != running:
        st.rerun(scope="app")
    headline(summary, frame)
    controls(sweep_id, summary)
    searched = list(spec.space)
    trials_table(sweep_id, frame, searched)
    figures(sweep_id, version, searched)


sidebar.training_form()
st.title("Sweep")
st.caption("A search over the sidebar's config (or a preset) with Optuna. Every trial is an ordinary run: the "
           "Train page follows the running one, the Runs page lists them all. From a terminal: "
           "`python -m core sweep`.")
message = st.session_state.pop(MESSAGE, None)
if message:
    getattr(st, message[0])(message[1])
new_sweep_form()
chosen = chosen_sweep(common.store().list_sweeps())
if chosen is None:
    st.info("No sweep yet: define one above and press **Create and run**.")
else:
    try:
        _, _, now = loaders.sweep_state(str(common.store().root), chosen, common.store().sweep_version(chosen))
        following = busy(chosen, now)
    except StoreError:
        following = False
    st.fragment(run_every=live.interval(following))(sweep_view)(chosen, following)
