"""The trainer: runs Keras `fit` from a TrainConfig, with a fast tf.data pipeline, streaming into the run store."""

from __future__ import annotations

import math
import os
import platform
import threading
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from core.config import TrainConfig
from core.store import RunStore, StoreError, now_iso, owner

# One execution of the compiled train loop should last a fraction of a second, so Stop answers fast.
IMAGES_PER_EXECUTION = 1024
AUGMENT_MAX_SHIFT = 2.0  # pixels
AUGMENT_MAX_ROTATION = 10.0  # degrees


@dataclass
class TrainResult:
    run_id: str
    status: str
    test_metrics: dict | None = None
    error: str | None = None
    duration: float = 0.0
    extras: dict = field(default_factory=dict)


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


def _augment_batch(images, seed):
    """Random shifts and rotations, stateless so a fixed seed gives the same augmentation on a rerun."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(tf.stack([seed, seed // 7 + 1]), 3)
    angle = tf.random.stateless_uniform([n], seeds[0], -1.0, 1.0) * (AUGMENT_MAX_ROTATION * math.pi / 180)
    dx = tf.random.stateless_uniform([n], seeds[1], -AUGMENT_MAX_SHIFT, AUGMENT_MAX_SHIFT)
    dy = tf.random.stateless_uniform([n], seeds[2], -AUGMENT_MAX_SHIFT, AUGMENT_MAX_SHIFT)
    size = tf.cast(tf.shape(images)[1], tf.float32)
    centre = (size - 1) / 2
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Output pixel (x, y) samples input at A·(x, y) + b: a rotation about the centre plus a shift.
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = centre - cos * centre + sin * centre - dx
    b2 = centre - sin * centre - cos * centre - dy
    zeros = tf.zeros_like(angle)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")


def onednn_enabled() -> bool:
    """Whether TensorFlow was asked for its oneDNN kernels (core/__init__.py asks unless the user said no)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("1", "true", "on", "yes")


def resolve_jit_compile(jit_compile: bool | str) -> bool | str:
    """'auto' means TensorFlow's oneDNN kernels without XLA when oneDNN is on, else XLA.

    Measured on a 2-core AVX2 CPU (bench/RESULTS.md), LeNet-5's train step runs ~2.7k images/s with the
    default Eigen kernels, ~4.5k fused by XLA and ~7k with oneDNN; XLA compiles its own convolutions and so
    cannot use oneDNN, and its compile adds ~10 s to the first epoch. Keras' own 'auto' would mean no XLA
    on every machine without a GPU, which is why 'auto' is resolved here."""
    if jit_compile == "auto":
        return not onednn_enabled()
    return jit_compile


def as_pixels(x: np.ndarray) -> np.ndarray | None:
    """x as uint8 grey levels when x is exactly uint8 / 255 (what prepare_images makes), else None."""
    pixels = np.empty(x.shape, dtype=np.uint8)
    for start in range(0, len(x), 4096):  # in chunks: no full-size float temporary
        part = x[start:start + 4096]
        levels = np.rint(part * np.float32(255))
        if not np.array_equal(levels.astype(np.uint8).astype(np.float32) / np.float32(255), part):
            return None
        pixels[start:start + 4096] = levels
    return pixels


PREFETCH_BATCHES = 2  # one batch in the train step, the next one ready: gathering a batch takes well under a step


