"""How far a model's confidence can be trusted: the reliability diagram's bins (scikit-learn's calibration_curve
on the top class's probability against being right), the expected calibration error and the confidence counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.calibration import calibration_curve

BINS = 10


@dataclass(frozen=True)
class Calibration:
    confidence: np.ndarray  # (N,) the probability of the predicted class
    accuracy: np.ndarray  # per non-empty bin: the share of right predictions (calibration_curve's prob_true)
    mean_confidence: np.ndarray  # per non-empty bin: the mean confidence (its prob_pred)
    counts: np.ndarray  # per non-empty bin: how many images
    ece: float  # expected calibration error: sum over bins of |accuracy - confidence| weighted by the bin's share


def calibration(labels: np.ndarray, probs: np.ndarray, bins: int = BINS) -> Calibration:
    """The top-class calibration of `probs` (N, classes) against `labels` (N,) over `bins` equal-width bins."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or len(probs) != len(labels) or len(labels) == 0:
        raise ValueError(f"need one row of probabilities per label; got probs {probs.shape}, labels {labels.shape}")
    confidence = np.clip(probs.max(axis=1), 0.0, 1.0)
    correct = (probs.argmax(axis=1) == labels).astype(int)
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=bins, strategy="uniform")
    # calibration_curve's own binning (uniform edges, searchsorted on the inner ones), to count each bin
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=bins)
    counts = counts[counts > 0]
    ece = float(np.sum(counts / len(labels) * np.abs(accuracy - mean_confidence)))
    return Calibration(confidence, accuracy, mean_confidence, counts, ece)
