"""The trainer's speed techniques: the tf.data input pipeline, the sliced train step, fused Adam, the jit choice.
Why each is as it is, with the measurements: bench/RESULTS.md, "Why the trainer's code is as it is"."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from core.config import TrainConfig

# One execution of the compiled train loop should last a fraction of a second, so Stop answers fast.
IMAGES_PER_EXECUTION = 1024
AUGMENT_MAX_SHIFT = 2.0  # pixels
AUGMENT_MAX_ROTATION = 10.0  # degrees
PREFETCH_BATCHES = 2  # one batch in the train step, the next one ready: gathering a batch takes well under a step
MIN_SLICE_IMAGES = 16  # a slice smaller than this would spend more on per-op overhead than it gains


@dataclass(frozen=True)
class Applied:
    """What compile_fast applied, for the run's status."""

    batch_slices: int
    fused_adam: bool


def compile_fast(model, config: TrainConfig, *, optimizer, loss, metrics: list, steps_per_epoch: int, n_train: int,
                 jit_compile: bool | str) -> Applied:
    """Compile the model for `fit` with every speed technique that applies; returns what was applied."""
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=metrics,
        steps_per_execution=max(1, min(steps_per_epoch, IMAGES_PER_EXECUTION // config.batch_size)),
        jit_compile=resolve_jit_compile(jit_compile),
    )
    build_training_state(model)
    fused_adam = use_fused_adam(model.optimizer)
    slices = batch_slices(config.batch_size, n_train)
    use_sliced_train_step(model, slices)
    return Applied(batch_slices=slices, fused_adam=fused_adam)


# ----- the jit choice ----------------------------------------------------------------------------------

def onednn_enabled() -> bool:
    """Whether TensorFlow was asked for its oneDNN kernels (core/__init__.py asks unless the user said no)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("1", "true", "on", "yes")


def resolve_jit_compile(jit_compile: bool | str) -> bool | str:
    """'auto' means TensorFlow's oneDNN kernels without XLA when oneDNN is on, else XLA.
    (why: bench/RESULTS.md, "Why the trainer's code is as it is")"""
    if jit_compile == "auto":
        return not onednn_enabled()
    return jit_compile


# ----- the input pipeline ------------------------------------------------------------------------------

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


def make_train_dataset(x: np.ndarray, y: np.ndarray, config: TrainConfig):
    """Shuffle indices, gather whole batches in the graph (kept as uint8 when exact, or given as uint8 grey levels),
    optionally augment, prefetch, with tf.data's autotuning off. (why: bench/RESULTS.md, "Why the trainer's code is as it is")"""
    import tensorflow as tf

    pixels = x if x.dtype == np.uint8 else as_pixels(x)  # uint8: already grey levels (core.data.pad_pixels)
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


# ----- the train step ----------------------------------------------------------------------------------

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


def use_sliced_train_step(model, slices: int) -> None:
    """Make `fit` compute each batch's gradient in `slices` slices, which TensorFlow runs at once, and apply
    their size-weighted sum once per batch; every batch must hold at least `slices` images (batch_slices sees
    to it). (why: bench/RESULTS.md, "Why the trainer's code is as it is")"""
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


# ----- the optimizer -----------------------------------------------------------------------------------

def use_fused_adam(optimizer) -> bool:
    """Make a Keras Adam apply each variable's update with TensorFlow's own Adam kernel, one op per variable,
    on this instance only (the saved file still holds a plain Adam). Returns whether it applied (Adam with the
    TensorFlow backend and without amsgrad). (why: bench/RESULTS.md, "Why the trainer's code is as it is")"""
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


def build_training_state(model) -> None:
    """Create the optimizer's and the compiled metrics' variables before `fit`, so the train step is traced
    once; the metric update counts one zero image, which `fit` resets before its first epoch.
    (why: bench/RESULTS.md, "Why the trainer's code is as it is")"""
    model.optimizer.build(model.trainable_variables)
    image = np.zeros((1, *model.input_shape[1:]), np.float32)
    model.compute_metrics(image, np.zeros(1, np.int32), model(image, training=False))
