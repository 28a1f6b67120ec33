"""Start Plotly in the browser while the user reads the page, so the first chart a click asks for comes at once.

A page's first `st.plotly_chart` loads Streamlit's Plotly script (4.7 MB with plotly.js) and runs it: on the
Runs page of a large store, where no chart is drawn before a row is ticked, the first tick took 1.5-1.6 s
against 0.4 s for the next ones (issue 21.12). Drawing an empty chart with the page cost every visit that
start up front and made the page itself slower (bench/RESULTS.md). Instead this component (Streamlit's v2
API, no iframe, nothing shown) imports that same script once the browser is idle after the page is drawn
(the browser keeps one copy of a module per address, so the chart's own import later finds it ready), then
draws one small chart out of sight, so plotly.js has compiled its drawing code too. Once per browser tab;
nothing happens if the tab has started Plotly already.
"""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

KEY = "plotly_start"

_START = st.components.v2.component(
    "lenet_lab.plotly_start",
    js="""
// A chart drawn once, out of sight, after the import: plotly.js compiles its drawing code on the first use
const SAMPLE = [{ type: "scatter", mode: "lines+markers", x: [1, 2, 3], y: [0.9, 0.95, 0.97], name: "a" },
                { type: "scatter", mode: "lines+markers", x: [1, 2, 3], y: [0.8, 0.9, 0.96], name: "b" }];

function whenIdle(work) {
  if (window.requestIdleCallback) window.requestIdleCallback(work, { timeout: 2000 });
  else setTimeout(work, 200);
}

// the page is drawn: its script run is over and no element waits to be drawn. Streamlit marks its app with the
// script's state ("running", then "notRunning"); the status widget alone shows only after a while, so a page
// whose script had not yet sent anything looked drawn
function drawn() {
  const app = document.querySelector('[data-testid="stApp"]');
  const state = app && app.getAttribute("data-test-script-state");
  const over = state ? state === "notRunning" : !document.querySelector('[data-testid="stStatusWidget"]');
  return over && !document.querySelector('[data-testid="stSkeleton"]');
}

function drawOnce() {
  if (!window.Plotly) return Promise.resolve("started");
  const box = document.createElement("div");
  box.style.cssText = "position: fixed; left: -2000px; top: 0; width: 600px; height: 300px; visibility: hidden;";
  document.body.appendChild(box);
  return window.Plotly.newPlot(box, SAMPLE, { xaxis: { title: { text: "epoch" } }, yaxis: { tickformat: ".0%" } })
    .catch(() => {}).then(() => { window.Plotly.purge(box); box.remove(); return "started"; });
}

export default function ({ data }) {
  if (window.lenetPlotlyStart || !data.chunk) return;
  // Streamlit's own script, which imports its chunks relative to its own address
  const main = document.querySelector('script[type="module"][src*="/static/js/index."]');
  if (!main) return;
  window.lenetPlotlyStart = "waiting";
  const url = new URL(`./${data.chunk}`, main.src).href;
  const start = () => {
    window.lenetPlotlyStart = import(url)
      .then(() => new Promise((done) => whenIdle(() => drawOnce().then(done))),
            () => { window.lenetPlotlyStart = null; });  // the chart will load it itself
    window.lenetPlotlyStart.then((state) => { window.lenetPlotlyState = state; });
  };
  // fetched and run once the page has been left as drawn for 0.3 s: a reload right after the page is drawn is not
  // held up by the start, and the page is not either (preloaded at the first idle moment, while the page was
  // still being drawn, the script made a fresh browser's first visit of the Runs page of 1,000 runs 0.8 s
  // slower one time in two: bench/RESULTS.md, session 17)
  let still = 0;
  const wait = () => {
    still = drawn() ? still + 1 : 0;
    if (still > 2) whenIdle(start);
    else setTimeout(wait, 100);
  };
  wait();
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
