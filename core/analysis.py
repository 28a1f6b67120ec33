"""What a trained model got right and wrong, what its layers see, and uploaded digits in MNIST form."""

from __future__ import annotations

import io

import keras
import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    precision_score,
)

LENET_LAYERS = ("c1_conv", "s2_pool", "c3_conv", "s4_pool", "c5_dense", "f6_dense", "output")
SORT_KEYS = ("confidence", "loss")
PRECISION_AVERAGES = ("macro", "micro", "weighted")

# Formats a digit upload may be in. Pillow can open more (EPS, for one, runs Ghostscript),
# but an upload box has no business reaching those decoders.
UPLOAD_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
MNIST_SIZE = 28  # MNIST's frame
MNIST_BOX = 20  # MNIST fits each digit into 20x20, keeping its aspect ratio
MNIST_CENTRE = 14.0  # where MNIST's centres of mass sit, in (row, column) pixel indices
LENET_PAD = 2  # 28x28 -> 32x32, as in the seed article
MIN_CONTRAST = 0.1  # ink must differ from the background by 10% of the grey range, or the image is blank
NOISE_FLOOR = 0.1  # after stretching the ink to [0, 1], fainter pixels are paper texture or JPEG noise


from core.model import c1_kernels  # noqa: E402,F401  (defined with the model's layers)


class ImageError(ValueError):
    """An uploaded picture that cannot be turned into an MNIST digit; the message says why."""


# ---------------------------------------------------------------- predictions and metrics


def predict_probs(model, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Class probabilities, float32 (N, n_classes), for images shaped like the model's input."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:  # Keras' predict fails on an empty array instead of returning one
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def _as_probs(probs) -> np.ndarray:
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f"probs must be a 2-D (n_images, n_classes) array; got shape {probs.shape}")
    return probs if np.issubdtype(probs.dtype, np.floating) else probs.astype(np.float64)


def _as_labels(y, n_classes: int, name: str = "y_true", n: int | None = None) -> np.ndarray:
    """Integer class indices in 0..n_classes-1; a wrong label fails loudly instead of vanishing from a count."""
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(f"{name} must be a 1-D array of integer class indices; got {y.dtype} with shape {y.shape}")
    if n is not None and len(y) != n:
        raise ValueError(f"{name} has {len(y)} labels but there are {n} rows of probabilities")
    outside = y[(y < 0) | (y >= n_classes)]
    if outside.size:
        raise ValueError(
            f"{name} must hold class indices 0..{n_classes - 1}; got {np.unique(outside)[:5].tolist()}"
        )
    return y.astype(np.int64)


def confusion(y_true, y_pred, n_classes: int = 10, normalize: bool = False) -> np.ndarray:
    """Rows are true classes, columns predicted; normalize divides each row by its class's count."""
    labels = range(n_classes)
    y_true = _as_labels(y_true, n_classes)
    y_pred = _as_labels(y_pred, n_classes, "y_pred", len(y_true))
    return confusion_matrix(y_true, y_pred, labels=labels, normalize="true" if normalize else None)


def summary_metrics(y_true, probs) -> dict:
    """Headline numbers for one set of predictions, as plain (JSON-ready) Python numbers.

    Every class of probs counts in the macro and weighted averages, including one that is
    absent from this y_true (its precision and recall then count as 0).
    """
    probs = _as_probs(probs)
    n, n_classes = probs.shape
    if n == 0:
        raise ValueError("summary_metrics needs at least one prediction; got 0")
    y_true = _as_labels(y_true, n_classes, n=n)
    y_pred = probs.argmax(axis=1)
    labels = range(n_classes)
    metrics = {
        "n": int(n),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "error_count": int(np.count_nonzero(y_pred != y_true)),
        "loss": float(log_loss(y_true, probs, labels=labels)),
    }
    for average in ("macro", "weighted"):
        p, r, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        metrics.update({f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f1)})
    return metrics


def class_report(y_true, y_pred, class_names) -> pd.DataFrame:
    """Precision, recall, f1 and support per class, then the macro and weighted averages."""
    names = [str(name) for name in class_names]
    y_true = _as_labels(y_true, len(names))
    y_pred = _as_labels(y_pred, len(names), "y_pred", len(y_true))
    report = classification_report(
        y_true, y_pred, labels=range(len(names)), target_names=names, output_dict=True, zero_division=0
    )
    rows = [*names, "macro avg", "weighted avg"]
    table = pd.DataFrame.from_dict({row: report[row] for row in rows}, orient="index")
    table = table.rename(columns={"f1-score": "f1"})[["precision", "recall", "f1", "support"]]
    return table.astype({"support": "int64"})


