"""Error gallery: the misclassified test images, filtered, sorted and paged; each opens its details."""

import numpy as np
import streamlit as st

from core import figures_audit
from core.data import prepare_images
from dashboard import explain, figures_network, links, loaders, pages, widgets
from dashboard.audit_run import AuditRun, open_audit_run
from dashboard.figure_cache import figure, thumbnails
from dashboard.gallery_state import (
    ALL,
    GALLERY_OPEN,
    GALLERY_PAGE,
    GALLERY_PRED,
    GALLERY_SORT,
    GALLERY_TRUE,
    opened_tile,
)
from dashboard.loaders import TestImages

VIEW = "gallery_view"
IMAGE_PARAM = "image"  # ?image=2130: the test image whose details are open
SUSPECT_CONFIDENCE = "gallery_suspect_confidence"
SUSPECT_TOP = "gallery_suspect_top"
TILES_PER_PAGE = 40
TILE_COLUMNS = 8
DETAIL_SCALE = 6
VIEWS = ("Misclassified", "Suspected label errors")
SORTS = {"confidence": "Most confident first", "loss": "Highest loss first"}


def open_tile(index: int) -> None:
    st.session_state[GALLERY_OPEN] = index


def open_in_grid(index: int) -> None:
    """The suspects' Details button: the details panel lives above the grid of the first tab."""
    open_tile(index)
    st.session_state[VIEW] = VIEWS[0]


def first_page() -> None:
    st.session_state[GALLERY_PAGE] = 1


def filters(names: list[str]) -> tuple[int | None, int | None, str]:
    options = [ALL, *range(len(names))]
    for key in (GALLERY_TRUE, GALLERY_PRED):
        if st.session_state.get(key, ALL) not in options:  # left over from a run with other classes
            st.session_state[key] = ALL
    label = {ALL: "All"} | dict(enumerate(names))
    links.check_label(GALLERY_TRUE, list(label.values()), "true class")
    links.check_label(GALLERY_PRED, list(label.values()), "predicted class")
    left, middle, right = st.columns([1, 1, 2])
    true_class = left.selectbox("True class", options, format_func=label.get, key=GALLERY_TRUE,
                                on_change=first_page, persist_state="session", bind=links.BIND)
    pred_class = middle.selectbox("Predicted class", options, format_func=label.get, key=GALLERY_PRED,
                                  on_change=first_page, persist_state="session", bind=links.BIND)
    sort_by = right.radio("Sort", list(SORTS), format_func=SORTS.get, key=GALLERY_SORT, horizontal=True,
                          on_change=first_page, persist_state="session", bind=links.BIND)
    return (None if true_class == ALL else true_class, None if pred_class == ALL else pred_class, sort_by)


def describe(names: list[str], true_class: int | None, pred_class: int | None) -> str:
    parts = []
    if true_class is not None:
        parts.append(f"true class {names[true_class]}")
    if pred_class is not None:
        parts.append(f"predicted as {names[pred_class]}")
    return f" ({', '.join(parts)})" if parts else ""


def misclassified_view(run: AuditRun) -> None:
    predictions, names = run.predictions, run.names
    true_class, pred_class, sort_by = filters(names)
    table = loaders.errors(predictions.probs, predictions.labels, sort_by, true_class, pred_class)
    st.markdown(f"**{figures_audit.count(len(table), 'misclassified test image')}**{describe(names, true_class, pred_class)}")
    opened = opened_tile(len(predictions.labels))
    if opened is not None:
        details(run, opened)
    if table.empty:
        st.caption("Nothing to show: no test image matches these filters.")
        return
    page_count = max(1, int(np.ceil(len(table) / TILES_PER_PAGE)))
    if st.session_state.get(GALLERY_PAGE, 1) > page_count:
        st.session_state[GALLERY_PAGE] = 1
    links.check_bound(GALLERY_PAGE, lambda text: text.isdigit() and 1 <= int(text) <= page_count,
                      f"page (allowed: 1–{page_count})")
    page = st.pagination(page_count, key=GALLERY_PAGE, persist_state="session",
                         bind=links.BIND) if page_count > 1 else 1
    shown = table.iloc[(page - 1) * TILES_PER_PAGE: page * TILES_PER_PAGE]
    st.caption(f"Page {page} of {page_count}: images {(page - 1) * TILES_PER_PAGE + 1}–"
               f"{(page - 1) * TILES_PER_PAGE + len(shown)}. Each tile: true → predicted class, the confidence, and a button with the "
               "test index that opens the image.")
    tile_grid(shown, names, run.images)


def tile_grid(shown, names: list[str], images: TestImages) -> None:
    rows = shown.itertuples()
    for start in range(0, len(shown), TILE_COLUMNS):
        columns = st.columns(TILE_COLUMNS)
        for column, row in zip(columns, rows):
            with column:
                # The caption wraps; a button's label is cut to one line ("#2654 · 6→…" at 1280 px)
                st.image(thumbnails(images, [row.index])[0],
                         caption=f"{names[row.true]}→{names[row.pred]} · {figures_audit.share(row.confidence)}")
                st.button(f"#{row.index}", key=f"gallery_tile_{row.index}", on_click=open_tile,
                          args=(int(row.index),), width="stretch")


