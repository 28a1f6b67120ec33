"""core.analysis on tiny known inputs: metrics, error tables, layer probes and uploaded digits."""

import io
import json
import struct
import zlib

import keras
import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage
from sklearn.metrics import log_loss, precision_recall_fscore_support

from core.analysis import (
    class_report,
    confusion,
    correctness_history,
    epoch_changes,
    feature_maps,
    misclassified,
    most_confused_pairs,
    predict_probs,
    summary_metrics,
    suspected_label_errors,
)
from core.digits import ImageError, preprocess_digit
from core.model import c1_kernels


@pytest.fixture(scope="module")
def tiny_lenet():
    keras.utils.set_random_seed(0)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            layers.Conv2D(6, 5, activation="relu", name="c1_conv"),
            layers.AveragePooling2D(2, 2, padding="same", name="s2_pool"),
            layers.Conv2D(16, 5, activation="relu", name="c3_conv"),
            layers.AveragePooling2D(2, 2, padding="same", name="s4_pool"),
            layers.Flatten(),
            layers.Dense(120, activation="relu", name="c5_dense"),
            layers.Dense(84, activation="relu", name="f6_dense"),
            layers.Dense(10, activation="softmax", name="output"),
        ]
    )


# ---------------------------------------------------------------- metrics


def test_confusion_counts_match_a_hand_built_matrix():
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 2]
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    np.testing.assert_array_equal(confusion(y_true, y_pred, n_classes=3), expected)
    # Classes that never occur still get their row and column.
    wide = confusion(y_true, y_pred, n_classes=4)
    assert wide.shape == (4, 4)
    np.testing.assert_array_equal(wide[:3, :3], expected)
    assert wide[3].sum() == wide[:, 3].sum() == 0


def test_confusion_normalize_divides_each_row_by_its_class_count():
    cm = confusion([0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 0, 2], n_classes=3, normalize=True)
    np.testing.assert_allclose(cm, [[0.5, 0.5, 0], [0, 1, 0], [1 / 3, 0, 2 / 3]])
    np.testing.assert_allclose(cm.sum(axis=1), 1.0)


def test_confusion_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match=r"0\.\.2.*\[7\]"):
        confusion([0, 7], [0, 1], n_classes=3)


Y_SMALL = np.array([0, 1, 2, 2])
PROBS_SMALL = np.array(
    [
        [0.8, 0.1, 0.1],  # right
        [0.3, 0.6, 0.1],  # right
        [0.2, 0.5, 0.3],  # wrong: 2 read as 1
        [0.1, 0.1, 0.8],  # right
    ]
)


def test_summary_metrics_on_known_probabilities():
    metrics = summary_metrics(Y_SMALL, PROBS_SMALL)
    assert metrics["n"] == 4
    assert metrics["error_count"] == 1
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["loss"] == pytest.approx(-np.mean(np.log([0.8, 0.6, 0.3, 0.8])))
    # Precision: 0 -> 1/1, 1 -> 1/2, 2 -> 1/1; recall: 0 -> 1/1, 1 -> 1/1, 2 -> 1/2.
    assert metrics["macro_precision"] == pytest.approx(2.5 / 3)
    assert metrics["macro_recall"] == pytest.approx(2.5 / 3)
    assert metrics["weighted_recall"] == pytest.approx(0.75)
    json.loads(json.dumps(metrics))  # plain Python numbers only
    assert all(type(value) in (int, float) for value in metrics.values())


def test_summary_metrics_equal_sklearn():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(10), size=200)
    y_true = rng.integers(0, 10, size=200)
    y_pred = probs.argmax(axis=1)
    metrics = summary_metrics(y_true, probs)
    assert metrics["accuracy"] == pytest.approx(np.mean(y_pred == y_true))
    assert metrics["error_count"] == int(np.sum(y_pred != y_true))
    assert metrics["loss"] == pytest.approx(log_loss(y_true, probs, labels=range(10)))
    for average in ("macro", "weighted"):
        p, r, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=range(10), average=average, zero_division=0
        )
        assert metrics[f"{average}_precision"] == pytest.approx(p)
        assert metrics[f"{average}_recall"] == pytest.approx(r)
        assert metrics[f"{average}_f1"] == pytest.approx(f1)


