"""Predict: the seed article's "predict one image", for a test image, an uploaded picture or a drawing, by the model
as it was after any epoch: the answer, every class's probability, C1's feature maps and an attribution map."""

import numpy as np
import streamlit as st

from core import figures_audit
from dashboard import common, explain, explain_loaders, figures_network, widgets
from dashboard.audit_run import AuditRun, open_audit_run
from dashboard.figure_cache import figure

INPUT_SCALE = 6  # 28x28 and 32x32 shown at 168 and 192 pixels
EPOCH = "predict_epoch"


def show_prediction(run: AuditRun, digit: widgets.Digit, chosen: explain.EpochModel) -> None:
    names = run.names
    maps = explain_loaders.maps_at(run.info, chosen.epoch, chosen.model, digit.x32)
    probs = maps["output"]
    pred = int(np.argmax(probs))
    inputs, result = st.columns([2, 3])
    with inputs:
        small, padded = st.columns(2)
        small.image(figures_audit.thumbnail(digit.x28, INPUT_SCALE), caption="28×28, MNIST form",
                    output_format="PNG")
        padded.image(figures_audit.thumbnail(np.round(digit.x32[:, :, 0] * 255).astype(np.uint8), INPUT_SCALE),
                     caption="32×32 input to LeNet-5", output_format="PNG")
    with result:
        verdict = None
        if digit.label is not None:
            verdict = "right" if pred == digit.label else f"wrong: the label is {names[digit.label]}"
        st.metric(f"Prediction for {common.plain(digit.name)}", names[pred], delta=verdict,
                  delta_color="normal" if digit.label is None or pred == digit.label else "inverse",
                  delta_arrow="off")
        st.markdown(f"Confidence **{figures_audit.share(probs[pred], 2)}** ({chosen.caption})")
        bars = figure(figures_audit.probability_bars, probs, names, true=digit.label, title="Probability of each class")
        st.plotly_chart(bars, key="predict_probs", config={"displayModeBar": False})
    st.image(figure(figures_network.feature_map_image, maps["c1_conv"], 6, 96), output_format="PNG",
             caption=f"C1 feature maps ({chosen.caption}): what each of the six 5×5 filters makes of the image")
    st.markdown("**Why this answer?**")
    explain.attribution_panel("predict", run.info, digit.x28, digit.x32, names, chosen)


def main() -> None:
    run = open_audit_run("Predict", ". Pick a test image, upload a picture or draw a digit; the model's answer, its "
                                    "probability for every class, C1's feature maps and an attribution map appear "
                                    "below, for the model after any epoch.")
    if run is None:
        return
    chosen = explain.epoch_model(EPOCH, run.info)
    if chosen is None:
        return
    if run.images is None:
        st.caption(f"Test images unavailable ({run.image_problem}); uploads and drawings still work.")
    digit_and_answer(run, chosen)


@st.fragment
def digit_and_answer(run: AuditRun, chosen: explain.EpochModel) -> None:
    """The picker and the answer: a stroke, another index or an upload reruns this part of the page only."""
    digit = widgets.pick_digit("predict", run.images, with_drawing=True)
    if digit is not None:
        show_prediction(run, digit, chosen)


main()
