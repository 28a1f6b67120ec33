"""The Train page's sidebar: a preset picker and one form with a control for every TrainConfig field."""

from __future__ import annotations

import dataclasses
import re

import streamlit as st

from core.config import CHOICES, PRESETS, RANGES, TrainConfig
from dashboard import common

PRESET = "train_preset"
NAME = "train_name"
SUBMIT = "train_submit"
FORM_ERROR = "train_form_error"  # (field or None, message) of the last rejected submit
SUBMITTED = "train_submitted_run"  # run id of the last run this session submitted
CUSTOM = "Custom"
DEFAULTS = TrainConfig()
SEED_ONLY = ("activation", "pooling", "dropout")
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")
PERSIST = "session"  # the controls keep their values when the user visits another page and comes back


def key(field: str) -> str:
    """Session-state key of the control for a TrainConfig field."""
    return f"train_cfg_{field}"


def _widget_value(config: TrainConfig, field: str):
    value = getattr(config, field)
    return "" if field == "data_path" and value is None else value


def _init_state() -> None:
    st.session_state.setdefault(PRESET, CUSTOM)
    st.session_state.setdefault(NAME, "")
    st.session_state.setdefault(FORM_ERROR, None)
    for field in dataclasses.fields(TrainConfig):
        st.session_state.setdefault(key(field.name), _widget_value(DEFAULTS, field.name))


def apply_preset() -> None:
    """Fill every control from the chosen preset; nothing starts until Train is pressed."""
    name = st.session_state[PRESET]
    if name not in PRESETS:
        return
    config = PRESETS[name]
    for field in dataclasses.fields(TrainConfig):
        st.session_state[key(field.name)] = _widget_value(config, field.name)
    st.session_state[NAME] = name
    st.session_state[FORM_ERROR] = None


def config_from_state() -> TrainConfig:
    """The TrainConfig the controls describe; raises ValueError naming the field, value and allowed range."""
    values = {field.name: st.session_state[key(field.name)] for field in dataclasses.fields(TrainConfig)}
    values["data_path"] = (values["data_path"] or "").strip() or None
    return TrainConfig(**values)


def error_field(message: str) -> str | None:
    """The TrainConfig field a validation message is about: messages start with `field=value`."""
    match = re.match(r"^(\w+)=", message)
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    return match.group(1) if match and match.group(1) in names else None


def _on_submit() -> None:
    try:
        config = config_from_state()
    except ValueError as exc:
        st.session_state[FORM_ERROR] = (error_field(str(exc)), str(exc))
        return
    usable, problem = data_source_text(config.dataset, config.data_source, config.data_path)
    if not usable:  # a missing --data file or an unavailable source: refused here, as the CLI does
        st.session_state[FORM_ERROR] = ("data_path" if config.data_path else "data_source", problem)
        return
    try:
        run_id = common.job_manager().submit(config, st.session_state[NAME].strip() or None)
    except ValueError as exc:  # StoreError: a bad run name or an unwritable store
        st.session_state[FORM_ERROR] = ("name" if str(exc).startswith("run name") else None, str(exc))
        return
    st.session_state[FORM_ERROR] = None
    st.session_state[SUBMITTED] = run_id


def _error_next_to(field: str) -> None:
    error = st.session_state.get(FORM_ERROR)
    if error and error[0] == field:
        st.error(error[1], icon="⚠️")


def _range_help(field: str) -> str:
    low, high, low_inc, high_inc = RANGES[field]
    return f"allowed: {'[' if low_inc else '('}{low:g}, {high:g}{']' if high_inc else ')'}"


@st.cache_data(ttl=60, show_spinner="Checking the data source…")
def data_source_text(dataset: str, source: str, path: str | None) -> tuple[bool, str]:
    """(ok, text): which data a run with these settings would use, or why none can be used."""
    from core.data import describe_source

    try:
        return True, describe_source(dataset, source, path)
    except ValueError as exc:  # DataError
        return False, str(exc)


def _select(field: str, label: str, help: str | None = None, disabled: bool = False) -> None:
    st.selectbox(label, CHOICES[field], key=key(field), help=help, disabled=disabled, persist_state=PERSIST)
    _error_next_to(field)


