"""LeNet Lab dashboard entry point: page config, navigation, the shared sidebar, then the page.

`streamlit run dashboard/app.py` finds the `st.App` below and serves it: Streamlit's own routes plus the
dashboard's live feed (dashboard/live_routes.py). The server imports this file as a module to find that app;
each session then runs it as the page script (`__main__`)."""

import streamlit as st

if __name__ != "__main__":  # imported by the server: the ASGI app, with the live feed's routes beside Streamlit's
    from dashboard import warm_start
    from dashboard.live_routes import routes

    app = st.App(__file__, routes=routes())
    warm_start.start()  # the run list and its records, read while the first browser loads (dashboard/warm_start.py)
else:
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
