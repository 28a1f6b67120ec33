"""The Why page's sections: the representation map, calibration and layer health (attribution is explain.py's)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.store import StoreError
from dashboard import (
    common,
    digit_hover,
    explain,
    explain_loaders,
    figures_explain,
    gallery_state,
    live,
    loaders,
    pages,
    widgets,
)
from dashboard.audit_run import AuditRun

MAP_EPOCH = "why_map_epoch"
MAP_METHOD = "why_map_method"
MAP_CHART = "why_map_chart"
MAP_OPEN = "why_map_open"  # the test index a click on the map asked to open in the gallery
CAL_EPOCH = "why_calibration_epoch"
CAL_OTHER = "why_calibration_other"
HEALTH_LAYER = "why_health_layer"
PROJECTIONS = ("PCA", "t-SNE")


@st.cache_data(max_entries=4, show_spinner=False)
def padded(detail: str, _images: np.ndarray) -> np.ndarray:
    from core.data import prepare_images

    return prepare_images(_images)


def _probs_at(run: AuditRun, epoch: int) -> np.ndarray:
    return run.predictions.probs if epoch == explain.FINAL else loaders.snapshot_probs(run.info.run_id, epoch)


def clicked_index(event) -> int | None:
    """The test index of the clicked point: customdata is the index, or [index, true, predicted]."""
    for point in ((event or {}).get("selection") or {}).get("points") or []:
        data = point.get("customdata")
        if isinstance(data, dict):
            data = data.get("0")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if data is not None:
            return int(data)
    return None


def _on_map_click() -> None:
    index = clicked_index(st.session_state.get(MAP_CHART))
    if index is not None:
        st.session_state[MAP_OPEN] = index


def open_clicked_in_gallery() -> None:
    """A click on the map opens its image in the gallery (a callback cannot switch pages: the script does)."""
    index = st.session_state.pop(MAP_OPEN, None)
    if index is not None:
        st.session_state[gallery_state.GALLERY_OPEN] = index
        pages.switch_to("gallery", {"image": str(index), common.RUN_PARAM: st.session_state.get(common.URL_RUN)})


def representation_section(run: AuditRun) -> None:
    st.caption("Each test image as the layer before the output (F6, 84 units) sees it, mapped to 2-D and coloured "
               "by its true class; crosses are misclassified. Move the epoch to watch the classes separate. "
               "Rest the mouse on a point to see its digit; click it to open the image in the error gallery.")
    if run.images is None or run.predictions is None:
        st.info(f"The map needs the test images and the run's predictions: {run.image_problem or 'none yet'}.")
        return
    chosen = explain.epoch_model(MAP_EPOCH, run.info, with_model=False)  # the map swaps the weights in
    if chosen is None:
        return
    method = st.radio("Projection", PROJECTIONS, horizontal=True, key=MAP_METHOD)
    probs = _probs_at(run, chosen.epoch)
    if method == "PCA":
        points, problem = explain_loaders.pca_points(run.info, chosen.epoch, run.images.detail,
                                                     padded(run.images.detail, run.images.images))
        if points is None:
            st.warning(problem)
            return
    else:
        points = tsne_points(run, chosen)
        if points is None:
            return
    chart = figures_explain.representation_figure(points, run.predictions.labels, probs.argmax(axis=1), run.names,
                                                  f"{method}, {chosen.caption}")
    st.plotly_chart(chart, key=MAP_CHART, on_select=_on_map_click, selection_mode="points",
                    config={"displayModeBar": False, "scrollZoom": True})
    digit_hover.digit_on_hover(MAP_CHART, run.images.images, run.images.detail)


def tsne_points(run: AuditRun, chosen: explain.EpochModel) -> np.ndarray | None:
    """The stored t-SNE map, or a button that computes it in the training process (once per run and epoch)."""
    try:
        points = explain_loaders.stored_tsne(run.info, chosen.epoch)
    except StoreError as exc:
        st.warning(f"{exc}; compute it again below.")
        points = None
    if points is not None:
        return points
    task_id = f"tsne-{run.info.run_id}-{chosen.epoch}"
    job = common.job_manager().get(task_id)
    if job is not None and job.state != "done":
        st.fragment(run_every=live.interval(True))(_wait_for_tsne)(run, chosen)
        return None
    if job is not None and job.state == "done":
        st.warning("The t-SNE map was stopped before it was finished; nothing was stored." if job.status == "stopped"
                   else f"The t-SNE task ended without a map ({job.error or job.status or 'no message'}).")
    st.caption(f"t-SNE of {len(run.predictions.labels):,} images takes minutes in the training process (see "
               "bench/RESULTS.md); it is computed once per run and epoch, then kept with the run.")
    if st.button("Compute the t-SNE map", key="why_tsne_start", icon=":material/scatter_plot:"):
        common.job_manager().submit_task("tsne", {"run_id": run.info.run_id, "epoch": chosen.epoch}, task_id,
                                         label=f"t-SNE of {run.info.name}, {chosen.caption}")
        st.rerun()
    return None


def _wait_for_tsne(run: AuditRun, chosen: explain.EpochModel) -> None:
    task_id = f"tsne-{run.info.run_id}-{chosen.epoch}"
    job = common.job_manager().get(task_id)
    if explain_loaders.stored_tsne(run.info, chosen.epoch) is not None or job is None or job.state == "done":
        st.rerun(scope="app")
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.info("Computing the t-SNE map in the training process… it appears here when it is ready." if job.state ==
              "running" else "The t-SNE map is queued: it starts when the training process is free.",
              icon=":material/hourglass_top:")
    right.button("Stop", key="why_tsne_stop", icon=":material/stop:", on_click=common.job_manager().stop,
                 args=(task_id,))


def calibration_section(run: AuditRun) -> None:
    st.caption("Does 99% confidence mean 99% right? Each bin of confidence in the predicted class against the "
               "share of right answers in it (scikit-learn's calibration_curve); the expected calibration error "
               "(ECE) is the gap weighted by each bin's share of the images.")
    curves, histograms = [], []
    for slot, info, key in _calibration_runs(run):
        probs, labels, caption = slot
        result = explain_loaders.calibration(probs, labels)
        curves.append((f"{info.name}, {caption}", result.mean_confidence, result.accuracy, result.ece))
        histograms.append((f"{info.name}, {caption}", result.confidence))
    if not curves:
        return
    left, right = st.columns(2)
    left.plotly_chart(figures_explain.reliability_figure(curves), key="why_reliability")
    right.plotly_chart(figures_explain.confidence_histogram(histograms), key="why_confidence")


def _calibration_runs(run: AuditRun):
    """(probs, labels, caption), the run and the epoch key, for the audited run and the run compared with."""
    found = []
    main = _epoch_probs(CAL_EPOCH, run.info, run.predictions)
    if main is not None:
        found.append((main, run.info, CAL_EPOCH))
    others = [r for r in common.list_runs_cached() if not r.damaged and r.run_id != run.info.run_id]
    choice = st.selectbox("Overlay another run", [None, *[r.run_id for r in others]], key=CAL_OTHER,
                          format_func=lambda r: "none" if r is None else common.unique_labels(others)[r])
    if choice is not None:
        other = next(r for r in others if r.run_id == choice)
        predictions, problem = loaders.predictions(other)
        slot = _epoch_probs(f"{CAL_EPOCH}_other", other, predictions) if predictions is not None else None
        if slot is None:
            st.info(f"{other.name}: {problem or 'no predictions to compare'}")
        else:
            found.append((slot, other, CAL_OTHER))
    return found


def _epoch_probs(key: str, info, predictions):
    """(probs, labels, caption) at the epoch picked on a slider of the run's saved epochs (or its final model)."""
    saved, problems = loaders.readable_epochs(info.run_id)
    for problem in problems:
        st.warning(problem)
    options = saved + ([explain.FINAL] if predictions is not None and predictions.source == "the saved model" else [])
    if not options or predictions is None:
        return None
    labels = predictions.labels
    widgets.per_run(key, info.run_id)
    if st.session_state.get(key) not in (None, *options):
        st.session_state.pop(key, None)
    epoch = options[0] if len(options) == 1 else st.select_slider(
        f"{info.name}: epoch", options=options, value=options[-1], key=key, format_func=explain.epoch_label)
    if epoch == explain.FINAL:
        return predictions.probs, labels, "saved model"
    probs = loaders.snapshot_probs(info.run_id, epoch)
    return (probs, labels, f"epoch {epoch}") if len(probs) == len(labels) else None


