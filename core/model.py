"""LeNet-5 models: the seed article's network and the 1998 paper's LeNet-5 (TrainConfig.variant)."""

from __future__ import annotations

import io
from typing import Any

import keras
import numpy as np

from core.config import TrainConfig
from core.data import PADDED_SIZE
# Importing the custom layers registers them with Keras, which store.load_model relies on.
from core.lecun1998 import C3_TABLE, PartialConv2D, Subsampling, scaled_tanh

INPUT_SHAPE = (PADDED_SIZE, PADDED_SIZE, 1)
NUM_CLASSES = 10
FEATURE_LAYERS = ("c1_conv", "s2_pool", "c3_conv", "s4_pool", "c5_dense", "f6_dense", "output")


def _build_seed(config: TrainConfig) -> keras.Model:
    """The seed article's network (a TensorFlow tutorial), 61,706 parameters with dropout=0.

    Conv2D 6@5x5 -> pool 2x2 -> Conv2D 16@5x5 -> pool 2x2 -> Flatten -> Dense 120 -> Dense 84 -> Dense 10
    softmax. The config chooses the activation of C1, C3, C5 and F6, the pooling (average, as in the article,
    or max) and optional dropout before each dense layer; with dropout=0 the layer list is exactly the article's.
    """
    act = config.activation
    pool = keras.layers.AveragePooling2D if config.pooling == "average" else keras.layers.MaxPooling2D

    def dropout(name: str) -> list[keras.layers.Layer]:
        return [keras.layers.Dropout(config.dropout, name=name)] if config.dropout > 0 else []

    layers = [
        keras.Input(shape=INPUT_SHAPE, name="image"),
        keras.layers.Conv2D(6, (5, 5), padding="valid", activation=act, name="c1_conv"),
        pool(pool_size=(2, 2), strides=(2, 2), padding="same", name="s2_pool"),
        keras.layers.Conv2D(16, (5, 5), padding="valid", activation=act, name="c3_conv"),
        pool(pool_size=(2, 2), strides=(2, 2), padding="same", name="s4_pool"),
        keras.layers.Flatten(name="flatten"),
        *dropout("dropout_c5"),
        keras.layers.Dense(120, activation=act, name="c5_dense"),
        *dropout("dropout_f6"),
        keras.layers.Dense(84, activation=act, name="f6_dense"),
        *dropout("dropout_output"),
        keras.layers.Dense(NUM_CLASSES, activation="softmax", name="output"),
    ]
    return keras.Sequential(layers, name="lenet5_seed")


def _build_lecun1998(config: TrainConfig) -> keras.Model:
    """LeNet-5 as in LeCun, Bottou, Bengio and Haffner, "Gradient-Based Learning Applied to Document Recognition".

    The 1998 paper's scaled tanh, trainable subsampling (S2, S4), and a C3 whose 16 maps each see only the S2
    maps given by its Table I (C3_TABLE), 1,516 real parameters. Differences from the paper: a Dense 10 softmax
    output trained with cross-entropy instead of Euclidean RBF units and the MAP criterion; inputs in [0, 1]
    instead of [-0.1, 1.175]; Keras' Glorot uniform initialisation instead of uniform +-2.4/fan-in.
    """
    layers = [
        keras.Input(shape=INPUT_SHAPE, name="image"),
        keras.layers.Conv2D(6, (5, 5), padding="valid", activation=scaled_tanh, name="c1_conv"),
        Subsampling(2, name="s2_pool"),
        PartialConv2D(C3_TABLE, kernel_size=5, name="c3_conv"),
        Subsampling(2, name="s4_pool"),
        keras.layers.Flatten(name="flatten"),
        # C5 is a 120@5x5 convolution over 5x5 maps, i.e. fully connected to S4.
        keras.layers.Dense(120, activation=scaled_tanh, name="c5_dense"),
        keras.layers.Dense(84, activation=scaled_tanh, name="f6_dense"),
        # The paper used 10 Euclidean RBF units here; we use softmax.
        keras.layers.Dense(NUM_CLASSES, activation="softmax", name="output"),
    ]
    return keras.Sequential(layers, name="lenet5_lecun1998")


def build_model(config: TrainConfig) -> keras.Model:
    """Build (not compile) the model for ``config``; the same seed gives the same initial weights."""
    keras.utils.set_random_seed(config.seed)
    if config.variant == "seed":
        return _build_seed(config)
    if config.variant == "lecun1998":
        return _build_lecun1998(config)
    raise ValueError(f"variant={config.variant!r} is not allowed; choose one of seed, lecun1998")


LENET_LAYERS = ("c1_conv", "s2_pool", "c3_conv", "s4_pool", "c5_dense", "f6_dense", "output")


def lenet_problem(model: keras.Model) -> str | None:
    """Why `model` is not a LeNet-5 the pages can audit (what it is, and what they need); None when it is."""
    try:
        shape = tuple(model.input_shape)
        out = tuple(model.output_shape)
        names = [layer.name for layer in model.layers]
    except (AttributeError, ValueError, TypeError) as exc:  # several inputs or outputs
        return f"it is not a single-input, single-output model ({exc})"
    wanted = (None, *INPUT_SHAPE)
    problems = []
    if shape != wanted:
        problems.append(f"its input is {_format_shape(shape[1:])}, the pages need {_format_shape(INPUT_SHAPE)}")
    if out != (None, NUM_CLASSES):
        problems.append(f"its output is {_format_shape(out[1:])}, the pages need {NUM_CLASSES} classes")
    missing = [name for name in LENET_LAYERS if name not in names]
    if missing:
        problems.append(f"it has no layer {', '.join(missing)} (its layers: {', '.join(names[:8])}"
                        f"{', …' if len(names) > 8 else ''})")
    if problems:
        return "it is not a LeNet-5 of LeNet Lab: " + "; ".join(problems)
    return None


def c1_kernels(model: keras.Model) -> np.ndarray:
    """C1's six 5x5 filters, (6, 5, 5) float32, filter first, from Keras' (5, 5, 1, 6) kernel."""
    kernel = np.asarray(keras.ops.convert_to_numpy(model.get_layer("c1_conv").kernel), dtype=np.float32)
    if kernel.ndim != 4 or kernel.shape[2] != 1:
        raise ValueError(f"c1_conv should have a (h, w, 1, filters) kernel on one grey channel; got {kernel.shape}")
    return np.ascontiguousarray(np.transpose(kernel[:, :, 0, :], (2, 0, 1)))


def _format_shape(shape: Any) -> str:
    if isinstance(shape, list):
        return ", ".join(_format_shape(s) for s in shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def summary_rows(model: keras.Model) -> list[dict[str, Any]]:
    """One dict per layer, in the order ``model.summary()`` lists them."""
    rows = []
    for layer in model.layers:
        try:
            output = layer.output
            shape = [o.shape for o in output] if isinstance(output, (list, tuple)) else output.shape
            output_shape = _format_shape(shape)
        except (AttributeError, ValueError):
            output_shape = "?"
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": output_shape,
                "params": int(layer.count_params()) if layer.built else 0,
            }
        )
    return rows


def summary_text(model: keras.Model) -> str:
    """The text ``model.summary()`` prints."""
    buffer = io.StringIO()

    def write(text: str, *args: Any, **kwargs: Any) -> None:
        buffer.write(text)
        if not text.endswith("\n"):
            buffer.write("\n")

    model.summary(print_fn=write)
    return buffer.getvalue()
