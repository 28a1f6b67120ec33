"""Train: start a run from the sidebar, then follow the live run (or the latest one) as it trains."""

import streamlit as st

from core import figures_training as figures
from core.records import RunStatus
from core.store import RunInfo, StoreError
from dashboard import common, live, live_panel, pages, sidebar

SMOOTHING = "train_smoothing"
ELSEWHERE = "Started by another dashboard or a terminal: Stop asks its trainer through the run store."
STOP_MESSAGE = "train_stop_message"
STATUS_ICONS = {"queued": ":material/hourglass_empty:", "running": ":material/directions_run:",
                "completed": ":material/check_circle:", "stopped": ":material/stop_circle:", "failed": ":material/error:",
                "interrupted": ":material/warning:", "pruned": ":material/content_cut:"}
# Material icons: emoji need a colour-emoji font


def stop(run_id: str, key: str) -> None:
    if not common.armed(key):  # a repeated click that landed on a button that has just appeared
        st.session_state[STOP_MESSAGE] = (run_id, "not yet: this button had only just appeared, so the click was "
                                                  "taken for a repeat; press it again to stop this run")
        return
    st.session_state[STOP_MESSAGE] = (run_id, common.job_manager().stop(run_id))


def stop_button(location, label: str, run_id: str, **kwargs) -> None:
    """Stop (a running run) or Remove from queue (a queued one): armed anew when one turns into the other."""
    armed_as = f"train_stop_{run_id}_{label}"
    common.drawn(armed_as)
    location.button(label, key=f"train_stop_{run_id}", on_click=stop, args=(run_id, armed_as), **kwargs)


def header(info: RunInfo, status: RunStatus) -> None:
    """The run's name and status. A live run's phase (loading data, saving…) is in its live panel, which
    follows it without rerunning the page (a rerun at every phase change fell inside the run's first epochs)."""
    state = status.status
    st.subheader(f"{STATUS_ICONS.get(state, '')} {common.plain(info.name)}")
    st.caption(f"Run `{info.run_id}` · **{state}**")


def queue_panel(runs: list[RunInfo], followed: RunInfo, followed_status: str) -> None:
    """Runs waiting in line, each with the run it waits behind and a "Remove from queue" button.

    followed_status is the followed run's status read after the listing: the run may have started in
    between, and then the progress panel, not this one, shows it (and its Stop button)."""
    manager = common.job_manager()
    names = {r.run_id: r.name for r in runs}
    waiting = sorted((r for r in runs if r.status == "queued" and r.run_id != followed.run_id),
                     key=lambda r: (r.record.created or "", r.run_id))
    if followed_status == "queued":
        waiting.insert(0, followed)
    for info in waiting:
        blocking = manager.blocking(info.run_id) if manager.owns(info.run_id) else None
        position = manager.position(info.run_id)
        behind = f"Queued behind run {common.plain(names.get(blocking, blocking))}" if blocking else "Queued: starts next"
        where = f" (position {position} in line)" if position else ""
        text, button = st.columns([5, 1], vertical_alignment="center")
        text.info(f"**{common.plain(info.name)}** — {behind}{where}", icon=":material/hourglass_empty:")
        # not "Stop": that is the running run's button, drawn right next to this one
        stop_button(button, "Remove from queue", info.run_id, icon=":material/playlist_remove:",
                    help=None if manager.owns(info.run_id) else ELSEWHERE)


def stop_row(info: RunInfo, status: RunStatus) -> None:
    """Stop (or, for a sweep's trial, where to stop it) and what a press did, above the live panel."""
    if status.sweep_id:  # a sweep's trial: the sweep, not this run, is what a user stops
        st.caption(f"Trial {status.trial_number} of sweep `{status.sweep_id}`: stop the sweep on its page.")
        pages.link("sweep", "Open the sweep", query_params={"sweep": status.sweep_id})
    else:
        stop_button(st, "Stop", info.run_id, icon=":material/stop:", type="primary")
        if not common.job_manager().owns(status.task_id or info.run_id):  # task_id: a label audit's fold
            st.caption(ELSEWHERE)
    message = st.session_state.get(STOP_MESSAGE)
    if message and message[0] == info.run_id:
        st.caption(f"Stop requested: {message[1]}. The model is saved and scored on the test set before the run ends.")


def panel(info: RunInfo, status: RunStatus) -> None:
    """The smoothing slider, then the live panel: progress and numbers while the run trains, and its charts.

    While the run is active the browser updates the panel by itself (dashboard/live_panel.py); it reruns this
    page only when the run's status changes."""
    st.slider("Smoothing of the batch curves", 0.0, 0.99, step=0.01, key=SMOOTHING, persist_state="session",
              width=320, help="Exponential moving average, debiased as in TensorBoard; 0 shows the raw values")
    live_panel.show(info.run_id, st.session_state[SMOOTHING], active=status.active, key="train_live",
                    on_change=lambda: None, progress=status.status == "running")


