"""The audit pages' Plotly builders: each figure holds exactly the numbers it was given."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix

from core import figures_audit as figures
from dashboard import figures_network

NAMES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def labels_and_predictions():
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 10, 2000)
    y_pred = np.where(rng.random(2000) < 0.8, y_true, rng.integers(0, 10, 2000))
    y_pred[y_true == 9] = 9  # a class without errors: its row is all diagonal
    return y_true, y_pred


def tile(z: np.ndarray, i: int, shape: tuple[int, int], columns: int, gap: int = 1) -> np.ndarray:
    row, column = divmod(i, columns)
    h, w = shape
    return z[row * (h + gap): row * (h + gap) + h, column * (w + gap): column * (w + gap) + w]


# ----- confusion matrix -----------------------------------------------------------------------------


def test_confusion_counts_z_equals_sklearn(labels_and_predictions):
    y_true, y_pred = labels_and_predictions
    cm = confusion_matrix(y_true, y_pred, labels=range(10))
    figure = figures.confusion_matrix_figure(cm, NAMES)
    np.testing.assert_array_equal(np.asarray(figure.data[0].z), cm)
    # The colour scale spans the errors only: the largest off-diagonal count, not the diagonal.
    assert figure.data[0].zmax == cm[~np.eye(10, dtype=bool)].max()
    assert figure.data[0].zmax < cm.diagonal().max()


def test_confusion_normalised_z_equals_sklearn(labels_and_predictions):
    y_true, y_pred = labels_and_predictions
    cm = confusion_matrix(y_true, y_pred, labels=range(10))
    figure = figures.confusion_matrix_figure(cm, NAMES, normalize=True)
    expected = confusion_matrix(y_true, y_pred, labels=range(10), normalize="true")
    np.testing.assert_allclose(np.asarray(figure.data[0].z), expected)
    np.testing.assert_allclose(np.asarray(figure.data[0].z).sum(axis=1), 1.0)


def test_diagonal_is_masked_grey_and_annotated(labels_and_predictions):
    y_true, y_pred = labels_and_predictions
    cm = confusion_matrix(y_true, y_pred, labels=range(10))
    figure = figures.confusion_matrix_figure(cm, NAMES)
    grey = [s for s in figure.layout.shapes if s.name == figures.DIAGONAL_SHAPE]
    assert [(s.x0 + 0.5, s.y0 + 0.5) for s in grey] == [(i, i) for i in range(10)]
    assert all(s.fillcolor == figures.DIAGONAL_FILL and s.layer == "above" for s in grey)
    assert [(a.x, a.y, int(a.text)) for a in figure.layout.annotations] == [(i, i, cm[i, i]) for i in range(10)]
    assert all(a.font.color == figures.DIAGONAL_TEXT for a in figure.layout.annotations)
    # The heatmap writes each non-zero error count, and leaves the diagonal and empty cells blank.
    errors_text = np.asarray(figure.data[0].text)
    for t in range(10):
        for p in range(10):
            assert errors_text[t, p] == (str(cm[t, p]) if cm[t, p] and t != p else "")


def test_a_matrix_that_is_not_clicked_has_no_cell_markers(labels_and_predictions):
    y_true, y_pred = labels_and_predictions
    cm = confusion_matrix(y_true, y_pred, labels=range(10))
    figure = figures.confusion_matrix_figure(cm, NAMES, clickable=False)
    assert len(figure.data) == 1 and figure.data[0].hovertemplate


def test_selected_cell_is_outlined():
    cm = np.arange(9).reshape(3, 3)
    figure = figures.confusion_matrix_figure(cm, ["a", "b", "c"], selected=(2, 0))
    (shape,) = [s for s in figure.layout.shapes if s.name != figures.DIAGONAL_SHAPE]
    assert (shape.x0, shape.x1, shape.y0, shape.y1) == (-0.5, 0.5, 1.5, 2.5)


def test_confusion_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        figures.confusion_matrix_figure(np.zeros((2, 2)), ["a", "b", "c"])


@pytest.mark.parametrize("point", [
    {"curve_number": 2, "x": 5, "y": 3, "customdata": {"0": 3, "1": 5, "2": 23, "3": 0.02}},  # what the browser sends
    {"curve_number": 2, "x": 5, "y": 3, "customdata": [3, 5, 23, 0.02]},
    {"curve_number": 2, "x": 5, "y": 3},
])
def test_selected_cell_reads_a_click(point):
    assert figures.selected_cell({"selection": {"points": [point]}}) == (3, 5)


@pytest.mark.parametrize("event", [None, {}, {"selection": {"points": []}}])
def test_selected_cell_without_a_click(event):
    assert figures.selected_cell(event) is None


# ----- filters and feature maps ---------------------------------------------------------------------


def test_montage_places_each_map_and_leaves_gaps_empty():
    maps = np.arange(5 * 2 * 3, dtype=float).reshape(5, 2, 3)
    z = figures_network.montage(maps, columns=3)
    assert z.shape == (2 * 3 - 1, 3 * 4 - 1)
    for i in range(5):
        np.testing.assert_array_equal(tile(z, i, (2, 3), 3), maps[i])
    assert np.isnan(z).sum() == z.size - maps.size


def test_kernel_figure_holds_the_kernels_on_a_zero_centred_scale():
    kernels = np.random.default_rng(0).normal(size=(6, 5, 5))
    figure = figures_network.kernel_figure(kernels)
    trace = figure.data[0]
    z = np.asarray(trace.z, dtype=float)
    for i in range(6):
        np.testing.assert_array_equal(tile(z, i, (5, 5), 6), kernels[i])
    assert trace.zmid == 0 and trace.zmin == -trace.zmax == -np.abs(kernels).max()
    assert [a.text for a in figure.layout.annotations] == [f"filter {i}" for i in range(1, 7)]


def test_kernel_figure_holds_a_models_kernels():
    from core.config import TrainConfig
    from core.model import build_model, c1_kernels

    model = build_model(TrainConfig(seed=3))
    kernels = c1_kernels(model)
    z = np.asarray(figures_network.kernel_figure(kernels).data[0].z, dtype=float)
    weights = np.asarray(model.get_layer("c1_conv").kernel)  # (5, 5, 1, 6)
    for i in range(6):
        np.testing.assert_allclose(tile(z, i, (5, 5), 6), weights[:, :, 0, i])


def test_kernel_animation_has_a_frame_per_epoch_on_one_range():
    history = np.random.default_rng(1).normal(size=(3, 6, 5, 5))
    figure = figures_network.kernel_animation([1, 2, 3], history)
    assert [frame.name for frame in figure.frames] == ["1", "2", "3"]
    for frame, kernels in zip(figure.frames, history):
        z = np.asarray(frame.data[0].z, dtype=float)
        for i in range(6):
            np.testing.assert_array_equal(tile(z, i, (5, 5), 6), kernels[i])
    assert figure.data[0].zmax == np.abs(history).max()
    assert [step.label for step in figure.layout.sliders[0].steps] == ["1", "2", "3"]
    with pytest.raises(ValueError, match="one"):
        figures_network.kernel_animation([1, 2], history)


def test_feature_map_figure_shows_each_map_stretched_and_hovers_raw_values():
    maps = np.random.default_rng(2).normal(size=(16, 10, 10))
    figure = figures_network.feature_map_figure(maps, columns=8)
    trace = figure.data[0]
    z = np.asarray(trace.z, dtype=float)
    custom = np.asarray(trace.customdata, dtype=float)
    gap = figures_network.map_gap(10)
    assert z.shape == (2 * 10 + gap, 8 * 10 + 7 * gap)
    for i in range(16):
        shown = tile(z, i, (10, 10), 8, gap)
        assert shown.min() == 0 and shown.max() == 1
        np.testing.assert_allclose(tile(custom[..., 1], i, (10, 10), 8, gap), maps[i])
        assert (tile(custom[..., 0], i, (10, 10), 8, gap) == i + 1).all()


def test_feature_map_image_stretches_each_map_on_a_white_grid():
    maps = np.random.default_rng(4).normal(size=(16, 5, 5))
    image = figures_network.feature_map_image(maps, columns=8, tile_pixels=20)
    scale, gap = 4, 2
    assert image.dtype == np.uint8
    for i in range(16):
        r, c = divmod(i, 8)
        top, left = r * (5 * scale + gap), c * (5 * scale + gap)
        block = image[top: top + 5 * scale, left: left + 5 * scale].astype(float)
        stretched = (maps[i] - maps[i].min()) / (maps[i].max() - maps[i].min())
        np.testing.assert_allclose(block[::scale, ::scale], np.round(stretched * 255))
        assert (block == np.kron(block[::scale, ::scale], np.ones((scale, scale)))).all()  # square pixels
    assert image.shape == (2 * 5 * scale + gap, 8 * 5 * scale + 7 * gap)
    assert (image[5 * scale: 5 * scale + gap] == 255).all()  # the white gap between the rows


def test_feature_map_figure_of_a_constant_map_is_black():
    figure = figures_network.feature_map_figure(np.zeros((6, 4, 4)))
    assert np.nanmax(np.asarray(figure.data[0].z, dtype=float)) == 0


# ----- bars and tables ------------------------------------------------------------------------------


def test_probability_bars_mark_prediction_and_truth():
    probs = np.array([0.05, 0.7, 0.25] + [0.0] * 7)
    wrong = figures.probability_bars(probs, NAMES, true=2).data[0]
    np.testing.assert_allclose(wrong.y, probs)
    assert wrong.marker.color[1] == figures.WRONG
    assert wrong.marker.line.width[2] == 3 and wrong.marker.line.width[1] == 0
    right = figures.probability_bars(probs, NAMES, true=1).data[0]
    assert right.marker.color[1] == figures.RIGHT
    unknown = figures.probability_bars(probs, NAMES).data[0]
    assert unknown.marker.color[1] == figures.RIGHT and set(unknown.marker.line.width) == {0}


def test_class_metrics_figure_plots_the_report():
    from core.analysis import class_report

    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    report = class_report(y_true, y_pred, ["a", "b", "c"])
    figure = figures.class_metrics_figure(report)
    assert [trace.name for trace in figure.data] == ["precision", "recall", "f1"]
    for trace in figure.data:
        assert list(trace.x) == ["a", "b", "c"]
        np.testing.assert_allclose(trace.y, report.loc[["a", "b", "c"], trace.name])


def test_history_figure_colours_right_and_wrong_epochs():
    history = pd.DataFrame({"epoch": [1, 2, 3], "pred": [4, 9, 9], "confidence": [0.6, 0.7, 0.9],
                            "correct": [False, True, True]})
    trace = figures.history_figure(history, NAMES, label=9).data[0]
    assert list(trace.marker.color) == [figures.WRONG, figures.RIGHT, figures.RIGHT]
    assert list(trace.text) == ["4", "9", "9"]
    np.testing.assert_allclose(trace.y, [0.6, 0.7, 0.9])


def test_epoch_accuracy_figure_marks_the_shown_epoch():
    figure = figures.epoch_accuracy_figure([1, 2, 3], [0.5, 0.8, 0.9], selected=2)
    assert list(figure.data[0].y) == [0.5, 0.8, 0.9]
    assert list(figure.data[1].x) == [2] and list(figure.data[1].y) == [0.8]


def test_c3_table_figure_is_the_papers_table():
    from core.model import C3_TABLE

    figure = figures_network.c3_table_figure(C3_TABLE)
    np.testing.assert_array_equal(np.asarray(figure.data[0].z), C3_TABLE.astype(int))
    assert np.asarray(figure.data[0].z).sum() == 60  # Table I's 60 connections


def test_activation_figure_has_one_bar_per_unit():
    values = np.linspace(-1, 1, 84)
    trace = figures_network.activation_figure(values, title="F6").data[0]
    np.testing.assert_allclose(trace.y, values)
    assert trace.marker.color[0] == figures.WRONG and trace.marker.color[-1] == figures.ACCENT


# ----- wording and number formats (issue 20, items 8 and 9) ---------------------------------------------


def test_counts_and_epoch_lists_read_as_english():
    assert figures.count(1, "test image") == "1 test image"
    assert figures.count(1234, "test image") == "1,234 test images"
    assert figures.after_epochs([1]) == "after epoch 1"
    assert figures.after_epochs([1, 3]) == "after epochs 1, 3"
    assert figures.after_epochs([]) == "after no epoch"


def test_a_probability_is_never_rounded_to_certainty():
    assert figures.share(0.9996) == "99%" and figures.share(0.9996, 1) == "99.9%"
    assert figures.share(1.0) == "100%" and figures.share(0.0004, 1) == "0.1%"
    assert figures.share(0.734) == "73%" and figures.share(0.2, 2) == "20.00%"


def test_epoch_ticks_thin_out_for_long_runs():
    few = figures.epoch_accuracy_figure([1, 2, 3], [0.9, 0.95, 0.97])
    many = figures.epoch_accuracy_figure(list(range(1, 21)), [0.9] * 20)
    assert few.layout.xaxis.dtick == 1 and many.layout.xaxis.dtick is None


def test_the_row_normalised_colour_bar_is_in_percent_and_below_the_matrix():
    cm = np.array([[8, 2], [1, 9]])
    normalised = figures.confusion_matrix_figure(cm, ["a", "b"], normalize=True).data[0].colorbar
    counts = figures.confusion_matrix_figure(cm, ["a", "b"]).data[0].colorbar
    assert normalised.tickformat == ".2~%" and counts.tickformat is None
    assert normalised.orientation == "h" and counts.orientation == "h"


def test_probability_bars_say_what_the_confidence_says():
    probs = np.array([0.00004, 0.99996] + [0.0] * 8)
    bars = figures.probability_bars(probs, NAMES).data[0]
    assert bars.text[1] == "99.9%" and bars.customdata[1] == "99.99%"  # not "100.0%" beside "99.99%"
