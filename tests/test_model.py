"""Tests for core.model: both LeNet-5 variants, custom layers, saving and seeding."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

from core import model as M
from core.config import TrainConfig

SEED_ROWS = [
    ("c1_conv", "Conv2D", "(None, 28, 28, 6)", 156),
    ("s2_pool", "AveragePooling2D", "(None, 14, 14, 6)", 0),
    ("c3_conv", "Conv2D", "(None, 10, 10, 16)", 2416),
    ("s4_pool", "AveragePooling2D", "(None, 5, 5, 16)", 0),
    ("flatten", "Flatten", "(None, 400)", 0),
    ("c5_dense", "Dense", "(None, 120)", 48120),
    ("f6_dense", "Dense", "(None, 84)", 10164),
    ("output", "Dense", "(None, 10)", 850),
]
LECUN_PARAMS = {
    "c1_conv": 156,
    "s2_pool": 12,
    "c3_conv": 1516,
    "s4_pool": 32,
    "c5_dense": 48120,
    "f6_dense": 10164,
    "output": 850,
}


def _images(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 32, 32, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def seed_model():
    return M.build_model(TrainConfig())


@pytest.fixture(scope="module")
def lecun_model():
    return M.build_model(TrainConfig(variant="lecun1998"))


# --- seed variant -----------------------------------------------------------------


def test_seed_default_matches_article(seed_model):
    assert seed_model.name == "lenet5_seed"
    assert seed_model.count_params() == 61_706
    rows = M.summary_rows(seed_model)
    assert [(r["name"], r["type"], r["output_shape"], r["params"]) for r in rows] == SEED_ROWS
    assert seed_model.inputs[0].name == "image"
    assert tuple(seed_model.inputs[0].shape) == (None, 32, 32, 1)


def test_summary_text_matches_rows(seed_model):
    text = M.summary_text(seed_model)
    assert "lenet5_seed" in text
    assert "61,706" in text
    for name, kind, shape, _ in SEED_ROWS:
        assert f"{name} ({kind})" in text
        assert shape in text


def test_seed_outputs_probabilities(seed_model):
    probs = keras.ops.convert_to_numpy(seed_model(_images(), training=False))
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert seed_model.get_layer("output").activation.__name__ == "softmax"


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_activation_option(activation):
    model = M.build_model(TrainConfig(activation=activation))
    for name in ("c1_conv", "c3_conv", "c5_dense", "f6_dense"):
        assert model.get_layer(name).activation.__name__ == activation
    assert model.get_layer("output").activation.__name__ == "softmax"
    assert model.count_params() == 61_706


@pytest.mark.parametrize(
    "pooling, cls", [("average", keras.layers.AveragePooling2D), ("max", keras.layers.MaxPooling2D)]
)
def test_pooling_option(pooling, cls):
    model = M.build_model(TrainConfig(pooling=pooling))
    for name in ("s2_pool", "s4_pool"):
        layer = model.get_layer(name)
        assert type(layer) is cls
        assert tuple(layer.pool_size) == (2, 2) and tuple(layer.strides) == (2, 2)
        assert layer.padding == "same"
    assert model.count_params() == 61_706


def test_dropout_option():
    plain = M.build_model(TrainConfig(dropout=0.0))
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in plain.layers)

    model = M.build_model(TrainConfig(dropout=0.25))
    names = [layer.name for layer in model.layers]
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [d.name for d in dropouts] == ["dropout_c5", "dropout_f6", "dropout_output"]
    assert all(d.rate == pytest.approx(0.25) for d in dropouts)
    # One right before each dense layer.
    for dense in ("c5_dense", "f6_dense", "output"):
        assert isinstance(model.layers[names.index(dense) - 1], keras.layers.Dropout)
    assert model.count_params() == 61_706


# --- lecun1998 variant ------------------------------------------------------------


def test_lecun_per_layer_params(lecun_model):
    assert lecun_model.name == "lenet5_lecun1998"
    counts = {r["name"]: r["params"] for r in M.summary_rows(lecun_model)}
    for name, expected in LECUN_PARAMS.items():
        assert counts[name] == expected, name
        assert lecun_model.get_layer(name).count_params() == expected
    assert lecun_model.count_params() == sum(LECUN_PARAMS.values()) == 60_850
    c3 = lecun_model.get_layer("c3_conv")
    assert [tuple(w.shape) for w in c3.trainable_weights] == [(5, 5, 60), (16,)]
    shapes = {r["name"]: r["output_shape"] for r in M.summary_rows(lecun_model)}
    assert shapes["c1_conv"] == "(None, 28, 28, 6)"
    assert shapes["s2_pool"] == "(None, 14, 14, 6)"
    assert shapes["c3_conv"] == "(None, 10, 10, 16)"
    assert shapes["s4_pool"] == "(None, 5, 5, 16)"
    assert shapes["c5_dense"] == "(None, 120)"
    assert shapes["f6_dense"] == "(None, 84)"
    assert shapes["output"] == "(None, 10)"


def test_lecun_activations(lecun_model):
    for name in ("c1_conv", "s2_pool", "c3_conv", "s4_pool", "c5_dense", "f6_dense"):
        assert lecun_model.get_layer(name).activation is M.scaled_tanh, name
    assert lecun_model.get_layer("output").activation.__name__ == "softmax"
    probs = keras.ops.convert_to_numpy(lecun_model(_images(), training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_c3_table_structure():
    t = M.C3_TABLE
    assert t.dtype == np.bool_ and t.shape == (6, 16)
    assert int(t.sum()) == 60
    counts = t.sum(axis=0)
    assert list(counts) == [3] * 6 + [4] * 6 + [4] * 3 + [6]

    def contiguous(col):
        rows = set(np.flatnonzero(t[:, col]).tolist())
        return any(rows == {(s + k) % 6 for k in range(len(rows))} for s in range(6))

    assert all(contiguous(j) for j in range(12))
    assert not any(contiguous(j) for j in range(12, 15))
    # Row 0 as printed in Table I of the paper.
    assert np.flatnonzero(t[0]).tolist() == [0, 4, 5, 6, 9, 10, 11, 12, 14, 15]


def test_c3_effective_kernel_zero_where_not_connected(lecun_model):
    c3 = lecun_model.get_layer("c3_conv")
    kernel = keras.ops.convert_to_numpy(c3.effective_kernel())
    assert kernel.shape == (5, 5, 6, 16)
    assert np.all(kernel[:, :, ~M.C3_TABLE] == 0.0)
    assert np.all(np.abs(kernel[:, :, M.C3_TABLE]).sum(axis=0) > 0)
    # Every stored weight lands in exactly one connected position.
    stored = keras.ops.convert_to_numpy(c3.connection_kernel)
    np.testing.assert_array_equal(np.sort(kernel[:, :, M.C3_TABLE].ravel()), np.sort(stored.ravel()))


def test_c3_output_depends_only_on_connected_maps():
    layer = M.PartialConv2D(M.C3_TABLE, kernel_size=5)
    layer.build((None, 14, 14, 6))
    rng = np.random.default_rng(1)
    layer.connection_kernel.assign(rng.normal(size=(5, 5, 60)).astype("float32"))
    base = np.zeros((1, 14, 14, 6), dtype="float32")
    out0 = keras.ops.convert_to_numpy(layer(base))
    for i in range(6):
        x = base.copy()
        x[..., i] = rng.random((14, 14))
        changed = np.abs(keras.ops.convert_to_numpy(layer(x)) - out0).max(axis=(0, 1, 2)) > 0
        np.testing.assert_array_equal(changed, M.C3_TABLE[i], err_msg=f"S2 map {i}")


def test_subsampling_is_scaled_sum_plus_bias():
    layer = M.Subsampling(2)
    layer.build((None, 4, 4, 2))
    layer.coefficient.assign(np.array([0.5, -0.2], dtype="float32"))
    layer.bias.assign(np.array([0.1, 0.3], dtype="float32"))
    x = np.random.default_rng(2).random((1, 4, 4, 2), dtype=np.float32)
    sums = x.reshape(1, 2, 2, 2, 2, 2).sum(axis=(2, 4))
    expected = 1.7159 * np.tanh(2.0 / 3.0 * (sums * [0.5, -0.2] + [0.1, 0.3]))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)


def test_scaled_tanh_values():
    a = np.array([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0], dtype="float32")
    got = keras.ops.convert_to_numpy(M.scaled_tanh(keras.ops.convert_to_tensor(a)))
    np.testing.assert_allclose(got, 1.7159 * np.tanh(2.0 * a / 3.0), rtol=1e-6, atol=1e-6)
    assert got[4] == pytest.approx(1.0, abs=2e-4)  # f(1) ~= 1 by design


# --- shared behaviour -------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [TrainConfig(), TrainConfig(dropout=0.3, pooling="max", activation="tanh"), TrainConfig(variant="lecun1998")],
    ids=["seed", "seed-options", "lecun1998"],
)
def test_save_and_load_safe_mode(config, tmp_path):
    model = M.build_model(config)
    x = _images(8)
    before = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.count_params() == model.count_params()
    assert "lambda" not in zipfile.ZipFile(path).read("config.json").decode().lower()
    # The custom objects are registered under the names saved files use, which is how the run store loads them.
    for name, registered in (("scaled_tanh", M.scaled_tanh), ("Subsampling", M.Subsampling),
                             ("PartialConv2D", M.PartialConv2D)):
        assert keras.saving.get_registered_object(f"lenet_lab>{name}") is registered


@pytest.mark.parametrize("variant", ["seed", "lecun1998"])
def test_seeded_initial_weights(variant):
    def weights(seed):
        return [np.asarray(w) for w in M.build_model(TrainConfig(variant=variant, seed=seed)).get_weights()]

    a, b, c = weights(7), weights(7), weights(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("config", [TrainConfig(dropout=0.5), TrainConfig(variant="lecun1998")], ids=["seed", "lecun"])
def test_no_lambda_layers(config):
    model = M.build_model(config)
    for layer in model._flatten_layers(include_self=False):
        assert not isinstance(layer, keras.layers.Lambda)
    assert "Lambda" not in json.dumps(model.get_config())


@pytest.mark.parametrize("variant", ["seed", "lecun1998"])
def test_analysis_hooks(variant):
    model = M.build_model(TrainConfig(variant=variant))
    assert tuple(model.get_layer("c1_conv").kernel.shape) == (5, 5, 1, 6)
    x = _images(2)
    expected = {"c1_conv": (2, 28, 28, 6), "s2_pool": (2, 14, 14, 6), "c3_conv": (2, 10, 10, 16),
                "s4_pool": (2, 5, 5, 16), "c5_dense": (2, 120), "f6_dense": (2, 84), "output": (2, 10)}
    assert set(M.FEATURE_LAYERS) == set(expected)
    for name in M.FEATURE_LAYERS:
        probe = keras.Model(model.inputs, model.get_layer(name).output)
        assert tuple(probe.predict(x, verbose=0).shape) == expected[name]
