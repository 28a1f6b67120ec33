"""What every page shares: the run store, the shared run selector, and cached reads keyed on file changes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
from collections import Counter

import streamlit as st

from core.store import RunInfo, RunStore, StoreError

SELECTED_RUN = "common_selected_run"  # session-state key of the run the audit pages look at
DEFAULT_SHOWN = "common_default_run"  # the default the selector last showed: a choice equal to it is no choice
URL_RUN = "common_url_run"  # the ?run= the selector last put in the URL (or took from it)
RUN_PARAM = "run"  # the audit pages' query parameter naming the run
RUN_WIDGET = "common_run_widget"  # the selector that shows it


MARKDOWN_INLINE = re.compile(r"([\\`*_{}\[\]()!|:<>~$&])")  # what acts anywhere in a line
MARKDOWN_LINE_START = re.compile(r"^([#+\-=])")  # what acts only at its start (headings, lists)
ORDERED_ITEM = re.compile(r"^(\d+)([.)])")


def plain(text: str) -> str:
    """A name or text a user wrote, shown as itself inside Markdown: the Markdown characters escaped, so a run
    named `![p](http://host/pixel.png)` or `:red[**HUGE**]` neither loads an image nor restyles the page."""
    escaped = MARKDOWN_INLINE.sub(r"\\\1", " ".join(str(text).split()))
    if ORDERED_ITEM.match(escaped):  # "1. item": the escape goes on the dot (a digit cannot be escaped)
        return ORDERED_ITEM.sub(r"\1\\\2", escaped)
    return MARKDOWN_LINE_START.sub(r"\\\1", escaped)


def store() -> RunStore:
    """A RunStore on cached_models/ (or $LENET_RUNS); cheap, so made per call and never stale."""
    return RunStore()


def list_runs() -> list[RunInfo]:
    try:
        return store().list_runs()
    except StoreError as exc:
        st.error(str(exc))
        return []


def run_label(info: RunInfo) -> str:
    accuracy = info.record.test_accuracy
    shown = f" · {accuracy:.2%}" if isinstance(accuracy, (int, float)) else ""
    return f"{info.name} ({info.status}{shown})"


def unique_labels(runs: list[RunInfo]) -> dict[str, str]:
    """run_label for each run, with the run id added where two runs would read the same (a preset trained twice
    under one name). Streamlit's selectbox tells its options apart by their labels: two equal labels would
    both select the first of them."""
    labels = {r.run_id: run_label(r) for r in runs}
    counts = Counter(labels.values())
    return {run_id: f"{label} · {run_id}" if counts[label] > 1 else label for run_id, label in labels.items()}


def run_selector(location=st.sidebar) -> RunInfo | None:
    """The one run selector shared by the audit pages (app.py draws it); the choice persists across pages.

    The run is the user's choice (the box, or a link whose URL names it in `?run=`), else the default: the run
    training now once it has an epoch, else the newest finished run with a model. Visiting another page never
    changes it. The choice lives in SELECTED_RUN; the widget only shows it, and the URL carries it."""
    choices = [r for r in list_runs() if not r.damaged]
    if not choices:
        st.session_state[SELECTED_RUN] = None
        return None
    ids = [r.run_id for r in choices]
    _take_run_from_url(ids, location)
    current, default = st.session_state.get(SELECTED_RUN), _default_run(choices)
    if current and current not in ids:  # chosen earlier, and deleted or damaged since (another tab, a terminal)
        try:
            store().read_status(current)  # raises "run ... not found in ..." for a deleted run
            reason = f"run {current!r} is damaged (the Runs page lists why)"
        except StoreError as exc:
            reason = str(exc)
        location.info(f"{reason}; showing another run.")
        current = None
    if current is None or current == st.session_state.get(DEFAULT_SHOWN):  # nobody chose: follow the default
        current = default
    st.session_state[DEFAULT_SHOWN] = default
    labels = unique_labels(choices)
    kept_selectbox(location, "Run", ids, current, choice_key=SELECTED_RUN, widget_key=RUN_WIDGET,
                   format_func=labels.get)
    st.query_params[RUN_PARAM] = st.session_state[URL_RUN] = current  # a copied URL opens this run
    return next(r for r in choices if r.run_id == current)


def _take_run_from_url(ids: list[str], location) -> None:
    """A `?run=` the selector has not put there itself (a link followed, a URL pasted) is the user's choice."""
    requested = st.query_params.get(RUN_PARAM)
    if not requested or requested == st.session_state.get(URL_RUN):
        return
    st.session_state[URL_RUN] = requested
    if requested in ids:
        st.session_state[SELECTED_RUN] = requested
    else:  # the id is not echoed: it comes from a URL anyone can write
        location.info("The link names a run that is not in this store or cannot be read; showing another run.")


