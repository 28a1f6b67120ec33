"""The error gallery's filters and opened tile in session state: Evaluate sets them, Inside reads the tile."""

from __future__ import annotations

import streamlit as st

GALLERY_TRUE = "gallery_true"
GALLERY_PRED = "gallery_pred"
GALLERY_SORT = "gallery_sort"
GALLERY_PAGE = "gallery_page"
GALLERY_OPEN = "gallery_open"  # test index of the tile whose details are shown
ALL = "all"  # the class filters' "any class"


def open_in_gallery(true_class: int | None, pred_class: int | None, names: list[str]) -> dict:
    """Set the gallery's filters; returns them as the query parameters the caller switches page with, so the
    gallery's URL names them from the start (a bound widget set from session state does not write the URL)."""
    st.session_state[GALLERY_TRUE] = ALL if true_class is None else int(true_class)
    st.session_state[GALLERY_PRED] = ALL if pred_class is None else int(pred_class)
    st.session_state[GALLERY_PAGE] = 1
    st.session_state[GALLERY_OPEN] = None
    return {key: names[value] for key, value in ((GALLERY_TRUE, true_class), (GALLERY_PRED, pred_class))
            if value is not None}


def opened_tile(count: int) -> int | None:
    """The test index opened in the gallery, if one is and it is within the `count` test images."""
    opened = st.session_state.get(GALLERY_OPEN)
    return int(opened) if opened is not None and 0 <= opened < count else None
