"""core/data.py: sources and their order, IDX/npz parsing, splits, the bundled sample, bad data."""

from __future__ import annotations

import gzip
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from core import data, sources
from core.config import TrainConfig
from core.data import DataError

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --------------------------------------------------------------------------- helpers


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path_factory):
    """No test may see the real Keras cache, LENET_DATA, Debian folder or the network."""
    home = tmp_path_factory.mktemp("keras_home")
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delenv("LENET_DATA", raising=False)
    monkeypatch.delenv("LENET_FASHION_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path_factory.mktemp("no_debian") / "fashion-mnist")
    monkeypatch.setattr(sources, "PROBE_HOST", "127.0.0.1")
    monkeypatch.setattr(sources, "PROBE_PORT", _closed_port())
    calls: list[str] = []

    def no_download(dataset):
        calls.append(dataset)
        raise AssertionError("the Keras download must not be attempted in this test")

    monkeypatch.setattr(sources, "keras_download", no_download)
    return {"keras_home": home, "download_calls": calls}


def synthetic(n_train_per_class=20, n_test_per_class=5, seed=0):
    rng = np.random.default_rng(seed)
    y_train = np.repeat(np.arange(10, dtype=np.uint8), n_train_per_class)
    y_test = np.repeat(np.arange(10, dtype=np.uint8), n_test_per_class)
    rng.shuffle(y_train)
    x_train = rng.integers(0, 256, size=(len(y_train), 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(len(y_test), 28, 28), dtype=np.uint8)
    x_train[:, 0, 0] = y_train  # makes every image traceable to its label
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def write_npz(path: Path, arrays: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


def write_idx_folder(folder: Path, arrays: dict, gz: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = {
        "x_train": ("train-images-idx3-ubyte", 2051),
        "y_train": ("train-labels-idx1-ubyte", 2049),
        "x_test": ("t10k-images-idx3-ubyte", 2051),
        "y_test": ("t10k-labels-idx1-ubyte", 2049),
    }
    for key, (name, magic) in names.items():
        payload = idx_bytes(np.ascontiguousarray(arrays[key], dtype=np.uint8), magic)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return folder


def assert_same_raw(raw, arrays):
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(raw, key), arrays[key])
    assert raw.x_train.dtype == np.uint8 and raw.y_train.dtype == np.int32


# --------------------------------------------------------------------------- shaping


def test_prepare_images_pads_scales_and_shapes():
    x = np.random.default_rng(1).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    x[0] = 255
    out = data.prepare_images(x)
    assert out.shape == (7, 32, 32, 1) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not out[:, border, 0].any(), "the 2-pixel border must be zero"
    np.testing.assert_allclose(out[:, 2:30, 2:30, 0], x / 255.0, rtol=0, atol=1e-7)
    assert out[0, 2:30, 2:30, 0].min() == 1.0


# --------------------------------------------------------------------------- file formats


def test_npz_round_trip(tmp_path):
    arrays = synthetic()
    path = write_npz(tmp_path / "mnist.npz", arrays)
    raw = data.load_raw("mnist", source="file", path=str(path))
    assert raw.source == "file" and raw.source_detail == f"File: {path}"
    assert_same_raw(raw, arrays)


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
def test_idx_folder_round_trip(tmp_path, gz):
    arrays = synthetic()
    folder = write_idx_folder(tmp_path / "idx", arrays, gz=gz)
    raw = data.load_raw("mnist", source="file", path=str(folder))
    assert raw.source == "file"
    assert_same_raw(raw, arrays)


# --------------------------------------------------------------------------- source order


def test_auto_order_file_beats_keras_beats_sample(tmp_path, isolated):
    user_arrays = synthetic(seed=1)
    user = write_npz(tmp_path / "user.npz", user_arrays)
    cache_arrays = synthetic(seed=2)
    cache = write_npz(isolated["keras_home"] / "datasets" / "mnist.npz", cache_arrays)

    raw = data.load_raw("mnist", path=str(user))
    assert raw.source == "file"
    assert_same_raw(raw, user_arrays)

    raw = data.load_raw("mnist")
    assert raw.source == "keras" and "Keras cache" in raw.source_detail and raw.source_detail.endswith("mnist.npz")
    assert_same_raw(raw, cache_arrays)
    assert data.describe_source("mnist") == raw.source_detail

    cache.unlink()
    raw = data.load_raw("mnist")
    assert raw.source == "sample"
    assert isolated["download_calls"] == []


def test_keras_download_used_when_host_answers(monkeypatch):
    arrays = synthetic(seed=3)
    calls = []
    monkeypatch.setattr(sources, "probe_download_host", lambda: True)
    monkeypatch.setattr(sources, "keras_download", lambda name: calls.append(name) or dict(arrays))
    raw = data.load_raw("mnist")
    assert calls == ["mnist"] and raw.source == "keras" and raw.source_detail.startswith("Keras download")
    assert_same_raw(raw, arrays)


def test_keras_download_failure_in_auto_falls_back_to_sample(monkeypatch):
    def broken(name):
        raise OSError("connection reset")

    monkeypatch.setattr(sources, "probe_download_host", lambda: True)
    monkeypatch.setattr(sources, "keras_download", broken)
    assert data.load_raw("mnist").source == "sample"
    with pytest.raises(DataError, match="connection reset"):
        data.load_raw("mnist", source="keras")


@pytest.mark.parametrize("host", ["closed-localhost-port", "10.255.255.1"])
def test_offline_fallback_to_sample_is_fast(monkeypatch, host, isolated):
    if host != "closed-localhost-port":
        monkeypatch.setattr(sources, "PROBE_HOST", host)
        monkeypatch.setattr(sources, "PROBE_PORT", 443)
    start = time.monotonic()
    raw = data.load_raw("mnist")
    elapsed = time.monotonic() - start
    assert raw.source == "sample"
    n = len(raw.x_train) + len(raw.x_test)
    assert raw.source_detail == f"Offline: using the bundled sample of {n:,} images"
    assert elapsed < 5, f"offline fallback took {elapsed:.1f} s"
    assert isolated["download_calls"] == []


def test_forced_keras_offline_is_a_clear_error():
    start = time.monotonic()
    with pytest.raises(DataError, match="no Keras cache"):
        data.load_raw("mnist", source="keras")
    assert time.monotonic() - start < 5


def test_lenet_data_env_var_is_honoured(tmp_path, monkeypatch):
    arrays = synthetic(seed=4)
    path = write_npz(tmp_path / "env.npz", arrays)
    monkeypatch.setenv("LENET_DATA", str(path))
    raw = data.load_raw("mnist")
    assert raw.source == "file" and str(path) in raw.source_detail
    assert_same_raw(raw, arrays)
    # an explicit path wins over the variable
    other = write_npz(tmp_path / "other.npz", synthetic(seed=5))
    assert str(other) in data.load_raw("mnist", path=str(other)).source_detail
    # and the config's data_path reaches it through load_dataset
    ds = data.load_dataset(TrainConfig(validation_split=0.0))
    assert ds.source == "file" and len(ds.x_train) == len(arrays["x_train"])


def test_forced_sources(tmp_path):
    assert data.load_raw("mnist", source="sample").source == "sample"
    assert data.describe_source("mnist", source="sample").startswith("Sample: using the bundled sample of")
    with pytest.raises(DataError, match="needs a path"):
        data.load_raw("mnist", source="file")
    with pytest.raises(DataError, match="no bundled Fashion-MNIST sample"):
        data.load_raw("fashion_mnist", source="sample")
    with pytest.raises(DataError, match="source='nope'"):
        data.load_raw("mnist", source="nope")


# --------------------------------------------------------------------------- fashion


def test_fashion_from_debian_folder(tmp_path, monkeypatch):
    arrays = synthetic(seed=6)
    folder = write_idx_folder(tmp_path / "debian" / "fashion-mnist", arrays, gz=True)
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", folder)
    raw = data.load_raw("fashion_mnist")
    assert raw.source == "debian" and str(folder) in raw.source_detail
    assert_same_raw(raw, arrays)
    ds = data.load_dataset(TrainConfig(dataset="fashion_mnist", validation_split=0.1))
    assert ds.class_names == data.CLASS_NAMES["fashion_mnist"]
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot" and ds.n_classes == 10
    x_test, y_test, names, detail = data.load_test_set("fashion_mnist")
    assert x_test.shape == (50, 32, 32, 1) and names == ds.class_names and detail == raw.source_detail


def test_fashion_missing_everywhere_says_how_to_install():
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.load_raw("fashion_mnist")


def test_mnist_class_names():
    assert data.CLASS_NAMES["mnist"] == tuple("0123456789")


# --------------------------------------------------------------------------- splits


def test_validation_split_is_stratified_and_reproducible(tmp_path):
    arrays = synthetic(n_train_per_class=100)
    # make the classes unbalanced: drop most of class 3
    drop = np.flatnonzero(arrays["y_train"] == 3)[20:]
    keep = np.setdiff1d(np.arange(len(arrays["y_train"])), drop)
    arrays["x_train"], arrays["y_train"] = arrays["x_train"][keep], arrays["y_train"][keep]
    path = write_npz(tmp_path / "d.npz", arrays)
    config = TrainConfig(data_path=str(path), validation_split=0.2, seed=7)
    ds = data.load_dataset(config)
    full = np.bincount(arrays["y_train"], minlength=10)
    assert len(ds.y_val) == round(0.2 * len(arrays["y_train"]))
    np.testing.assert_array_equal(np.bincount(ds.y_val, minlength=10), np.round(full * 0.2).astype(int))
    assert len(ds.y_train) + len(ds.y_val) == len(arrays["y_train"])
    # images stay with their labels (pixel [0,0] of each synthetic image encodes its label)
    np.testing.assert_allclose(ds.x_train[:, 2, 2, 0] * 255, ds.y_train, atol=1e-3)
    np.testing.assert_allclose(ds.x_val[:, 2, 2, 0] * 255, ds.y_val, atol=1e-3)
    again = data.load_dataset(config)
    np.testing.assert_array_equal(again.x_val, ds.x_val)
    other = data.load_dataset(config.replace(seed=8))
    assert not np.array_equal(other.x_val, ds.x_val)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32 and ds.x_test.shape == (50, 32, 32, 1)


def test_no_validation_split_gives_empty_arrays(tmp_path):
    path = write_npz(tmp_path / "d.npz", synthetic())
    ds = data.load_dataset(TrainConfig(data_path=str(path), validation_split=0.0))
    assert ds.x_val.shape == (0, 32, 32, 1) and ds.y_val.shape == (0,) and len(ds.x_train) == 200


def test_train_subset_is_stratified_and_too_large_is_an_error(tmp_path):
    path = write_npz(tmp_path / "d.npz", synthetic(n_train_per_class=50))
    ds = data.load_dataset(TrainConfig(data_path=str(path), train_subset=100, validation_split=0.0, batch_size=8))
    assert len(ds.y_train) == 100
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), [10] * 10)
    ds = data.load_dataset(TrainConfig(data_path=str(path), train_subset=100, validation_split=0.2, batch_size=8))
    assert len(ds.y_train) == 80 and len(ds.y_val) == 20
    np.testing.assert_array_equal(np.bincount(ds.y_val, minlength=10), [2] * 10)
    with pytest.raises(DataError, match=r"train_subset=600 .* 500 training images"):
        data.load_dataset(TrainConfig(data_path=str(path), train_subset=600))


# --------------------------------------------------------------------------- bundled sample


def test_bundled_sample_is_real_mnist_and_small():
    assert data.SAMPLE_PATH.is_file()
    assert data.SAMPLE_PATH.stat().st_size <= 5_000_000
    raw = data.load_raw("mnist", source="sample")
    assert raw.x_test.shape == (10_000, 28, 28) and raw.x_test.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(raw.y_test, minlength=10), MNIST_TEST_COUNTS)
    np.testing.assert_array_equal(raw.y_test[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    counts = np.bincount(raw.y_train, minlength=10)
    assert counts.min() == counts.max() >= 1000, "the training part is class-balanced"
    assert raw.x_train.max() == 255 and raw.x_train.min() == 0
    with np.load(data.SAMPLE_PATH) as f:
        assert len(str(f["source_sha256"])) == 64
        index = f["train_index"]
    assert len(index) == len(raw.y_train) and np.all(np.diff(index.astype(int)) > 0)
    # the cached arrays are shared, so they must not be writable
    with pytest.raises(ValueError):
        raw.x_train[0, 0, 0] = 1


def test_test_set_from_sample():
    x_test, y_test, names, detail = data.load_test_set("mnist", source="sample")
    assert x_test.shape == (10_000, 32, 32, 1) and x_test.dtype == np.float32
    assert y_test.dtype == np.int32 and names == tuple("0123456789") and "bundled sample" in detail


def test_describe_source_file_does_not_parse(tmp_path):
    path = tmp_path / "whatever.npz"
    path.write_bytes(b"not parsed by describe_source")
    assert data.describe_source("mnist", path=str(path)) == f"File: {path}"


# --------------------------------------------------------------------------- bad data


def _error_for(path) -> str:
    with pytest.raises(DataError) as info:
        data.load_raw("mnist", source="file", path=str(path))
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_path(tmp_path):
    assert "no such file" in _error_for(tmp_path / "nope.npz")


def test_missing_path_in_auto_is_not_skipped(tmp_path):
    with pytest.raises(DataError, match="nope.npz"):
        data.load_raw("mnist", path=str(tmp_path / "nope.npz"))


def test_wrong_layout_missing_keys(tmp_path):
    arrays = synthetic()
    del arrays["y_test"]
    assert "missing key(s) y_test" in _error_for(write_npz(tmp_path / "d.npz", arrays))


def test_wrong_layout_shape(tmp_path):
    arrays = synthetic()
    arrays["x_train"] = arrays["x_train"].reshape(-1, 784)
    assert "shape (200, 784)" in _error_for(write_npz(tmp_path / "d.npz", arrays))


def test_wrong_dtype(tmp_path):
    arrays = synthetic()
    arrays["x_test"] = arrays["x_test"].astype(str)
    assert "dtype" in _error_for(write_npz(tmp_path / "d.npz", arrays))


def test_scaled_float_images_are_rejected(tmp_path):
    arrays = synthetic()
    arrays["x_train"] = arrays["x_train"] / 255.0
    assert "non-integer pixel values" in _error_for(write_npz(tmp_path / "d.npz", arrays))


@pytest.mark.parametrize("bad", [300.0, -1.0])
def test_out_of_range_pixels(tmp_path, bad):
    arrays = synthetic()
    arrays["x_train"] = arrays["x_train"].astype(np.float32)
    arrays["x_train"][3, 4, 5] = bad
    assert "pixel values" in _error_for(write_npz(tmp_path / "d.npz", arrays))


def test_integer_images_in_range_are_accepted(tmp_path):
    arrays = synthetic()
    arrays["x_train"] = arrays["x_train"].astype(np.int64)
    raw = data.load_raw("mnist", source="file", path=str(write_npz(tmp_path / "d.npz", arrays)))
    assert raw.x_train.dtype == np.uint8


def test_npz_label_count_mismatch(tmp_path):
    arrays = synthetic()
    arrays["y_train"] = arrays["y_train"][:-1]
    assert "199 labels" in _error_for(write_npz(tmp_path / "d.npz", arrays))


def test_labels_out_of_range(tmp_path):
    arrays = synthetic()
    arrays["y_test"][0] = 10
    assert "labels outside 0-9" in _error_for(write_npz(tmp_path / "d.npz", arrays))


def test_not_an_npz(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert "not a .npz" in _error_for(path)


def test_idx_count_mismatch(tmp_path):
    arrays = synthetic()
    folder = write_idx_folder(tmp_path / "idx", arrays, gz=False)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["y_test"][:-3], 2049))
    message = _error_for(folder)
    assert "50 images" in message and "47 labels" in message


def test_idx_bad_magic_and_truncation(tmp_path):
    arrays = synthetic()
    folder = write_idx_folder(tmp_path / "idx", arrays, gz=True)
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(idx_bytes(arrays["x_train"], 2049)))
    assert "magic number 2049, expected 2051" in _error_for(folder)
    images.write_bytes(gzip.compress(idx_bytes(arrays["x_train"], 2051)[:-10]))
    assert "header announces" in _error_for(folder)


