"""Cached reads and computations behind the "why" views: the model at an epoch, attribution maps, calibration,
the representation map and layer health, keyed on the store, the run and the epoch (a snapshot never changes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.store import RunInfo, RunStore, StoreError
from dashboard import common, loaders

FINAL = 0  # core.epoch_model.FINAL: the run's saved model


def _root() -> str:
    return str(common.store().root)


@st.cache_data(max_entries=32, show_spinner=False)
def _weights_epochs(root: str, run_id: str, saved: tuple[int, ...]) -> tuple[list[int], int]:
    """(epochs whose snapshot holds weights, how many saved epochs do not or cannot be read)."""
    from core.epoch_model import has_weights

    store, found, missing = RunStore(root), [], 0
    for epoch in saved:
        try:
            ok = has_weights(store, run_id, epoch)
        except StoreError:
            ok = False
        if ok:
            found.append(epoch)
        else:
            missing += 1
    return found, missing


def weights_epochs(info: RunInfo) -> tuple[list[int], int]:
    try:
        saved = tuple(common.store().epochs_saved(info.run_id))
    except StoreError:
        return [], 0
    return _weights_epochs(_root(), info.run_id, saved)


@st.cache_resource(max_entries=24, show_spinner="Rebuilding the model at this epoch…")
def _epoch_model(root: str, run_id: str, epoch: int):
    from core.epoch_model import model_at_epoch

    return model_at_epoch(RunStore(root), run_id, epoch)


def model_at(info: RunInfo, epoch: int):
    """(the model after `epoch` (FINAL: the saved one), None) or (None, why it cannot be shown)."""
    if epoch == FINAL:
        return loaders.model(info)
    try:
        return _epoch_model(_root(), info.run_id, int(epoch)), None
    except StoreError as exc:
        return None, str(exc)


def _version(info: RunInfo, epoch: int) -> tuple:
    return common.store().version(info.run_id) if epoch == FINAL else ()


@st.cache_data(max_entries=256, show_spinner=False)
def _attribution(root: str, run_id: str, epoch: int, version: tuple, image32: np.ndarray, target: int,
                 method: str, patch: int, _model) -> np.ndarray:
    from core import attribution

    return attribution.crop(attribution.attribution(_model, image32, target, method, patch))


def attribution_map(info: RunInfo, epoch: int, model, image32: np.ndarray, target: int, method: str,
                    patch: int) -> np.ndarray:
    """The (28, 28) map of `method` for class `target`, computed once per run, epoch, image and choice."""
    return _attribution(_root(), info.run_id, epoch, _version(info, epoch), image32, int(target), method,
                        int(patch), model)


@st.cache_data(max_entries=128, show_spinner=False)
def _predict(root: str, run_id: str, epoch: int, version: tuple, image32: np.ndarray, _model) -> dict:
    return loaders.analysis().feature_maps(_model, image32)


def maps_at(info: RunInfo, epoch: int, model, image32: np.ndarray) -> dict[str, np.ndarray]:
    """Each layer's output (the probabilities under "output") for one input, by the model after `epoch`."""
    return _predict(_root(), info.run_id, epoch, _version(info, epoch), image32, model)


@st.cache_data(max_entries=64, show_spinner=False)
def calibration(probs: np.ndarray, labels: np.ndarray):
    from core.calibration import calibration as compute

    return compute(labels, probs)


@st.cache_resource(max_entries=8, show_spinner=False)
def _feature_pass(root: str, run_id: str):
    from core.representation import FeaturePass

    return FeaturePass(RunStore(root).read_config(run_id))


@st.cache_data(max_entries=16, show_spinner="Mapping the test images at this epoch…")
def _pca_points(root: str, run_id: str, epoch: int, version: tuple, detail: str, _images32: np.ndarray,
                _info: RunInfo) -> tuple[np.ndarray | None, str | None]:
    from core.representation import pca_map

    if epoch == FINAL:
        model, problem = loaders.model(_info)
        if model is None:
            return None, problem
        weights = model.get_weights()
    else:
        try:
            weights = RunStore(root).read_epoch_snapshot(run_id, epoch).weights
        except StoreError as exc:
            return None, str(exc)
    if not weights:
        return None, f"run {run_id!r} kept no weights at epoch {epoch}"
    try:
        return pca_map(_feature_pass(root, run_id)(weights, _images32)), None
    except ValueError as exc:
        return None, f"run {run_id!r}, epoch {epoch}: {exc}"


def pca_points(info: RunInfo, epoch: int, detail: str, images32: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """(the PCA map of F6 for the test images `detail` names, None) or (None, why not): F6 of the model after
    `epoch` in one compiled pass with the epoch's weights swapped into one model per run, once per run and epoch."""
    return _pca_points(_root(), info.run_id, int(epoch), _version(info, epoch), detail, images32, info)


def stored_tsne(info: RunInfo, epoch: int) -> np.ndarray | None:
    return common.store().read_projection(info.run_id, epoch, "tsne")


@st.cache_data(max_entries=16, show_spinner="Reading the weights of every epoch…")
def _kernels(root: str, run_id: str, epochs: tuple[int, ...], _model) -> list[dict[str, np.ndarray]]:
    from core import layer_health

    names = layer_health.kernel_names(_model)
    store = RunStore(root)
    return [layer_health.layer_kernels(names, store.read_epoch_snapshot(run_id, e).weights) for e in epochs]


def kernels(info: RunInfo, epochs: list[int], model) -> list[dict[str, np.ndarray]]:
    return _kernels(_root(), info.run_id, tuple(epochs), model)


@st.cache_data(max_entries=64, show_spinner=False)
def _dead(root: str, run_id: str, epoch: int, images32: np.ndarray, _model) -> dict[str, float]:
    from core.layer_health import dead_relus

    return dead_relus(_model, images32)


def dead_relus(info: RunInfo, epochs: list[int], images32: np.ndarray) -> pd.DataFrame:
    """The share of never-firing ReLUs of each layer after each epoch, one row per (epoch, layer)."""
    rows = []
    for epoch in epochs:
        model, _ = model_at(info, epoch)
        if model is not None:
            shares = _dead(_root(), info.run_id, epoch, images32, model)
            rows += [{"epoch": epoch, "layer": layer, "dead": share} for layer, share in shares.items()]
    return pd.DataFrame(rows, columns=["epoch", "layer", "dead"])
