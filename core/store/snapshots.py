"""A run's epoch snapshots (test probabilities, C1 kernels, the weights) and the maps computed from them once."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np

from core.records import EpochSnapshot
from core.store.disk import StoreError, atomic_write_bytes
from core.store.names import ANALYSIS_DIR, EPOCHS_DIR, SNAPSHOT_ARRAYS, WEIGHT_PREFIX

PROJECTION_METHODS = ("pca", "tsne")


def _weight_names(files) -> list[str]:
    return sorted(name for name in files if name.startswith(WEIGHT_PREFIX))


class EpochFiles:
    """The epoch part of RunStore; needs the store's `_existing(run_id)` and `run_dir(run_id)`."""

    def save_epoch_snapshot(self, run_id: str, snapshot: EpochSnapshot) -> None:
        folder = self.run_dir(run_id) / EPOCHS_DIR
        folder.mkdir(exist_ok=True)
        clash = sorted(name for name in snapshot.extras if name in SNAPSHOT_ARRAYS or name.startswith(WEIGHT_PREFIX))
        if clash:
            raise StoreError(f"snapshot extras {clash} clash with the snapshot's own arrays {SNAPSHOT_ARRAYS} "
                             f"or its weights ({WEIGHT_PREFIX}...)")
        weights = {f"{WEIGHT_PREFIX}{i:03d}": np.asarray(w, np.float32) for i, w in enumerate(snapshot.weights)}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, probs=np.asarray(snapshot.probs, np.float16),
                            c1=np.asarray(snapshot.c1_kernels, np.float32), **weights, **snapshot.extras)
        atomic_write_bytes(folder / f"epoch_{int(snapshot.epoch):04d}.npz", buffer.getvalue())

    def epochs_saved(self, run_id: str) -> list[int]:
        folder = self._existing(run_id) / EPOCHS_DIR
        if not folder.is_dir():
            return []
        try:
            found = [re.match(r"^epoch_(\d{4})\.npz$", p.name) for p in folder.iterdir()]
        except PermissionError:
            raise StoreError(f"run {run_id!r}: {EPOCHS_DIR}/ is not readable (permission denied)") from None
        return sorted(int(m.group(1)) for m in found if m)

    def read_epoch_snapshot(self, run_id: str, epoch: int) -> EpochSnapshot:
        """The snapshot after `epoch`: test probabilities as float32, C1 kernels (6, 5, 5), the weights (() when
        the run did not keep them) and any extras."""
        path = self._existing(run_id) / EPOCHS_DIR / f"epoch_{int(epoch):04d}.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                weights = tuple(data[name] for name in _weight_names(data.files))
                extras = {name: data[name] for name in data.files
                          if name not in SNAPSHOT_ARRAYS and not name.startswith(WEIGHT_PREFIX)}
                return EpochSnapshot(int(epoch), data["probs"].astype(np.float32), data["c1"], extras, weights)
        except FileNotFoundError:
            raise StoreError(f"run {run_id!r} has no snapshot for epoch {epoch}") from None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise StoreError(f"run {run_id!r}: the epoch {epoch} snapshot is damaged ({exc})") from None

    # ----- 2-D maps of the test images' representations, computed once per run and epoch --------------------
    def _projection_path(self, run_id: str, epoch: int, method: str):
        if method not in PROJECTION_METHODS:
            raise StoreError(f"projection method {method!r} is not one of {', '.join(PROJECTION_METHODS)}")
        return self._existing(run_id) / ANALYSIS_DIR / f"{method}_epoch_{int(epoch):04d}.npy"

    def save_projection(self, run_id: str, epoch: int, method: str, points: np.ndarray) -> None:
        path = self._projection_path(run_id, epoch, method)
        path.parent.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(points, np.float32), allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())

    def read_projection(self, run_id: str, epoch: int, method: str) -> np.ndarray | None:
        """The stored (N, 2) map, or None when it has not been computed."""
        path = self._projection_path(run_id, epoch, method)
        try:
            points = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"run {run_id!r}: the stored {method} map of epoch {epoch} is damaged ({exc})") from None
        if points.ndim != 2 or points.shape[1] != 2:
            raise StoreError(f"run {run_id!r}: the stored {method} map of epoch {epoch} has shape {points.shape}")
        return points