def make_train_dataset(x: np.ndarray, y: np.ndarray, config: TrainConfig):
    """Shuffle indices, gather whole batches in the graph, optionally augment, prefetch.

    The graph holds the images as uint8 and each batch is scaled by 1/255 again: float32 division is
    exact-rounded, so the batches hold the same float32 values as x, and the copy in the graph takes a
    quarter of the memory (61 MB instead of 245 MB for the full MNIST).

    tf.data's autotuning is off and the prefetch buffer fixed. With it on, Keras' switch to a new iterator
    at the start of each epoch waits in the old iterator's destructor for the autotuner's thread, which
    sleeps between its rounds: 0 to ~4 s of idle CPU per epoch on 2 cores, a 6.5 s epoch taking 10 s about
    half the time (seen with gdb: RootDataset::Iterator::~Iterator waiting on Model::OptimizeLoop). This
    pipeline has nothing to tune: one map of a gather and a cast, run in the prefetch thread.
    """
    import tensorflow as tf

    pixels = as_pixels(x)
    if pixels is None:  # not grey levels / 255: keep the images as they are
        images = tf.constant(x)

        def gather(idx):
            return tf.gather(images, idx)
    else:
        images = tf.constant(pixels)
        del pixels

        def gather(idx):
            return tf.cast(tf.gather(images, idx), tf.float32) / 255.0

    labels = tf.constant(y.astype(np.int32))
    indices = tf.data.Dataset.range(len(x)).shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
    batches = indices.batch(config.batch_size)
    if config.augment:
        seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True)
        batches = tf.data.Dataset.zip(batches, seeds).map(
            lambda idx, s: (_augment_batch(gather(idx), s), tf.gather(labels, idx)))
    else:
        batches = batches.map(lambda idx: (gather(idx), tf.gather(labels, idx)))
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.prefetch(PREFETCH_BATCHES).with_options(options)


MIN_SLICE_IMAGES = 16  # a slice smaller than this would spend more on per-op overhead than it gains


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def tf_intra_op_threads_setting() -> int:
    """TensorFlow's threads per op as set in this process with tf.config.threading (0: not set there)."""
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads()