def details(run: AuditRun, index: int) -> None:
    info, predictions, names, images = run.info, run.predictions, run.names, run.images
    label, pred = int(predictions.labels[index]), int(predictions.pred[index])
    verdict = "right" if label == pred else "wrong"
    with st.container(border=True, key="gallery_details"):
        st.markdown(f"#### Test image #{index}: true {names[label]}, predicted {names[pred]} ({verdict})")
        with st.container(horizontal=True):  # buttons as wide as their labels ("Inside the mo…" in a column)
            if st.button("Inside the model", key="gallery_to_inside", icon=":material/biotech:"):
                widgets.choose_source(widgets.INSIDE_PICKER, widgets.FROM_GALLERY)
                pages.switch_to("inside")
            st.button("Close", key="gallery_close", on_click=open_tile, args=(None,), icon=":material/close:")
        picture, bars = st.columns([1, 3])
        picture.image(figures_audit.thumbnail(images.images[index], DETAIL_SCALE), caption="28×28 test image",
                      output_format="PNG")
        bars.plotly_chart(figure(figures_audit.probability_bars, predictions.probs[index], names, true=label,
                                 title="Probability of each class"), key="gallery_probs")
        model, problem = loaders.model(info)
        if model is None:
            st.caption(f"C1 feature maps: {problem}")
        else:
            maps = loaders.maps_for(info, model, prepare_images(images.images[[index]])[0])
            st.image(figure(figures_network.feature_map_image, maps["c1_conv"], 6, 96), output_format="PNG",
                     caption="C1 feature maps: what each of the six 5×5 filters makes of the image")
        with st.expander("Why this answer? Attribution maps at any epoch", icon=":material/psychology_alt:"):
            explain.attribution_panel("gallery", info, images.images[index], prepare_images(images.images[[index]])[0],
                                      names)
        saved, problems = loaders.readable_epochs(info.run_id)
        for problem in problems:
            st.warning(problem)
        if saved:
            history = loaders.history(info.run_id, predictions.labels, index, saved)
            right = history.loc[history["correct"], "epoch"].tolist()
            st.plotly_chart(figure(figures_audit.history_figure, history, names, label), key="gallery_history")
            wrong = history.loc[~history["correct"], "epoch"].tolist()
            st.caption(f"Right {figures_audit.after_epochs(right)}; wrong {figures_audit.after_epochs(wrong)}.")


def suspects_view(run: AuditRun) -> None:
    predictions, names, images = run.predictions, run.names, run.images
    st.caption("Test images whose given label the model rejects with high confidence, ranked by "
               "confidence in the prediction minus the probability of the given label. Some are real "
               "mislabels in MNIST; others are just ambiguous. Each is shown beside the mean image and a "
               "typical, confidently recognised example of the given and the predicted class.")
    pages.link("label_audit", "Label audit: confident learning, the training set, review marks and retraining")
    left, right = st.columns(2)
    min_confidence = left.slider("Minimum confidence in the prediction", 0.5, 1.0, 0.9, 0.01,
                                 key=SUSPECT_CONFIDENCE, persist_state="session")
    top = right.selectbox("Show", [10, 20, 50], index=1, key=SUSPECT_TOP, persist_state="session",
                          format_func=lambda n: f"top {n}")
    table = loaders.suspects(predictions.probs, predictions.labels, top, min_confidence)
    if table.empty:
        st.info(f"No test image has a label that the model rejects with at least {min_confidence:.0%} confidence.")
        return
    means, typical = loaders.class_examples(images.images, predictions.labels, predictions.probs, len(names))
    for rank, row in enumerate(table.itertuples(), 1):
        with st.container(border=True, key=f"gallery_suspect_{row.index}"):
            cells = st.columns([1.3, 2, 1, 1, 1, 1])
            cells[0].image(thumbnails(images, [row.index])[0], caption=f"#{row.index}")
            cells[1].markdown(f"**{rank}. Labelled {names[row.given]}, model says {names[row.pred]}**  \n"
                              f"confidence {figures_audit.share(row.confidence, 1)} · given label "
                              f"{figures_audit.share(row.given_prob, 2)} · "
                              f"score {row.score:.3f}")
            cells[1].button("Details", key=f"gallery_suspect_open_{row.index}", on_click=open_in_grid,
                            args=(int(row.index),))
            example(cells[2], means[row.given], f"mean {names[row.given]}")
            example(cells[3], images.images[typical[row.given]] if typical[row.given] >= 0 else None,
                    f"typical {names[row.given]}")
            example(cells[4], means[row.pred], f"mean {names[row.pred]}")
            example(cells[5], images.images[typical[row.pred]] if typical[row.pred] >= 0 else None,
                    f"typical {names[row.pred]}")


def example(slot, image, caption: str) -> None:
    if image is None:
        slot.caption(f"{caption}: none recognised")
    else:
        slot.image(figures_audit.thumbnail(image), caption=caption, output_format="PNG")


def main() -> None:
    run = open_audit_run("Error gallery", needs_predictions=True)
    if run is None:
        return
    if run.images is None:
        st.warning(f"The gallery needs the test images, which could not be loaded: {run.image_problem}")
        return
    count = len(run.predictions.labels)
    image = links.from_url(IMAGE_PARAM, links.index_parser(count), f"a test index, 0–{count - 1}")
    if image is not None:  # a shared link opens its image
        open_tile(image)
    errors, suspects = st.tabs(VIEWS, key=VIEW, on_change="rerun", bind=links.BIND)
    if errors.open is not False:
        with errors:
            misclassified_view(run)
    if suspects.open:
        with suspects:
            suspects_view(run)
    links.to_url(IMAGE_PARAM, opened_tile(count))


main()
