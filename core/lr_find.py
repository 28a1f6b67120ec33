"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks", section 3.3):
train the config's model for a few hundred batches while the rate grows exponentially from `min_rate` to
`max_rate`, record each batch's loss, smooth it, and suggest the rate where the smoothed loss falls fastest.

Keras trains (model.fit with a callback that sets the optimizer's rate before each batch); nothing is saved as a
run. As the "lr_find" task kind it writes its progress and result to the store for the sidebar to read."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from core.config import TrainConfig
from core.store import RunStore, now_iso

RESULT_KIND = "lr_find"
SMOOTHING = 0.98  # the exponential moving average of the loss, debiased (as fastai's finder)
DIVERGED = 4.0  # stop once the smoothed loss is this many times its minimum


@dataclass
class LrFindResult:
    rates: list[float]
    losses: list[float]  # each batch's own loss
    smoothed: list[float]
    suggestion: float | None  # where the smoothed loss falls fastest (per decade of rate)
    minimum: float | None  # the rate of the lowest smoothed loss
    batches: int
    seconds: float
    state: str = "completed"  # running, completed, stopped, failed
    error: str | None = None
    updated: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    average, result = 0.0, []
    for i, loss in enumerate(losses, 1):
        average = beta * average + (1 - beta) * loss
        result.append(average / (1 - beta**i))
    return result


def suggest(rates: list[float], smoothed: list[float]) -> tuple[float | None, float | None]:
    """(the rate of the steepest fall of the smoothed loss before its minimum, the rate of the minimum)."""
    if len(smoothed) < 5:
        return None, None
    values = np.asarray(smoothed)
    lowest = int(np.nanargmin(values))
    if lowest < 3:
        return None, float(rates[lowest])
    slopes = np.gradient(values[: lowest + 1], np.log10(np.asarray(rates[: lowest + 1])))
    return float(rates[int(np.argmin(slopes))]), float(rates[lowest])


def lr_find(config: TrainConfig, steps: int = 300, min_rate: float = 1e-6, max_rate: float = 1.0,
            stop_event: threading.Event | None = None, progress=None, dataset=None) -> LrFindResult:
    """Run the range test on `config`'s data and model; `progress(result)` is called after each batch."""
    if not 0 < min_rate < max_rate:
        raise ValueError(f"min_rate={min_rate:g}, max_rate={max_rate:g}: need 0 < min_rate < max_rate")
    if not 10 <= steps <= 5000:
        raise ValueError(f"steps={steps}; allowed: 10 to 5000")
    import keras

    from core.data import load_dataset
    from core.model import build_model
    from core.rate_range import RateRangeCallback
    from core.speed import build_training_state, make_train_dataset, use_fused_adam
    from core.trainer import make_loss, make_optimizer

    started = time.perf_counter()
    data = dataset if dataset is not None else load_dataset(config.replace(lr_schedule="constant"), lean=True)
    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    model.compile(optimizer=make_optimizer(config.replace(lr_schedule="constant"), steps), loss=make_loss(config))
    build_training_state(model)  # the train step is traced once, not again after creating the optimizer's state
    use_fused_adam(model.optimizer)  # the trainer's Adam kernel: the finder's batches cost what training's do
    train_data = make_train_dataset(data.x_train, data.y_train, config).repeat()
    def report(rates: list[float], losses: list[float]) -> None:
        if progress is not None:
            progress(make_result(rates, losses, time.perf_counter() - started, "running"))

    recorder = RateRangeCallback(steps, min_rate, max_rate, DIVERGED, SMOOTHING, stop_event, report)
    model.fit(train_data, epochs=1, steps_per_epoch=steps, callbacks=[recorder], verbose=0)
    return make_result(recorder.rates, recorder.losses, time.perf_counter() - started, recorder.state)


def make_result(rates: list[float], losses: list[float], seconds: float, state: str = "completed") -> LrFindResult:
    smoothed = smooth(losses)
    suggestion, minimum = suggest(rates, smoothed)
    return LrFindResult(list(rates), list(losses), smoothed, suggestion, minimum, len(losses), round(seconds, 2),
                        state, updated=now_iso())


def run_lr_find(store: RunStore, stop_event: threading.Event, result_id: str, config: dict,
                steps: int = 300) -> str:
    """The "lr_find" task kind: the range test of `config` (TrainConfig.to_dict()), its result in the store."""
    store.write_result(RESULT_KIND, result_id, {"state": "running", "updated": now_iso(), "batches": 0})
    last = [0.0]

    def progress(result: LrFindResult) -> None:
        if time.perf_counter() - last[0] >= 0.5:
            last[0] = time.perf_counter()
            store.write_result(RESULT_KIND, result_id, {**result.to_dict(), "state": "running"})

    try:
        result = lr_find(TrainConfig.from_dict(config), steps=steps, stop_event=stop_event, progress=progress)
    except Exception as exc:  # noqa: BLE001 - the sidebar shows the reason; nothing else is at stake
        store.write_result(RESULT_KIND, result_id, {"state": "failed", "error": f"{type(exc).__name__}: {exc}"
                                                    if not isinstance(exc, ValueError) else str(exc),
                                                    "updated": now_iso()})
        return "failed"
    store.write_result(RESULT_KIND, result_id, result.to_dict())
    return result.state


def read_result(store: RunStore, result_id: str) -> LrFindResult | None:
    data = store.read_result(RESULT_KIND, result_id)
    if data is None:
        return None
    fields = LrFindResult.__dataclass_fields__
    defaults = {"rates": [], "losses": [], "smoothed": [], "suggestion": None, "minimum": None, "batches": 0,
                "seconds": 0.0}
    return LrFindResult(**{**defaults, **{k: v for k, v in data.items() if k in fields}})

