"""Predict: the seed article's "predict one image", for a test image or an uploaded picture of a digit."""

import numpy as np
import streamlit as st

from dashboard import audit_data as data
from dashboard import common
from dashboard import figures_audit as figures

INPUT_SCALE = 6  # 28x28 and 32x32 shown at 168 and 192 pixels


def show_prediction(info, model, digit: data.Digit, names: list[str]) -> None:
    probs = data.probs_for(info, model, digit.x32)
    pred = int(np.argmax(probs))
    inputs, result = st.columns([2, 3])
    with inputs:
        small, padded = st.columns(2)
        small.image(data.thumbnail(digit.x28, INPUT_SCALE), caption="28×28, MNIST form", output_format="PNG")
        padded.image(data.thumbnail(np.round(digit.x32[:, :, 0] * 255).astype(np.uint8), INPUT_SCALE),
                     caption="32×32 input to LeNet-5", output_format="PNG")
    with result:
        verdict = None
        if digit.label is not None:
            verdict = "right" if pred == digit.label else f"wrong: the label is {names[digit.label]}"
        st.metric(f"Prediction for {digit.name}", names[pred], delta=verdict,
                  delta_color="normal" if digit.label is None or pred == digit.label else "inverse",
                  delta_arrow="off")
        st.markdown(f"Confidence **{probs[pred]:.2%}**")
        bars = data.figure(figures.probability_bars, probs, names, true=digit.label, title="Probability of each class")
        st.plotly_chart(bars, key="predict_probs", config={"displayModeBar": False})


def main() -> None:
    info = common.current_run()
    if info is None:
        return
    st.title("Predict")
    st.caption(f"Run **{info.name}** · {info.status}. Pick a test image or upload a picture of a handwritten "
               "digit; the model's answer and its probability for every class appear below.")
    data.analysis()
    model, problem = data.model(info)
    if model is None:
        st.info(problem)
        return
    predictions, _ = data.predictions(info)
    images, image_problem = data.test_images(info, predictions.labels if predictions is not None else None)
    if images is None:
        st.caption(f"Test images unavailable ({image_problem}); uploads still work.")
    digit = data.pick_digit("predict", images)
    if digit is not None:
        show_prediction(info, model, digit, data.class_names(info))


main()
