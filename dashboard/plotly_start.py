"""Start Plotly in the browser while the user reads the page, so the first chart a click asks for comes at once.

A page's first `st.plotly_chart` loads Streamlit's Plotly script (4.7 MB with plotly.js) and runs it: on the
Runs page of a large store, where no chart is drawn before a row is ticked, the first tick took 1.5-1.6 s
against 0.4 s for the next ones (issue 21.12). Drawing an empty chart with the page cost every visit that
start up front and made the page itself slower (bench/RESULTS.md). Instead this component (Streamlit's v2
API, no iframe, nothing drawn) imports that same script once the browser is idle after the page is drawn:
the browser keeps one copy of a module per address, so the chart's own import later finds it ready. Once per
browser tab; nothing happens if the tab has started Plotly already.
"""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

KEY = "plotly_start"

_START = st.components.v2.component(
    "lenet_lab.plotly_start",
    js="""
export default function ({ data }) {
  if (window.lenetPlotlyStart || !data.chunk) return;
  // Streamlit's own script, which imports its chunks relative to its own address
  const main = document.querySelector('script[type="module"][src*="/static/js/index."]');
  if (!main) return;
  window.lenetPlotlyStart = "waiting";
  const start = () => {
    window.lenetPlotlyStart = import(new URL(`./${data.chunk}`, main.src).href)
      .then(() => "started", () => { window.lenetPlotlyStart = null; });  // the chart will load it itself
  };
  if (window.requestIdleCallback) window.requestIdleCallback(start, { timeout: 3000 });
  else setTimeout(start, 1000);
}
""")


@functools.cache
def chunk() -> str | None:
    """The file name of Streamlit's script that draws `st.plotly_chart` (with plotly.js in it), e.g.
    "PlotlyChart.D9Z0_fxz.js"; None if this Streamlit does not ship exactly one (then nothing is started)."""
    found = sorted((Path(st.__file__).parent / "static" / "static" / "js").glob("PlotlyChart.*.js"))
    return found[0].name if len(found) == 1 else None


def start_when_idle() -> None:
    """Mount at the end of a page whose first chart appears only on a click: takes no room."""
    name = chunk()
    if name is None:
        return
    with st.container(height=1, border=False):
        _START(key=KEY, data={"chunk": name})