def precision(y_true, y_pred, average="macro") -> float:
    """sklearn's precision_score, as the seed article imports it, averaged over classes."""
    if average not in PRECISION_AVERAGES:
        raise ValueError(f"average must be one of {PRECISION_AVERAGES}; got {average!r}")
    return float(precision_score(y_true, y_pred, average=average, zero_division=0))


# ---------------------------------------------------------------- the images behind the numbers


def _prediction_table(y_true, probs) -> pd.DataFrame:
    """One row per image: index, true, pred, confidence, true_prob, loss."""
    probs = _as_probs(probs)
    y_true = _as_labels(y_true, probs.shape[1], n=len(probs))
    rows = np.arange(len(probs))
    pred = probs.argmax(axis=1)
    true_prob = probs[rows, y_true].astype(np.float64)
    # Clip as sklearn's log_loss does, so a probability of 0 gives a large loss instead of inf.
    eps = np.finfo(probs.dtype).eps
    return pd.DataFrame(
        {
            "index": rows,
            "true": y_true,
            "pred": pred,
            "confidence": probs[rows, pred].astype(np.float64),
            "true_prob": true_prob,
            "loss": -np.log(np.clip(true_prob, eps, 1.0)),
        }
    )


def _ranked(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """Largest key first; ties keep the dataset's order, so the ranking is reproducible."""
    return table.sort_values([key, "index"], ascending=[False, True]).reset_index(drop=True)


def misclassified(y_true, probs, sort_by: str = "confidence", true_class=None, pred_class=None) -> pd.DataFrame:
    """The wrong predictions only, most confident (or highest loss) first, optionally of one true/predicted class."""
    if sort_by not in SORT_KEYS:
        raise ValueError(f"sort_by must be one of {SORT_KEYS}; got {sort_by!r}")
    table = _prediction_table(y_true, probs)
    keep = table["pred"] != table["true"]
    if true_class is not None:
        keep &= table["true"] == true_class
    if pred_class is not None:
        keep &= table["pred"] == pred_class
    return _ranked(table[keep], sort_by)


def suspected_label_errors(y_true, probs, top: int | None = 20, min_confidence: float = 0.9) -> pd.DataFrame:
    """Images whose given label the model confidently rejects: likely mislabelled, or at least ambiguous.

    score = confidence in the predicted class - probability of the given label, so a sure
    disagreement ranks above one where the model also gave the label some weight.
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1]; got {min_confidence!r}")
    if top is not None and top < 0:
        raise ValueError(f"top must be None (all) or a count >= 0; got {top!r}")
    table = _prediction_table(y_true, probs)
    table = table[(table["pred"] != table["true"]) & (table["confidence"] >= min_confidence)]
    table = table.rename(columns={"true": "given", "true_prob": "given_prob"})
    table = table.assign(score=table["confidence"] - table["given_prob"])
    table = _ranked(table, "score")[["index", "given", "pred", "confidence", "given_prob", "score"]]
    return table if top is None else table.head(top)


def most_confused_pairs(cm: np.ndarray, class_names, top: int = 5) -> pd.DataFrame:
    """The largest off-diagonal cells of a confusion matrix (empty cells left out), largest first."""
    cm = np.asarray(cm)
    names = np.asarray([str(name) for name in class_names], dtype=object)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(names):
        raise ValueError(f"cm must be square with one row per class ({len(names)}); got shape {cm.shape}")
    true, pred = np.nonzero(~np.eye(len(names), dtype=bool) & (cm > 0))
    pairs = pd.DataFrame({"true": names[true], "pred": names[pred], "count": cm[true, pred]})
    # A stable sort keeps row-major order among equal counts.
    return pairs.sort_values("count", ascending=False, kind="stable").head(top).reset_index(drop=True)


def epoch_changes(y_true, probs_prev, probs_cur) -> dict:
    """Test indices that one epoch fixed (wrong before, right now) and broke (right before, wrong now)."""
    probs_prev, probs_cur = _as_probs(probs_prev), _as_probs(probs_cur)
    if probs_prev.shape != probs_cur.shape:
        raise ValueError(f"probs_prev and probs_cur must have the same shape; got {probs_prev.shape} and {probs_cur.shape}")
    y_true = _as_labels(y_true, probs_cur.shape[1], n=len(probs_cur))
    right_before = probs_prev.argmax(axis=1) == y_true
    right_now = probs_cur.argmax(axis=1) == y_true
    return {
        "fixed": np.flatnonzero(~right_before & right_now),
        "broken": np.flatnonzero(right_before & ~right_now),
    }


def correctness_history(y_true, probs_by_epoch: list[np.ndarray], index: int) -> pd.DataFrame:
    """How the model's answer on one image changed epoch by epoch (epochs counted from 1)."""
    n = len(y_true)
    if not 0 <= index < n:
        raise ValueError(f"index must be within 0..{n - 1}; got {index}")
    label = int(np.asarray(y_true)[index])
    rows = [_as_probs(probs)[index] for probs in probs_by_epoch]
    pred = np.array([int(np.argmax(row)) for row in rows], dtype=np.int64)
    return pd.DataFrame(
        {
            "epoch": np.arange(1, len(rows) + 1),
            "pred": pred,
            "confidence": np.array([float(row[p]) for row, p in zip(rows, pred)]),
            "correct": pred == label,
        }
    )


# ---------------------------------------------------------------- inside the network


def feature_maps(model, image: np.ndarray, layer_names=LENET_LAYERS) -> dict[str, np.ndarray]:
    """Each named layer's output for one image: conv/pool maps as (C, H, W), dense layers as (units,).

    Names the model does not have are skipped.
    """
    x = np.asarray(image, dtype=np.float32)
    input_shape = tuple(model.inputs[0].shape[1:])
    if x.size != np.prod(input_shape):
        raise ValueError(f"image must be one {input_shape} input (or with a batch axis of 1); got shape {x.shape}")
    x = x.reshape((1, *input_shape))
    present = {layer.name for layer in model.layers}
    names = [name for name in layer_names if name in present]
    if not names:
        return {}
    # One model with every requested output runs the image through the network once.
    probe = keras.Model(model.inputs, {name: model.get_layer(name).output for name in names})
    outputs = probe([x], training=False)
    maps = {}
    for name in names:
        out = keras.ops.convert_to_numpy(outputs[name])[0]
        maps[name] = np.moveaxis(out, -1, 0) if out.ndim == 3 else out  # channels first for plotting
    return maps


# ---------------------------------------------------------------- an uploaded digit in MNIST form


def _open_upload(data, max_bytes: int, max_pixels: int) -> Image.Image:
    size = len(data)
    if size == 0:
        raise ImageError(f"The upload is empty (0 bytes); choose a picture of a digit ({', '.join(UPLOAD_FORMATS)}).")
    if size > max_bytes:
        raise ImageError(
            f"The file is too large: {size:,} bytes; the limit is {max_bytes / 2**20:g} MB ({max_bytes:,} bytes)."
        )
    try:
        image = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageError(f"This is not an image that can be read; allowed formats: {', '.join(UPLOAD_FORMATS)}.") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"The image has too many pixels ({exc}); the limit is {max_pixels:,} pixels."
        ) from exc
    return _decoded(image, max_pixels)


