"""What a trained model got right and wrong, how that changed epoch by epoch, and what its layers see."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)

from core.model import FEATURE_LAYERS
from core.records import EpochSnapshot

SORT_KEYS = ("confidence", "loss")
C1_KERNELS = (6, 5, 5)  # C1's filters as core.model.c1_kernels returns them: six of 5x5


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


def cross_entropy(y_true, probs, n_classes: int) -> float:
    """scikit-learn's log loss of softmax outputs stored as float32 or float16: rows renormalised in float64
    first (their sums are 1 only to within the storage precision; sklearn warned "y_prob values do not sum to
    one" in the server log), and clipped as Keras does, so a probability of 0 gives a large loss, not inf."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0)
    return float(log_loss(y_true, probs / probs.sum(axis=1, keepdims=True), labels=range(n_classes)))


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
        "loss": cross_entropy(y_true, probs, n_classes),
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


def confusion_cell(y_true, probs, true_class: int, pred_class: int) -> pd.DataFrame:
    """The images of one confusion-matrix cell: an error cell as misclassified() ranks it (most confident
    first), a diagonal cell least confident first, with columns index, true, pred, confidence."""
    if true_class != pred_class:
        return misclassified(y_true, probs, "confidence", true_class, pred_class)
    probs = _as_probs(probs)
    y_true = _as_labels(y_true, probs.shape[1], n=len(probs))
    index = np.flatnonzero((y_true == true_class) & (probs.argmax(axis=1) == true_class))
    table = pd.DataFrame({"index": index, "true": true_class, "pred": pred_class,
                          "confidence": probs[index, pred_class].astype(float)})
    return table.sort_values(["confidence", "index"]).reset_index(drop=True)


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


def class_examples(images: np.ndarray, y_true, probs, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(the mean image of each class as uint8 (C, H, W), the most confidently right index per class, or -1)."""
    images, y_true, probs = np.asarray(images), np.asarray(y_true), np.asarray(probs)
    means = np.zeros((n_classes, *images.shape[1:]), np.uint8)
    typical = np.full(n_classes, -1)
    pred = probs.argmax(axis=1)
    for c in range(n_classes):
        members = y_true == c
        if members.any():
            means[c] = np.round(images[members].mean(axis=0)).astype(np.uint8)
        right = np.flatnonzero(members & (pred == c))
        if right.size:
            typical[c] = right[np.argmax(probs[right, c])]
    return means, typical


# ---------------------------------------------------------------- epoch by epoch


def epoch_accuracies(y_true, probs_by_epoch: Sequence[np.ndarray]) -> list[float]:
    """Test accuracy after each epoch, from that epoch's probabilities."""
    y_true = np.asarray(y_true)
    return [float(np.mean(np.asarray(probs).argmax(axis=1) == y_true)) for probs in probs_by_epoch]


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


def correctness_history(y_true, probs_by_epoch: list[np.ndarray], index: int,
                        epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """How the model's answer on one image changed epoch by epoch: `epochs` numbers the rows (1, 2, ... if None)."""
    n = len(y_true)
    if not 0 <= index < n:
        raise ValueError(f"index must be within 0..{n - 1}; got {index}")
    label = int(np.asarray(y_true)[index])
    rows = [_as_probs(probs)[index] for probs in probs_by_epoch]
    pred = np.array([int(np.argmax(row)) for row in rows], dtype=np.int64)
    return pd.DataFrame(
        {
            "epoch": np.arange(1, len(rows) + 1) if epochs is None else list(epochs),
            "pred": pred,
            "confidence": np.array([float(row[p]) for row, p in zip(rows, pred)]),
            "correct": pred == label,
        }
    )


def c1_history(snapshots: Sequence[EpochSnapshot]) -> tuple[list[int], np.ndarray]:
    """(the snapshots' epochs, their C1 kernels stacked as (epochs, 6, 5, 5)); an empty (0, 6, 5, 5) for none."""
    kernels = [snapshot.c1_kernels for snapshot in snapshots]
    stacked = np.stack(kernels) if kernels else np.zeros((0, *C1_KERNELS), np.float32)
    return [snapshot.epoch for snapshot in snapshots], stacked


# ---------------------------------------------------------------- inside the network


def feature_maps(model, image: np.ndarray, layer_names=FEATURE_LAYERS) -> dict[str, np.ndarray]:
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
