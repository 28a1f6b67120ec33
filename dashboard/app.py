"""LeNet Lab dashboard entry point: page config, navigation, the shared sidebar, then the page."""

import streamlit as st

from dashboard import common, keras_patch, live, pages

st.set_page_config(page_title="LeNet Lab", page_icon=":material/draw:", layout="wide")
common.startup()  # once per server: the training queue, then runs whose process died marked "interrupted"

name, page = pages.navigation()
live.watch_visibility()  # a hidden tab's live views stop rerunning (dashboard/live.py)
if pages.PAGES[name].section == pages.AUDIT:
    common.run_selector()
try:
    page.run()
finally:  # also when the page reruns or switches page: Streamlit's clean-up follows this script run
    keras_patch.after_script_run()
