"""Predict: the seed article's "predict one image", for a test image or an uploaded picture of a digit."""

import numpy as np
import streamlit as st

from core import figures_audit
from dashboard import common, loaders, widgets
from dashboard.audit_run import AuditRun, open_audit_run
from dashboard.figure_cache import figure

INPUT_SCALE = 6  # 28x28 and 32x32 shown at 168 and 192 pixels


def show_prediction(run: AuditRun, digit: widgets.Digit) -> None:
    names = run.names
    probs = loaders.probs_for(run.info, run.model, digit.x32)
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
        st.markdown(f"Confidence **{figures_audit.share(probs[pred], 2)}**")
        bars = figure(figures_audit.probability_bars, probs, names, true=digit.label, title="Probability of each class")
        st.plotly_chart(bars, key="predict_probs", config={"displayModeBar": False})


def main() -> None:
    run = open_audit_run("Predict", ". Pick a test image or upload a picture of a handwritten digit; the model's "
                                    "answer and its probability for every class appear below.", needs_model=True)
    if run is None:
        return
    if run.images is None:
        st.caption(f"Test images unavailable ({run.image_problem}); uploads still work.")
    digit = widgets.pick_digit("predict", run.images)
    if digit is not None:
        show_prediction(run, digit)


main()
