"""The Keras callbacks of a training run: stop and divergence control, streaming into the run store, a sweep's
pruning, a progress bar."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time

import keras
import numpy as np
from sklearn.metrics import accuracy_score

from core.analysis import cross_entropy
from core.model import c1_kernels
from core.records import EpochSnapshot
from core.speed import usable_cpus
from core.store import RunStore


def batches_done(batch: int, params: dict) -> int:
    """The batches of this epoch done when Keras calls on_train_batch_end(batch), counting an epoch's last,
    short call of the compiled loop as it is. (why: bench/RESULTS.md, "Why the trainer's code is as it is")"""
    steps = params.get("steps")
    return min(batch + 1, steps) if steps else batch + 1


def epoch_cut_short(model, batches: int, params: dict) -> bool:
    """Whether the epoch Keras is ending was cut short (Stop or a divergence): Keras calls on_epoch_end for it
    too, after `batches` of its batches."""
    return bool(model.stop_training) and batches < (params.get("steps") or 0)


def current_learning_rate(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _finite(arrays) -> bool:
    return all(np.isfinite(a).all() for a in arrays)


class ControlCallback(keras.callbacks.Callback):
    """Stops on request, and ends the run when the loss passes `loss_limit` or the weights stop being finite.

    After `fit`, its attributes say how far the run got and why it ended; `last_finite` holds the weights at
    the end of the newest epoch whose weights and loss were finite."""

    def __init__(self, stop_event: threading.Event | None, loss_limit: float):
        super().__init__()
        self.stop_event = stop_event
        self.loss_limit = loss_limit
        self.epoch = 0
        self.batches = 0  # batches done in the current epoch
        self.epochs_finished = 0
        self.stopped = False
        self.nonfinite: dict | None = None
        self.last_finite: tuple[int, list] | None = None

    def diverged(self, batch: int, what: str) -> None:
        if self.nonfinite is None:
            self.nonfinite = {"epoch": self.epoch, "batch": batch, "what": what}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.batches = batches_done(batch, self.params)
        loss = logs.get("loss")
        if loss is not None and not float(loss) <= self.loss_limit:  # NaN fails every comparison
            self.diverged(self.batches, f"loss became {float(loss):.4g}")
            self.model.stop_training = True
        elif not _finite(w.numpy() for w in self.model.get_layer("output").weights):  # 850 numbers: cheap
            self.diverged(self.batches, "the output layer's weights became non-finite")
            self.model.stop_training = True
        elif self.stop_event is not None and self.stop_event.is_set():
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not epoch_cut_short(self.model, self.batches, self.params):
            self.epochs_finished = epoch + 1
        if self.nonfinite is not None:
            return
        weights = self.model.get_weights()
        if not _finite(weights):  # the epoch's last update can break the weights after the last loss
            self.diverged(self.params.get("steps") or 0, "the weights became non-finite")
            self.model.stop_training = True
        elif float(logs.get("loss", 0.0)) <= self.loss_limit:
            self.last_finite = (epoch + 1, weights)


class StreamingCallback(keras.callbacks.Callback):
    """Only writes: throttled batch metrics, epoch metrics, evaluation-set probabilities, C1 kernels and the weights."""

    save_weights = True  # the model's weights in each epoch snapshot; bench/epoch_weights.py turns it off to time it

    def __init__(self, store: RunStore, run_id: str, x_eval: np.ndarray, y_eval: np.ndarray,
                 batch_size: int, n_train: int, batch_interval: float = 0.25, eval_batch_size: int = 2048):
        super().__init__()
        self.store = store
        self.run_id = run_id
        self.x_eval = x_eval
        self.y_eval = y_eval
        self.batch_size = batch_size
        self.n_train = n_train
        self.batch_interval = batch_interval  # seconds between batch records: the throttle
        self.eval_batch_size = eval_batch_size
        self.labels = list(range(int(max(np.max(y_eval), 9)) + 1)) if len(y_eval) else list(range(10))

    def on_train_begin(self, logs=None):
        self.train_start = time.perf_counter()
        self.last_write = 0.0
        self.step = 0
        self.last_snapshot: EpochSnapshot | None = None  # the newest evaluation, for the trainer to reuse
        self._forward = None  # built at the first epoch end

    def predict_eval(self) -> np.ndarray:
        """The model's probabilities for the evaluation images, float32, from one compiled call over equal slices
        of at most eval_batch_size. (why: bench/RESULTS.md, "Why the trainer's code is as it is")"""
        import tensorflow as tf

        if len(self.x_eval) == 0:
            return np.zeros((0, self.model.output_shape[-1]), np.float32)
        if self._forward is None:
            images = tf.constant(self.x_eval, dtype=tf.float32)
            n, cores = len(self.x_eval), usable_cpus()
            # Equal slices, as many as a multiple of the cores: with one thread per op, each core takes its share.
            count = cores * math.ceil(n / (cores * self.eval_batch_size))
            bounds = [n * i // count for i in range(count + 1)]
            model = self.model

            @tf.function
            def forward(x):
                return tf.concat([model(x[a:b], training=False) for a, b in zip(bounds, bounds[1:]) if b > a], axis=0)

            self._forward = lambda: forward(images)
        return np.asarray(self._forward(), dtype=np.float32)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.epoch_step_offset = self.step
        self.epoch_number = epoch + 1
        self.chunk_start = (0, 0, 0.0, 0.0)  # at the last record: batches, images, loss and accuracy sums

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        done = batches_done(batch, self.params)
        self.step = self.epoch_step_offset + done
        now = time.perf_counter()
        if now - self.last_write < self.batch_interval:
            return
        # Keras logs the epoch's running means, weighted by images; the sums they imply give each stretch of
        # batches since the previous record its own mean, so a point says how training goes now.
        seen = min(done * self.batch_size, self.n_train) if self.n_train else done * self.batch_size
        loss_sum = float(logs.get("loss", np.nan)) * seen
        accuracy_sum = float(logs.get("accuracy", np.nan)) * seen
        start_batches, start_seen, start_loss, start_accuracy = self.chunk_start
        if seen <= start_seen:
            return
        self.last_write = now
        self.chunk_start = (done, seen, loss_sum, accuracy_sum)
        self.store.append_metrics(self.run_id, [{
            "type": "batch",
            "epoch": self.epoch_number,
            "batch": done,
            "step": self.step,
            "batches": done - start_batches,  # the stretch of batches this record's means cover
            "loss": (loss_sum - start_loss) / (seen - start_seen),
            "accuracy": (accuracy_sum - start_accuracy) / (seen - start_seen),
            "time": round(now - self.train_start, 3),
        }])

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        epoch_time = time.perf_counter() - self.epoch_start
        steps_done = self.step - self.epoch_step_offset
        images = steps_done * self.batch_size
        if epoch_cut_short(self.model, steps_done, self.params):
            # Stopped mid-epoch (Stop or a non-finite loss): record the partial epoch, skip the snapshot so
            # the run ends within about a second; the trainer evaluates whatever model it keeps.
            self.store.append_metrics(self.run_id, [{
                "type": "epoch", "epoch": epoch + 1, "partial": True, "steps_done": steps_done,
                "loss": float(logs.get("loss", np.nan)), "accuracy": float(logs.get("accuracy", np.nan)),
                "learning_rate": current_learning_rate(self.model), "epoch_time": round(epoch_time, 3),
                "time": round(time.perf_counter() - self.train_start, 3)}])
            return
        eval_start = time.perf_counter()
        probs = self.predict_eval()
        record = {
            "type": "epoch",
            "epoch": epoch + 1,
            "loss": float(logs.get("loss", np.nan)),
            "accuracy": float(logs.get("accuracy", np.nan)),
            "val_loss": float(logs["val_loss"]) if "val_loss" in logs else None,
            "val_accuracy": float(logs["val_accuracy"]) if "val_accuracy" in logs else None,
            "learning_rate": current_learning_rate(self.model),
            "epoch_time": round(epoch_time, 3),
            "images_per_sec": round(min(images, self.n_train) / epoch_time, 1) if epoch_time > 0 else None,
            "time": round(time.perf_counter() - self.train_start, 3),
        }
        if np.isfinite(probs).all() and len(self.y_eval):
            record["test_accuracy"] = float(accuracy_score(self.y_eval, probs.argmax(axis=1)))
            record["test_loss"] = cross_entropy(self.y_eval, probs, len(self.labels))
        weights = tuple(self.model.get_weights()) if self.save_weights else ()
        snapshot = EpochSnapshot(epoch=epoch + 1, probs=probs, c1_kernels=c1_kernels(self.model), weights=weights)
        self.store.save_epoch_snapshot(self.run_id, snapshot)
        record["eval_time"] = round(time.perf_counter() - eval_start, 3)
        self.store.append_metrics(self.run_id, [record])
        self.last_snapshot = snapshot


class TrialCallback(keras.callbacks.Callback):
    """A sweep trial's run: keeps the last epoch's validation accuracy (the trial's objective, so the sweep need
    not read the run's metrics back) and, given an Optuna `trial`, prunes in Optuna's idiom: each epoch's
    validation accuracy goes to `trial.report`; when `trial.should_prune()`, training ends after this epoch (the
    sweep then marks the run pruned). The trial may live in another process or on another node: the study's
    storage carries the reports, and its pruner decides."""

    def __init__(self, trial=None):
        super().__init__()
        self.trial = trial
        self.pruned_at: int | None = None
        self.val_accuracy: float | None = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get("val_accuracy")
        if value is None or not math.isfinite(float(value)):
            self.val_accuracy = None
            return
        self.val_accuracy = float(value)
        if self.trial is None:
            return
        self.trial.report(self.val_accuracy, step=epoch + 1)
        if self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.model.stop_training = True


class ProgressBar(keras.callbacks.Callback):
    """Draws keras.utils.Progbar per epoch on stderr."""

    def on_epoch_begin(self, epoch, logs=None):
        print(f"Epoch {epoch + 1}/{self.params['epochs']}", file=sys.stderr)
        self.bar = keras.utils.Progbar(self.params.get("steps"), stateful_metrics=["loss", "accuracy"])

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        with contextlib.redirect_stdout(sys.stderr):
            self.bar.update(batches_done(batch, self.params),
                            [(k, float(v)) for k, v in logs.items() if k in ("loss", "accuracy")])

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        with contextlib.redirect_stdout(sys.stderr):
            self.bar.update(self.params.get("steps") or 0, [(k, float(v)) for k, v in logs.items()
                                                           if isinstance(v, (int, float))], finalize=True)
