"""The "why" pieces pages share: the model-at-an-epoch picker and the attribution panel (Predict, the gallery's
details, Inside the model and the Why page call them with a line or two)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from core import figures_audit
from core.store import RunInfo
from dashboard import explain_loaders, figures_explain, widgets

FINAL = explain_loaders.FINAL
PREDICTED = -1  # the class picker's "the predicted class"
METHOD_HELP = {
    "saliency": "How much a small change of each pixel changes the class's score (the gradient's size).",
    "smoothgrad": "The gradient's size averaged over 32 noisy copies of the image: less speckle.",
    "integrated_gradients": "Each pixel's share of the score, summed along the path from a black image; red "
                            "pixels speak for the class, blue against. The map adds up to the score's change.",
    "gradcam": "Where in C3's 16 maps the class's evidence lies, weighted by the gradient (coarse: 2-pixel cells).",
    "occlusion": "How much the class's probability drops when a black square hides each place.",
}


@dataclass(frozen=True)
class EpochModel:
    epoch: int  # FINAL for the saved model
    model: object
    caption: str  # "after epoch 3" or "the saved model"


def epoch_label(epoch: int) -> str:
    return "saved model" if epoch == FINAL else f"epoch {epoch}"


def epoch_model(key: str, info: RunInfo, with_model: bool = True) -> EpochModel | None:
    """A slider over the epochs whose weights the run kept (and its saved model); shows why some are missing.
    None, with a message, when the run has no model to show at all. Without `with_model`, the chosen epoch and
    its caption only (model None): for a caller that reads the weights itself."""
    epochs, missing = explain_loaders.weights_epochs(info)
    has_final = not info.active and bool(info.record.model_saved)
    options = epochs + ([FINAL] if has_final else [])
    if missing and not epochs:
        st.caption("This run kept no weights per epoch (it was trained before LeNet Lab stored the model at every "
                   "epoch), so only its saved model can be shown.")
    elif missing:
        st.caption(f"{missing} saved epoch(s) hold no readable weights and are left out of the slider.")
    if not options:
        st.info("This run has no model to show yet: the weights are saved at the end of each epoch." if info.active
                else "This run has neither a saved model nor weights from any epoch.")
        return None
    if len(options) == 1:
        epoch = options[0]
    else:
        widgets.per_run(key, info.run_id)
        last = f"{key}__last"
        current = st.session_state.get(key)
        if current is not None and (current not in options or current == st.session_state.get(last) != options[-1]):
            st.session_state.pop(key)  # gone, or it was the newest epoch: follow the newest one (a live run's)
        st.session_state[last] = options[-1]
        epoch = st.select_slider("Model after", options=options, value=options[-1], key=key,
                                 format_func=epoch_label)
    caption = "the saved model" if epoch == FINAL else f"after epoch {epoch}"
    if not with_model:
        return EpochModel(epoch, None, caption)
    model, problem = explain_loaders.model_at(info, epoch)
    if model is None:
        st.warning(problem)
        return None
    return EpochModel(epoch, model, caption)


def attribution_panel(prefix: str, info: RunInfo, x28: np.ndarray, x32: np.ndarray, names: list[str],
                      chosen: EpochModel | None = None) -> None:
    """Why the model said what it said about one digit: a map of the chosen method for the predicted class or any
    other, at the chosen epoch, laid over the digit."""
    from core import attribution

    chosen = chosen or epoch_model(f"{prefix}_attr_epoch", info)
    if chosen is None:
        return
    probs = explain_loaders.maps_at(info, chosen.epoch, chosen.model, x32)["output"]
    pred = int(np.argmax(probs))
    method_col, class_col, patch_col = st.columns([2, 2, 1])
    method = method_col.selectbox("Attribution method", list(attribution.METHODS), format_func=attribution.METHODS.get,
                                  key=f"{prefix}_attr_method")
    classes = [PREDICTED, *range(len(names))]
    target = class_col.selectbox("Explain the class", classes, key=f"{prefix}_attr_class",
                                 format_func=lambda c: "the predicted class" if c == PREDICTED else names[c])
    target = pred if target == PREDICTED else int(target)
    patch = 4
    if method == "occlusion":
        patch = patch_col.select_slider("Patch", options=list(attribution.OCCLUSION_PATCHES), value=4,
                                        key=f"{prefix}_attr_patch", format_func=lambda p: f"{p}×{p}")
    values = explain_loaders.attribution_map(info, chosen.epoch, chosen.model, x32, target, method, patch)
    overlay = figures_explain.attribution_overlay(x28, values, signed=method in attribution.SIGNED)
    picture, words = st.columns([1, 2])
    picture.image(overlay, caption=f"{attribution.METHODS[method]}, class {names[target]}, {chosen.caption}",
                  output_format="PNG")
    against = " and not " + names[pred] if target != pred else ""
    subject = "The saved model" if chosen.epoch == FINAL else f"The model {chosen.caption}"
    words.markdown(f"**Why {names[target]}{against}?** {subject} gives {names[target]} a probability of "
                   f"{figures_audit.share(probs[target], 1)}.")
    words.caption(METHOD_HELP[method] + (" Red: pixels for the class; blue: against." if method in attribution.SIGNED
                                         else " The brighter the red, the more the pixel matters."))
