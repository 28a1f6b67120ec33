"""The training-set label audit: K-fold cross-validated training with a run's config, so that every training
image gets probabilities from a model that never saw it; the result is stored with the run (`audit-train`)."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from core.label_audit import AuditError, check_folds
from core.store import RunStore, StoreError, now_iso, owner

if TYPE_CHECKING:  # pragma: no cover
    from core.config import TrainConfig


def audited_config(store: RunStore, run_id: str, audit) -> TrainConfig:
    """The run's config with the data source its training-set audit used (to find the same images again)."""
    config = store.read_config(run_id)
    if audit is not None and audit.data_source:
        config = config.replace(data_source=audit.data_source, data_path=audit.data_path)
    return config


def training_images(store: RunStore, run_id: str, audit) -> np.ndarray:
    """The source's uint8 (N, 28, 28) training images, indexed like the audit's `indices`; AuditError when the
    audited images are not there (another source than the one the audit trained on)."""
    from core.data import load_raw

    config = audited_config(store, run_id, audit)
    raw = load_raw(config.dataset, config.data_source, config.data_path)
    if audit.indices.max(initial=-1) >= len(raw.y_train) or (raw.y_train[audit.indices] != audit.labels).any():
        raise AuditError(f"the training images of this audit are not in {raw.source_detail}; "
                         "set LENET_DATA to the data it was run on")
    return raw.x_train


def check_auditable(store: RunStore, run_id: str) -> None:
    """Refuse, with one line, a run whose training-set audit cannot start."""
    status = store.read_status(run_id)
    if status.active:
        raise AuditError(f"run {run_id!r} is still {status.status}; audit its training set once it has ended")
    store.read_config(run_id)  # a missing or damaged config is refused here


def audit_train(store: RunStore, stop_event: threading.Event, run_id: str, folds: int = 3,
                task_id: str | None = None, data_path: str | None = None) -> str:
    """The "audit_train" task: train `folds` models with the run's config, each on all folds but one, and
    predict the fold it left out. Each fold is a run in the store while it trains (the Train page follows it,
    its Stop stops the audit) and is removed once its held-out probabilities are kept. Returns the final word."""
    folds = check_folds(folds)
    check_auditable(store, run_id)
    try:
        previous = store.read_train_audit(run_id)
    except StoreError:  # a damaged earlier audit: this one replaces it
        previous = None
    started = time.perf_counter()
    store.write_train_audit(run_id, state="running", folds=folds, started=now_iso(), task_id=task_id, **owner())
    try:
        outcome, error = _folds(store, stop_event, run_id, folds, task_id, data_path, started)
    except Exception as exc:  # noqa: BLE001 - the audit must end with a readable state, never stuck running
        outcome, error = "failed", str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
    seconds = round(time.perf_counter() - started, 1)
    if outcome != "completed" and previous is not None and previous.state == "completed":
        # a stopped or failed re-audit keeps the completed result it was meant to replace (its arrays are untouched)
        store.write_train_audit(run_id, **{**previous.to_dict(), "fold_run": None, "retrained": previous.retrained,
                                           "last_attempt": f"a later audit {outcome}: {error}"})
        return outcome
    store.write_train_audit(run_id, state=outcome, error=error, ended=now_iso(), fold_run=None, seconds=seconds,
                            last_attempt=None)
    return outcome


def _folds(store, stop_event, run_id, folds, task_id, data_path, started) -> tuple[str, str | None]:
    from sklearn.model_selection import StratifiedKFold

    from core.data import load_dataset

    config = store.read_config(run_id)
    if data_path:
        config = config.replace(data_source="file", data_path=data_path)
    data = load_dataset(config)
    labels = np.asarray(data.y_train, np.int64)
    source = {"sample": "sample", "keras": "keras", "file": "file"}.get(data.source, "auto")
    store.write_train_audit(run_id, n_images=len(labels), data_source=source,
                            data_path=config.data_path if source == "file" else None)
    probs = np.zeros((len(labels), data.n_classes), np.float32)
    name = store.read_status(run_id).name or run_id
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    fold_seconds = []
    for fold, (fit, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels), 1):
        if stop_event.is_set():
            return "stopped", f"stopped before fold {fold} of {folds}"
        fold_start = time.perf_counter()
        status, error, fold_probs = _one_fold(store, stop_event, config, data, fit, held_out,
                                              f"{name} · label audit fold {fold}/{folds}", run_id, task_id)
        if status != "completed":
            return status, f"fold {fold} of {folds} {status}" + (f": {error}" if error else "")
        probs[held_out] = fold_probs
        fold_seconds.append(round(time.perf_counter() - fold_start, 1))
        store.write_train_audit(run_id, folds_done=fold, fold_seconds=fold_seconds)
    store.save_train_audit(run_id, probs, labels, data.train_index)
    return "completed", None


def _one_fold(store, stop_event, config, data, fit, held_out, name, run_id, task_id):
    """(status, error, the held-out images' probabilities): one fold trained as a run of its own."""
    from core.analysis import predict_probs
    from core.trainer import train

    fold_data = dataclasses.replace(data, x_train=data.x_train[fit], y_train=data.y_train[fit],
                                    train_index=data.train_index[fit])
    fold_run = store.create_run(config, name=name, status="queued")
    store.write_status(fold_run, task_id=task_id)
    store.write_train_audit(run_id, fold_run=fold_run)
    try:
        result = train(config, store, run_id=fold_run, stop_event=stop_event, dataset=fold_data,
                       hand_over_dataset=True)
        if result.status != "completed":
            return result.status, result.error, None
        return "completed", None, predict_probs(store.load_model(fold_run), data.x_train[held_out])
    finally:
        try:
            store.delete(fold_run)  # its held-out probabilities are what the audit keeps
        except (StoreError, OSError):
            pass
