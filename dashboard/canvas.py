"""A canvas to draw a digit on with a mouse, a pen or a finger (Streamlit's v2 component API, no iframe).

When a stroke ends, the component sends the drawing as a PNG data URL and its strokes; the page turns the PNG
into MNIST form with the uploads' preprocessing (core.digits). The strokes come back as the component's data,
so the drawing survives the page's reruns. Undo removes the last stroke, Clear all of them.
"""

from __future__ import annotations

import base64
import binascii

import streamlit as st

SIZE = 280  # canvas pixels: 10x MNIST's 28
MAX_POINTS = 4000  # points kept over all strokes: a drawing, not a recording

_CANVAS = st.components.v2.component(
    "lenet_lab.digit_canvas",
    html=f"""
<div class="digit-pad">
  <canvas width="{SIZE}" height="{SIZE}" aria-label="Drawing area: draw one digit"></canvas>
  <div class="digit-buttons">
    <button type="button" data-action="undo">Undo</button>
    <button type="button" data-action="clear">Clear</button>
  </div>
</div>""",
    css=f"""
.digit-pad {{ display: inline-flex; flex-direction: column; gap: 0.5rem; }}
.digit-pad canvas {{ width: {SIZE}px; height: {SIZE}px; touch-action: none; cursor: crosshair;
                    border-radius: 0.5rem; border: 1px solid rgba(49, 51, 63, 0.3); }}
.digit-buttons {{ display: flex; gap: 0.5rem; }}
.digit-buttons button {{ font: inherit; padding: 0.25rem 0.9rem; border-radius: 0.5rem; cursor: pointer;
                        border: 1px solid rgba(49, 51, 63, 0.3); background: white; }}
""",
    js=f"""
export default function ({{ parentElement, data, setStateValue }}) {{
  const canvas = parentElement.querySelector("canvas");
  const context = canvas.getContext("2d");
  let strokes = Array.isArray(data?.strokes) ? data.strokes.map((s) => s.slice()) : [];
  let current = null;
  const draw = () => {{
    context.fillStyle = "#000";
    context.fillRect(0, 0, {SIZE}, {SIZE});
    context.strokeStyle = "#fff";
    context.lineWidth = 20;
    context.lineCap = "round";
    context.lineJoin = "round";
    for (const stroke of strokes) {{
      context.beginPath();
      context.moveTo(stroke[0][0], stroke[0][1]);
      for (const [x, y] of stroke) context.lineTo(x, y);
      if (stroke.length === 1) context.lineTo(stroke[0][0] + 0.1, stroke[0][1]);
      context.stroke();
    }}
  }};
  const send = () => setStateValue("drawing", {{
    png: strokes.length ? canvas.toDataURL("image/png") : null, strokes: strokes, at: Date.now() }});
  const point = (event) => {{
    const box = canvas.getBoundingClientRect();
    return [Math.round((event.clientX - box.left) * {SIZE} / box.width),
            Math.round((event.clientY - box.top) * {SIZE} / box.height)];
  }};
  const points = () => strokes.reduce((n, s) => n + s.length, 0);
  const down = (event) => {{
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    current = [point(event)];
    strokes.push(current);
    draw();
  }};
  const move = (event) => {{
    if (!current || points() >= {MAX_POINTS}) return;
    current.push(point(event));
    draw();
  }};
  const up = () => {{
    if (!current) return;
    current = null;
    send();
  }};
  const click = (event) => {{
    const action = event.target?.dataset?.action;
    if (action === "undo") strokes.pop();
    else if (action === "clear") strokes = [];
    else return;
    draw();
    send();
  }};
  draw();
  canvas.addEventListener("pointerdown", down);
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  parentElement.addEventListener("click", click);
  return () => {{
    canvas.removeEventListener("pointerdown", down);
    canvas.removeEventListener("pointermove", move);
    canvas.removeEventListener("pointerup", up);
    canvas.removeEventListener("pointercancel", up);
    parentElement.removeEventListener("click", click);
  }};
}}
""")


def _state(key: str) -> dict:
    state = st.session_state.get(key) or {}
    drawing = state.get("drawing") if isinstance(state, dict) else None
    return drawing if isinstance(drawing, dict) else {}


def draw(key: str) -> bytes | None:
    """Show the canvas; the PNG of the drawing as it was when the last stroke ended, or None when it is empty."""
    drawing = _state(key)
    strokes = drawing.get("strokes") if isinstance(drawing.get("strokes"), list) else []
    _CANVAS(key=key, data={"strokes": strokes}, default={"drawing": None}, on_drawing_change=lambda: None)
    png = _state(key).get("png")
    if not isinstance(png, str) or not png.startswith("data:image/png;base64,"):
        return None
    try:
        return base64.b64decode(png.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None