def _decoded(image: Image.Image, max_pixels: int) -> Image.Image:
    """The image with its pixels loaded, once its header's size has passed the pixel limit."""
    _check_pixels(image.size, max_pixels)
    try:
        image.load()
    except Exception as exc:  # Pillow's decoders raise many types on damaged files
        raise ImageError(f"The image could not be decoded (damaged or truncated {image.format} file): {exc}") from exc
    return image


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height == 0:
        raise ImageError(f"The image is empty ({width}x{height} pixels).")
    if width * height > max_pixels:
        raise ImageError(
            f"The image has too many pixels: {width}x{height} = {width * height:,}; the limit is {max_pixels:,} pixels."
        )


def _image_to_array(image: Image.Image) -> np.ndarray:
    """Pixels as grey (H, W) or grey+alpha (H, W, 2), at the image's own bit depth."""
    image = ImageOps.exif_transpose(image)  # phone photos are often stored sideways
    if image.has_transparency_data:
        image = image.convert("LA")
    elif image.mode not in ("L", "I", "F") and not image.mode.startswith("I;16"):
        image = image.convert("L")  # colour, palette, CMYK, 1-bit: Pillow's own luma conversion
    return np.asarray(image)


def _to_unit_range(array: np.ndarray) -> np.ndarray:
    """Any pixel dtype to float in [0, 1]: 8 and 16 bits by their full range, floats as 0-1 (or 0-255)."""
    if array.dtype == bool:
        return array.astype(np.float64)
    if np.issubdtype(array.dtype, np.integer):
        # Pillow opens some 16-bit PNGs as 32-bit mode "I", so a value above 255 also means 16 bits.
        sixteen_bit = array.dtype.itemsize == 2 or array.max() > 255
        return np.clip(array / (65535.0 if sixteen_bit else 255.0), 0.0, 1.0)
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float64))
        return np.clip(array if array.max() <= 1.0 else array / 255.0, 0.0, 1.0)
    raise ImageError(f"Pixels must be numbers; got dtype {array.dtype}.")