def stopped_text(status: RunStatus) -> str:
    done, epochs, batch = status.epochs_done or 0, status.epochs or "?", status.stopped_batch
    text = f"Stopped after {done} of {epochs} epochs"
    if batch:
        steps = status.steps_per_epoch
        text += f", {batch}{f' of {steps}' if steps else ''} batches into epoch {done + 1}; the saved model is the one at " \
                f"that batch, and the curves' epoch {done + 1} point (hollow) covers only those batches"
    return text + "."


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def summary(info: RunInfo, status: RunStatus, epoch) -> None:
    """The outcome of a run that has ended: test accuracy, time, what it trained on, and where to audit it."""
    state = status.status
    if state == "failed":
        st.error(f"Training failed: {status.error or 'no error message was recorded'}")
    elif state == "interrupted":
        st.warning(f"Interrupted: {status.error or 'the training process stopped before it finished'}")
    elif state == "stopped":
        st.warning(stopped_text(status), icon=":material/stop_circle:")
    accuracy = status.test_accuracy
    images = figures.median_images_per_sec(epoch)
    columns = st.columns(4)
    columns[0].metric("Test accuracy", f"{accuracy:.2%}" if isinstance(accuracy, (int, float)) else "–")
    columns[1].metric("Training time", figures.format_duration(status.duration),  # as the Runs table writes it
                      help="From start to end, with data loading, the epoch snapshots and the final test")
    epochs = status.epochs or "–"
    # an interrupted run may have no epochs_done: count its epoch records (it said "Epochs 30/30" after 4)
    done = status.epochs_done if status.epochs_done is not None else (0 if epoch is None else len(epoch))
    columns[2].metric("Epochs", f"{done}/{epochs}")
    columns[3].metric("Images/s", f"{images:,.0f}" if images else "–", help="Median over the epochs")
    if status.n_train is not None:
        st.caption(f"**Data:** {status.source_detail or 'unknown'} · {status.n_train} training, "
                   f"{_count(status.n_val)} validation, {_count(status.n_test)} test images"
                   + (f" · **{status.n_excluded:,} training image{'s' if status.n_excluded > 1 else ''} left out** "
                      "(excluded training images)"
                      if status.n_excluded else ""))
    else:
        st.caption("**Data:** none loaded: the run ended before its data was read.")
    if status.model_saved:
        # the run goes in the link's URL: only following the link changes the run the audit pages show
        pages.link("evaluate", "Audit this run: accuracy, confusion matrix, errors",
                   query_params={common.RUN_PARAM: info.run_id})
    if info.config is not None:
        if st.button("Use these settings", key=f"train_use_{info.run_id}", icon=":material/replay:",
                     on_click=sidebar.use_settings, args=(info.config, info.name),
                     help="Fills the sidebar form with this run's config; press Train to run it again"):
            st.rerun()  # the summary is in the live fragment: redraw the whole page, so the sidebar shows them


def live_view(training: bool) -> None:
    """Re-read the store on every rerun: the run lives in the worker or a terminal, not in this session.

    training says which interval the fragment was declared with; when the followed run starts or ends, the
    page reruns to declare it again (once a second while training, every few seconds otherwise)."""
    runs = common.list_runs_cached()
    followed = common.followed_run(runs)
    if (followed is not None and followed.active) != training:
        st.rerun(scope="app")
    if followed is None:
        st.info("No run yet. Pick a preset (\"Quick demo\" takes about a minute), then press **Train**.")
        return
    try:
        status = common.store().read_status(followed.run_id)
        epoch = common.read_metrics(followed.run_id)[1]
    except StoreError as exc:  # deleted or damaged between the listing and this read
        st.warning(str(exc))
        return
    header(followed, status)
    queue_panel(runs, followed, status.status)
    if status.status == "running":
        stop_row(followed, status)
    elif not status.active:
        summary(followed, status, epoch)
    try:
        panel(followed, status)
    except StoreError as exc:  # deleted or damaged since the reads above
        st.warning(str(exc))


def follow() -> None:
    """The live view, as a fragment that reruns only while this tab is visible (dashboard/live.py)."""
    followed = common.followed_run(common.list_runs_cached())
    training = followed is not None and followed.active
    st.fragment(run_every=live.interval(training))(live_view)(training)


st.session_state.setdefault(SMOOTHING, 0.6)
sidebar.training_form()
st.title("Train LeNet-5")
st.caption("Start a run from the sidebar. The newest live run is followed here, also one started in a terminal "
           "with `python -m core train`; when nothing trains, the latest run is shown.")
follow()
