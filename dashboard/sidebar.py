"""The Train page's sidebar: a preset picker and one form with a control for every TrainConfig field, drawn from
the fields' descriptions (core.config.PARAMS)."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import streamlit as st

from core.config import (
    FIELD_TYPES,
    PARAMS,
    PRESETS,
    RANGES,
    SEED_VARIANT_ONLY,
    TrainConfig,
    applies,
    describe_range,
    indices_text,
    parse_indices,
)
from dashboard import common, lr_finder_view

PRESET = "train_preset"
NAME = "train_name"
SUBMIT = "train_submit"
FORM_ERROR = "train_form_error"  # (field or None, message) of the last rejected submit
SUBMITTED = "train_submitted_run"  # run id of the last run this session submitted
LAST_PRESS = "train_last_press"  # ((settings, name), when) of the last Train press that queued a run
REPEAT_SECONDS = 3.0  # the same press again within this is a repeated click, not a second run
CUSTOM = "Custom"
DEFAULTS = TrainConfig()
SEED_ONLY = tuple(name for name, p in PARAMS.items() if p.applies_when == SEED_VARIANT_ONLY)
GROUPS = ("Data", "Model", "Optimisation")
FORM_READY = "train_form_ready"  # set once the form's state exists in this session
URL_IGNORED = "train_url_ignored"  # fields of the URL that could not fill their control
PERSIST = "session"  # the controls keep their values when the user visits another page and comes back


def key(field: str) -> str:
    """Session-state key of the control for a TrainConfig field."""
    return f"train_cfg_{field}"


def _widget_value(config: TrainConfig, field: str):
    value = getattr(config, field)
    if FIELD_TYPES[field] is tuple:  # a list of indices, edited as text
        return indices_text(value)
    return "" if field == "data_path" and value is None else value


def _init_state() -> None:
    fresh = FORM_READY not in st.session_state
    st.session_state.setdefault(PRESET, CUSTOM)
    st.session_state.setdefault(NAME, "")
    st.session_state.setdefault(FORM_ERROR, None)
    for field in PARAMS:
        st.session_state.setdefault(key(field), _widget_value(DEFAULTS, field))
    if fresh:  # a new session (a reload, a shared link): the form's values come back from the URL
        st.session_state[URL_IGNORED] = _read_url()
    st.session_state[FORM_READY] = True


def _from_text(field: str, text: str):
    """A form value from its text in the URL, or None if it is not one the control can show."""
    p, kind = PARAMS[field], FIELD_TYPES[field]
    try:
        if p.choices:
            return text if text in p.choices else None
        if kind is bool:
            return {"true": True, "false": False}.get(text.lower())
        if kind in (str, tuple):
            return indices_text(parse_indices(text)) if kind is tuple else text
        value = kind(text)
    except ValueError:
        return None
    low, high, _, _ = RANGES[field]
    return value if low <= value <= high else None


def _read_url() -> list[str]:
    """Fill the controls from the Train page's URL (?learning_rate=0.01&epochs=3); returns the fields ignored."""
    ignored = []
    for field in PARAMS:
        text = st.query_params.get(field)
        if text is None:
            continue
        value = _from_text(field, text)
        if value is None:
            ignored.append(field)
        else:
            st.session_state[key(field)] = value
    return ignored


def _keep_in_url() -> None:
    """The values that differ from the defaults go in the URL, so a reload (a new session) keeps the form."""
    for field in PARAMS:
        value = st.session_state[key(field)]
        if value != _widget_value(DEFAULTS, field):
            st.query_params[field] = str(value)
        elif field in st.query_params:
            del st.query_params[field]


def _fill_form(config: TrainConfig, name: str) -> None:
    """Every control from `config`, and the run name; nothing starts until Train is pressed."""
    for field in PARAMS:
        st.session_state[key(field)] = _widget_value(config, field)
    st.session_state[NAME] = name[:100]
    st.session_state[FORM_ERROR] = None


def use_settings(config: TrainConfig, name: str) -> None:
    """Load a run's config into the form ("Use these settings"); a callback, so before the controls are drawn."""
    _fill_form(config, f"{name} (again)")
    st.session_state[PRESET] = CUSTOM
    st.session_state[FORM_READY] = True  # the settings win over what the URL said


def apply_preset() -> None:
    """Fill every control from the chosen preset."""
    name = st.session_state[PRESET]
    if name in PRESETS:
        _fill_form(PRESETS[name], name)


def config_from_state() -> TrainConfig:
    """The TrainConfig the controls describe; raises ValueError naming the field, value and allowed range."""
    values = {field: st.session_state[key(field)] for field in PARAMS}
    values["data_path"] = (values["data_path"] or "").strip() or None
    return TrainConfig(**values)


def error_field(message: str) -> str | None:
    """The TrainConfig field a validation message is about: messages start with `field=value`."""
    match = re.match(r"^(\w+)=", message)
    return match.group(1) if match and match.group(1) in PARAMS else None


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
    name = st.session_state[NAME].strip() or None
    if _repeat_click(config, name):
        return
    try:
        run_id = common.job_manager().submit(config, name)
    except ValueError as exc:  # StoreError: a bad run name or an unwritable store
        st.session_state[FORM_ERROR] = ("name" if str(exc).startswith("run name") else None, str(exc))
        return
    st.session_state[FORM_ERROR] = None
    st.session_state[SUBMITTED] = run_id


