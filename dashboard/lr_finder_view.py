"""The sidebar's "Find a learning rate": a range test of the form's config queued in the training process
(core.lr_find), followed live, its suggestion one click away from the form's learning rate."""

from __future__ import annotations

import secrets
from datetime import datetime

import streamlit as st

from core.lr_find import RESULT_KIND, read_result
from core.store import StoreError
from dashboard import common, live
from dashboard.figures_lr import lr_find_figure

RESULT_ID = "lr_find_result_id"  # this session's latest test
STEPS = 300


def task_id(result_id: str) -> str:
    return f"lr-find-{result_id}"


def start(current_config) -> None:
    try:
        config = current_config()
    except (ValueError, TypeError) as exc:
        st.session_state[RESULT_ID] = None
        st.error(f"Not started: {exc}")
        return
    result_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    common.job_manager().submit_task(RESULT_KIND, {"result_id": result_id, "config": config.to_dict(),
                                                   "steps": STEPS}, task_id(result_id), "learning-rate finder")
    st.session_state[RESULT_ID] = result_id


def use_rate(rate_key: str, rate: float) -> None:
    st.session_state[rate_key] = float(f"{rate:.2g}")


def section(current_config, rate_key: str) -> None:
    """Draw the finder in an expander of the sidebar; current_config() is the form's TrainConfig."""
    with st.sidebar.expander("Find a learning rate", icon=":material/search:"):
        st.caption(f"A range test (Smith 2017): {STEPS} batches of the form's config while the rate grows from "
                   "10⁻⁶ to 1; the suggestion is where the smoothed loss falls fastest. Runs in the training queue; "
                   "nothing is saved as a run.")
        if st.button("Find a learning rate", key="lr_find_start", icon=":material/search:", width="stretch"):
            start(current_config)
        result_id = st.session_state.get(RESULT_ID)
        if result_id:
            busy = common.job_manager().owns(task_id(result_id))
            st.fragment(run_every=live.interval(busy))(show)(result_id, rate_key, busy)


def show(result_id: str, rate_key: str, busy: bool) -> None:
    if common.job_manager().owns(task_id(result_id)) != busy:
        st.rerun(scope="app")
    try:
        result = read_result(common.store(), result_id)
    except StoreError as exc:
        st.warning(str(exc))
        return
    if result is None:
        st.caption("Queued: starts when the training queue is free.")
        return
    if result.state == "failed":
        st.error(f"The range test failed: {result.error}")
        return
    if result.state == "running":
        st.progress(min(1.0, result.batches / STEPS), text=f"Batch {result.batches} of at most {STEPS}…")
    if result.rates:
        st.plotly_chart(lr_find_figure(result.rates, result.losses, result.smoothed, result.suggestion),
                        key="lr_find_chart", config={"displaylogo": False})
    if result.state != "running":
        if result.suggestion:
            st.caption(f"{result.batches} batches in {result.seconds:.1f} s. Suggested rate: "
                       f"**{result.suggestion:.2g}** (lowest smoothed loss at {result.minimum:.2g}).")
            st.button(f"Use {result.suggestion:.2g}", key="lr_find_use", icon=":material/check:", type="primary",
                      on_click=use_rate, args=(rate_key, result.suggestion), width="stretch")
        else:
            st.caption("No suggestion: the loss never fell over the range. Try another optimizer or batch size.")
