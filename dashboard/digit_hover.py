"""The digit under the cursor: while the mouse rests on a point of a Plotly chart whose customdata is a test index
(or starts with one), that test image appears beside the cursor (Streamlit's v2 component API, no iframe).

The chart stays an `st.plotly_chart` (its clicks still reach the page); the component listens to the chart's
`plotly_hover` events through plotly.js's own event API on the chart's element, and draws the digit from an
atlas of all the test images delivered once with it: one grey PNG, 100 digits a row. Nothing reruns on a hover.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import streamlit as st

COLUMNS = 100  # digits per row of the atlas
SCALE = 4  # 28x28 drawn at 112x112 pixels

_HOVER = st.components.v2.component(
    "lenet_lab.digit_hover",
    html=f"""
<div class="digit-hover" hidden role="img" aria-label="The hovered test image">
  <canvas width="{28 * SCALE}" height="{28 * SCALE}"></canvas>
  <span></span>
</div>""",
    css="""
.digit-hover { position: fixed; z-index: 1000; pointer-events: none; display: flex; flex-direction: column;
               align-items: center; gap: 2px; padding: 4px; border-radius: 0.4rem; background: white;
               border: 1px solid rgba(49, 51, 63, 0.35); box-shadow: 0 2px 8px rgba(0, 0, 0, 0.2);
               font: 12px sans-serif; color: #31333f; }
.digit-hover[hidden] { display: none; }
.digit-hover canvas { image-rendering: pixelated; }
""",
    js=f"""
export default function ({{ parentElement, data }}) {{
  const box = parentElement.querySelector(".digit-hover");
  const canvas = box.querySelector("canvas");
  const caption = box.querySelector("span");
  const context = canvas.getContext("2d");
  const atlas = new Image();
  atlas.src = data.atlas;
  const show = (event) => {{
    const point = event?.points?.[0];
    let index = point?.customdata;
    if (index !== null && typeof index === "object") index = index[0];  // [index, ...] (an array or {{"0": ...}})
    index = Number(index);
    if (!Number.isInteger(index) || index < 0 || index >= data.count) return;
    if (!atlas.complete) {{  // the atlas is still decoding: draw this point when it is ready
      atlas.onload = () => show(event);
      return;
    }}
    // a draw deferred for an earlier point must not replace this one: the atlas can be complete before its load
    // event runs, and that event then drew the earlier point over this one (caption and all)
    atlas.onload = null;
    const cell = 28, size = cell * {SCALE};
    context.imageSmoothingEnabled = false;
    context.clearRect(0, 0, size, size);
    context.drawImage(atlas, (index % {COLUMNS}) * cell, Math.floor(index / {COLUMNS}) * cell, cell, cell,
                      0, 0, size, size);
    caption.textContent = `test image #${{index}}`;
    box.dataset.index = String(index);
    box.hidden = false;
    const mouse = event.event, width = box.offsetWidth, height = box.offsetHeight;
    const x = mouse ? mouse.clientX : window.innerWidth / 2, y = mouse ? mouse.clientY : window.innerHeight / 2;
    // above the point (plotly's own label is beside it), below when there is no room above
    box.style.left = `${{Math.max(4, Math.min(x - width / 2, window.innerWidth - width - 4))}}px`;
    box.style.top = `${{y - 16 - height >= 4 ? y - 16 - height : y + 16}}px`;
  }};
  const hide = () => {{
    atlas.onload = null;
    box.hidden = true;
  }};
  let chart = null;
  const attach = () => {{
    const found = document.querySelector(`.st-key-${{data.chart}} .js-plotly-plot`);
    if (!found || found === chart || typeof found.on !== "function") return;
    chart = found;
    chart.on("plotly_hover", show);
    chart.on("plotly_unhover", hide);
  }};
  attach();
  const timer = setInterval(attach, 250);  // the chart may be drawn after this, or drawn anew
  return () => {{
    clearInterval(timer);
    if (chart) {{
      chart.removeListener("plotly_hover", show);
      chart.removeListener("plotly_unhover", hide);
    }}
    hide();
  }};
}}
""")


def atlas_png(images28: np.ndarray) -> bytes:
    """All the (N, 28, 28) uint8 images in one grey PNG, COLUMNS a row, in index order (the last row padded)."""
    from PIL import Image

    images = np.asarray(images28, np.uint8)
    rows = -(-len(images) // COLUMNS)
    padded = np.zeros((rows * COLUMNS, 28, 28), np.uint8)
    padded[:len(images)] = images
    sheet = padded.reshape(rows, COLUMNS, 28, 28).transpose(0, 2, 1, 3).reshape(rows * 28, COLUMNS * 28)
    buffer = io.BytesIO()
    Image.fromarray(sheet, mode="L").save(buffer, format="PNG", compress_level=1)  # fast; 6 saved only 11%
    return buffer.getvalue()


@st.cache_data(max_entries=4, show_spinner=False)
def _atlas_url(detail: str, _images28: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(atlas_png(_images28)).decode("ascii")


def digit_on_hover(chart_key: str, images28: np.ndarray, detail: str) -> None:
    """Show the hovered point's test image beside the cursor, for the st.plotly_chart keyed `chart_key` (call it
    after the chart). `detail` names the image set (its cache key)."""
    _HOVER(key=f"{chart_key}_hover", data={"chart": chart_key, "atlas": _atlas_url(detail, images28),
                                           "count": len(images28)})