def _repeat_click(config, name: str | None) -> bool:
    """True for a Train click that repeats the last one: the same settings and name within REPEAT_SECONDS. Fast
    clicks on Train queued one identical run per click; a click acts once."""
    press = (config.to_json(), name)
    last = st.session_state.get(LAST_PRESS)
    now = time.monotonic()
    if last and last[0] == press and now - last[1] < REPEAT_SECONDS:
        st.session_state[FORM_ERROR] = (None, f"Already queued a moment ago with the same settings: a click acts "
                                              f"once. To train a second copy, press Train again after "
                                              f"{REPEAT_SECONDS:.0f} seconds.")
        return True
    st.session_state[LAST_PRESS] = (press, now)
    return False


def _error_next_to(field: str) -> None:
    error = st.session_state.get(FORM_ERROR)
    if error and error[0] == field:
        st.error(error[1], icon=":material/warning:")


@st.cache_data(ttl=60, show_spinner="Checking the data source…")
def data_source_text(dataset: str, source: str, path: str | None) -> tuple[bool, str]:
    """(ok, text): which data a run with these settings would use, or why none can be used."""
    from core.data import describe_source

    try:
        return True, describe_source(dataset, source, path)
    except ValueError as exc:  # DataError
        return False, str(exc)


def _control(field: str, disabled: bool = False) -> None:
    """The control for one TrainConfig field, as its description says: a choice, a switch, a path or a number."""
    p, widget_key = PARAMS[field], key(field)
    common_args = dict(key=widget_key, help=p.help or None, disabled=disabled, persist_state=PERSIST)
    kind = FIELD_TYPES[field]
    if p.choices:
        st.selectbox(p.label, p.choices, **common_args)
    elif kind is bool:
        st.toggle(p.label, **common_args)
    elif kind is str:
        st.text_input(p.label, placeholder="Keras .npz or a folder of IDX files", **common_args)
    elif kind is tuple:
        st.text_input(p.label, placeholder="none, e.g. 12, 345", **common_args)
    elif p.slider:
        st.slider(p.label, float(p.low), float(p.high), step=p.step, **common_args)
    else:
        integer = kind is int
        bound = int if integer else float
        common_args["help"] = (p.help + "; " if p.help else "") + f"allowed: {describe_range(field)}"
        st.number_input(p.label, min_value=bound(p.low), max_value=bound(p.high), step=bound(p.step),
                        format=p.format, **common_args)
    _error_next_to(field)


def _state_values() -> SimpleNamespace:
    """The form's values as they stand, valid or not: what decides which controls apply."""
    return SimpleNamespace(**{name: st.session_state[key(name)] for name in PARAMS})


def training_form() -> None:
    """Draw the preset picker and the training form in the sidebar (Train and Sweep pages)."""
    common.prestart_training()  # TensorFlow loads while the user fills in the form
    _init_state()
    state = st.session_state
    sidebar = st.sidebar
    sidebar.header("New training run")
    sidebar.selectbox("Preset", [CUSTOM, *PRESETS], key=PRESET, on_change=apply_preset,
                      help="Fills the controls below; press Train to start.", persist_state=PERSIST)
    current = _state_values()
    # The fields the variant does not use are locked at their defaults, so the config stays valid; if one is
    # set already (a preset switched to lecun1998), they stay editable, so the user can put it back.
    unused = [name for name in SEED_ONLY if not applies(current, name)]
    locked = set(unused) if unused and all(state[key(n)] == getattr(DEFAULTS, n) for n in unused) else set()
    # No st.form: inside one, the hints below went stale until Train was pressed. Only Train starts a run.
    with sidebar.container():
        st.text_input("Run name", key=NAME, max_chars=100, placeholder="e.g. adam lr 1e-3",
                      help="Shown in the Runs table; leave empty for an automatic name.", persist_state=PERSIST)
        _error_next_to("name")
        for group in GROUPS:
            st.subheader(group)
            for name in (n for n, p in PARAMS.items() if p.group == group):
                _control(name, disabled=name in locked)
                p = PARAMS[name]
                if p.applies_when and not applies(current, name) and name not in SEED_ONLY:
                    other = next(iter(p.applies_when))
                    st.caption(f"{p.label} is ignored by {getattr(current, other)}.")
            if group == "Model" and unused:
                defaults = ", ".join(f"{getattr(DEFAULTS, n):g}" if FIELD_TYPES[n] is float else
                                     str(getattr(DEFAULTS, n)) for n in unused)
                st.caption(f"{current.variant} ignores {', '.join(unused[:-1])} and {unused[-1]}; "
                           f"leave them at {defaults}.")
        st.button("Train", type="primary", key=SUBMIT, on_click=_on_submit, width="stretch")
        error = state.get(FORM_ERROR)
        if error:
            st.error(f"Not started: {error[1]}", icon=":material/block:")
    ignored = state.get(URL_IGNORED)
    if ignored:
        sidebar.caption(f"The link's value for {', '.join(ignored)} was not allowed; the default is shown.")
    _keep_in_url()
    ok, text = data_source_text(state[key("dataset")], state[key("data_source")],
                                (state[key("data_path")] or "").strip() or None)
    (sidebar.info if ok else sidebar.error)(f"**Data:** {text}")
    lr_finder_view.section(config_from_state, key("learning_rate"))
