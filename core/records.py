"""Typed run records: what a run's status file and its epoch snapshots hold.

Writers (the trainer, the job manager, the store) pass these fields to `RunStore.write_status`, which refuses
any other name; readers get a `RunStatus` and use attributes. Status files written by earlier versions open:
unknown keys are ignored and missing ones take their defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

STATUSES = ("queued", "running", "completed", "stopped", "failed", "interrupted", "pruned")
ACTIVE = ("queued", "running")
FINAL = ("completed", "stopped", "failed", "interrupted", "pruned")  # pruned: a sweep ended a poor trial early


@dataclass
class RunStatus:
    """One run's status.json. Times are ISO 8601 strings in UTC; durations are seconds."""

    run_id: str = ""
    status: str = "queued"  # one of STATUSES
    name: str = ""
    phase: str | None = None  # what the trainer is doing: loading data, building model, training, saving, ...
    error: str | None = None
    traceback: str | None = None
    # who writes the run: a live writer keeps it "running"; a dead one makes it "interrupted"
    pid: int | None = None
    task_id: str | None = None  # the dashboard task this run is part of (a label audit's fold): Stop stops the task
    pid_started: str | None = None
    host: str | None = None
    # when
    created: str | None = None
    updated: str | None = None
    started: str | None = None
    training_started: str | None = None
    ended: str | None = None
    # the data and the shape of training (written when the data is loaded)
    dataset: str | None = None
    class_names: list[str] | None = None
    data_source: str | None = None
    source_detail: str | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    n_excluded: int | None = None  # training images the config's exclude_train left out
    steps_per_epoch: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    # the model and the speed techniques used
    parameters: int | None = None
    batch_slices: int | None = None
    fused_adam: bool | None = None
    versions: dict | None = None
    # the outcome
    duration: float | None = None
    train_time: float | None = None
    model_saved: bool | None = None
    model_epoch: int | None = None
    epochs_done: int | None = None
    stopped_batch: int | None = None  # Stop pressed mid-epoch: how many batches of the cut epoch ran
    nonfinite: dict | None = None  # where the loss or the weights stopped being finite
    test_accuracy: float | None = None
    # a sweep's trial: which sweep, which Optuna trial number (core.sweep writes them)
    sweep_id: str | None = None
    trial_number: int | None = None

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunStatus":
        """From a stored status; keys this version does not know (an older or newer writer's) are ignored."""
        known = cls.field_names()
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "RunStatus":
        return dataclasses.replace(self, **changes)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True)
class EpochSnapshot:
    """What the streaming callback keeps of the model after each whole epoch."""

    epoch: int
    probs: np.ndarray  # (N, n_classes) probabilities on the test images; stored as float16, read as float32
    c1_kernels: np.ndarray  # (6, 5, 5) float32: C1's filters, filter first (core.model.c1_kernels)
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # named arrays later features add
    # the model's weights after the epoch, in model.get_weights() order (float32); () for runs stored before
    # LeNet Lab kept them: core.epoch_model rebuilds the model at this epoch from them
    weights: tuple[np.ndarray, ...] = ()


AUDIT_STATES = ("running", "completed", "stopped", "failed")


@dataclass
class TrainAudit:
    """A run's K-fold training-set label audit (core.label_audit_train): its progress, then its result."""

    state: str = "running"  # one of AUDIT_STATES
    folds: int = 0
    folds_done: int = 0
    fold_run: str | None = None  # the run training the current fold, followed on the Train page
    task_id: str | None = None  # the dashboard's queue entry, so Stop on the fold's run stops the audit
    pid: int | None = None  # the process running the audit: a dead one means the audit was interrupted
    pid_started: str | None = None
    host: str | None = None
    n_images: int | None = None
    data_source: str | None = None  # the source the folds trained on, to find the same training images again
    data_path: str | None = None
    started: str | None = None
    ended: str | None = None
    seconds: float | None = None
    fold_seconds: list[float] = field(default_factory=list)
    error: str | None = None
    retrained: list[str] = field(default_factory=list)  # runs trained without the images marked "wrong label"
    last_attempt: str | None = None  # a later audit that stopped or failed, while this completed result was kept
    # the result, once completed: out-of-sample probabilities of every training image the run used
    probs: np.ndarray | None = None  # (N, n_classes) float32
    labels: np.ndarray | None = None  # (N,) int64, the given labels
    indices: np.ndarray | None = None  # (N,) int64, each image's index in the source's training set

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainAudit":
        arrays = {"probs", "labels", "indices"}
        known = {f.name for f in fields(cls)} - arrays
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("probs", "labels", "indices")}

    def replace(self, **changes: Any) -> "TrainAudit":
        return dataclasses.replace(self, **changes)
