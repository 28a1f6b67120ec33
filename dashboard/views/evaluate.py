"""Evaluate: headline test metrics, the confusion matrix and the images in each cell, per-class scores, epochs."""

import numpy as np
import streamlit as st

from core import figures_audit
from core.store import StoreError
from dashboard import common, explain_loaders, gallery_state, links, loaders, pages, share, widgets
from dashboard.audit_run import open_audit_run
from dashboard.figure_cache import figure, thumbnails
from dashboard.loaders import Predictions, TestImages

NORMALIZE = "evaluate_normalize"
CELL = "evaluate_cell"  # (true, predicted) of the confusion-matrix cell whose images are shown
CELL_PAGE = "evaluate_cell_page"
EPOCH = "evaluate_epoch"
CELL_PARAM = "cell"  # ?cell=4-9: true class 4 predicted as 9
VIEW = "evaluate_view"
VIEWS = ("Per class", "Epoch by epoch")
CHART = "evaluate_confusion_chart"
THUMBNAILS_PER_PAGE = 40
CHANGES_SHOWN = 30
# Reference results the headline compares an MNIST run with.
SEED_ARTICLE_ACCURACY = 0.9926  # the seed article's LeNet-5 on the MNIST test set
LECUN_1998_ERROR = 0.0095  # LeCun et al. 1998, LeNet-5 without distortions: 0.95% test error


def headline(predictions: Predictions, dataset: str) -> None:
    metrics = predictions.metrics
    accuracy, n = metrics["accuracy"], metrics["n"]
    errors = int(metrics.get("error_count", round((1 - accuracy) * n)))
    lecun_errors = round(LECUN_1998_ERROR * n)
    compare = dataset == "mnist"  # the reference results are MNIST's
    columns = st.columns(3)
    columns[0].metric("Test accuracy", f"{accuracy:.2%}",
                      delta=f"{(accuracy - SEED_ARTICLE_ACCURACY) * 100:+.2f} pp" if compare else None,
                      delta_description=f"vs the article's {SEED_ARTICLE_ACCURACY:.2%}" if compare else None)
    columns[1].metric("Test error rate", f"{1 - accuracy:.2%}",
                      delta=f"{(1 - accuracy - LECUN_1998_ERROR) * 100:+.2f} pp" if compare else None,
                      delta_color="inverse",
                      delta_description=f"vs LeCun 1998's {LECUN_1998_ERROR:.2%}" if compare else None)
    columns[2].metric(f"Errors (of {n:,})", f"{errors:,}", delta=f"{errors - lecun_errors:+,}" if compare else None,
                      delta_color="inverse",
                      delta_description=f"vs {lecun_errors:,} at {LECUN_1998_ERROR:.2%} error" if compare else None)
    calibration = explain_loaders.calibration(predictions.probs, predictions.labels)
    ece, confidence = st.columns(3)[:2]  # a row of its own: a fourth column cut the deltas' words at 1280 px
    ece.metric("Calibration error (ECE)", f"{calibration.ece:.2%}", help="Expected calibration error: the gap "
               "between confidence and accuracy over 10 confidence bins, weighted by each bin's share of the "
               "images. The Why page's Calibration tab draws it.")
    confidence.metric("Mean confidence", f"{calibration.confidence.mean():.2%}",
                      delta=f"{(calibration.confidence.mean() - accuracy) * 100:+.2f} pp", delta_color="off",
                      delta_description="vs the accuracy",
                      help="Above the accuracy, the model is overconfident; below it, underconfident.")
    for average in ("macro", "weighted"):  # rows of three: six in a row were cut to "0.9…" at 1024 px
        for slot, name in zip(st.columns(3), ("precision", "recall", "F1")):
            slot.metric(f"{average.capitalize()} {name}", f"{metrics[f'{average}_{name.lower()}']:.4f}")
    reference = "" if compare else (f" The seed article's {SEED_ARTICLE_ACCURACY:.2%} and LeCun et al.'s "
                                    f"{LECUN_1998_ERROR:.2%} error are MNIST results, so this {dataset} run is "
                                    "not compared with them.")
    st.caption(f"From {predictions.source} on the {n:,} test images.{reference}")


def select_cell(cell: tuple[int, int]) -> None:
    st.session_state[CELL] = cell
    st.session_state[CELL_PAGE] = 1


def on_chart_select() -> None:
    cell = figures_audit.selected_cell(st.session_state.get(CHART))
    if cell is not None:
        select_cell(cell)


