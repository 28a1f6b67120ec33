"""Compare: is the difference between two runs real? Accuracies with their intervals, McNemar's test, galleries."""

import streamlit as st

from dashboard import common
from dashboard.compare_view import show_comparison

PARAMS = ("a", "b")  # the URL's query parameters naming runs A and B


def pick(label: str, param: str, runs, default_index: int):
    ids = [r.run_id for r in runs]
    key = f"compare_{param}"
    requested = st.query_params.get(param)
    if key not in st.session_state:
        st.session_state[key] = requested if requested in ids else ids[min(default_index, len(ids) - 1)]
    if st.session_state[key] not in ids:
        st.session_state[key] = ids[0]
    labels = common.unique_labels(runs)
    chosen = st.selectbox(label, ids, key=key, format_func=lambda run_id: labels.get(run_id, run_id))
    st.query_params[param] = chosen
    return next(r for r in runs if r.run_id == chosen)


st.title("Compare two runs")
st.caption("Is the difference real? Each run's test accuracy with its 95% interval, McNemar's exact test on the "
           "images they disagree on, and the images each gets right and the other wrong. From a terminal: "
           "`python -m core compare RUN_A RUN_B`.")
finished = [r for r in common.list_runs_cached() if not r.damaged and r.record.test_accuracy is not None]
if len(finished) < 2:
    st.info("Two runs with a test accuracy are needed: train another one, or tick two on the Runs page.")
else:
    left, right = st.columns(2)
    with left:
        run_a = pick("Run A", "a", finished, 1)
    with right:
        run_b = pick("Run B", "b", finished, 0)
    if run_a.run_id == run_b.run_id:
        st.warning("Pick two different runs.")
    else:
        show_comparison(run_a, run_b)
