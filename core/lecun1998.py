"""The 1998 paper's custom layers for LeNet-5: scaled tanh, trainable subsampling, C3's partial connections.

Registered as ``lenet_lab>...``: a saved ``.keras`` file loads with ``safe_mode=True`` once this module is imported.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

# Table I of LeCun et al. 1998: rows = S2 input maps (6), columns = C3 maps (16).
_C3_ROWS = (
    (0, 4, 5, 6, 9, 10, 11, 12, 14, 15),
    (0, 1, 5, 6, 7, 10, 11, 12, 13, 15),
    (0, 1, 2, 6, 7, 8, 11, 13, 14, 15),
    (1, 2, 3, 6, 7, 8, 9, 12, 14, 15),
    (2, 3, 4, 7, 8, 9, 10, 12, 13, 15),
    (3, 4, 5, 8, 9, 10, 11, 13, 14, 15),
)
C3_TABLE = np.zeros((6, 16), dtype=bool)
for _row, _cols in enumerate(_C3_ROWS):
    C3_TABLE[_row, list(_cols)] = True
C3_TABLE.setflags(write=False)
del _row, _cols

_SCALED_TANH_A = 1.7159
_SCALED_TANH_S = 2.0 / 3.0


@keras.saving.register_keras_serializable(package="lenet_lab", name="scaled_tanh")
def scaled_tanh(x):
    """LeCun's squashing function f(a) = 1.7159 * tanh(2a/3) (f(1) ~= 1, f(-1) ~= -1)."""
    return _SCALED_TANH_A * ops.tanh(_SCALED_TANH_S * x)


@keras.saving.register_keras_serializable(package="lenet_lab", name="Subsampling")
class Subsampling(keras.layers.Layer):
    """The paper's trainable subsampling (S2, S4).

    Each output unit is ``activation(coefficient[c] * sum(2x2 window of map c) + bias[c])``,
    non-overlapping windows; 2 parameters per map.
    """

    def __init__(
        self,
        pool_size: int = 2,
        activation: Any = "lenet_lab>scaled_tanh",
        coefficient_initializer: Any = None,
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.activation = keras.activations.get(_resolve_activation(activation))
        # Default: 1/area, so an untrained layer starts as activation(average pooling).
        if coefficient_initializer is None:
            coefficient_initializer = keras.initializers.Constant(1.0 / self.pool_size**2)
        self.coefficient_initializer = keras.initializers.get(coefficient_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape) -> None:
        channels = input_shape[-1]
        self.coefficient = self.add_weight(
            name="coefficient", shape=(channels,), initializer=self.coefficient_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer=self.bias_initializer)

    def call(self, inputs):
        area = float(self.pool_size * self.pool_size)
        window_sum = ops.average_pool(
            inputs, pool_size=self.pool_size, strides=self.pool_size, padding="valid"
        ) * area
        return self.activation(window_sum * self.coefficient + self.bias)

    def compute_output_shape(self, input_shape):
        def down(n):
            return None if n is None else n // self.pool_size

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), input_shape[3])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            pool_size=self.pool_size,
            activation=keras.activations.serialize(self.activation),
            coefficient_initializer=keras.initializers.serialize(self.coefficient_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="lenet_lab", name="PartialConv2D")
class PartialConv2D(keras.layers.Layer):
    """A 'valid' stride-1 convolution where output map j only sees the input maps i
    with ``connections[i, j]`` True (the paper's C3).

    Only the connected 5x5 kernels are stored, in ``connection_kernel`` of shape
    (kh, kw, n_connections), ordered like ``np.flatnonzero(connections)``; the full
    (kh, kw, in, out) kernel is gathered from it (zeros elsewhere) inside ``call``,
    so ``count_params()`` is the real number of free parameters.
    """

    def __init__(
        self,
        connections: Any = None,
        kernel_size: int = 5,
        activation: Any = "lenet_lab>scaled_tanh",
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        table = C3_TABLE if connections is None else connections
        table = np.asarray(table, dtype=bool)
        if table.ndim != 2 or not table.any(axis=0).all():
            raise ValueError("connections must be a 2-D bool table with at least one input per output map")
        self.connections = table
        self.kernel_size = int(kernel_size)
        self.activation = keras.activations.get(_resolve_activation(activation))
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.filters = int(table.shape[1])
        # Constant gather map: position i*out+j of the flattened (in, out) plane takes
        # entry k+1 of [0, w_0, ..., w_{n-1}] if (i, j) is the k-th connection, else 0.
        flat = np.flatnonzero(table.ravel())
        index = np.zeros(table.size, dtype="int32")
        index[flat] = np.arange(1, flat.size + 1, dtype="int32")
        self._connection_positions = flat.astype("int32")
        self._gather_index = index

    @property
    def n_connections(self) -> int:
        return int(self._connection_positions.size)

    def build(self, input_shape) -> None:
        n_in, n_out = self.connections.shape
        if input_shape[-1] != n_in:
            raise ValueError(f"PartialConv2D expects {n_in} input maps, got {input_shape[-1]}")
        k = self.kernel_size
        base = self.kernel_initializer
        positions = self._connection_positions

        def connected_init(shape, dtype=None):
            # Draw as if the kernel were a full (k, k, in, out) Conv2D kernel (so the
            # initializer sees the usual fans), then keep only the connected ones.
            full = base((k, k, n_in, n_out), dtype=dtype)
            full = ops.reshape(full, (k * k, n_in * n_out))
            return ops.reshape(ops.take(full, positions, axis=1), shape)

        self.connection_kernel = self.add_weight(
            name="connection_kernel", shape=(k, k, self.n_connections), initializer=connected_init
        )
        self.bias = self.add_weight(name="bias", shape=(n_out,), initializer=self.bias_initializer)

    def effective_kernel(self):
        """The full (kh, kw, in, out) kernel, exactly zero where not connected."""
        k = self.kernel_size
        n_in, n_out = self.connections.shape
        w = self.connection_kernel
        padded = ops.concatenate([ops.zeros((k, k, 1), dtype=w.dtype), w], axis=-1)
        full = ops.take(padded, self._gather_index, axis=-1)
        return ops.reshape(full, (k, k, n_in, n_out))

    def call(self, inputs):
        kernel = ops.cast(self.effective_kernel(), inputs.dtype)
        outputs = ops.conv(inputs, kernel, strides=1, padding="valid")
        return self.activation(outputs + ops.cast(self.bias, inputs.dtype))

    def compute_output_shape(self, input_shape):
        def shrink(n):
            return None if n is None else n - self.kernel_size + 1

        return (input_shape[0], shrink(input_shape[1]), shrink(input_shape[2]), self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            connections=self.connections.astype(int).tolist(),
            kernel_size=self.kernel_size,
            activation=keras.activations.serialize(self.activation),
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


def _resolve_activation(activation: Any) -> Any:
    if activation in ("lenet_lab>scaled_tanh", "scaled_tanh"):
        return scaled_tanh
    return activation