def test_class_report_rows_and_averages():
    report = class_report([0, 0, 1, 2], [0, 1, 1, 2], ["zero", "one", "two"])
    assert list(report.index) == ["zero", "one", "two", "macro avg", "weighted avg"]
    assert list(report.columns) == ["precision", "recall", "f1", "support"]
    assert report.loc["zero"].tolist() == pytest.approx([1.0, 0.5, 2 / 3, 2])
    assert report.loc["one"].tolist() == pytest.approx([0.5, 1.0, 2 / 3, 1])
    assert report.loc["two"].tolist() == pytest.approx([1.0, 1.0, 1.0, 1])
    assert report.loc["macro avg", "precision"] == pytest.approx(2.5 / 3)
    assert report.loc["weighted avg", "recall"] == pytest.approx(0.75)
    assert report.loc["weighted avg", "support"] == 4
    assert report["support"].dtype == np.int64


def test_class_report_keeps_a_row_for_a_class_absent_from_the_data():
    report = class_report([0, 1], [0, 1], ["zero", "one", "two"])
    assert report.loc["two"].tolist() == [0.0, 0.0, 0.0, 0]


# ---------------------------------------------------------------- error tables

Y_ERRORS = np.array([0, 0, 1, 2, 2])
PROBS_ERRORS = np.array(
    [
        [0.90, 0.05, 0.05],  # right
        [0.20, 0.70, 0.10],  # 0 read as 1: confidence 0.70, loss -log 0.20
        [0.05, 0.15, 0.80],  # 1 read as 2: confidence 0.80, loss -log 0.15
        [0.60, 0.38, 0.02],  # 2 read as 0: confidence 0.60, loss -log 0.02
        [0.10, 0.10, 0.80],  # right
    ]
)


def test_misclassified_holds_exactly_the_wrong_predictions_most_confident_first():
    table = misclassified(Y_ERRORS, PROBS_ERRORS)
    assert list(table.columns) == ["index", "true", "pred", "confidence", "true_prob", "loss"]
    assert table["index"].tolist() == [2, 1, 3]
    assert table["true"].tolist() == [1, 0, 2]
    assert table["pred"].tolist() == [2, 1, 0]
    assert table["confidence"].tolist() == pytest.approx([0.80, 0.70, 0.60])
    assert table["true_prob"].tolist() == pytest.approx([0.15, 0.20, 0.02])
    assert table["loss"].tolist() == pytest.approx(-np.log([0.15, 0.20, 0.02]))


def test_misclassified_sorted_by_loss():
    assert misclassified(Y_ERRORS, PROBS_ERRORS, sort_by="loss")["index"].tolist() == [3, 2, 1]


def test_misclassified_filters_by_true_and_predicted_class():
    assert misclassified(Y_ERRORS, PROBS_ERRORS, true_class=0)["index"].tolist() == [1]
    assert misclassified(Y_ERRORS, PROBS_ERRORS, pred_class=0)["index"].tolist() == [3]
    assert misclassified(Y_ERRORS, PROBS_ERRORS, true_class=1, pred_class=2)["index"].tolist() == [2]
    assert misclassified(Y_ERRORS, PROBS_ERRORS, true_class=1, pred_class=0).empty


def test_misclassified_gives_a_finite_loss_for_a_zero_probability():
    table = misclassified([0], np.array([[0.0, 1.0]], dtype=np.float32))
    assert np.isfinite(table.loc[0, "loss"]) and table.loc[0, "loss"] > 10


def test_misclassified_rejects_an_unknown_sort_key_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'confidence', 'loss'.*'margin'"):
        misclassified(Y_ERRORS, PROBS_ERRORS, sort_by="margin")


Y_LABELS = np.array([0, 0, 0, 0, 2])
PROBS_LABELS = np.array(
    [
        [0.02, 0.97, 0.01],  # confident and sure the label is wrong: score 0.95
        [0.04, 0.95, 0.01],  # score 0.91
        [0.35, 0.60, 0.05],  # hesitant: confidence 0.60, score 0.25
        [0.00, 0.06, 0.94],  # less confident than row 1 but gives the label nothing: score 0.94
        [0.00, 0.01, 0.99],  # right
    ]
)


def test_suspected_label_errors_ranks_confident_disagreement_first_and_drops_hesitant_ones():
    table = suspected_label_errors(Y_LABELS, PROBS_LABELS)
    assert list(table.columns) == ["index", "given", "pred", "confidence", "given_prob", "score"]
    assert table["index"].tolist() == [0, 3, 1]
    assert table["given"].tolist() == [0, 0, 0]
    assert table["pred"].tolist() == [1, 2, 1]
    assert table["score"].tolist() == pytest.approx([0.95, 0.94, 0.91])
    assert (table["score"] == table["confidence"] - table["given_prob"]).all()