def confusion_section(predictions: Predictions, names: list[str], images: TestImages | None) -> None:
    st.subheader("Confusion matrix")
    counts = loaders.confusion_counts(predictions.probs, predictions.labels, len(names))
    matrix, pairs = st.columns([2, 1])  # the matrix keeps about 370 px at a 1024 px wide window
    with matrix:
        normalize = st.toggle("Row-normalised (share of each true class)", key=NORMALIZE)
        cell = st.session_state.get(CELL)
        chart = figure(figures_audit.confusion_matrix_figure, counts, names, normalize=normalize, selected=cell)
        st.plotly_chart(chart, key=CHART, on_select=on_chart_select, selection_mode="points",
                        config={"displayModeBar": False})
        st.caption("Rows are true classes, columns predicted. The grey diagonal holds the correct predictions, "
                   "so the colour scale shows only the errors. Click a cell to see its images.")
    with pairs:
        confused_pairs(counts, names)
    if cell is not None:
        cell_gallery(predictions, names, images, *cell)


def confused_pairs(counts: np.ndarray, names: list[str]) -> None:
    st.markdown("**Most confused pairs**")
    pairs = loaders.analysis().most_confused_pairs(counts, names, top=8)
    if pairs.empty:
        st.caption("No errors: every test image is classified correctly.")
    for row in pairs.itertuples():
        true_class, pred_class = names.index(row.true), names.index(row.pred)
        label, button = st.columns([3, 1], vertical_alignment="center")
        label.markdown(f"True **{row.true}** predicted as **{row.pred}**: {figures_audit.count(row.count, 'image')}")
        button.button("", icon=":material/visibility:", key=f"evaluate_pair_{true_class}_{pred_class}",
                      on_click=select_cell, args=((true_class, pred_class),), help="Show these images")


def cell_gallery(predictions: Predictions, names: list[str], images: TestImages | None,
                 true_class: int, pred_class: int) -> None:
    table = loaders.cell_images(predictions.probs, predictions.labels, true_class, pred_class)
    kind = "correct" if true_class == pred_class else "misclassified"
    with st.container(border=True, key="evaluate_cell_gallery"):
        left, right = st.columns([3, 1])
        left.markdown(f"**True {names[true_class]}, predicted {names[pred_class]}: "
                      f"{figures_audit.count(len(table), kind + ' image')}**")
        if true_class != pred_class and right.button("Open in the error gallery", key="evaluate_to_gallery"):
            filters = gallery_state.open_in_gallery(true_class, pred_class, names)
            pages.switch_to("gallery", {**filters, common.RUN_PARAM: st.session_state[common.URL_RUN]})
        if right.button("Close", key="evaluate_close_cell"):
            st.session_state[CELL] = None
            st.rerun()
        if table.empty:
            st.caption("No test image falls in this cell.")
            return
        page_count = max(1, int(np.ceil(len(table) / THUMBNAILS_PER_PAGE)))
        page = st.pagination(page_count, key=CELL_PAGE, bind=links.BIND) if page_count > 1 else 1
        shown = table.iloc[(page - 1) * THUMBNAILS_PER_PAGE: page * THUMBNAILS_PER_PAGE]
        order = "least confident first" if true_class == pred_class else "most confident first"
        st.caption(f"Images {(page - 1) * THUMBNAILS_PER_PAGE + 1}–{(page - 1) * THUMBNAILS_PER_PAGE + len(shown)} "
                   f"of {len(table):,}, {order}.")
        show_thumbnails(images, shown["index"].tolist(),
                   [f"#{i} · {figures_audit.share(c)}" for i, c in zip(shown["index"], shown["confidence"])])


def show_thumbnails(images: TestImages | None, indices: list[int], captions: list[str]) -> None:
    if images is None:
        st.write("Test indices: " + ", ".join(str(i) for i in indices))
        return
    st.image(thumbnails(images, indices), caption=captions)


def per_class_section(predictions: Predictions, names: list[str]) -> None:
    report = loaders.class_report(predictions.probs, predictions.labels, names)
    left, right = st.columns([2, 3])
    # A static table: eleven rows need no scrolling or sorting, and it draws far faster than st.dataframe.
    left.table(report.style.format("{:.4f}", subset=["precision", "recall", "f1"]))
    right.plotly_chart(figure(figures_audit.class_metrics_figure, report, height=38 + 35 * len(report)),
                       key="evaluate_class_chart")


