"""Helpers for the dashboard's AppTest tests: open a page, read a Plotly chart's data, join texts."""

import base64
import json
import re
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def open_app(page: str | None = None) -> AppTest:
    """Run the app (it opens on Train), optionally switch to `page`, and check that nothing raised."""
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def decode(values):
    """Plotly stores numpy arrays as base64 typed arrays in the figure JSON."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).tolist()
    return values


def _decoded(spec: dict) -> dict:
    for trace in spec["data"]:
        for axis in ("x", "y"):
            if axis in trace:
                trace[axis] = decode(trace[axis])
    return spec


def chart(at: AppTest, key: str) -> dict:
    """The figure JSON of the st.plotly_chart with this key, with its x and y arrays decoded."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(f"-{key}"):
            return _decoded(json.loads(element.proto.spec))
    raise AssertionError(f"no plotly chart with key {key!r}")


def component_data(at: AppTest, key: str) -> dict:
    """The data a v2 component (st.components.v2) with this key was drawn with."""
    for element in at.get("bidi_component"):
        if element.proto.id.endswith(f"-{key}"):
            return json.loads(element.proto.json)
    raise AssertionError(f"no component with key {key!r}")


def live_chart(at: AppTest, name: str) -> dict:
    """The Train page's live panel's "batch" or "epoch" figure (dashboard/live_panel.py), arrays decoded."""
    return _decoded(component_data(at, "train_live")["feed"][name])


def texts(elements) -> str:
    """The elements' text as the browser shows it: Markdown's backslash escapes (names are shown as text,
    dashboard.common.plain) removed."""
    return "\n".join(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(e.value)) for e in elements)