def test_suspected_label_errors_threshold_and_top():
    everything = suspected_label_errors(Y_LABELS, PROBS_LABELS, top=None, min_confidence=0.5)
    assert everything["index"].tolist() == [0, 3, 1, 2]
    assert suspected_label_errors(Y_LABELS, PROBS_LABELS, top=1)["index"].tolist() == [0]
    assert suspected_label_errors(Y_LABELS, PROBS_LABELS, min_confidence=0.96)["index"].tolist() == [0]


def test_most_confused_pairs_largest_first_without_empty_cells():
    cm = np.array([[5, 2, 0], [4, 6, 1], [0, 2, 7]])
    pairs = most_confused_pairs(cm, ["a", "b", "c"], top=10)
    assert list(pairs.columns) == ["true", "pred", "count"]
    assert list(pairs.itertuples(index=False, name=None)) == [("b", "a", 4), ("a", "b", 2), ("c", "b", 2), ("b", "c", 1)]
    assert len(most_confused_pairs(cm, ["a", "b", "c"], top=2)) == 2


def test_epoch_changes_fixed_and_broken():
    y_true = [0, 1, 2, 0]
    before = np.eye(3)[[0, 0, 2, 1]]  # right on 0 and 2
    after = np.eye(3)[[0, 1, 0, 0]]  # right on 0, 1 and 3
    changes = epoch_changes(y_true, before, after)
    assert changes["fixed"].tolist() == [1, 3]
    assert changes["broken"].tolist() == [2]


def test_correctness_history_for_one_image():
    y_true = [2, 1]
    epochs = [
        np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]),
        np.array([[0.1, 0.2, 0.7], [0.2, 0.5, 0.3]]),
        np.array([[0.1, 0.2, 0.7], [0.1, 0.9, 0.0]]),
    ]
    history = correctness_history(y_true, epochs, index=1)
    assert list(history.columns) == ["epoch", "pred", "confidence", "correct"]
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["pred"].tolist() == [0, 1, 1]
    assert history["confidence"].tolist() == pytest.approx([0.6, 0.5, 0.9])
    assert history["correct"].tolist() == [False, True, True]
    with pytest.raises(ValueError, match="0..1"):
        correctness_history(y_true, epochs, index=2)


# ---------------------------------------------------------------- the network


