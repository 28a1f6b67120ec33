"""The test images as the model sees them just before its output (F6, 84 units), mapped to 2-D: PCA at once,
t-SNE as long work (a task of core/tasks.py, in a child process that Stop ends) whose map the store keeps per run
and epoch."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from core.store import RunStore

LAYER = "f6_dense"
TSNE_SEED = 0
STOP_POLL_S = 0.1  # how often a running t-SNE looks at its stop event


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


class FeaturePass:
    """The output of `layer` for many images at any epoch of one run: one model whose weights are swapped in (no
    model rebuilt per epoch), one compiled pass traced once (no keras.Model or predict() per epoch), big batches.
    Calls are serialised: the weights belong to one call at a time."""

    def __init__(self, config, layer: str = LAYER, batch_size: int = 5000):
        import tensorflow as tf

        from core.model import build_model

        self.model = build_model(config)
        self.model.get_layer(layer)  # a model without the layer raises here, naming it
        self.layers = []
        for current in self.model.layers:
            self.layers.append(current)
            if current.name == layer:
                break
        self.batch_size = batch_size
        shape = [None, *self.model.input_shape[1:]]
        self._pass = tf.function(self._forward, input_signature=[tf.TensorSpec(shape, tf.float32)])
        self._lock = threading.Lock()

    def _forward(self, images):
        for current in self.layers:
            images = current(images, training=False)
        return images

    def __call__(self, weights, images32: np.ndarray) -> np.ndarray:
        images = np.asarray(images32, np.float32)
        with self._lock:
            try:
                self.model.set_weights(list(weights))
            except ValueError as exc:
                raise ValueError(f"these weights do not fit the run's model ({exc})") from None
            parts = [self._pass(images[start:start + self.batch_size]).numpy()
                     for start in range(0, len(images), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.layers[-1].units), np.float32)


def pca_map(feature_rows: np.ndarray) -> np.ndarray:
    """The rows' first two principal components: scikit-learn's PCA from the 84x84 covariance, on one BLAS thread
    (threadpoolctl). Milliseconds; with BLAS's threads it took 0.4 s on a busy 2-core machine, spent waiting."""
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    rows = np.asarray(feature_rows, np.float32)
    solver = "covariance_eigh" if len(rows) > rows.shape[1] else "full"
    with threadpool_limits(limits=1, user_api="blas"):
        return PCA(n_components=2, svd_solver=solver, random_state=TSNE_SEED).fit_transform(rows).astype(np.float32)


def _tsne(feature_rows: np.ndarray) -> np.ndarray:
    """scikit-learn's Barnes-Hut TSNE from a PCA start, its neighbour search on every core. Not reduced to 50 PCA
    dimensions first, the usual step for wider inputs: for F6's 84 it saved no time (bench/RESULTS.md)."""
    from sklearn.manifold import TSNE

    rows = np.asarray(feature_rows, np.float32)
    return TSNE(n_components=2, init="pca", random_state=TSNE_SEED, n_jobs=-1).fit_transform(rows).astype(np.float32)


def tsne_files(rows_path: str, points_path: str) -> None:
    """The child's work: the map of the rows in `rows_path`, written to `points_path` (whole, or not at all)."""
    points = _tsne(np.load(rows_path, allow_pickle=False))
    partial = Path(points_path).with_suffix(".partial.npy")
    np.save(partial, points, allow_pickle=False)
    os.replace(partial, points_path)


_CHILD = "import sys; from core.representation import tsne_files; tsne_files(*sys.argv[1:])"


def tsne_map(feature_rows: np.ndarray, stop_event: threading.Event | None = None) -> np.ndarray | None:
    """The t-SNE map of the rows, computed in a child process, or None when `stop_event` was set first.

    scikit-learn's TSNE cannot be interrupted, so it runs in a Python process of its own (`python -c`, so that
    nothing of the caller's main module runs again there) that Stop terminates within STOP_POLL_S, or kills a
    second later: nothing of it is left behind, and its files live in a temporary folder removed at the end."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lenet-tsne-") as folder:
        rows_path, points_path = Path(folder) / "rows.npy", Path(folder) / "points.npy"
        np.save(rows_path, np.asarray(feature_rows, np.float32), allow_pickle=False)
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ,  # waiting threads sleep: half the CPU on a busy machine
               "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        with open(Path(folder) / "errors.txt", "wb") as errors:
            child = subprocess.Popen([sys.executable, "-c", _CHILD, str(rows_path), str(points_path)], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            while True:
                try:
                    child.wait(STOP_POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    if stop_event is not None and stop_event.is_set():
                        return None
            if child.returncode != 0:
                said = (Path(folder) / "errors.txt").read_text(errors="replace").strip().splitlines()
                last = said[-1] if said else "no message"
                raise RuntimeError(f"the t-SNE process failed (exit code {child.returncode}): {last}")
            return np.load(points_path, allow_pickle=False)
        finally:
            _end(child)


def _end(child) -> None:
    """Terminate the child if it still runs, kill it if it has not ended a second later, and reap it."""
    import subprocess

    if child.poll() is None:
        child.terminate()
        try:
            child.wait(1.0)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def tsne_task(store: RunStore, stop_event: threading.Event, run_id: str, epoch: int) -> str:
    """The "tsne" kind: the t-SNE map of the run's test images at `epoch` (0: the saved model), kept in the store.
    Stop ends it within a fraction of a second, storing nothing."""
    from core import testset
    from core.epoch_model import model_for

    if store.read_projection(run_id, epoch, "tsne") is not None:
        return "completed"
    images32, _, _ = testset.run_test_set(store.read_config(run_id))
    rows = features(model_for(store, run_id, epoch), images32)
    points = None if stop_event.is_set() else tsne_map(rows, stop_event)
    if points is None:
        return "stopped"
    store.save_projection(run_id, epoch, "tsne", points)
    return "completed"
