"""Figures and thumbnails built once per distinct input and shared by every session (see figure())."""

from __future__ import annotations

import io

import numpy as np
import streamlit as st

from core import figures_audit, figures_label_audit
from dashboard import figures_network

BUILDERS = {module.__name__: module for module in (figures_audit, figures_network, figures_label_audit)}


def figure(builder, *args, **kwargs):
    """builder(*args, **kwargs), a pure builder of figures_audit or figures_network (a figure, or an image
    array), built once per distinct input: building a Plotly figure validates every property, which costs
    more than a rerun can afford (bench/RESULTS.md, "Why the dashboard's code is as it is"). Pages only pass
    figures to st.plotly_chart, which reads them without changing them, so one shared object per input is safe.
    """
    if builder.__module__ not in BUILDERS:
        raise ValueError(f"builder must come from {' or '.join(BUILDERS)}; got {builder.__module__}.{builder.__name__}")
    return _figure(builder.__module__, builder.__name__, args, kwargs)


@st.cache_resource(max_entries=256, show_spinner=False)
def _figure(module: str, name: str, args: tuple, kwargs: dict):
    return getattr(BUILDERS[module], name)(*args, **kwargs)


def thumbnails(images, indices, scale: int = figures_audit.THUMBNAIL_SCALE) -> list[bytes]:
    """Test images (a loaders.TestImages) as PNG files, encoded once, not again on every rerun."""
    return [_png(images.detail, int(i), scale, images.images[i]) for i in indices]


@st.cache_data(max_entries=4096, show_spinner=False)
def _png(detail: str, index: int, scale: int, _image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(figures_audit.thumbnail(_image, scale)).save(buffer, format="PNG")
    return buffer.getvalue()