def test_predict_probs_matches_the_model(tiny_lenet):
    x = np.random.default_rng(0).random((5, 32, 32, 1), dtype=np.float32)
    probs = predict_probs(tiny_lenet, x, batch_size=2)
    assert probs.shape == (5, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, keras.ops.convert_to_numpy(tiny_lenet(x)), atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert predict_probs(tiny_lenet, x[:0]).shape == (0, 10)


def test_c1_kernels_are_the_layer_kernel_filters_first(tiny_lenet):
    layer = tiny_lenet.get_layer("c1_conv")
    kernel = np.arange(150, dtype=np.float32).reshape(5, 5, 1, 6)
    layer.set_weights([kernel, np.zeros(6, dtype=np.float32)])
    kernels = c1_kernels(tiny_lenet)
    assert kernels.shape == (6, 5, 5) and kernels.dtype == np.float32
    for k in range(6):
        np.testing.assert_array_equal(kernels[k], kernel[:, :, 0, k])
    assert kernels[5, 1, 2] == kernel[1, 2, 0, 5]


def test_feature_maps_shapes_and_a_hand_computed_c1_value(tiny_lenet):
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(5, 5, 1, 6)).astype(np.float32)
    kernel[:, :, 0, 5] = -1.0  # negative everywhere on a non-negative image: ReLU gives 0
    bias = np.array([0.1, -0.2, 0.3, 0.0, 0.5, -0.1], dtype=np.float32)
    tiny_lenet.get_layer("c1_conv").set_weights([kernel, bias])
    image = rng.random((32, 32, 1), dtype=np.float32)

    maps = feature_maps(tiny_lenet, image)
    shapes = {name: values.shape for name, values in maps.items()}
    assert shapes == {
        "c1_conv": (6, 28, 28),
        "s2_pool": (6, 14, 14),
        "c3_conv": (16, 10, 10),
        "s4_pool": (16, 5, 5),
        "c5_dense": (120,),
        "f6_dense": (84,),
        "output": (10,),
    }
    row, col = 7, 11
    patch = image[row : row + 5, col : col + 5, 0]
    expected = np.maximum(0.0, np.einsum("ij,ijk->k", patch, kernel[:, :, 0, :]) + bias)
    np.testing.assert_allclose(maps["c1_conv"][:, row, col], expected, rtol=1e-5, atol=1e-5)
    assert maps["c1_conv"][5].max() == 0.0
    # s2 averages 2x2 blocks of c1.
    np.testing.assert_allclose(maps["s2_pool"][:, 3, 5], maps["c1_conv"][:, 6:8, 10:12].mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(maps["output"], predict_probs(tiny_lenet, image[None])[0], atol=1e-6)


def test_feature_maps_takes_a_batch_of_one_and_skips_unknown_layers(tiny_lenet):
    image = np.random.default_rng(4).random((1, 32, 32, 1), dtype=np.float32)
    maps = feature_maps(tiny_lenet, image, layer_names=("c3_conv", "no_such_layer"))
    assert list(maps) == ["c3_conv"]
    np.testing.assert_allclose(maps["c3_conv"], feature_maps(tiny_lenet, image[0])["c3_conv"], atol=1e-6)
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        feature_maps(tiny_lenet, np.zeros((28, 28)))


# ---------------------------------------------------------------- uploaded digits

STROKE = [(30, 25), (110, 25), (60, 140)]  # a "7" drawn in the upper left of a 200x160 picture


def _seven(mode="L", ink=0, background=255, size=(200, 160)):
    picture = Image.new(mode, size, background)
    ImageDraw.Draw(picture).line(STROKE, fill=ink, width=14)
    return picture


def _encode(picture, fmt="PNG", **options):
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


def _assert_mnist_form(x28, x32):
    assert x28.shape == (28, 28) and x28.dtype == np.uint8
    assert x32.shape == (32, 32, 1) and x32.dtype == np.float32
    np.testing.assert_allclose(x32[2:30, 2:30, 0], x28 / 255.0, atol=1e-7)
    assert x32.min() >= 0.0 and x32.max() <= 1.0
    # Ink is light on black and reaches full strength along the stroke.
    assert x28.max() / 255 >= 0.5
    assert np.count_nonzero(x28 >= 128) >= 30
    assert np.median(x28) == 0
    centre_row, centre_col = ndimage.center_of_mass(x28.astype(float))
    assert abs(centre_row - 14) <= 1 and abs(centre_col - 14) <= 1
    rows, cols = np.nonzero(x28)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert max(height, width) in (19, 20) and min(height, width) <= 20
    border = np.ones((32, 32), dtype=bool)
    border[2:30, 2:30] = False
    assert not x32[border].any()


@pytest.fixture(scope="module")
def reference_digit():
    x28, x32 = preprocess_digit(_encode(_seven()))
    _assert_mnist_form(x28, x32)
    return x28


def test_dark_digit_on_white_becomes_an_mnist_digit(reference_digit):
    # Still an upright 7: a full bar along the top row of ink, the foot left of centre.
    rows, cols = np.nonzero(reference_digit)
    assert np.count_nonzero(reference_digit[rows.min()] >= 128) >= 10
    assert cols[rows == rows.max()].mean() < 14


def test_white_digit_on_black_gives_the_same_digit(reference_digit):
    x28, x32 = preprocess_digit(_encode(_seven(ink=255, background=0)))
    np.testing.assert_array_equal(x28, reference_digit)


def test_rgba_with_a_transparent_background_uses_alpha_as_ink(reference_digit):
    for colour in ((0, 0, 0, 255), (255, 255, 255, 255), (200, 30, 30, 255)):
        x28, x32 = preprocess_digit(_encode(_seven("RGBA", ink=colour, background=(0, 0, 0, 0))))
        _assert_mnist_form(x28, x32)
        np.testing.assert_array_equal(x28, reference_digit)


def test_opaque_rgba_reads_like_rgb(reference_digit):
    x28, _ = preprocess_digit(_encode(_seven("RGBA", ink=(0, 0, 0, 255), background=(255, 255, 255, 255))))
    np.testing.assert_array_equal(x28, reference_digit)


def test_16_bit_png_is_scaled_to_8_bits(reference_digit):
    picture = Image.fromarray(np.asarray(_seven()).astype(np.uint16) * 257)
    data = _encode(picture)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    x28, x32 = preprocess_digit(data)
    _assert_mnist_form(x28, x32)
    np.testing.assert_array_equal(x28, reference_digit)


def test_jpeg_with_compression_noise(reference_digit):
    x28, x32 = preprocess_digit(_encode(_seven("RGB", ink=(20, 20, 60), background=(250, 245, 235)), "JPEG", quality=80))
    _assert_mnist_form(x28, x32)
    assert np.abs(x28.astype(int) - reference_digit).mean() < 5


def test_pil_image_and_array_inputs(reference_digit):
    np.testing.assert_array_equal(preprocess_digit(_seven())[0], reference_digit)
    np.testing.assert_array_equal(preprocess_digit(np.asarray(_seven()))[0], reference_digit)
    np.testing.assert_array_equal(preprocess_digit(np.asarray(_seven()) / 255.0)[0], reference_digit)


def test_a_lazily_opened_damaged_pil_image_raises_image_error():
    damaged = Image.open(io.BytesIO(_encode(_seven())[:300]))
    with pytest.raises(ImageError, match="could not be decoded"):
        preprocess_digit(damaged)


def test_a_small_digit_is_enlarged_to_fill_the_box():
    picture = Image.new("L", (12, 12), 0)
    ImageDraw.Draw(picture).line([(6, 2), (6, 9)], fill=255, width=2)
    x28, x32 = preprocess_digit(picture)
    rows, _ = np.nonzero(x28)
    assert rows.max() - rows.min() + 1 == 20
    assert abs(ndimage.center_of_mass(x28.astype(float))[0] - 14) <= 1


def _png_header(width, height):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (b"", {}, r"empty \(0 bytes\)"),
        (b"not an image at all", {}, r"not an image.*PNG, JPEG"),
        (b"\x00" * (5 * 2**20 + 1), {}, r"too large: 5,242,881 bytes; the limit is 5 MB \(5,000,000 bytes\)"),
        (_png_header(50_000, 50_000), {}, r"too many pixels.*16,777,216"),
        (_png_header(5000, 5000), {}, r"too many pixels: 5000x5000 = 25,000,000; the limit is 16,777,216"),
        (_encode(_seven()), {"max_pixels": 1000}, r"200x160 = 32,000; the limit is 1,000"),
        (_encode(_seven())[:300], {}, r"could not be decoded.*truncated PNG"),
        (_encode(Image.new("L", (64, 64), 255)), {}, r"blank"),
        (_encode(Image.new("RGBA", (64, 64), (0, 0, 0, 0))), {}, r"blank"),
        (_encode(Image.new("L", (64, 64), 0)), {}, r"blank"),
    ],
    ids=["empty", "not-image", "too-many-bytes", "bomb", "too-many-pixels", "small-limit", "truncated",
         "white", "transparent", "black"],
)
def test_bad_uploads_raise_image_error_naming_the_problem(data, options, message):
    with pytest.raises(ImageError, match=message):
        preprocess_digit(data, **options)