def test_empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert "no IDX files found" in _error_for(folder)


def test_folder_missing_one_idx_file(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", synthetic(), gz=False)
    (folder / "t10k-images-idx3-ubyte").unlink()
    assert "missing IDX file(s) t10k-images-idx3-ubyte" in _error_for(folder)


# --------------------------------------------------------------------------- probe and sample builder


def test_probe_rejects_a_listener_that_does_not_speak_tls(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(sources, "PROBE_PORT", server.getsockname()[1])
        monkeypatch.setattr(sources, "PROBE_TIMEOUT", 0.5)
        start = time.monotonic()
        assert sources.probe_download_host() is False
        assert time.monotonic() - start < 2


def _build_sample_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "build_sample.py"
    spec = importlib.util.spec_from_file_location("build_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_sample_is_balanced_and_byte_reproducible(tmp_path):
    build = _build_sample_module()
    y = np.repeat(np.arange(10), 30)
    np.random.default_rng(0).shuffle(y)
    index = build.pick_train_indices(y, 7)
    np.testing.assert_array_equal(index, build.pick_train_indices(y, 7))
    np.testing.assert_array_equal(np.bincount(y[index], minlength=10), [7] * 10)
    assert np.all(np.diff(index) > 0)
    arrays = synthetic()
    build.write_npz(tmp_path / "a.npz", arrays)
    time.sleep(1.1)  # a zip timestamp would change here
    build.write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert_same_raw(data.load_raw("mnist", source="file", path=str(tmp_path / "a.npz")), arrays)
    with pytest.raises(ValueError, match="class"):
        build.pick_train_indices(y, 31)