def _ink(array: np.ndarray) -> np.ndarray:
    """(H, W) ink in [0, 1] on a 0 background, 1 = the strongest stroke, whatever the picture's colours.

    With an alpha channel: if most of the picture is transparent, the drawing is its opaque part,
    so alpha itself is the ink (which works for black, white or coloured strokes on a transparent
    canvas). Otherwise the picture is composited onto white and read like any opaque picture.
    """
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2 and not (array.ndim == 3 and array.shape[2] in (2, 3, 4)):
        raise ImageError(f"Expected an (H, W) grey or (H, W, 2/3/4) grey/RGB(A) picture; got shape {array.shape}.")
    pixels = _to_unit_range(array)
    if pixels.ndim == 3:
        colour, alpha = (pixels[:, :, :-1], pixels[:, :, -1]) if pixels.shape[2] in (2, 4) else (pixels, None)
        # ITU-R 601 luma, the weights Pillow's convert("L") uses.
        grey = colour[:, :, 0] if colour.shape[2] == 1 else colour @ np.array([0.299, 0.587, 0.114])
        if alpha is not None:
            if np.mean(alpha < 0.5) > 0.5:
                return _stretch(alpha)
            grey = grey * alpha + (1.0 - alpha)  # onto white
    else:
        grey = pixels
    # MNIST is light ink on black: invert a picture whose border (its background) is light.
    return _stretch(1.0 - grey if _background(grey) > 0.5 else grey)


def _background(image: np.ndarray) -> float:
    """The median of the outermost pixels: a digit seldom touches every edge, so this is the paper."""
    return float(np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])))


def _stretch(ink: np.ndarray) -> np.ndarray:
    """Background to 0 and the strongest stroke to 1, as MNIST's digits span the full range."""
    ink = ink - _background(ink)
    contrast = ink.max()
    if contrast < MIN_CONTRAST:
        raise ImageError(
            "The image is blank: no digit stands out from the background. "
            "Upload a dark digit on a light background or a light digit on a dark one."
        )
    ink = np.clip(ink / contrast, 0.0, 1.0)
    ink[ink < NOISE_FLOOR] = 0.0
    return ink


def _mnist_frame(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, fit into 20x20 keeping the aspect ratio, centre by mass in 28x28; uint8."""
    rows, cols = np.nonzero(ink)
    digit = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = digit.shape
    scale = MNIST_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = Image.fromarray(digit.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(digit), 0.0, 1.0)  # Lanczos rings slightly below 0 and above 1
    centre_row, centre_col = ndimage.center_of_mass(digit)
    # Integer shifts, as MNIST's own centring; kept inside the frame for lopsided digits.
    top = int(np.clip(round(MNIST_CENTRE - centre_row), 0, MNIST_SIZE - digit.shape[0]))
    left = int(np.clip(round(MNIST_CENTRE - centre_col), 0, MNIST_SIZE - digit.shape[1]))
    frame = np.zeros((MNIST_SIZE, MNIST_SIZE))
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.round(frame * 255).astype(np.uint8)


def preprocess_digit(
    data: bytes | Image.Image | np.ndarray, max_bytes: int = 5 * 2**20, max_pixels: int = 4096 * 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Any picture of one digit -> (x28 uint8 (28, 28) in MNIST form, x32 float32 (32, 32, 1) in [0, 1]).

    MNIST form: light ink on black, cropped to the ink, fitted into 20x20 with its aspect ratio,
    placed in 28x28 with its centre of mass at (14, 14). x32 is x28 padded by 2 and scaled by
    1/255, exactly as the test set is fed to LeNet. Raises ImageError naming what is wrong.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        array = _image_to_array(_open_upload(bytes(data), max_bytes, max_pixels))
    elif isinstance(data, Image.Image):
        array = _image_to_array(_decoded(data, max_pixels))
    elif isinstance(data, np.ndarray):
        if data.size == 0:
            raise ImageError(f"The image array is empty (shape {data.shape}).")
        if data.ndim >= 2:
            _check_pixels((data.shape[1], data.shape[0]), max_pixels)
        array = data
    else:
        raise TypeError(f"data must be bytes, a PIL image or a numpy array; got {type(data).__name__}")
    x28 = _mnist_frame(_ink(array))
    x32 = np.pad(x28, LENET_PAD).astype(np.float32)[:, :, None] / 255.0
    return x28, x32