def batch_slices(batch_size: int, n_images: int = 0) -> int:
    """How many slices each batch's gradient is computed in: one per usable core when TensorFlow runs each op
    on one thread (TF_NUM_INTRAOP_THREADS=1, which core/__init__.py asks for), else 1.

    n_images: the training images per epoch. No slice may be empty (a convolution of 0 images fails), so a
    short last batch of fewer images than slices lowers the count for the whole run."""
    if os.environ.get("TF_NUM_INTRAOP_THREADS", "").strip() != "1" and tf_intra_op_threads_setting() != 1:
        return 1
    slices = max(1, min(usable_cpus(), batch_size // MIN_SLICE_IMAGES))
    last = n_images % batch_size
    return min(slices, last) if last else slices


def use_fused_adam(optimizer) -> bool:
    """Make a Keras Adam apply each variable's update with TensorFlow's own Adam kernel, one op per variable.

    Keras 3's Adam.update_step writes the same update as some fifteen small ops per variable (LeNet-5 has
    ten variables); TensorFlow's ResourceApplyAdam computes it in one: alpha = lr * sqrt(1 - beta_2^t) /
    (1 - beta_1^t), m += (g - m)(1 - beta_1), v += (g^2 - v)(1 - beta_2), var -= alpha m / (sqrt(v) +
    epsilon), the formula of Keras' update_step line for line (the results differ only in float32
    rounding). On 2 cores that made an epoch ~5% faster and ~5% cheaper in CPU (bench/RESULTS.md). The
    learning rate and its schedule, the step count, weight decay, clipping and saving stay Keras'. Only
    the optimizer's update_step changes, on this instance: the saved file still holds a plain Adam.
    Returns whether it applied (Adam with the TensorFlow backend and without amsgrad)."""
    import keras

    if type(optimizer) is not keras.optimizers.Adam or optimizer.amsgrad or keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    from keras import ops

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            beta1_power=ops.power(beta_1, step), beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2, epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(gradient, dtype))

    optimizer.update_step = update_step.__get__(optimizer)
    return True


def use_sliced_train_step(model, slices: int) -> None:
    """Make `fit` compute each batch's gradient in `slices` independent slices, which TensorFlow runs at once.

    LeNet-5's ops are too small for TensorFlow to spread one op over two cores well: on 2 cores, one
    thread per op and the two halves of each batch on their own core train ~20% more images per second
    than two threads per op on the whole batch, and use less CPU per image (bench/RESULTS.md). The
    optimizer's maths is the same: the gradient of the batch's mean loss is the sum over slices of
    (slice size / batch size) x the gradient of the slice's mean loss, which is what is applied, once per
    batch; the loss and the metrics are computed over the whole batch as Keras does. This is Keras'
    documented way to change what happens in `fit` (a train_step override); the model and its saved file
    are unchanged. Every batch must hold at least `slices` images (batch_slices sees to it)."""
    if slices <= 1:
        return
    import keras
    import tensorflow as tf

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        n = tf.shape(x)[0]
        weights = self.trainable_weights
        gradients, loss, predictions = None, 0.0, []
        for i in range(slices):
            part = slice(n * i // slices, n * (i + 1) // slices)
            share = tf.cast(part.stop - part.start, "float32") / tf.cast(n, "float32")
            part_weight = None if sample_weight is None else sample_weight[part]
            with tf.GradientTape() as tape:
                prediction = self(x[part], training=True)
                part_loss = share * self.compute_loss(x=x[part], y=y[part], y_pred=prediction,
                                                      sample_weight=part_weight, training=True)
                scaled = self.optimizer.scale_loss(part_loss)
            part_gradients = tape.gradient(scaled, weights)
            gradients = part_gradients if gradients is None else [a + b for a, b in zip(gradients, part_gradients)]
            loss += part_loss
            predictions.append(prediction)
        next(m for m in self.metrics if m.name == "loss").update_state(loss, sample_weight=n)
        self.optimizer.apply_gradients(zip(gradients, weights))
        return self.compute_metrics(x, y, tf.concat(predictions, axis=0), sample_weight=sample_weight)

    model.train_step = train_step.__get__(model)


# A mean cross-entropy above -ln(smallest float32) means some image's true class gets a softmax probability
# of exactly 0 in float32, so the loss of the model's own outputs is infinite. Keras computes the loss from
# the logits, which keeps it finite (1e9 and more) long after the weights have blown up, so this bound is
# where a diverged run is caught; a healthy run never comes near it (2.3 at the start, below 1 once learning).
LOSS_LIMIT = -math.log(float(np.finfo(np.float32).smallest_subnormal))  # 103.28


def build_training_state(model) -> None:
    """Create the optimizer's and the compiled metrics' variables before `fit`.

    With the TensorFlow backend, Keras creates them while it traces the first train step, and a
    tf.function whose first trace creates variables is traced again: LeNet-5's train step was traced
    twice, about 0.8 s of the wait for the first point on the live chart. Built here, it is traced once.
    The metric update below counts one zero image; `fit` resets the metrics before its first epoch."""
    model.optimizer.build(model.trainable_variables)
    image = np.zeros((1, *model.input_shape[1:]), np.float32)
    model.compute_metrics(image, np.zeros(1, np.int32), model(image, training=False))


def batches_done(batch: int, params: dict) -> int:
    """The batches of this epoch done when Keras calls on_train_batch_end(batch).

    With steps_per_execution > 1, Keras reports each call of the compiled loop by its last batch, and it
    reports the epoch's last call as a full one even when fewer batches were left (235 batches of 4 per
    call: 4, 8, ..., 232, 236). Counted as is, the live chart's step axis would run ahead by up to
    steps_per_execution - 1 batches per epoch and the progress would show "batch 236/235"."""
    steps = params.get("steps")
    return min(batch + 1, steps) if steps else batch + 1


def epoch_cut_short(model, batches: int, params: dict) -> bool:
    """Whether the epoch Keras is ending was cut short (Stop or a divergence): Keras calls on_epoch_end for it
    too, after `batches` of its batches."""
    return bool(model.stop_training) and batches < (params.get("steps") or 0)


def _finite(arrays) -> bool:
    return all(np.isfinite(a).all() for a in arrays)


class _Control:
    """Builds the callback that stops on request and ends the run when the loss or the weights stop being finite."""

    def __init__(self, stop_event: threading.Event | None):
        import keras

        control = self

        class ControlCallback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                control.epoch = epoch + 1

            def on_train_batch_end(self, batch, logs=None):
                logs = logs or {}
                control.batches = batches_done(batch, self.params)
                loss = logs.get("loss")
                if loss is not None and not float(loss) <= LOSS_LIMIT:  # NaN fails every comparison
                    control.diverged(control.batches, f"loss became {float(loss):.4g}")
                    self.model.stop_training = True
                elif not _finite(w.numpy() for w in self.model.get_layer("output").weights):  # 850 numbers: cheap
                    control.diverged(control.batches, "the output layer's weights became non-finite")
                    self.model.stop_training = True
                elif stop_event is not None and stop_event.is_set():
                    control.stopped = True
                    self.model.stop_training = True

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                if not epoch_cut_short(self.model, control.batches, self.params):
                    control.epochs_finished = epoch + 1
                if control.nonfinite is not None:
                    return
                weights = self.model.get_weights()
                if not _finite(weights):  # the epoch's last update can break the weights after the last loss
                    control.diverged(self.params.get("steps") or 0, "the weights became non-finite")
                    self.model.stop_training = True
                elif float(logs.get("loss", 0.0)) <= LOSS_LIMIT:
                    control.last_finite = (epoch + 1, weights)

        self.epoch = 0
        self.batches = 0  # batches done in the current epoch
        self.epochs_finished = 0
        self.stopped = False
        self.nonfinite: dict | None = None
        self.last_finite: tuple[int, list] | None = None
        self.callback = ControlCallback()

    def diverged(self, batch: int, what: str) -> None:
        if self.nonfinite is None:
            self.nonfinite = {"epoch": self.epoch, "batch": batch, "what": what}


def train(config: TrainConfig, store: RunStore | None = None, *, name: str | None = None,
          run_id: str | None = None, stop_event: threading.Event | None = None, callbacks=(),
          streaming: bool = True, jit_compile: bool | str = "auto", dataset=None,
          hand_over_dataset: bool = False) -> TrainResult:
    """Train one run end to end. Errors end the run as 'failed' with a message; they are not raised.

    dataset: the data, already loaded (else the trainer loads it from the config). hand_over_dataset: the
    caller no longer needs dataset's training images, so the trainer empties dataset.x_train and y_train
    once its input graph has its own copy, as it does with data it loaded itself (the full MNIST's float32
    training images are 245 MB)."""
    store = store or RunStore()
    if run_id is None:
        run_id = store.create_run(config, name=name, status="queued")
    started = time.perf_counter()
    try:
        store.write_status(run_id, status="running", started=now_iso(), phase="loading data",
                           versions=library_versions(), **owner())
        return _train(config, store, run_id, stop_event, list(callbacks), streaming, jit_compile, dataset, started,
                      hand_over_dataset)
    except Exception as exc:  # the run must end with a readable status, never stuck in "running"
        if isinstance(exc, OSError):  # data problems are DataError; an OSError here is the run store's disk
            message = f"cannot write the run to {store.root}: {exc.strerror or exc}"
        else:
            message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, (ValueError, StoreError)) else str(exc)
        try:
            store.write_status(run_id, status="failed", ended=now_iso(), error=message, phase="failed",
                               traceback=traceback.format_exc(limit=5), duration=time.perf_counter() - started)
        except Exception:  # noqa: BLE001 - the store itself may be what failed (disk full, read-only)
            pass
        return TrainResult(run_id, "failed", error=message, duration=time.perf_counter() - started)


def _train(config, store, run_id, stop_event, callbacks, streaming, jit_compile, dataset, started, hand_over):
    import keras

    from core.data import load_dataset
    from core.model import build_model

    data = dataset if dataset is not None else load_dataset(config)
    resolved = _resolved_config(config, data)
    store.write_config(run_id, resolved)
    steps_per_epoch = math.ceil(len(data.x_train) / config.batch_size)
    store.write_status(run_id, phase="building model", dataset=data.name, class_names=list(data.class_names),
                       data_source=data.source, source_detail=data.source_detail, n_train=len(data.x_train),
                       n_val=len(data.x_val), n_test=len(data.x_test), steps_per_epoch=steps_per_epoch,
                       epochs=config.epochs, batch_size=config.batch_size)

    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=max(1, min(steps_per_epoch, IMAGES_PER_EXECUTION // config.batch_size)),
        jit_compile=resolve_jit_compile(jit_compile),
    )
    build_training_state(model)
    fused_adam = use_fused_adam(model.optimizer)
    n_train = len(data.x_train)
    slices = batch_slices(config.batch_size, n_train)
    use_sliced_train_step(model, slices)
    train_data = make_train_dataset(data.x_train, data.y_train, config)
    if dataset is None or hand_over:  # nobody else needs them: the graph has its own copy, free the float32 images
        data.x_train = np.empty((0, *data.x_train.shape[1:]), data.x_train.dtype)  # not [:0]: a view keeps it
        data.y_train = np.empty(0, data.y_train.dtype)
    validation = (data.x_val, data.y_val) if len(data.x_val) else None
    control = _Control(stop_event)
    all_callbacks = [control.callback]
    streamer = None
    if streaming:
        from core.callback import StreamingCallback

        streamer = StreamingCallback(store, run_id, data.x_test, data.y_test, batch_size=config.batch_size,
                                     n_train=n_train)
        all_callbacks.append(streamer)
    all_callbacks.extend(callbacks)
    if stop_event is not None and stop_event.is_set():  # stopped while loading data or building
        store.write_status(run_id, status="stopped", ended=now_iso(), phase="stopped", model_saved=False,
                           model_epoch=None, epochs_done=0, duration=time.perf_counter() - started,
                           error="stopped before training started; no model was saved")
        return TrainResult(run_id, "stopped", error="stopped before training started",
                           duration=time.perf_counter() - started)
    store.write_status(run_id, phase="training", training_started=now_iso(),
                       parameters=int(model.count_params()), batch_slices=slices,
                       fused_adam=fused_adam)
    fit_start = time.perf_counter()
    model.fit(train_data, epochs=config.epochs, validation_data=validation, validation_batch_size=2048,
              callbacks=all_callbacks, verbose=0)
    train_time = time.perf_counter() - fit_start

    status, error, model_epoch = "completed", None, control.epoch
    if control.nonfinite is not None:
        where = control.nonfinite
        status = "failed"
        checked = f", checked every {model.steps_per_execution} batches" if model.steps_per_execution > 1 else ""
        error = (f"training diverged: {where['what']} at epoch {where['epoch']}, batch {where['batch']} "
                 f"(learning_rate={config.learning_rate}{checked}; a loss above {LOSS_LIMIT:.1f} means a "
                 f"probability of exactly 0 in float32); try a smaller learning rate")
        if control.last_finite is not None:
            model_epoch, weights = control.last_finite
            model.set_weights(weights)
            error += f"; kept the model from the end of epoch {model_epoch}, the last finite one"
        else:
            model_epoch = None
            error += "; no finite model was kept"
    elif control.stopped:
        status = "stopped"

    test_metrics = None
    if model_epoch is not None:
        store.write_status(run_id, phase="saving")
        store.save_model(run_id, model)
        # A completed run's model is the last epoch's, which the streaming callback has just evaluated.
        snapshot = streamer.last_snapshot if streamer is not None and status == "completed" else None
        reuse = snapshot[1] if snapshot is not None and snapshot[0] == model_epoch == config.epochs else None
        test_metrics = _evaluate(store, run_id, model, data, probs=reuse)
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
