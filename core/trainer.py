"""The trainer: one run from a TrainConfig, prepared, fitted with Keras and finished into the run store."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.config import TrainConfig
from core.store import RunStore, StoreError, now_iso, owner

if TYPE_CHECKING:  # pragma: no cover - these load TensorFlow, which the trainer imports only once it trains
    import keras
    import tensorflow as tf

    from core.callbacks import ControlCallback, StreamingCallback
    from core.data import Dataset
    from core.speed import Applied

# A mean cross-entropy above -ln(smallest float32) means some image's true class gets a softmax probability
# of exactly 0 in float32, so the loss of the model's own outputs is infinite. Keras computes the loss from
# the logits, which keeps it finite (1e9 and more) long after the weights have blown up, so this bound is
# where a diverged run is caught; a healthy run never comes near it (2.3 at the start, below 1 once learning).
LOSS_LIMIT = -math.log(float(np.finfo(np.float32).smallest_subnormal))  # 103.28


@dataclass
class TrainResult:
    run_id: str
    status: str
    test_metrics: dict | None = None
    error: str | None = None
    duration: float = 0.0


def library_versions() -> dict:
    import keras
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    import keras

    total = max(1, steps_per_epoch * config.epochs)
    rate = config.learning_rate
    if config.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total)
    elif config.lr_schedule == "step":
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            [int(total * 0.5), int(total * 0.75)],
            [config.learning_rate, config.learning_rate * 0.1, config.learning_rate * 0.01],
        )
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=config.momentum)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(rate, momentum=config.momentum if config.momentum < 1 else 0.0)
    return keras.optimizers.Adam(rate)


def make_loss(config: TrainConfig):
    """Keras' sparse cross-entropy; with label smoothing ε, the cross-entropy against (1 - ε)·one-hot + ε/classes,
    which Keras offers for one-hot labels only, so the integer labels are made one-hot inside the loss."""
    if not config.label_smoothing:
        return "sparse_categorical_crossentropy"
    loss = functools.partial(smoothed_sparse_crossentropy, label_smoothing=config.label_smoothing)
    loss.__name__ = "smoothed_sparse_crossentropy"  # Keras names the loss (and saves it) by its function's name
    return loss


def smoothed_sparse_crossentropy(y_true, y_pred, label_smoothing: float = 0.0):
    import keras
    from keras import ops

    one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), ops.shape(y_pred)[-1])
    return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=label_smoothing)


def train(config: TrainConfig, store: RunStore | None = None, *, name: str | None = None,
          run_id: str | None = None, stop_event: threading.Event | None = None, callbacks=(),
          streaming: bool = True, jit_compile: bool | str = "auto", dataset=None,
          hand_over_dataset: bool = False, exclusive: bool = True, on_wait=None) -> TrainResult:
    """Train one run end to end. Errors end the run as 'failed' with a message; they are not raised.

    dataset: the data, already loaded (else the trainer loads it from the config). hand_over_dataset: the
    caller no longer needs dataset's training images, so the trainer empties dataset.x_train and y_train
    once its input graph has its own copy, as it does with data it loaded itself (the full MNIST's float32
    training images are 245 MB).

    exclusive: hold the store's training lock, waiting behind the run that holds it (one training per store,
    whichever dashboard or terminal started it); `on_wait(holder_run_id)` is called once if it must wait.
    Stop comes from `stop_event` or from the store (`RunStore.request_stop`, any dashboard's Stop). While it
    trains, the run's heartbeat shows it is alive."""
    store = store or RunStore()
    if run_id is None:
        run_id = store.create_run(config, name=name, status="queued")
    started = time.perf_counter()
    stop = store.stop_signal(run_id, stop_event)
    lock = store.training_lock(run_id)

    def waiting(holder: str) -> None:
        with contextlib.suppress(OSError, StoreError):
            store.write_status(run_id, phase=f"waiting for run {holder} to finish (one training per store)")
        if on_wait is not None:
            on_wait(holder)

    if exclusive and not lock.acquire(stop.is_set, on_wait=waiting):
        return _stopped_before_training(store, run_id, started)
    try:
        with store.heartbeat(run_id):
            return _run(config, store, run_id, stop, callbacks, streaming, jit_compile, dataset, hand_over_dataset,
                        started)
    finally:
        lock.release()


def _run(config, store, run_id, stop_event, callbacks, streaming, jit_compile, dataset, hand_over_dataset,
         started) -> TrainResult:
    try:
        store.write_status(run_id, status="running", started=now_iso(), phase="loading data",
                           versions=library_versions(), **owner())
        prepared = _prepare(config, store, run_id, stop_event, list(callbacks), streaming, jit_compile, dataset,
                            hand_over_dataset)
        if stop_event is not None and stop_event.is_set():  # stopped while loading data or building
            return _stopped_before_training(store, run_id, started)
        train_time = _fit(config, store, run_id, prepared)
        return _finish(config, store, run_id, prepared, started, train_time)
    except Exception as exc:  # the run must end with a readable status, never stuck in "running"
        if isinstance(exc, OSError):  # data problems are DataError; an OSError here is the run store's disk
            message = f"cannot write the run in the run store: {exc.strerror or exc}"
        else:
            message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, (ValueError, StoreError)) else str(exc)
        try:
            store.write_status(run_id, status="failed", ended=now_iso(), error=message, phase="failed",
                               traceback=traceback.format_exc(limit=5), duration=time.perf_counter() - started)
        except Exception:  # noqa: BLE001 - the store itself may be what failed (disk full, read-only)
            pass
        return TrainResult(run_id, "failed", error=message, duration=time.perf_counter() - started)


