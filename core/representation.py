"""The test images as the model sees them just before its output (F6, 84 units), mapped to 2-D: PCA at once,
t-SNE as long work (a task of core/tasks.py) whose map the store keeps per run and epoch."""

from __future__ import annotations

import threading

import numpy as np

from core.store import RunStore

LAYER = "f6_dense"
TSNE_SEED = 0


def features(model, images32: np.ndarray, layer: str = LAYER, batch_size: int = 2500) -> np.ndarray:
    """The output of `layer` for each image, (N, units) float32. The layers are called directly, batch by batch:
    a new keras.Model and its predict function per epoch's model cost more than the pass itself."""
    model.get_layer(layer)  # a model without the layer raises here, naming it
    images = np.asarray(images32, np.float32)
    parts = []
    for start in range(0, len(images), batch_size):
        hidden = images[start:start + batch_size]
        for current in model.layers:
            hidden = current(hidden, training=False)
            if current.name == layer:
                break
        parts.append(np.asarray(hidden, np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, model.get_layer(layer).units), np.float32)


def pca_map(feature_rows: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=TSNE_SEED).fit_transform(feature_rows).astype(np.float32)


def tsne_map(feature_rows: np.ndarray) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, init="pca", random_state=TSNE_SEED).fit_transform(feature_rows).astype(np.float32)


def tsne_task(store: RunStore, stop_event: threading.Event, run_id: str, epoch: int) -> str:
    """The "tsne" kind: the t-SNE map of the run's test images at `epoch` (0: the saved model), kept in the store.

    scikit-learn's TSNE cannot be interrupted: Stop acts before it starts or when it has finished."""
    from core import testset
    from core.epoch_model import model_for

    if store.read_projection(run_id, epoch, "tsne") is not None:
        return "completed"
    images32, _, _ = testset.run_test_set(store.read_config(run_id))
    rows = features(model_for(store, run_id, epoch), images32)
    if stop_event.is_set():
        return "stopped"
    points = tsne_map(rows)
    if stop_event.is_set():
        return "stopped"
    store.save_projection(run_id, epoch, "tsne", points)
    return "completed"
