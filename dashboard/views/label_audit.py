"""Label audit: the suspected label errors of the test and the training set (confident learning with cleanlab),
the user's review marks, and a run trained without the images marked "wrong label"."""

import streamlit as st

from core import figures_audit
from core.label_audit import DEFAULT_EPOCHS, DEFAULT_METHOD, MAX_FOLDS, METHODS, MIN_FOLDS
from core.store import StoreError
from dashboard import common, label_review, live, pages
from dashboard.audit_run import AuditRun, open_audit_run

VIEW = "label_audit_view"
METHOD = "label_audit_method"
EPOCHS = "label_audit_epochs"
TOP = "label_audit_top"
FOLDS = "label_audit_folds"
VIEWS = ("Test set", "Training set")
METHOD_LABELS = {"self_confidence": "self-confidence", "normalized_margin": "normalized margin",
                 "confidence_weighted_entropy": "confidence-weighted entropy"}


def settings(epochs_saved: int) -> tuple[str, int, int]:
    left, middle, right = st.columns(3)
    method = left.selectbox("Label quality score", METHODS, format_func=METHOD_LABELS.get, key=METHOD,
                            help="cleanlab's score of how likely the given label is right; self-confidence ranked "
                                 "flipped labels best in bench/label_audit.py")
    epochs = middle.number_input("Epochs averaged (test set)", 1, max(1, epochs_saved), key=EPOCHS,
                                 help="The mean of the last epochs' test probabilities: the training dynamics. "
                                      "3 ranked best in bench/label_audit.py")
    top = right.selectbox("Show", [10, 20, 50], key=TOP, format_func=lambda n: f"top {n}")
    return method, int(epochs), top


def headline(result, split: str) -> None:
    columns = st.columns(3)
    columns[0].metric(f"{split.capitalize()} images", f"{len(result.table):,}")
    columns[1].metric("Wrong labels (cleanlab's estimate)", f"{result.estimated_errors:,}",
                      help="cleanlab.count.num_label_issues: the off-diagonal of the confident joint")
    columns[2].metric("Flagged as label issues", f"{int(result.table['issue'].sum()):,}",
                      help="cleanlab.filter.find_label_issues (prune by noise rate); the gallery ranks every image, "
                           "flagged ones say so")


def split_view(run: AuditRun, split: str, images, method: str, epochs: int, top: int) -> None:
    result, problem = label_review.audit(run.info, split, method, epochs)
    if result is None:
        st.info(problem)
        return
    headline(result, split)
    label_review.noise_and_classes(result, split, run.names)
    st.markdown(f"**The {top} most suspect {split} images**, lowest label quality first: given label, the class "
                "the model suggests, and your mark (stored with the run, never in the data).")
    label_review.downloads(run.info, result, split, run.names)
    label_review.gallery(run.info, result, split, images, run.names, top)


def start_audit(run_id: str) -> None:
    task_id, folds = f"audit-train-{run_id}", int(st.session_state[FOLDS])
    try:
        common.job_manager().submit_task("audit_train", {"run_id": run_id, "folds": folds, "task_id": task_id},
                                         task_id, label=f"label audit of {run_id}")
    except ValueError as exc:
        st.session_state[label_review.MARK_MESSAGE] = str(exc)


def stop_audit(run_id: str) -> None:
    common.job_manager().stop(f"audit-train-{run_id}")


def training_progress(run: AuditRun, running: bool) -> None:
    """The audit's state, followed live while it runs (its folds train in the training process)."""
    try:
        state = common.store().read_train_audit(run.info.run_id)
    except StoreError as exc:
        st.error(str(exc))
        state = None
    queued = common.job_manager().owns(f"audit-train-{run.info.run_id}")
    if (state is None or state.state != "running") and queued:
        st.info("Training-set audit queued: it starts when the training process is free.",
                icon=":material/hourglass_empty:")
    elif state is not None and state.state == "running":
        done = state.folds_done
        st.progress(done / max(1, state.folds), text=f"Training-set audit: fold {min(done + 1, state.folds)} of "
                                                    f"{state.folds} training ({done} done)")
        left, right = st.columns([1, 1])
        with left:
            pages.link("train", "Watch the fold train")
        right.button("Stop the audit", key="label_audit_stop", icon=":material/stop:", on_click=stop_audit,
                     args=(run.info.run_id,))
    elif state is not None and state.state in ("stopped", "failed"):
        st.warning(f"The last training-set audit {state.state}: {state.error or 'no message'}")
    elif state is not None and state.last_attempt:
        st.warning(f"Showing the completed audit of {state.ended or 'earlier'}: {state.last_attempt}.")
    if (queued or (state is not None and state.state == "running")) != running:
        st.rerun(scope="app")  # started or ended: redraw the page with the fragment's new interval and the result


def start_panel(run: AuditRun) -> None:
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    left.number_input("Folds (K)", MIN_FOLDS, MAX_FOLDS, 3, key=FOLDS,
                              help="K models, each trained with this run's settings on all folds but one")
    right.button("Audit the training set", key="label_audit_start", icon=":material/fact_check:",
                 on_click=start_audit, args=(run.info.run_id,), disabled=run.info.active,
                 help="K-fold cross-validated training in the training process: out-of-sample probabilities for "
                      "every training image (91 s for K = 3 with the seed recipe on the full MNIST on 2 cores)")


def training_view(run: AuditRun, method: str, top: int) -> None:
    st.caption("Out-of-sample probabilities of every training image: K models trained with this run's settings, "
               "each predicting the fold it did not see. Each fold trains as a run you can watch (and stop) on "
               "Train, removed once its fold is predicted.")
    running = common.job_manager().owns(f"audit-train-{run.info.run_id}")
    st.fragment(run_every=live.interval(running))(training_progress)(run, running)
    start_panel(run)
    result, problem = label_review.audit(run.info, "train", method, 1)
    if result is None:
        if "has not been audited" in problem or "damaged" in problem:  # the progress above says the rest
            st.caption(problem)
        return
    images, problem = label_review.training_images(run.info)
    if images is None:
        st.warning(problem)
        return
    label_review.retrain_panel(run.info, run.info.config)
    split_view(run, "train", images, method, 1, top)


def main() -> None:
    run = open_audit_run("Label audit", needs_predictions=True)
    if run is None:
        return
    st.caption("Confident learning (Northcutt et al. 2021, the cleanlab library) ranks the images whose given "
               "label the model, trained without them, most doubts; mark each suspect, export the marks, and "
               "retrain without the ones marked 'wrong label'.")
    if run.images is None:
        st.warning(f"The test images could not be loaded: {run.image_problem}")
        return
    st.session_state.setdefault(METHOD, DEFAULT_METHOD)
    st.session_state.setdefault(EPOCHS, DEFAULT_EPOCHS)
    st.session_state.setdefault(TOP, 20)
    saved = len(common.store().epochs_saved(run.info.run_id))
    st.session_state[EPOCHS] = min(st.session_state[EPOCHS], max(1, saved))
    method, epochs, top = settings(saved)
    test, train = st.tabs(VIEWS, key=VIEW, on_change="rerun")
    if test.open is not False:
        with test:
            split_view(run, "test", run.images.images, method, epochs, top)
    if train.open:
        with train:
            training_view(run, method, top)
    st.caption(f"{figures_audit.count(len(run.predictions.labels), 'test image')} in this run.")


main()
