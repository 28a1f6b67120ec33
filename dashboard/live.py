"""How often a live view reruns: never in a tab nobody looks at, seldom while a run trains.

Watching must not slow training (bench/watching.py): on 2 cores every redraw in a browser takes CPU
from the training process, so a live fragment reruns only as often as its content can change, and not at
all while its browser tab is hidden; the Train page's live panel updates itself without reruns
(dashboard/live_panel.py). The browser says whether the tab is visible through a tiny
Streamlit component (no iframe, no HTML): it reports `document.visibilityState` when it changes, which
reruns the page, and the page then declares its fragment with `run_every=None` (hidden) or its interval.
"""

from __future__ import annotations

import streamlit as st

# s: while a run trains its live panel updates itself (dashboard/live_panel.py) and reruns the page when the run's
# status changes; the fragment's own reruns only catch what that does not see (a run queued in another tab, which
# waits for this one anyway). Each costs the page's full redraw: every 10 s that was 1-2% of a core
TRAINING_INTERVAL = 30.0
IDLE_INTERVAL = 5.0  # s: nothing trains; only a new run (from a terminal or another tab) can appear
VISIBILITY_KEY = "tab_visibility"

_VISIBILITY = st.components.v2.component(
    "lenet_lab.tab_visibility",
    js="""
export default function ({ setStateValue }) {
  const report = () => setStateValue("visible", document.visibilityState === "visible");
  if (document.visibilityState !== "visible") report();
  document.addEventListener("visibilitychange", report);
  return () => document.removeEventListener("visibilitychange", report);
}
""")


def watch_visibility() -> None:
    """Mount once per script run (app.py): a change of the tab's visibility reruns the page."""
    with st.container(height=1, border=False):  # the component draws nothing: keep it out of the layout
        _VISIBILITY(key=VISIBILITY_KEY, default={"visible": True}, on_visible_change=lambda: None)


def tab_visible() -> bool:
    state = st.session_state.get(VISIBILITY_KEY) or {}
    return state.get("visible", True) is not False


def interval(training: bool) -> float | None:
    """run_every for a live fragment: None (no reruns) while the tab is hidden."""
    if not tab_visible():
        return None
    return TRAINING_INTERVAL if training else IDLE_INTERVAL
