"""The run store: one folder per run under cached_models/; the only code that knows its file names."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.config import TrainConfig
from core.records import ACTIVE, STATUSES, RunStatus
from core.store.disk import (
    StoreError,
    archive_problem,
    atomic_write_bytes,
    atomic_write_json,
    check_name,
    check_run_id,
    json_default,
    now_iso,
    owner,
    slug,
)
from core.store.label_files import LabelAuditFiles
from core.store.listing import RunListing
from core.store.liveness import RunLiveness
from core.store.metrics import MetricsReads
from core.store.names import (
    CONFIG_FILE,
    EVALUATION_FILE,
    METRICS_FILE,
    MODEL_FILE,
    STATUS_FILE,
    TEST_PREDICTIONS_FILE,
)
from core.store.snapshots import EpochFiles
from core.store.sweeps import SweepFiles

DEFAULT_ROOT = Path(__file__).resolve().parent.parent.parent / "cached_models"


class RunStore(EpochFiles, LabelAuditFiles, RunListing, RunLiveness, MetricsReads, SweepFiles):
    """All reads and writes of cached_models/. Every write is atomic (temp file + rename) or append-only."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else Path(os.environ.get("LENET_RUNS", DEFAULT_ROOT))

    # ----- paths -------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        path = self.root / check_run_id(run_id)
        # A checked id has no separator and no '..': only a symbolic link can lead out of the store.
        if path.is_symlink() and path.resolve().parent != self.root.resolve():
            raise StoreError(f"run id {run_id!r} escapes the store folder {self.root}")
        return path

    def _existing(self, run_id: str) -> Path:
        path = self.run_dir(run_id)
        if not path.is_dir():
            raise StoreError(f"run {run_id!r} not found in {self.root}")
        return path

    def model_path(self, run_id: str) -> Path:
        return self._existing(run_id) / MODEL_FILE

    # ----- creating and writing ----------------------------------------------------------------
    def create_run(self, config: TrainConfig, name: str | None = None, status: str = "queued") -> str:
        name = check_name(name) if name else f"{config.variant} {config.dataset}"
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the run store {self.root} is a file, not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the run store at {self.root}: {exc.strerror or exc}") from None
        if status not in STATUSES:
            raise StoreError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        # Built under a hidden name and renamed into place when whole: a listing never sees a run half-created.
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for _ in range(20):
            run_id = f"{stamp}-{slug(name)}-{secrets.token_hex(2)}"
            if not self.run_dir(run_id).exists():
                break
        else:
            raise StoreError(f"could not find a free run id in {self.root}")
        building = self.root / f".{run_id}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            building.mkdir()
            atomic_write_bytes(building / CONFIG_FILE, (config.to_json() + "\n").encode())
            record = RunStatus(run_id=run_id, status=status, name=name, created=now_iso(), updated=now_iso(), **owner())
            atomic_write_json(building / STATUS_FILE, {k: v for k, v in record.to_dict().items() if v is not None})
            os.rename(building, self.run_dir(run_id))
        except OSError as exc:
            shutil.rmtree(building, ignore_errors=True)
            raise StoreError(f"cannot write run {run_id} in {self.root}: {exc.strerror or exc}") from None
        return run_id

    def write_config(self, run_id: str, config: TrainConfig) -> None:
        atomic_write_bytes(self.run_dir(run_id) / CONFIG_FILE, (config.to_json() + "\n").encode())

    def write_status(self, run_id: str, **changes: Any) -> RunStatus:
        """Merge `changes` (fields of RunStatus) into status.json atomically and return the new status."""
        unknown = sorted(set(changes) - RunStatus.field_names())
        if unknown:
            raise StoreError(f"unknown status field(s) {unknown}; a run's status has the fields of "
                             f"core.records.RunStatus")
        if "status" in changes and changes["status"] not in STATUSES:
            raise StoreError(f"status {changes['status']!r} is not one of {', '.join(STATUSES)}")
        path = self.run_dir(run_id) / STATUS_FILE
        current: dict = {}
        with contextlib.suppress(OSError, ValueError):
            current = json.loads(path.read_text())
        if not isinstance(current, dict):
            current = {}
        current.update(changes, run_id=run_id, updated=now_iso())
        atomic_write_json(path, current)  # keys of other versions are kept in the file
        return RunStatus.from_dict(current)

    def append_metrics(self, run_id: str, records: list[dict]) -> None:
        """Append whole lines in one write, so a concurrent reader sees complete records or nothing new."""
        if not records:
            return
        text = "".join(json.dumps(r, default=json_default, allow_nan=True) + "\n" for r in records)
        with open(self.run_dir(run_id) / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()

    def save_model(self, run_id: str, model) -> None:
        target = self.run_dir(run_id) / MODEL_FILE
        tmp = target.with_name(f".model.{os.getpid()}.{secrets.token_hex(4)}.keras")
        try:
            model.save(tmp)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def save_evaluation(self, run_id: str, metrics: dict, test_probs: np.ndarray, test_labels: np.ndarray) -> None:
        """Final test metrics plus the probabilities and labels they came from."""
        folder = self.run_dir(run_id)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, probs=np.asarray(test_probs, np.float32), labels=np.asarray(test_labels, np.int32))
        atomic_write_bytes(folder / TEST_PREDICTIONS_FILE, buffer.getvalue())
        atomic_write_json(folder / EVALUATION_FILE, metrics)

    # ----- reading -----------------------------------------------------------------------------
    def read_config(self, run_id: str) -> TrainConfig:
        path = self._existing(run_id) / CONFIG_FILE
        try:
            return TrainConfig.from_json(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"run {run_id!r} has no {CONFIG_FILE}") from None
        except PermissionError:
            raise StoreError(f"run {run_id!r}: {CONFIG_FILE} is not readable") from None
        except (ValueError, TypeError) as exc:
            raise StoreError(f"run {run_id!r}: {CONFIG_FILE} is invalid: {exc}") from None

    def read_status(self, run_id: str) -> RunStatus:
        """The stored status, with a run whose process died shown as interrupted."""
        return self._read_status(run_id)[0]

    def _read_status(self, run_id: str) -> tuple[RunStatus, str]:
        """(the status as it is now, the status the file says)."""
        path = self._existing(run_id) / STATUS_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"run {run_id!r} has no {STATUS_FILE}") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"run {run_id!r}: {STATUS_FILE} is unreadable: {exc}") from None
        if not isinstance(data, dict) or data.get("status") not in STATUSES:
            raise StoreError(f"run {run_id!r}: {STATUS_FILE} has no valid status")
        try:
            status = RunStatus.from_dict(data)
        except TypeError as exc:
            raise StoreError(f"run {run_id!r}: {STATUS_FILE} is unreadable: {exc}") from None
        stored = status.status
        if status.active:
            status = self.as_it_is_now(status, path.parent)
        return status, stored

    def read_evaluation(self, run_id: str) -> tuple[dict, np.ndarray, np.ndarray] | None:
        """(metrics, test probabilities, test labels), or None before the run was evaluated."""
        folder = self._existing(run_id)
        try:
            metrics = json.loads((folder / EVALUATION_FILE).read_text())
            with np.load(folder / TEST_PREDICTIONS_FILE, allow_pickle=False) as data:
                return metrics, data["probs"], data["labels"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise StoreError(f"run {run_id!r}: the evaluation files are damaged ({exc})") from None

    def has_model(self, run_id: str) -> bool:
        return (self._existing(run_id) / MODEL_FILE).is_file()

    def load_model(self, run_id: str):
        """Load the run's .keras model with safe_mode; only files inside the store are ever loaded."""
        import keras

        import core.model  # noqa: F401  registers the custom layers of the lecun1998 variant

        path = self.model_path(run_id)
        problem = self._model_problem(path) or archive_problem(path, MODEL_FILE)
        if problem:
            raise StoreError(f"run {run_id!r}: {problem}")
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # Keras raises many types for a damaged archive
            raise StoreError(f"run {run_id!r}: {MODEL_FILE} could not be loaded "
                             f"({type(exc).__name__}: {exc})") from None
        problem = core.model.lenet_problem(model)
        if problem:
            raise StoreError(f"run {run_id!r}: {MODEL_FILE} loads, but {problem}")
        return model

    # ----- downloads ---------------------------------------------------------------------------
    def model_bytes(self, run_id: str) -> bytes:
        return self.model_path(run_id).read_bytes()

    def config_json(self, run_id: str) -> str:
        return self.read_config(run_id).to_json()

    # ----- listing, renaming, deleting ---------------------------------------------------------
    def rename(self, run_id: str, new_name: str) -> None:
        self._existing(run_id)
        name = check_name(new_name)
        try:
            self.write_status(run_id, name=name)
        except PermissionError:
            raise StoreError(f"run {run_id!r} cannot be renamed: its folder is read-only (permission denied)") from None
        except OSError as exc:
            raise StoreError(f"run {run_id!r} cannot be renamed: {exc.strerror or exc}") from None

    def delete(self, run_id: str) -> None:
        path = self._existing(run_id)
        try:
            status = self.read_status(run_id).status
        except StoreError:
            status = "damaged"  # a damaged run can always be deleted on request
        if status in ACTIVE:
            raise StoreError(f"run {run_id!r} is still {status}; stop it before deleting")
        try:
            shutil.rmtree(path)
        except OSError as exc:
            raise StoreError(f"run {run_id!r} could not be deleted completely: {exc.strerror or exc}") from None

    # ----- change detection: what callers cache on (the run list's is listing.RunListing.signature) --------
    def version(self, run_id: str) -> tuple:
        """Changes whenever any of the run's files changes (status, config, metrics, model, evaluation, a new
        epoch snapshot); () when the run cannot be read."""
        try:
            folder = self.run_dir(run_id)
            stats = [(p.name, p.stat()) for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
            stamps = [(name, stat.st_mtime_ns, stat.st_size) for name, stat in stats]
        except (OSError, StoreError):
            return ()
        return tuple(stamps)