def test_faint_jpeg_noise_alone_counts_as_blank():
    noisy = np.full((64, 64), 250, dtype=np.uint8) + np.random.default_rng(0).integers(0, 5, (64, 64)).astype(np.uint8)
    with pytest.raises(ImageError, match="blank"):
        preprocess_digit(_encode(Image.fromarray(noisy), "JPEG"))


def test_wrong_input_type_is_a_type_error():
    with pytest.raises(TypeError, match="str"):
        preprocess_digit("digit.png")


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


def test_the_loss_of_stored_probabilities_raises_no_warning():
    """Issue 20, item 9: sklearn's "y_prob values do not sum to one" filled the server log: the epoch snapshots
    keep float16 probabilities, and once in float64 sklearn checks their sums to float64's precision."""
    import warnings

    from sklearn.metrics import log_loss

    from core.analysis import cross_entropy

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 10)) * 2
    exact = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    stored = exact.astype(np.float16)  # as an epoch snapshot keeps them
    labels = rng.integers(0, 10, 500)
    with pytest.warns(UserWarning, match="do not sum to one"):  # what the pages did
        log_loss(labels, stored.astype(np.float64), labels=range(10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = cross_entropy(labels, stored, 10)
        cross_entropy(labels, stored.astype(np.float64), 10)
    assert loss == pytest.approx(-np.mean(np.log(exact[np.arange(500), labels])), rel=1e-3)