def kept_selectbox(location, label: str, options: list, current, *, choice_key: str, widget_key: str, format_func):
    """A selectbox showing `current`, whose choice lives by value in session_state[choice_key].

    Streamlit's selectbox tells its options apart by their labels. When a label changes (a run renamed), the
    browser's choice matches no option and the box falls back to the first one; and a choice made elsewhere
    (a link to a run) must win over the widget's remembered value. So the choice is kept under its own key,
    handed to the widget at every script run, and copied back when the user picks another option."""
    st.session_state[choice_key] = st.session_state[widget_key] = current
    return location.selectbox(label, options, format_func=format_func, key=widget_key,
                              on_change=_copy_state, args=(widget_key, choice_key))


def _copy_state(source: str, target: str) -> None:
    st.session_state[target] = st.session_state[source]


def current_run() -> RunInfo | None:
    """The run chosen in the shared selector, re-read from the store; shows a message and returns None if none."""
    run_id = st.session_state.get(SELECTED_RUN)
    if run_id:
        try:
            return store().inspect(store().run_dir(run_id))
        except StoreError:
            pass
    st.info("No run to show yet. Train one on the Train page, or with `python -m core train`.")
    return None


def _has_epoch(run_id: str) -> bool:
    try:
        return bool(store().epochs_saved(run_id))
    except StoreError:  # deleted since it was listed
        return False


def _default_run(runs: list[RunInfo]) -> str:
    """The run training now once it has finished an epoch, else the newest finished run that has a model."""
    for info in runs:
        if info.status == "running" and _has_epoch(info.run_id):
            return info.run_id
    for info in runs:
        if info.record.model_saved:
            return info.run_id
    return runs[0].run_id


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def load_model(run_id: str, version: tuple):
    """The run's Keras model (safe_mode). `version` is the store's version(run_id), so a re-saved model reloads."""
    return store().load_model(run_id)


# ----- shared by the Train and Runs pages ------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _job_manager(root: str):
    from dashboard.worker import JobManager

    return JobManager(RunStore(root))


def job_manager():
    """The process-wide training queue for this store: one per server, shared by every tab and session."""
    return _job_manager(str(store().root.resolve()))


def prestart_training() -> None:
    """Load the training process (and TensorFlow) in a few seconds, before the user presses Train: the training
    form calls this (the Train and Sweep pages' sidebar). LENET_WORKER_PRESTART=0 waits for the first Train
    instead: the test suite, whose many short-lived stores would each start a process of several hundred MB,
    sets it."""
    if os.environ.get("LENET_WORKER_PRESTART", "1") != "0":
        job_manager().prestart()


@st.cache_resource(show_spinner=False)
def _mark_interrupted_once(root: str, _current: RunStore) -> threading.Thread:
    """In the background: the run list already reads such runs as interrupted; writing it down (and removing
    dead writers' temporary files) looks into every run's folder, 0.2 s of 1,000 runs. The server's warm start
    (dashboard/warm_start.py) calls this as it starts, from the run list it has just read: done during the first
    page, it took the page's script the GIL for a second (bench/RESULTS.md, session 17)."""
    def mark() -> None:  # runs of this process carry its live pid, so the job manager's own are never touched
        with contextlib.suppress(StoreError):
            _current.mark_interrupted(cached_runs(_current))  # the store it was started for, whatever comes later

    thread = threading.Thread(target=mark, name="lenet-mark-interrupted", daemon=True)
    thread.start()
    return thread


def mark_interrupted_once() -> threading.Thread:
    """Persist 'interrupted' for runs whose process died, once per server and store (in the background)."""
    current = store()
    return _mark_interrupted_once(str(current.root.resolve()), current)


