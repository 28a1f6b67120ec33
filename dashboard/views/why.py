"""Why: why the model decided as it did, at any epoch: attribution maps, the representation map, calibration and
the health of each layer."""

import streamlit as st

from dashboard import explain, explain_sections, links, widgets
from dashboard.audit_run import open_audit_run

VIEW = "why_view"
VIEWS = ("Attribution", "Representation map", "Calibration", "Layer health")
PICKER = "why"


def attribution_tab(run) -> None:
    st.caption("Which pixels made the model choose a class, for a test image, the gallery's opened image or an "
               "upload, at any epoch whose weights the run kept.")
    digit = widgets.pick_digit(PICKER, run.images, with_gallery=True)
    if digit is not None:
        explain.attribution_panel(PICKER, run.info, digit.x28, digit.x32, run.names)


def main() -> None:
    run = open_audit_run("Why did it decide that?", ". Attribution maps, how the classes separate inside the "
                                                    "network, whether its confidence means anything, and each "
                                                    "layer's health, epoch by epoch.")
    if run is None:
        return
    explain_sections.open_clicked_in_gallery()
    attribution, representation, calibration, health = st.tabs(VIEWS, key=VIEW, on_change="rerun", bind=links.BIND)
    if attribution.open is not False:
        with attribution:
            attribution_tab(run)
    for tab, section in ((representation, explain_sections.representation_section),
                         (calibration, explain_sections.calibration_section),
                         (health, explain_sections.layer_health_section)):
        if tab.open:
            with tab:
                section(run)


main()
