"""Long work that the dashboard hands to its training process, each kind named once.

A task function is `fn(store, stop_event, **args) -> str`: it does its work through the store (runs,
progress, results), checks `stop_event` often enough that Stop acts within a second, and returns a short
final word ("completed", "stopped", "failed", ...). It never calls Streamlit. The CLI calls the same
functions directly; the dashboard queues them with `JobManager.submit_task(kind, args, ...)`, and its
training process runs them one at a time, in order, with the training runs.

To add a kind: write the function in its own `core/` module and add one line to `TASKS`.
`args` must be JSON (it crosses a pipe to the training process).
"""

from __future__ import annotations

import importlib
import threading
from typing import Callable

from core.store import RunStore

# kind -> "module:function", imported only when a task of that kind runs (TensorFlow loads lazily)
TASKS: dict[str, str] = {
    "train": "core.tasks:train_run",
    "tsne": "core.representation:tsne_task",
    "audit_train": "core.label_audit_train:audit_train",
    "sweep": "core.sweep:run_sweep",  # args: sweep_id, parallel
    "lr_find": "core.lr_find:run_lr_find",  # args: result_id, config, steps
}


class UnknownTask(ValueError):
    pass


def resolve(kind: str) -> Callable:
    if kind not in TASKS:
        raise UnknownTask(f"unknown task kind {kind!r}; known: {', '.join(sorted(TASKS))}")
    module, _, name = TASKS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def run_task(kind: str, store: RunStore, args: dict, stop_event: threading.Event) -> str:
    """Run one task in this process and return its final word."""
    return resolve(kind)(store, stop_event, **args)


def train_run(store: RunStore, stop_event: threading.Event, run_id: str, config: dict) -> str:
    """The "train" kind: train the run `run_id` (created by the caller) with `config` (TrainConfig.to_dict())."""
    from core.config import TrainConfig
    from core.trainer import train

    return train(TrainConfig.from_dict(config), store, run_id=run_id, stop_event=stop_event).status
