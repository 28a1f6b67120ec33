"""Error gallery: the misclassified test images, filtered, sorted and paged; each opens its details."""

import numpy as np
import streamlit as st

from dashboard import audit_data as data
from dashboard import figures_audit as figures

VIEW = "gallery_view"
SUSPECT_CONFIDENCE = "gallery_suspect_confidence"
SUSPECT_TOP = "gallery_suspect_top"
TILES_PER_PAGE = 40
TILE_COLUMNS = 8
DETAIL_SCALE = 6
VIEWS = ("Misclassified", "Suspected label errors")
SORTS = {"confidence": "Most confident first", "loss": "Highest loss first"}
INSIDE_PAGE = "views/inside.py"


def open_tile(index: int) -> None:
    st.session_state[data.GALLERY_OPEN] = index


def open_in_grid(index: int) -> None:
    """The suspects' Details button: the details panel lives above the grid of the first tab."""
    open_tile(index)
    st.session_state[VIEW] = VIEWS[0]


def first_page() -> None:
    st.session_state[data.GALLERY_PAGE] = 1


def filters(names: list[str]) -> tuple[int | None, int | None, str]:
    options = [data.ALL, *range(len(names))]
    for key in (data.GALLERY_TRUE, data.GALLERY_PRED):
        if st.session_state.get(key, data.ALL) not in options:  # left over from a run with other classes
            st.session_state[key] = data.ALL
    label = {data.ALL: "All"} | dict(enumerate(names))
    left, middle, right = st.columns([1, 1, 2])
    true_class = left.selectbox("True class", options, format_func=label.get, key=data.GALLERY_TRUE,
                                on_change=first_page, persist_state="session")
    pred_class = middle.selectbox("Predicted class", options, format_func=label.get, key=data.GALLERY_PRED,
                                  on_change=first_page, persist_state="session")
    sort_by = right.radio("Sort", list(SORTS), format_func=SORTS.get, key=data.GALLERY_SORT, horizontal=True,
                          on_change=first_page, persist_state="session")
    return (None if true_class == data.ALL else true_class, None if pred_class == data.ALL else pred_class, sort_by)


def describe(names: list[str], true_class: int | None, pred_class: int | None) -> str:
    parts = []
    if true_class is not None:
        parts.append(f"true class {names[true_class]}")
    if pred_class is not None:
        parts.append(f"predicted as {names[pred_class]}")
    return f" ({', '.join(parts)})" if parts else ""


def misclassified_view(info, predictions: data.Predictions, names: list[str], images: data.TestImages) -> None:
    true_class, pred_class, sort_by = filters(names)
    table = data.errors(predictions.probs, predictions.labels, sort_by, true_class, pred_class)
    st.markdown(f"**{len(table):,} misclassified test images**{describe(names, true_class, pred_class)}")
    opened = st.session_state.get(data.GALLERY_OPEN)
    if opened is not None and 0 <= opened < len(predictions.labels):
        details(info, predictions, names, images, int(opened))
    if table.empty:
        st.caption("Nothing to show: no test image matches these filters.")
        return
    pages = max(1, int(np.ceil(len(table) / TILES_PER_PAGE)))
    if st.session_state.get(data.GALLERY_PAGE, 1) > pages:
        st.session_state[data.GALLERY_PAGE] = 1
    page = st.pagination(pages, key=data.GALLERY_PAGE, persist_state="session") if pages > 1 else 1
    shown = table.iloc[(page - 1) * TILES_PER_PAGE: page * TILES_PER_PAGE]
    st.caption(f"Page {page} of {pages}: images {(page - 1) * TILES_PER_PAGE + 1}–"
               f"{(page - 1) * TILES_PER_PAGE + len(shown)}. Each tile: test index, true → predicted, confidence.")
    tile_grid(shown, names, images)


def tile_grid(shown, names: list[str], images: data.TestImages) -> None:
    rows = shown.itertuples()
    for start in range(0, len(shown), TILE_COLUMNS):
        columns = st.columns(TILE_COLUMNS)
        for column, row in zip(columns, rows):
            with column:
                st.image(data.thumbnails(images, [row.index])[0])
                st.button(f"#{row.index} · {names[row.true]}→{names[row.pred]} · {row.confidence:.0%}",
                          key=f"gallery_tile_{row.index}", on_click=open_tile, args=(int(row.index),),
                          width="stretch")


