"""LeNet Lab dashboard entry point: page config, navigation, the shared sidebar, then the page."""

from pathlib import Path

import streamlit as st

from dashboard import common

st.set_page_config(page_title="LeNet Lab", page_icon="🔢", layout="wide")
common.startup()  # once per server: the training queue, then runs whose process died marked "interrupted"

VIEWS = Path(__file__).resolve().parent / "views"
train_pages = [
    st.Page(VIEWS / "train.py", title="Train", icon="🏋️", default=True),
    st.Page(VIEWS / "runs.py", title="Runs", icon="🗂️"),
]
audit_pages = [
    st.Page(VIEWS / "evaluate.py", title="Evaluate", icon="🎯"),
    st.Page(VIEWS / "gallery.py", title="Error gallery", icon="🖼️"),
    st.Page(VIEWS / "inside.py", title="Inside the model", icon="🔬"),
    st.Page(VIEWS / "predict.py", title="Predict", icon="✍️"),
]
page = st.navigation({"Training": train_pages, "Audit": audit_pages})
if page.url_path in {p.url_path for p in audit_pages}:
    common.run_selector()
page.run()