@dataclass
class _Prepared:
    """What _prepare makes for _fit and _finish."""

    data: Dataset  # its training images freed when nobody else needs them
    model: keras.Model  # compiled, with the speed techniques applied
    applied: Applied
    train_data: tf.data.Dataset
    validation: tuple | None
    control: ControlCallback
    streamer: StreamingCallback | None  # None without streaming
    callbacks: list  # everything `fit` calls: control, streamer, then the caller's


def _prepare(config, store, run_id, stop_event, callbacks, streaming, jit_compile, dataset, hand_over) -> _Prepared:
    """Load and record the data, build and compile the model, make the input pipeline and the callbacks."""
    import keras

    from core import speed
    from core.callbacks import ControlCallback, StreamingCallback
    from core.data import load_dataset
    from core.model import build_model

    data = dataset if dataset is not None else load_dataset(config)
    store.write_config(run_id, _resolved_config(config, data))
    n_train = len(data.x_train)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    store.write_status(run_id, phase="building model", dataset=data.name, class_names=list(data.class_names),
                       data_source=data.source, source_detail=data.source_detail, n_train=n_train,
                       n_val=len(data.x_val), n_test=len(data.x_test), n_excluded=data.excluded,
                       steps_per_epoch=steps_per_epoch,
                       epochs=config.epochs, batch_size=config.batch_size)

    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    applied = speed.compile_fast(model, config, optimizer=make_optimizer(config, steps_per_epoch),
                                 loss=make_loss(config), metrics=["accuracy"],
                                 steps_per_epoch=steps_per_epoch, n_train=n_train, jit_compile=jit_compile)
    train_data = speed.make_train_dataset(data.x_train, data.y_train, config)
    if dataset is None or hand_over:  # nobody else needs them: the graph has its own copy, free the float32 images
        data.x_train = np.empty((0, *data.x_train.shape[1:]), data.x_train.dtype)  # not [:0]: a view keeps it
        data.y_train = np.empty(0, data.y_train.dtype)
    validation = (data.x_val, data.y_val) if len(data.x_val) else None

    control = ControlCallback(stop_event, loss_limit=LOSS_LIMIT)
    streamer = None
    if streaming:
        streamer = StreamingCallback(store, run_id, data.x_test, data.y_test, batch_size=config.batch_size,
                                     n_train=n_train)
    all_callbacks = [control, *([streamer] if streamer is not None else []), *callbacks]
    return _Prepared(data, model, applied, train_data, validation, control, streamer, all_callbacks)