def startup() -> None:
    """Once per server and store: start the job manager (the training process starts with the first training form
    shown, prestart_training), then persist 'interrupted' for runs whose process died."""
    job_manager()
    mark_interrupted_once()


@st.cache_resource(max_entries=8, ttl=60, show_spinner=False)  # ttl: a safety net if a change kept the signature
def _cached_runs(root: str, signature: str) -> tuple[RunInfo, ...]:
    # A resource, not data: shared as is (never modified), not copied on every call as cache_data would copy
    # 1,000 runs. The key is a digest of the store's signature: hashing the signature itself took 0.3 s.
    return tuple(RunStore(root).list_runs())


def run_list_key(current: RunStore | None = None) -> str:
    """What cached listings are keyed on: a digest of the store's signature (its runs' status and config files).
    It changes when a run is added, removed, renamed, or changes status. current: the store (default: store())."""
    return hashlib.sha1(repr((current or store()).signature()).encode()).hexdigest()


def cached_runs(current: RunStore | None = None) -> list[RunInfo]:
    """list_runs(), re-read only when a run's files change: cheap enough for a fragment that reruns every second.
    Raises StoreError (list_runs_cached() shows it on the page).

    The runs that were active when listed are looked at again on every call (a few status files): whether their
    writer is still alive changes no file (a killed terminal, a silent heartbeat)."""
    current = current or store()
    runs = list(_cached_runs(str(current.root), run_list_key(current)))
    for n, info in enumerate(runs):
        if info.active:
            runs[n] = current.inspect(info.path)
    return runs


def list_runs_cached() -> list[RunInfo]:
    """cached_runs(), with a store that cannot be read shown on the page (and no runs)."""
    try:
        return cached_runs()
    except StoreError as exc:
        st.error(str(exc))
        return []


def epoch_records(run_ids) -> dict[str, list[dict]]:
    """Run id -> its epoch records, for the runs that can still be read (not the batch records: a store may hold
    1,000 runs)."""
    records, current = {}, store()
    for run_id in run_ids:
        try:
            records[run_id] = current.read_epoch_records(run_id)
        except StoreError:  # deleted since it was listed
            continue
    return records


def read_metrics(run_id: str):
    """(batch rows, epoch rows) of a run. The store keeps the parsed records and frames and reads only what was
    appended, so there is no Streamlit cache here (one of 64 entries, copied on every call, used to thrash)."""
    return store().read_metrics(run_id)


def _when(info: RunInfo, *fields: str) -> str:
    return next((getattr(info.record, f) for f in fields if isinstance(getattr(info.record, f), str)), "")


def followed_run(runs: list[RunInfo]) -> RunInfo | None:
    """The run the Train page follows: the running one, else the first queued, else the latest that trained.

    Chosen from the store alone, so every tab, a reload and a run started in a terminal agree.
    """
    usable = [r for r in runs if not r.damaged]
    running = [r for r in usable if r.status == "running"]
    if running:
        return max(running, key=lambda r: (_when(r, "started", "created"), r.run_id))
    queued = [r for r in usable if r.status == "queued"]
    if queued:
        return min(queued, key=lambda r: (_when(r, "created"), r.run_id))
    # A run stopped while queued has no curves; one that failed before it started still has its error to show.
    trained = [r for r in usable if r.record.started or r.status == "failed"]
    return max(trained, key=lambda r: (_when(r, "ended", "updated", "created"), r.run_id), default=None)


# ----- clicks that act once ----------------------------------------------------------------------------

ARM_SECONDS = 1.0  # a button younger than this ignores clicks: they were aimed at what was there before


def drawn(key: str) -> None:
    """Note when the button `key` first appeared in this session (call it where the button is drawn)."""
    st.session_state.setdefault(f"common_drawn_{key}", time.monotonic())


def armed(key: str) -> bool:
    """Whether a click on the button `key` is meant for it: it has been on the screen for ARM_SECONDS.

    When Stop ends a run, the next run's Stop (or a queued run's Remove) appears under the pointer; fast
    repeated clicks would stop it too. A button that has just appeared ignores them."""
    first = st.session_state.get(f"common_drawn_{key}")
    return first is not None and time.monotonic() - first >= ARM_SECONDS