def _number(field: str, label: str, step, fmt: str | None = None, help: str | None = None,
            disabled: bool = False) -> None:
    low, high, _, _ = RANGES[field]
    integer = isinstance(step, int)
    st.number_input(label, min_value=int(low) if integer else float(low), max_value=int(high) if integer else float(high),
                    step=step, format=fmt, key=key(field), disabled=disabled, persist_state=PERSIST,
                    help=(help + "; " if help else "") + _range_help(field))
    _error_next_to(field)


def training_form() -> None:
    """Draw the preset picker and the training form in the sidebar."""
    _init_state()
    state = st.session_state
    sidebar = st.sidebar
    sidebar.header("New training run")
    sidebar.selectbox("Preset", [CUSTOM, *PRESETS], key=PRESET, on_change=apply_preset,
                      help="Fills the controls below; press Train to start.", persist_state=PERSIST)
    lecun = state[key("variant")] == "lecun1998"
    seed_only_locked = lecun and all(state[key(f)] == getattr(DEFAULTS, f) for f in SEED_ONLY)
    with sidebar.form("train_form", border=False, enter_to_submit=False):  # only the Train button starts a run
        st.text_input("Run name", key=NAME, max_chars=100, placeholder="e.g. adam lr 1e-3",
                      help="Shown in the Runs table; leave empty for an automatic name.", persist_state=PERSIST)
        _error_next_to("name")
        st.subheader("Data")
        _select("dataset", "Dataset")
        _select("data_source", "Data source",
                help="auto: your file, then Keras' cache or download, then the bundled MNIST sample.")
        st.text_input("Data path", key=key("data_path"), placeholder="Keras .npz or a folder of IDX files",
                      help="Used by the 'file' source, and by 'auto' when given.", persist_state=PERSIST)
        _error_next_to("data_path")
        _number("train_subset", "Training images (0 = all)", step=1000,
                help="A stratified subset of the training set")
        _number("validation_split", "Validation split", step=0.05, fmt="%.2f",
                help="Held out from the training images")
        st.subheader("Model")
        _select("variant", "Variant", help="seed: the article's network; lecun1998: the 1998 paper's LeNet-5.")
        seed_help = "Seed variant only: lecun1998 uses the paper's scaled tanh and trainable subsampling"
        _select("activation", "Activation", help=seed_help, disabled=seed_only_locked)
        _select("pooling", "Pooling", help=seed_help, disabled=seed_only_locked)
        st.slider("Dropout", 0.0, float(RANGES["dropout"][1]), step=0.05, key=key("dropout"),
                  help=seed_help + "; before each dense layer", disabled=seed_only_locked, persist_state=PERSIST)
        _error_next_to("dropout")
        if lecun:
            st.caption("lecun1998 ignores activation, pooling and dropout; leave them at relu, average, 0.")
        st.subheader("Optimisation")
        _select("optimizer", "Optimizer")
        _number("momentum", "Momentum", step=0.05, fmt="%.3f", help="Used by sgd and rmsprop only")
        _number("learning_rate", "Learning rate", step=0.0005, fmt="%g")
        _select("lr_schedule", "Learning-rate schedule",
                help="constant; cosine decay to 0; step: ×0.1 at 50% and 75% of training")
        _number("batch_size", "Batch size", step=16)
        _number("epochs", "Epochs", step=1)
        st.toggle("Augment (small random shifts and rotations)", key=key("augment"), persist_state=PERSIST)
        _error_next_to("augment")
        _number("seed", "Seed", step=1, help="Fixes weights, shuffling, splits and augmentation")
        st.form_submit_button("Train", type="primary", key=SUBMIT, on_click=_on_submit, width="stretch")
        error = state.get(FORM_ERROR)
        if error:
            st.error(f"Not started: {error[1]}", icon="🚫")
    if state[key("optimizer")] not in MOMENTUM_OPTIMIZERS:
        sidebar.caption(f"Momentum is ignored by {state[key('optimizer')]}.")
    ok, text = data_source_text(state[key("dataset")], state[key("data_source")],
                                (state[key("data_path")] or "").strip() or None)
    (sidebar.info if ok else sidebar.error)(f"**Data:** {text}")