def layer_health_section(run: AuditRun) -> None:
    from core import layer_health

    st.caption("Each layer epoch by epoch: how its weights are spread, how much an epoch changed them relative to "
               "their size, and the share of its ReLU units that output zero for every test image (dead units).")
    epochs, _ = explain_loaders.weights_epochs(run.info)
    if not epochs:
        st.info("Layer health needs the weights of each epoch, which this run did not keep (it was trained before "
                "LeNet Lab stored them, or has not finished an epoch yet).")
        return
    model, problem = explain_loaders.model_at(run.info, epochs[-1])
    if model is None:
        st.warning(problem)
        return
    kernels = explain_loaders.kernels(run.info, epochs, model)
    layer = st.selectbox("Layer", list(kernels[0]), key=HEALTH_LAYER)
    centres, counts = layer_health.weight_histograms([k[layer] for k in kernels])
    st.plotly_chart(figures_explain.weight_heatmap(epochs, centres, counts, layer), key="why_weights")
    left, right = st.columns(2)
    updates = layer_health.relative_updates(epochs, kernels)
    if updates.empty:
        left.caption("One epoch with weights: there is no update to measure yet.")
    else:
        left.plotly_chart(figures_explain.per_layer_lines(updates, "relative_update", "Update relative to the weights",
                                                          "‖W(e) − W(e−1)‖ / ‖W(e−1)‖"), key="why_updates")
    if run.images is None:
        right.caption(f"Dead ReLUs need the test images: {run.image_problem}")
        return
    dead = explain_loaders.dead_relus(run.info, epochs, padded(run.images.detail, run.images.images))
    if dead.empty:
        right.caption("This model has no ReLU layers (the lecun1998 variant uses a scaled tanh), so none can die.")
    else:
        right.plotly_chart(figures_explain.per_layer_lines(dead, "dead", "ReLUs that never fire on the test set",
                                                           "share of units", percent=True), key="why_dead")
