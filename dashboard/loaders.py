"""Cached reads and computations behind the audit pages, keyed on the store, the run id and its version."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from core import testset
from core.data import DataError, load_test_set, unpad_images
from core.records import EpochSnapshot
from core.store import RunInfo, RunStore, StoreError
from dashboard import common


@dataclass(frozen=True)
class Predictions:
    """Test-set probabilities of one run and where they came from."""

    probs: np.ndarray  # float32 (N, n_classes)
    labels: np.ndarray  # int64 (N,)
    metrics: dict  # as core.analysis.summary_metrics returns them
    source: str  # shown under the headline, e.g. "the saved model" or "the epoch 3 snapshot"

    @property
    def pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


@dataclass(frozen=True)
class TestImages:
    images: np.ndarray  # uint8 (N, 28, 28), the test set as stored
    labels: np.ndarray  # int64 (N,)
    detail: str  # which source the images came from


def analysis():
    """core.analysis, imported on first use. It loads TensorFlow, which takes seconds in a fresh server
    process; pages call this right after drawing their title, so the wait shows a spinner, not a blank page."""
    module = sys.modules.get("core.analysis")
    if module is None:
        with st.spinner("Loading TensorFlow (once per server process)…"):
            module = importlib.import_module("core.analysis")
    return module


def _root() -> str:
    return str(common.store().root)


def _version(run_id: str) -> tuple:
    return common.store().version(run_id)


# ---------------------------------------------------------------- the test images


@st.cache_data(max_entries=4, show_spinner="Loading the test images…")
def _load_test_images(dataset: str, source: str, path: str | None) -> TestImages:
    x, y, _, detail = load_test_set(dataset, source, path)
    return TestImages(unpad_images(x), y.astype(np.int64), detail)


def _cached_source(dataset: str, source: str, path: str | None):
    found = _load_test_images(dataset, source, path)
    return found.images, found.labels, found.detail


def test_images(info: RunInfo, labels: np.ndarray | None = None) -> tuple[TestImages | None, str | None]:
    """(the run's test images, None) or (None, why not). With `labels`, a source must hold exactly those labels:
    the sources are tried as core.testset tries them, each read through this module's cache."""
    try:
        return TestImages(*testset.run_test_set(info.config, labels, load=_cached_source)), None
    except DataError as exc:
        return None, str(exc)


# ---------------------------------------------------------------- epoch snapshots


@st.cache_data(max_entries=64, show_spinner=False)  # the epoch views read every epoch of a run, twice a script run
def _snapshot(root: str, run_id: str, epoch: int) -> EpochSnapshot:
    """An epoch snapshot is written once and never changes, so (store, run, epoch) is its whole key."""
    return RunStore(root).read_epoch_snapshot(run_id, epoch)


def readable_epochs(run_id: str) -> tuple[list[int], list[str]]:
    """The saved epochs whose snapshot can be read, and why each other one cannot: one damaged snapshot
    leaves out its epoch, not the whole history."""
    readable, problems = [], []
    try:
        saved = common.store().epochs_saved(run_id)
    except StoreError as exc:  # the epochs folder cannot be read: this run's history only
        return [], [str(exc)]
    for epoch in saved:
        try:
            _snapshot(_root(), run_id, epoch)
        except StoreError as exc:
            problems.append(f"{exc}; it is left out, the other epochs are shown.")
        else:
            readable.append(epoch)
    return readable, problems


def snapshot_probs(run_id: str, epoch: int) -> np.ndarray:
    return _snapshot(_root(), run_id, epoch).probs


def epoch_accuracies(run_id: str, labels: np.ndarray, saved: list[int]) -> list[float]:
    return analysis().epoch_accuracies(labels, [snapshot_probs(run_id, e) for e in saved])


def epoch_changes(run_id: str, labels: np.ndarray, previous: int, epoch: int) -> dict[str, np.ndarray]:
    """Test indices fixed and broken by `epoch` relative to the `previous` saved epoch."""
    return analysis().epoch_changes(labels, snapshot_probs(run_id, previous), snapshot_probs(run_id, epoch))


def history(run_id: str, labels: np.ndarray, index: int, saved: list[int]) -> pd.DataFrame:
    """One test image's prediction after each epoch of `saved` (epoch numbers as saved)."""
    return analysis().correctness_history(labels, [snapshot_probs(run_id, e) for e in saved], index, saved)


def c1_history(run_id: str, saved: list[int]) -> tuple[list[int], np.ndarray]:
    """(saved, C1's kernels after each of those epochs, stacked)."""
    return analysis().c1_history([_snapshot(_root(), run_id, e) for e in saved])


# ---------------------------------------------------------------- predictions and metrics


@st.cache_data(max_entries=16, show_spinner="Reading the run's test predictions…")
def _evaluation(root: str, run_id: str, version: tuple) -> tuple[dict, np.ndarray, np.ndarray] | None:
    evaluation = RunStore(root).read_evaluation(run_id)
    if evaluation is None:
        return None
    metrics, probs, labels = evaluation
    return metrics, np.asarray(probs, np.float32), np.asarray(labels, np.int64)


def predictions(info: RunInfo) -> tuple[Predictions | None, str | None]:
    """The run's stored test evaluation; before it exists (a live run), the latest epoch snapshot."""
    try:
        evaluation = _evaluation(_root(), info.run_id, _version(info.run_id))
        if evaluation is not None:
            metrics, probs, labels = evaluation
            if not {"accuracy", "macro_f1"} <= set(metrics):
                metrics = analysis().summary_metrics(labels, probs)
            return Predictions(probs, labels, metrics, "the saved model"), None
        saved = common.store().epochs_saved(info.run_id)
        if not saved:
            if not info.active:
                return None, (f"This run ended ({info.status}) before finishing an epoch, so it saved no test "
                              "predictions.")
            return None, "This run has no test predictions yet: it saves them at the end of each epoch."
        probs = snapshot_probs(info.run_id, saved[-1])
    except StoreError as exc:
        return None, str(exc)
    images, problem = test_images(info)
    if images is None:
        return None, f"The test labels for this run's snapshots could not be read: {problem}"
    if len(images.labels) != len(probs):
        return None, (f"The epoch {saved[-1]} snapshot holds {len(probs)} predictions but the test set "
                      f"({images.detail}) has {len(images.labels)} images.")
    metrics = _summary(probs, images.labels)
    return Predictions(probs, images.labels, metrics, f"the epoch {saved[-1]} snapshot"), None


@st.cache_data(max_entries=32, show_spinner=False)
def _summary(probs: np.ndarray, labels: np.ndarray) -> dict:
    return analysis().summary_metrics(labels, probs)


@st.cache_data(max_entries=32, show_spinner=False)
def confusion_counts(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    return analysis().confusion(labels, probs.argmax(axis=1), n_classes)


@st.cache_data(max_entries=16, show_spinner=False)
def class_report(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> pd.DataFrame:
    return analysis().class_report(labels, probs.argmax(axis=1), names)


@st.cache_data(max_entries=32, show_spinner=False)
def errors(probs: np.ndarray, labels: np.ndarray, sort_by: str = "confidence",
           true_class: int | None = None, pred_class: int | None = None) -> pd.DataFrame:
    return analysis().misclassified(labels, probs, sort_by, true_class, pred_class)


@st.cache_data(max_entries=32, show_spinner=False)
def cell_images(probs: np.ndarray, labels: np.ndarray, true_class: int, pred_class: int) -> pd.DataFrame:
    return analysis().confusion_cell(labels, probs, true_class, pred_class)


@st.cache_data(max_entries=16, show_spinner=False)
def suspects(probs: np.ndarray, labels: np.ndarray, top: int, min_confidence: float) -> pd.DataFrame:
    return analysis().suspected_label_errors(labels, probs, top, min_confidence)


@st.cache_data(max_entries=8, show_spinner=False)
def class_examples(images: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                   n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    return analysis().class_examples(images, labels, probs, n_classes)


# ---------------------------------------------------------------- the model


def model(info: RunInfo):
    """(the run's Keras model, None) or (None, why it cannot be loaded)."""
    if info.active:
        return None, "The model is saved when training ends; the live view below follows the epoch snapshots."
    try:
        if not common.store().has_model(info.run_id):
            return None, "This run has no saved model."
        return common.load_model(info.run_id, _version(info.run_id)), None
    except StoreError as exc:
        return None, str(exc)


@st.cache_data(max_entries=64, show_spinner=False)
def _feature_maps(root: str, run_id: str, version: tuple, image32: np.ndarray, _model) -> dict[str, np.ndarray]:
    return analysis().feature_maps(_model, image32)


@st.cache_data(max_entries=64, show_spinner=False)
def _predict_one(root: str, run_id: str, version: tuple, image32: np.ndarray, _model) -> np.ndarray:
    return analysis().predict_probs(_model, image32[None])[0]


def maps_for(info: RunInfo, loaded_model, image32: np.ndarray) -> dict[str, np.ndarray]:
    """Each layer's output for one LeNet input (core.analysis.feature_maps), cached per run version and image."""
    return _feature_maps(_root(), info.run_id, _version(info.run_id), image32, loaded_model)


def probs_for(info: RunInfo, loaded_model, image32: np.ndarray) -> np.ndarray:
    return _predict_one(_root(), info.run_id, _version(info.run_id), image32, loaded_model)


# ----- the Sweep page ---------------------------------------------------------------------------------------


@st.cache_data(max_entries=16, show_spinner=False)
def sweep_state(root: str, sweep_id: str, version: tuple):
    """(spec, trials table, summary) of a sweep, re-read only when its study or spec changes."""
    from core.sweep_report import sweep_state as read

    return read(RunStore(root), sweep_id)


@st.cache_resource(max_entries=8, show_spinner=False)
def sweep_figures(root: str, sweep_id: str, version: tuple, searched: tuple[str, ...]):
    from core.sweep import load_study
    from dashboard.figures_sweep import sweep_figures as build

    return build(load_study(RunStore(root), sweep_id), list(searched))