def _stopped_before_training(store: RunStore, run_id: str, started: float) -> TrainResult:
    store.write_status(run_id, status="stopped", ended=now_iso(), phase="stopped", model_saved=False,
                       model_epoch=None, epochs_done=0, duration=time.perf_counter() - started,
                       error="stopped before training started; no model was saved")
    return TrainResult(run_id, "stopped", error="stopped before training started",
                       duration=time.perf_counter() - started)


def _fit(config: TrainConfig, store: RunStore, run_id: str, prepared: _Prepared) -> float:
    """Keras' fit over the prepared pipeline; returns how long it took, in seconds."""
    model = prepared.model
    store.write_status(run_id, phase="training", training_started=now_iso(),
                       parameters=int(model.count_params()), batch_slices=prepared.applied.batch_slices,
                       fused_adam=prepared.applied.fused_adam)
    fit_start = time.perf_counter()
    model.fit(prepared.train_data, epochs=config.epochs, validation_data=prepared.validation,
              validation_batch_size=2048, callbacks=prepared.callbacks, verbose=0)
    return time.perf_counter() - fit_start


def _finish(config: TrainConfig, store: RunStore, run_id: str, prepared: _Prepared, started: float,
            train_time: float) -> TrainResult:
    """Decide how the run ended, save and evaluate the model kept, and write the final status."""
    control, model, streamer = prepared.control, prepared.model, prepared.streamer
    status, error, model_epoch = _outcome(config, model, control)
    test_metrics = None
    if model_epoch is not None:
        store.write_status(run_id, phase="saving")
        store.save_model(run_id, model)
        # A completed run's model is the last epoch's, which the streaming callback has just evaluated.
        snapshot = streamer.last_snapshot if streamer is not None and status == "completed" else None
        reuse = snapshot.probs if snapshot is not None and snapshot.epoch == model_epoch == config.epochs else None
        test_metrics = _evaluate(store, run_id, model, prepared.data, probs=reuse)
    duration = time.perf_counter() - started
    store.write_status(
        run_id, status=status, ended=now_iso(), error=error, phase=status, duration=duration,
        train_time=train_time, model_saved=model_epoch is not None, model_epoch=model_epoch,
        nonfinite=control.nonfinite, test_accuracy=(test_metrics or {}).get("accuracy"),
        epochs_done=control.epochs_finished if control.stopped else control.epoch,
        # Stop pressed mid-epoch: how far into the next epoch it got (the saved model is the one at that batch)
        stopped_batch=control.batches if control.stopped and control.epochs_finished < control.epoch else None,
    )
    return TrainResult(run_id, status, test_metrics, error, duration)


def _outcome(config: TrainConfig, model: keras.Model, control: ControlCallback) -> tuple[str, str | None, int | None]:
    """(status, error, the epoch of the model to keep or None); a diverged run gets its last finite weights back."""
    if control.nonfinite is None:
        return ("stopped" if control.stopped else "completed"), None, control.epoch
    where = control.nonfinite
    checked = f", checked every {model.steps_per_execution} batches" if model.steps_per_execution > 1 else ""
    error = (f"training diverged: {where['what']} at epoch {where['epoch']}, batch {where['batch']} "
             f"(learning_rate={config.learning_rate}{checked}; a loss above {LOSS_LIMIT:.1f} means a "
             f"probability of exactly 0 in float32); try a smaller learning rate")
    if control.last_finite is None:
        return "failed", error + "; no finite model was kept", None
    model_epoch, weights = control.last_finite
    model.set_weights(weights)
    return "failed", error + f"; kept the model from the end of epoch {model_epoch}, the last finite one", model_epoch


def _evaluate(store: RunStore, run_id: str, model, data, probs: np.ndarray | None = None) -> dict:
    from core.analysis import predict_probs, summary_metrics

    if probs is None:
        probs = predict_probs(model, data.x_test)
    metrics = summary_metrics(data.y_test, probs)
    store.save_evaluation(run_id, metrics, probs, data.y_test)
    return metrics


def _resolved_config(config: TrainConfig, data) -> TrainConfig:
    """Record the source actually used, so the saved config reproduces the run."""
    if data.source in ("keras", "sample"):
        return config.replace(data_source=data.source, data_path=None)
    if data.source == "file":
        return config.replace(data_source="file", data_path=config.data_path or os.environ.get("LENET_DATA"))
    return config
