"""Each layer's health over the epochs: its weight distribution, the size of each epoch's update relative to the
weights, and the share of its ReLUs that never fire on the test images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

HISTOGRAM_BINS = 40


def kernel_names(model) -> list[str]:
    """The layer that owns each array of model.get_weights(), with "/bias" for a bias: the snapshot's order."""
    names = []
    for layer in model.layers:
        for weight in layer.weights:
            names.append(layer.name + ("/bias" if weight.name.endswith("bias") else ""))
    return names


def layer_kernels(names: Sequence[str], weights: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """{layer: its kernel (the weights, not the bias)}, in layer order."""
    if len(names) != len(weights):
        raise ValueError(f"{len(weights)} weight arrays for a model with {len(names)}")
    return {name: np.asarray(w) for name, w in zip(names, weights) if not name.endswith("/bias")}


def weight_histograms(kernels_per_epoch: Sequence[np.ndarray], bins: int = HISTOGRAM_BINS):
    """(bin centres, counts (epochs, bins)) of one layer's weights after each epoch, over one common range."""
    low = min(float(k.min()) for k in kernels_per_epoch)
    high = max(float(k.max()) for k in kernels_per_epoch)
    if high <= low:
        high = low + 1e-6
    edges = np.linspace(low, high, bins + 1)
    counts = np.stack([np.histogram(k, bins=edges)[0] for k in kernels_per_epoch])
    return (edges[:-1] + edges[1:]) / 2, counts


def relative_updates(epochs: Sequence[int], kernels: Sequence[dict[str, np.ndarray]]) -> pd.DataFrame:
    """One row per (epoch, layer) from the second epoch on: ||W_e - W_previous|| / ||W_previous||."""
    rows = []
    for (previous, before), (epoch, after) in zip(zip(epochs, kernels), zip(epochs[1:], kernels[1:])):
        for layer, weights in after.items():
            norm = float(np.linalg.norm(before[layer]))
            rows.append({"epoch": epoch, "since": previous, "layer": layer,
                         "relative_update": float(np.linalg.norm(weights - before[layer])) / norm if norm else np.nan})
    return pd.DataFrame(rows, columns=["epoch", "since", "layer", "relative_update"])


def relu_layers(model) -> list[str]:
    import keras

    return [layer.name for layer in model.layers
            if getattr(layer, "activation", None) is keras.activations.relu and layer.weights]


def dead_relus(model, images32: np.ndarray, batch_size: int = 2048) -> dict[str, float]:
    """{ReLU layer: the share of its units (every position of every map) that are zero on every image}."""
    import keras

    names = relu_layers(model)
    if not names:
        return {}
    head = keras.Model(model.inputs[0], [model.get_layer(name).output for name in names])
    fired = None
    for start in range(0, len(images32), batch_size):
        outputs = head(np.asarray(images32[start:start + batch_size], np.float32), training=False)
        batch = [np.asarray(o).max(axis=0) > 0 for o in outputs]
        fired = batch if fired is None else [f | b for f, b in zip(fired, batch)]
    return {name: float(1.0 - f.mean()) for name, f in zip(names, fired)}
