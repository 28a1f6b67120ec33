"""Links a user can share: the audit pages' state in the URL's query parameters.

Widgets keep their own values in the URL with Streamlit's `bind="query-params"` (the parameter is the
widget's key: `gallery_true`, `gallery_pred`, `gallery_sort`, `gallery_page`, `evaluate_epoch`,
`inside_filter_epoch`, `inside_index`, `predict_index`). Streamlit drops a bound value it cannot use
without a word, so `check_bound` says so first. State that is not a widget (the opened image, the
confusion-matrix cell) goes through `from_url`/`to_url`, which validate the value like any input: a value
from a URL is never echoed (anyone can write one), and a bad one gets a message, never an error.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

BIND = "query-params"
_TAKEN = "links_taken"  # parameter -> the value last taken from (or put in) the URL


def _is_int_in(text: str, count: int) -> bool:
    return text.strip().lstrip("-").isdigit() and 0 <= int(text) < count


def check_bound(key: str, valid: Callable[[str], bool], what: str) -> None:
    """Before drawing the widget bound to ?key=: a value Streamlit would silently drop gets a message."""
    raw = st.query_params.get(key)
    if raw is not None and not valid(raw):
        st.info(f"The link's {what} is not one this run has; showing the default instead.",
                icon=":material/link_off:")


def check_index(key: str, count: int) -> None:
    check_bound(key, lambda text: _is_int_in(text, count), f"test index (allowed: 0–{count - 1})")


def check_label(key: str, labels: list[str], what: str) -> None:
    check_bound(key, lambda text: text in labels, f"{what} (allowed: {', '.join(labels)})")


def from_url(name: str, parse: Callable[[str], object | None], what: str):
    """The value of ?name= when the URL brings a new one (a link followed, a URL pasted), else None.

    `parse` returns None for a value that is not allowed; the message then says `what` is allowed."""
    raw = st.query_params.get(name)
    taken = st.session_state.setdefault(_TAKEN, {})
    if raw is None or raw == taken.get(name):
        return None
    taken[name] = raw
    value = parse(raw)
    if value is None:
        st.info(f"The link's {name} is not allowed here ({what}); it was ignored.", icon=":material/link_off:")
    return value


def to_url(name: str, value) -> None:
    """Keep ?name= in step with the page (None removes it), so a copied URL opens this view."""
    taken = st.session_state.setdefault(_TAKEN, {})
    text = None if value is None else str(value)
    taken[name] = text
    if text is None:
        if name in st.query_params:
            del st.query_params[name]
    elif st.query_params.get(name) != text:
        st.query_params[name] = text


def index_parser(count: int) -> Callable[[str], int | None]:
    return lambda text: int(text) if _is_int_in(text, count) else None


def cell_parser(classes: int) -> Callable[[str], tuple[int, int] | None]:
    """'4-9' -> (4, 9): a confusion-matrix cell, true class then predicted class."""
    def parse(text: str):
        parts = text.split("-")
        if len(parts) == 2 and all(_is_int_in(part, classes) for part in parts):
            return int(parts[0]), int(parts[1])
        return None
    return parse
