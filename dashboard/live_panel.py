"""The Train page's live panel: progress bar, the five numbers, and the batch and epoch charts of one run.

Watching must not slow training (issue 20, item 3). A Streamlit fragment that reruns once a second cost the
browser ~0.1 s of CPU and the server ~0.07 s per rerun whatever it drew, and the Plotly charts redrawn through
`st.plotly_chart` as much again: a visible Train tab took 23% of the trainer's speed on 2 cores. So no script
reruns while a run trains: this component (Streamlit's v2 component API, no iframe) asks the dashboard server
for the run's live panel (`/_lenet/live`, dashboard/live_routes.py, the same `core.live_feed.feed` the page
draws it from) over a WebSocket the server sends it on whenever the run's files change (looked at every
`live_feed.PERIOD_S`) while its tab is visible, and redraws only what changed, with plotly.js. When the run's
status changes or the run disappears, it asks the page to rerun (the header, the Stop button, the summary
follow from that). A hidden tab closes its socket: it is sent nothing and draws nothing.
"""

from __future__ import annotations

import streamlit as st

from core import live_feed
from dashboard import common
from dashboard.live_routes import LIVE_PATH, PLOTLY_PATH

HTML = """
<div class="lenet-live">
  <div class="lenet-live-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100">
    <div class="lenet-live-progress-text"></div>
    <div class="lenet-live-track"><div class="lenet-live-bar"></div></div>
  </div>
  <div class="lenet-live-metrics"></div>
  <div class="lenet-live-chart lenet-live-batch"></div>
  <div class="lenet-live-chart lenet-live-epoch"></div>
</div>"""
CSS = """
.lenet-live { display: flex; flex-direction: column; gap: 1rem; font-family: var(--st-font, "Source Sans", sans-serif);
              container-type: inline-size; }
.lenet-live-progress-text { font-size: 0.875rem; margin-bottom: 0.25rem; }
.lenet-live-track { height: 0.5rem; border-radius: 0.25rem; background: var(--st-secondary-background-color, #f0f2f6); }
.lenet-live-bar { height: 100%; width: 0; border-radius: 0.25rem; background: var(--st-primary-color, #2563eb); }
.lenet-live-metrics { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 1rem; }
.lenet-live-metric-label { font-size: 0.875rem; }
.lenet-live-metric-value { font-size: clamp(1.1rem, 4.2cqi, 2.25rem); line-height: 1.2; white-space: nowrap;
                           overflow: hidden; text-overflow: ellipsis; }  /* "778/1000" fits at 1024 px */
.lenet-live-chart { width: 100%; height: 320px; contain: strict; }
.lenet-live-progress, .lenet-live-metrics { contain: layout paint style; }
.lenet-live[data-progress="off"] .lenet-live-progress,
.lenet-live[data-progress="off"] .lenet-live-metrics { display: none; }
"""
JS = """
const CONFIG = { displaylogo: false, responsive: true };
const NARROW = 760;  // px: below, the two panels' titles are broken in two lines

function plotly(src) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.lenetPlotly) window.lenetPlotly = new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = () => resolve(window.Plotly);
    script.onerror = reject;
    document.head.appendChild(script);
  });
  return window.lenetPlotly;
}

function drawProgress(root, feed) {
  const progress = feed.progress, percent = Math.round(progress.fraction * 1000) / 10;
  root.querySelector(".lenet-live-bar").style.width = `${percent}%`;
  root.querySelector(".lenet-live-progress").setAttribute("aria-valuenow", String(percent));
  root.querySelector(".lenet-live-progress-text").textContent = progress.text;
  const box = root.querySelector(".lenet-live-metrics");
  if (box.children.length !== progress.metrics.length) {
    box.replaceChildren(...progress.metrics.map(() => {
      const metric = document.createElement("div");
      metric.className = "lenet-live-metric";
      metric.innerHTML = '<div class="lenet-live-metric-label"></div><div class="lenet-live-metric-value"></div>';
      return metric;
    }));
  }
  progress.metrics.forEach((m, i) => {
    const metric = box.children[i];
    metric.title = m.help || "";
    metric.querySelector(".lenet-live-metric-label").textContent = m.label;
    metric.querySelector(".lenet-live-metric-value").textContent = m.value;
  });
}

function narrow(layout, width) {
  // two panel titles side by side do not fit a narrow page: break each before its parenthesis
  if (width >= NARROW || !layout.annotations) return layout;
  const annotations = layout.annotations.map((a) => ({ ...a, text: a.text.replace(" (", "<br>(") }));
  // the plot is then 18 px shorter, and a legend placed below it (in fractions of its height) met the axis title
  const legend = layout.legend && { ...layout.legend, y: (layout.legend.y ?? -0.25) - 0.1 };
  return { ...layout, annotations, margin: { ...layout.margin, t: (layout.margin?.t || 40) + 18 }, ...(legend && { legend }) };
}

// While the run trains its charts' axes are fixed (core.figures_training.live_axes), so new points need only
// the curves redrawn: Plotly.animate without a redraw takes half the CPU of Plotly.react, which lays out the
// axes, ticks and titles again. A change of the layout (an axis range, the run's end) or of the traces'
// make-up takes the full redraw.
const TRACES_ONLY = { transition: { duration: 0 }, frame: { duration: 0, redraw: false }, mode: "immediate" };

function redraw(element, figure, drawn) {
  const width = element.clientWidth;
  const look = `${figure.look}:${width >= NARROW}`;  // the server's digest of the layout and the traces' make-up
  // what every curve shares (the batch chart's steps and hover texts) comes once (core.live_feed._plain)
  const data = figure.shared ? figure.data.map((trace) => ({ ...trace, ...figure.shared })) : figure.data;
  if (drawn.look === look && element._fullLayout) {
    return window.Plotly.animate(element, { data, traces: data.map((_, i) => i) }, TRACES_ONLY);
  }
  drawn.look = look;
  return window.Plotly.react(element, data, narrow(figure.layout, width), CONFIG);
}

function draw(root, feed, live) {
  drawProgress(root, feed);
  for (const name of ["batch", "epoch"]) {
    const key = feed.keys[name];
    const drawn = live.drawn[name] || (live.drawn[name] = {});
    if (drawn.key === key) continue;  // the epoch chart changes once an epoch: no redraw in between
    drawn.key = key;
    redraw(root.querySelector(`.lenet-live-${name}`), feed[name], drawn);
  }
}

export default function ({ parentElement, data, setTriggerValue }) {
  const root = parentElement.querySelector(".lenet-live");
  root.dataset.progress = data.progress ? "on" : "off";
  // one socket per panel, however often the page redraws it (a polling loop started at every redraw that came
  // during a fetch, so loops piled up during a run); the server sends the feed whenever the run's files change
  const live = root.lenetLive || (root.lenetLive = { drawn: {}, socket: null, address: "", retry: null, stopped: false });
  live.data = data;
  live.stamp = data.feed.stamp;
  live.stopped = false;
  const address = () => `${live.data.url}?run=${encodeURIComponent(live.data.feed.run)}&smoothing=${live.data.smoothing}`;
  const close = () => {
    clearTimeout(live.retry);
    live.retry = null;
    const socket = live.socket;
    live.socket = null;
    if (socket) socket.close();
  };
  const open = () => {
    const d = live.data;
    if (live.socket || live.retry || live.stopped || !d.poll || document.visibilityState !== "visible") return;
    const url = new URL(`${address()}&since=${live.stamp}`, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url);
    live.socket = socket;
    live.address = address();
    socket.onmessage = (event) => {
      if (live.socket !== socket) return;  // closed meanwhile: a hidden tab draws nothing
      const feed = JSON.parse(event.data);
      if (feed.error) {  // deleted or unreadable: the page says what happened
        close();
        setTriggerValue("changed", "gone");
        return;
      }
      live.stamp = feed.stamp;
      draw(root, feed, live);
      if (feed.status !== live.data.feed.status) {  // started or ended: the page reruns around it (a phase is drawn here)
        close();
        setTriggerValue("changed", feed.stamp);
      }
    };
    socket.onclose = () => {
      if (live.socket !== socket) return;  // closed here
      live.socket = null;  // the server is restarting or the connection dropped: again a period later
      live.retry = setTimeout(() => { live.retry = null; open(); }, d.period * 1000);
    };
  };
  if (live.socket && (live.address !== address() || !data.poll)) close();  // another run or smoothing, or ended
  const shown = () => (document.visibilityState === "visible" ? open() : close());  // shown again: the news at once
  if (live.shown) document.removeEventListener("visibilitychange", live.shown);
  live.shown = shown;
  plotly(data.plotly).then(() => {
    draw(root, data.feed, live);
    open();
  });
  document.addEventListener("visibilitychange", shown);
  return () => {
    live.stopped = true;
    close();
    document.removeEventListener("visibilitychange", shown);
  };
}
"""
_PANEL = st.components.v2.component("lenet_lab.live_panel", html=HTML, css=CSS, js=JS,
                                    isolate_styles=False)  # plotly.js styles its mode bar with rules it adds to the document


def show(run_id: str, smoothing: float, active: bool, key: str, on_change, progress: bool | None = None) -> dict:
    """Draw the run's live panel and follow it while it is active; progress (default: active) shows the progress
    bar and the five numbers above the charts.

    on_change: called (then the page reruns) when the browser sees the run's status change or the run
    go away. Returns the feed the panel was drawn from; raises StoreError for a run that cannot be read."""
    feed = live_feed.feed(common.store(), run_id, smoothing)
    _PANEL(key=key, data={"feed": feed, "progress": active if progress is None else progress, "poll": active, "smoothing": round(smoothing, 2),
                          "period": live_feed.PERIOD_S, "url": LIVE_PATH, "plotly": PLOTLY_PATH},
           on_changed_change=on_change)
    return feed