def epoch_section(run_id: str, predictions: Predictions, names: list[str],
                  images: TestImages | None) -> None:
    try:
        epoch_view(run_id, predictions, names, images)
    except StoreError as exc:  # a damaged epoch snapshot: the rest of the page still stands
        st.warning(str(exc))


def epoch_view(run_id: str, predictions: Predictions, names: list[str],
               images: TestImages | None) -> None:
    saved, problems = loaders.readable_epochs(run_id)
    for problem in problems:
        st.warning(problem)
    if not saved:
        st.caption("This run has no readable epoch snapshots." if problems else "This run saved no epoch snapshots.")
        return
    if len(saved) == 1:
        epoch = saved[0]
        st.caption(f"Only epoch {epoch} {'can be read' if problems else 'was saved'}, so there is nothing to "
                   "scrub through yet.")
    else:
        epoch = widgets.epoch_slider(EPOCH, saved, run_id)
    labels = predictions.labels
    probs = loaders.snapshot_probs(run_id, epoch)
    if len(probs) != len(labels):
        st.warning(f"The epoch {epoch} snapshot holds {len(probs)} predictions, not one per test image.")
        return
    accuracies = loaders.epoch_accuracies(run_id, labels, saved)
    position = saved.index(epoch)
    accuracy = accuracies[position]
    left, right = st.columns([1, 2])
    delta = f"{(accuracy - accuracies[position - 1]) * 100:+.2f} pp" if position else None
    left.metric(f"Test accuracy after epoch {epoch}", f"{accuracy:.2%}", delta=delta,
                delta_description=f"vs epoch {saved[position - 1]}" if position else None)
    left.plotly_chart(figure(figures_audit.epoch_accuracy_figure, saved, accuracies, epoch),
                      key="evaluate_epoch_accuracy")
    counts = loaders.confusion_counts(probs, labels, len(names))
    matrix = figure(figures_audit.confusion_matrix_figure, counts, names, height=420,
                    title=f"Confusion matrix after epoch {epoch}", clickable=False)
    right.plotly_chart(matrix, key="evaluate_epoch_confusion", config={"displayModeBar": False})
    if position == 0:
        st.caption("The first saved epoch has no previous epoch to compare with.")
        return
    previous = saved[position - 1]
    changes = loaders.epoch_changes(run_id, labels, previous, epoch)
    before, after = loaders.snapshot_probs(run_id, previous).argmax(axis=1), probs.argmax(axis=1)
    st.caption(f"Each thumbnail: test index, then the prediction after epoch {previous} → after epoch {epoch}.")
    for kind, verb in (("fixed", "wrong after epoch {p}, right after epoch {e}"),
                       ("broken", "right after epoch {p}, wrong after epoch {e}")):
        indices = changes[kind].tolist()
        st.markdown(f"**{kind.capitalize()}: {len(indices):,}** test {'image was' if len(indices) == 1 else 'images were'} "
                    + verb.format(p=previous, e=epoch))
        shown = indices[:CHANGES_SHOWN]
        if shown:
            show_thumbnails(images, shown, [f"#{i} · {names[before[i]]}→{names[after[i]]}" for i in shown])
        if len(indices) > len(shown):
            st.caption(f"The first {len(shown)} of {len(indices):,} shown.")


def main() -> None:
    run = open_audit_run("Evaluate", needs_predictions=True)
    if run is None:
        return
    info, predictions, names, images = run.info, run.predictions, run.names, run.images
    if images is None:
        st.warning(f"The test images could not be loaded, so indices are shown instead: {run.image_problem}")
    cell = links.from_url(CELL_PARAM, links.cell_parser(len(names)), "true and predicted class, e.g. 4-9")
    if cell is not None:  # a shared link opens its cell
        select_cell(cell)
    headline(predictions, info.config.dataset)
    share.report_button(info.run_id)
    confusion_section(predictions, names, images)
    cell = st.session_state.get(CELL)
    links.to_url(CELL_PARAM, f"{cell[0]}-{cell[1]}" if cell else None)
    # Only the open tab is computed and drawn: the browser has half as many charts to lay out.
    per_class, by_epoch = st.tabs(VIEWS, key=VIEW, on_change="rerun", bind=links.BIND)
    if per_class.open is not False:
        with per_class:
            per_class_section(predictions, names)
    if by_epoch.open:
        with by_epoch:
            epoch_section(info.run_id, predictions, names, images)


main()
