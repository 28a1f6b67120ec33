"""The learning-rate range test's Keras callback (core.lr_find), in a module of its own: the finder imports only
Keras and this, not the training callbacks' scikit-learn and pandas (`python -m core lr-find` starts sooner)."""

from __future__ import annotations

import math
import threading

import keras
import numpy as np


class RateRangeCallback(keras.callbacks.Callback):
    """The learning-rate range test's callback (core.lr_find): sets the rate before each batch, exponentially from
    min_rate to max_rate, records each batch's own loss, and ends once the smoothed loss diverges or on Stop."""

    def __init__(self, steps: int, min_rate: float, max_rate: float, diverged: float, smoothing: float,
                 stop_event: threading.Event | None = None, progress=None):
        super().__init__()
        self.steps, self.min_rate, self.max_rate = steps, min_rate, max_rate
        self.diverged, self.smoothing, self.stop_event = diverged, smoothing, stop_event
        self.progress = progress  # progress(rates, losses) after each batch

    def on_train_begin(self, logs=None):
        self.rates, self.losses, self.state = [], [], "completed"
        self.total, self.average, self.best = 0.0, 0.0, math.inf

    def on_train_batch_begin(self, batch, logs=None):
        rate = self.min_rate * (self.max_rate / self.min_rate) ** (batch / max(1, self.steps - 1))
        self.model.optimizer.learning_rate.assign(rate)
        self.rates.append(rate)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        total = float(logs.get("loss", np.nan)) * (batch + 1)  # Keras logs the running mean of the epoch
        loss, self.total = total - self.total, total
        self.losses.append(loss)
        self.average = self.smoothing * self.average + (1 - self.smoothing) * loss
        smoothed = self.average / (1 - self.smoothing ** len(self.losses))
        self.best = min(self.best, smoothed)
        if not math.isfinite(loss) or smoothed > self.diverged * self.best:
            self.model.stop_training = True  # the loss has blown up: the test is over
        elif self.stop_event is not None and self.stop_event.is_set():
            self.state = "stopped"
            self.model.stop_training = True
        if self.progress is not None:
            self.progress(self.rates, self.losses)
