"""A run's model as .keras, ONNX or TensorFlow Lite (LiteRT), each run in its own runtime on test images and
compared with the Keras model before it is offered. An export that disagrees is refused with the figures."""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.store import RunStore, StoreError

FORMATS = ("keras", "onnx", "tflite")
SUFFIXES = {"keras": ".keras", "onnx": ".onnx", "tflite": ".tflite"}
RUNTIMES = {"keras": "Keras (safe_mode)", "onnx": "onnxruntime", "tflite": "the LiteRT interpreter"}
PARITY_IMAGES = 1000  # test images each export is checked on
MAX_PROB_DIFF = 1e-4  # largest |difference| of any class probability allowed (float32 conversions, no quantization)
MIN_IDENTICAL = 0.999  # share of images that must get the same predicted class


class ExportRefused(ValueError):
    """The export was built but disagrees with the Keras model; the message gives the figures."""

    def __init__(self, message: str, parity: "Parity"):
        super().__init__(message)
        self.parity = parity


@dataclass(frozen=True)
class Parity:
    """How an export's predictions compare with the Keras model's on the same images."""

    images: int
    max_prob_diff: float
    identical: float  # share of images with the same predicted class
    runtime: str

    @property
    def ok(self) -> bool:
        return self.max_prob_diff <= MAX_PROB_DIFF and self.identical >= MIN_IDENTICAL

    @property
    def text(self) -> str:
        return (f"checked with {self.runtime} on {self.images:,} test images: largest probability difference "
                f"{self.max_prob_diff:.2e}, identical predictions {self.identical:.2%}")


@dataclass(frozen=True)
class Export:
    format: str
    data: bytes
    parity: Parity
    seconds: float  # to build and check it

    @property
    def suffix(self) -> str:
        return SUFFIXES[self.format]


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}")
    return fmt


def parity(reference: np.ndarray, probs: np.ndarray, runtime: str) -> Parity:
    reference, probs = np.asarray(reference, np.float64), np.asarray(probs, np.float64)
    if probs.shape != reference.shape:
        return Parity(len(reference), float("inf"), 0.0, runtime)
    return Parity(len(reference), float(np.abs(probs - reference).max()),
                  float(np.mean(probs.argmax(axis=1) == reference.argmax(axis=1))), runtime)


def parity_images(store: RunStore, run_id: str, n: int = PARITY_IMAGES) -> np.ndarray:
    """The first `n` test images of the run's test set, as the model takes them."""
    from core.testset import run_test_set

    x, _, _ = run_test_set(store.read_config(run_id))
    return x[:n]


def export_model(store: RunStore, run_id: str, fmt: str, images: np.ndarray | None = None) -> Export:
    """Build the export, run it in its own runtime and compare; raises ExportRefused if it disagrees."""
    from core.analysis import predict_probs

    check_format(fmt)
    if not store.has_model(run_id):
        raise StoreError(f"run {run_id!r} has no saved model, so there is nothing to export")
    started = time.perf_counter()
    model = store.load_model(run_id)
    x = parity_images(store, run_id) if images is None else np.asarray(images, np.float32)
    reference = predict_probs(model, x)
    with tempfile.TemporaryDirectory(prefix="lenet-export-") as folder:
        path = Path(folder) / f"model{SUFFIXES[fmt]}"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the converters' deprecation chatter
            WRITERS[fmt](store, run_id, model, path)
            probs = RUNNERS[fmt](path, x)
        data = path.read_bytes()
    result = parity(reference, probs, RUNTIMES[fmt])
    if not result.ok:
        raise ExportRefused(f"the {fmt} export of run {run_id!r} disagrees with its Keras model, so it was not "
                            f"written: {result.text} (allowed: at most {MAX_PROB_DIFF:g} and at least "
                            f"{MIN_IDENTICAL:.1%})", result)
    return Export(fmt, data, result, time.perf_counter() - started)


# ----- writers: the library's own converters ------------------------------------------------------------


def _write_keras(store: RunStore, run_id: str, model, path: Path) -> None:
    path.write_bytes(store.model_bytes(run_id))  # the stored file itself, byte for byte


def _write_onnx(store: RunStore, run_id: str, model, path: Path) -> None:
    _called(model)
    model.export(str(path), format="onnx", verbose=False)  # Keras 3 converts with tf2onnx


def _write_tflite(store: RunStore, run_id: str, model, path: Path) -> None:
    _called(model)
    model.export(str(path), format="litert", verbose=False)  # Keras 3 converts with tf.lite.TFLiteConverter


def _called(model) -> None:
    """Keras exports only a model that was called once; a model loaded from .keras was not."""
    model(np.zeros((1, *model.input_shape[1:]), np.float32))


# ----- runners: each export in its own runtime ----------------------------------------------------------


def _run_keras(path: Path, x: np.ndarray) -> np.ndarray:
    import keras

    import core.model  # noqa: F401  registers the lecun1998 layers
    from core.analysis import predict_probs

    return predict_probs(keras.saving.load_model(path, safe_mode=True, compile=False), x)


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def _run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(source["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], x.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(target["index"])


WRITERS = {"keras": _write_keras, "onnx": _write_onnx, "tflite": _write_tflite}
RUNNERS = {"keras": _run_keras, "onnx": _run_onnx, "tflite": _run_tflite}
