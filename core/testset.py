"""The test set a run is audited on, found the same way by the dashboard, the report and the exports, and
its fingerprint."""

from __future__ import annotations

import hashlib

import numpy as np

from core.config import TrainConfig
from core.data import DataError, load_test_set


def sources(config: TrainConfig) -> list[tuple[str, str | None]]:
    """Where the run's test set can be read from, the run's own source first.

    MNIST's test set is the same 10,000 images in every source, and the bundled sample holds all
    of it, so an MNIST run trained from a Keras download can be audited offline.
    """
    candidates: list[tuple[str, str | None]] = []
    if config.data_source in ("file", "sample"):
        candidates.append((config.data_source, config.data_path))
    if config.dataset == "mnist":
        candidates.append(("sample", None))
    candidates.append(("auto", None))
    return list(dict.fromkeys(candidates))


def _padded(dataset: str, source: str, path: str | None):
    x, y, _, detail = load_test_set(dataset, source, path)
    return x, y, detail


def run_test_set(config: TrainConfig, labels: np.ndarray | None = None, load=_padded):
    """(x_test, y_test, source detail) from the first source that serves it (and, with `labels`, holds exactly
    those labels). Raises DataError saying why each source failed. `load(dataset, source, path)` reads one
    source as (x, y, detail): by default the padded float32 (N, 32, 32, 1) model input; the dashboard passes
    its cached reader of the 28x28 images."""
    problems = []
    for source, path in sources(config):
        try:
            x, y, detail = load(config.dataset, source, path)
        except (DataError, OSError, ValueError) as exc:
            problems.append(str(exc))
            continue
        if labels is not None and not np.array_equal(y, labels):
            problems.append(f"{detail}: its test labels differ from the ones this run was evaluated on")
            continue
        return x, y, detail
    raise DataError("; ".join(problems) or "no test set found")


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the test images (as uint8 28x28 grey levels or as given) and their labels."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()