def details(info, predictions: data.Predictions, names: list[str], images: data.TestImages, index: int) -> None:
    label, pred = int(predictions.labels[index]), int(predictions.pred[index])
    verdict = "right" if label == pred else "wrong"
    with st.container(border=True, key="gallery_details"):
        title, inside, close = st.columns([4, 1, 1])
        title.markdown(f"#### Test image #{index}: true {names[label]}, predicted {names[pred]} ({verdict})")
        if inside.button("Inside the model", key="gallery_to_inside"):
            st.session_state[data.INSIDE_SOURCE] = data.FROM_GALLERY
            st.switch_page(INSIDE_PAGE)
        close.button("Close", key="gallery_close", on_click=open_tile, args=(None,))
        picture, bars = st.columns([1, 3])
        picture.image(data.thumbnail(images.images[index], DETAIL_SCALE), caption="28×28 test image",
                      output_format="PNG")
        bars.plotly_chart(data.figure(figures.probability_bars, predictions.probs[index], names, true=label,
                                      title="Probability of each class"), key="gallery_probs")
        model, problem = data.model(info)
        if model is None:
            st.caption(f"C1 feature maps: {problem}")
        else:
            maps = data.maps_for(info, model, data.as_x32(images.images[index]))
            st.image(data.figure(figures.feature_map_image, maps["c1_conv"], 6, 96), output_format="PNG",
                     caption="C1 feature maps: what each of the six 5×5 filters makes of the image")
        saved, problems = data.readable_epochs(info.run_id)
        for problem in problems:
            st.warning(problem)
        if saved:
            history = data.history(info.run_id, predictions.labels, index, saved)
            right = history.loc[history["correct"], "epoch"].tolist()
            st.plotly_chart(data.figure(figures.history_figure, history, names, label), key="gallery_history")
            st.caption(f"Right after epochs {', '.join(map(str, right)) or 'none'}; "
                       f"wrong after {', '.join(map(str, history.loc[~history['correct'], 'epoch'])) or 'none'}.")


def suspects_view(predictions: data.Predictions, names: list[str], images: data.TestImages) -> None:
    st.caption("Test images whose given label the model rejects with high confidence, ranked by "
               "confidence in the prediction minus the probability of the given label. Some are real "
               "mislabels in MNIST; others are just ambiguous. Each is shown beside the mean image and a "
               "typical, confidently recognised example of the given and the predicted class.")
    left, right = st.columns(2)
    min_confidence = left.slider("Minimum confidence in the prediction", 0.5, 1.0, 0.9, 0.01,
                                 key=SUSPECT_CONFIDENCE, persist_state="session")
    top = right.selectbox("Show", [10, 20, 50], index=1, key=SUSPECT_TOP, persist_state="session",
                          format_func=lambda n: f"top {n}")
    table = data.suspects(predictions.probs, predictions.labels, top, min_confidence)
    if table.empty:
        st.info(f"No test image has a label that the model rejects with at least {min_confidence:.0%} confidence.")
        return
    means, typical = data.class_examples(images.images, predictions.labels, predictions.probs, len(names))
    for rank, row in enumerate(table.itertuples(), 1):
        with st.container(border=True, key=f"gallery_suspect_{row.index}"):
            cells = st.columns([1.3, 2, 1, 1, 1, 1])
            cells[0].image(data.thumbnails(images, [row.index])[0], caption=f"#{row.index}")
            cells[1].markdown(f"**{rank}. Labelled {names[row.given]}, model says {names[row.pred]}**  \n"
                              f"confidence {row.confidence:.1%} · given label {row.given_prob:.2%} · "
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
        slot.image(data.thumbnail(image), caption=caption, output_format="PNG")


def main() -> None:
    opened = data.current_predictions("Error gallery")
    if opened is None:
        return
    info, predictions = opened
    images, image_problem = data.test_images(info, predictions.labels)
    if images is None:
        st.warning(f"The gallery needs the test images, which could not be loaded: {image_problem}")
        return
    names = data.class_names(info)
    errors, suspects = st.tabs(VIEWS, key=VIEW, on_change="rerun")
    if errors.open is not False:
        with errors:
            misclassified_view(info, predictions, names, images)
    if suspects.open:
        with suspects:
            suspects_view(predictions, names, images)


main()
