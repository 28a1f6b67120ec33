"""How each audit page opens: the chosen run under the page's title, with its predictions, test images and model."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.data import CLASS_NAMES
from core.store import RunInfo
from dashboard import common, loaders


@dataclass(frozen=True)
class AuditRun:
    info: RunInfo
    names: list[str]  # the class names, in class order
    predictions: loaders.Predictions | None  # None when the page does not need them and they are missing
    images: loaders.TestImages | None  # None when they could not be loaded (image_problem says why)
    image_problem: str | None
    model: object | None = None  # the Keras model, when the page asked for it and it could be loaded


def class_names(info: RunInfo) -> list[str]:
    names = info.record.class_names
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    dataset = info.config.dataset if info.config is not None else "mnist"
    return list(CLASS_NAMES.get(dataset, CLASS_NAMES["mnist"]))


def open_audit_run(title: str, about: str = "", *, with_model: bool = False, needs_model: bool = False,
                   needs_predictions: bool = False) -> AuditRun | None:
    """Draw the page's title and run caption (`about` is added to the caption), then load the run.

    The model is loaded with `with_model` or `needs_model`; when it cannot be, why is shown. Returns None,
    with a message shown, when there is no run, or no model (needs_model) or no predictions
    (needs_predictions). The test images are the ones matching the predictions' labels, when there are any.
    """
    info = common.current_run()
    if info is None:
        return None
    st.title(title)
    st.caption(f"Run **{common.plain(info.name)}** · {info.status}{about}")
    loaders.analysis()  # before reading: the TensorFlow import shows a spinner under the title
    model = None
    if with_model or needs_model:
        model, problem = loaders.model(info)
        if model is None:
            st.info(problem)
            if needs_model:
                return None
    predictions, problem = loaders.predictions(info)
    if predictions is None and needs_predictions:
        st.info(problem)
        return None
    images, image_problem = loaders.test_images(info, predictions.labels if predictions is not None else None)
    return AuditRun(info, class_names(info), predictions, images, image_problem, model)
