"""The dashboard's pages, each defined once: app.py builds the navigation from them, pages link to each other by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage

VIEWS = Path(__file__).resolve().parent / "views"  # not pages/: Streamlit would take that for a v1 pages folder
TRAINING = "Training"
AUDIT = "Audit"  # the pages about one run, which share the run selector


@dataclass(frozen=True)
class PageSpec:
    title: str
    icon: str
    section: str  # TRAINING or AUDIT, its heading in the navigation
    default: bool = False  # the page the app opens on


# name -> page; the script is views/<name>.py and the URL path /<name> (the default page's is /).
PAGES = {
    "train": PageSpec("Train", ":material/model_training:", TRAINING, default=True),
    "runs": PageSpec("Runs", ":material/table_view:", TRAINING),
    "sweep": PageSpec("Sweep", ":material/tune:", TRAINING),
    "compare": PageSpec("Compare", ":material/compare_arrows:", TRAINING),
    "evaluate": PageSpec("Evaluate", ":material/grid_on:", AUDIT),
    "gallery": PageSpec("Error gallery", ":material/photo_library:", AUDIT),
    "label_audit": PageSpec("Label audit", ":material/fact_check:", AUDIT),
    "inside": PageSpec("Inside the model", ":material/biotech:", AUDIT),
    "predict": PageSpec("Predict", ":material/draw:", AUDIT),
    "why": PageSpec("Why", ":material/psychology_alt:", AUDIT),
}


def script(name: str) -> Path:
    if name not in PAGES:
        raise ValueError(f"no page named {name!r}; the pages are {', '.join(PAGES)}")
    return VIEWS / f"{name}.py"


def navigation() -> tuple[str, StreamlitPage]:
    """st.navigation over every page, in sections; returns (the chosen page's name, the page to run)."""
    built = {name: st.Page(script(name), title=spec.title, icon=spec.icon, default=spec.default)
             for name, spec in PAGES.items()}
    sections: dict[str, list] = {}
    for name, spec in PAGES.items():
        sections.setdefault(spec.section, []).append(built[name])
    page = st.navigation(sections)
    name = next(name for name, candidate in built.items() if candidate.url_path == page.url_path)
    return name, page


def switch_to(name: str, query_params: dict | None = None) -> None:
    """Go to the page called `name` now (st.switch_page: the rest of this script run is skipped).

    Always with a dict of query parameters, even empty: without one, st.switch_page clears the URL's parameters
    and refuses to when a widget is bound to one (dashboard/links.py), so the switch crashed."""
    st.switch_page(script(name), query_params=query_params or {})


def link(name: str, label: str | None = None, icon: str | None = None, query_params: dict | None = None):
    """A link to the page called `name`, labelled with its title and icon unless told otherwise; `query_params`
    go in its URL (the audit pages read `run`)."""
    path, spec = script(name), PAGES[name]
    return st.page_link(path, label=label or spec.title, icon=icon or spec.icon, query_params=query_params)
