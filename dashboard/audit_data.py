"""Cached reads and computations behind the audit pages, keyed on the store, the run id and its file version."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from core.data import CLASS_NAMES, DataError, load_test_set
from core.store import RunInfo, RunStore, StoreError
from dashboard import common, figures_audit

# Reference results the Evaluate page compares against.
SEED_ARTICLE_ACCURACY = 0.9926  # the seed article's LeNet-5 on the MNIST test set
LECUN_1998_ERROR = 0.0095  # LeCun et al. 1998, LeNet-5 without distortions: 0.95% test error

# The error gallery's filters. Other pages set them (then switch to the gallery) through open_in_gallery.
GALLERY_TRUE = "gallery_true"
GALLERY_PRED = "gallery_pred"
GALLERY_SORT = "gallery_sort"
GALLERY_PAGE = "gallery_page"
GALLERY_OPEN = "gallery_open"  # test index of the tile whose details are shown; the Inside page reads it too
ALL = "all"

THUMBNAIL_SCALE = 3  # 28x28 -> 84x84 with nearest-neighbour pixels, so digits stay crisp
PAD = 2  # 28x28 -> 32x32, as core.data.prepare_images


@dataclass(frozen=True)
class Predictions:
    """Test-set probabilities of one run and where they came from."""

    probs: np.ndarray  # float32 (N, n_classes)
    labels: np.ndarray  # int64 (N,)
    metrics: dict  # as core.analysis.summary_metrics returns them
    source: str  # shown under the headline, e.g. "the saved model" or "the epoch 3 snapshot"

    @property
    def pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


@dataclass(frozen=True)
class TestImages:
    images: np.ndarray  # uint8 (N, 28, 28), the test set as stored
    labels: np.ndarray  # int64 (N,)
    detail: str  # which source the images came from


def analysis():
    """core.analysis, imported on first use. It loads TensorFlow, which takes seconds in a fresh server
    process; pages call this right after drawing their title, so the wait shows a spinner, not a blank page."""
    module = sys.modules.get("core.analysis")
    if module is None:
        with st.spinner("Loading TensorFlow (once per server process)…"):
            module = importlib.import_module("core.analysis")
    _skip_keras_gc_after_reruns()
    return module


SCRIPT_THREAD = "ScriptRunner.scriptThread"  # the name Streamlit gives the thread that runs a page


def _skip_keras_gc_after_reruns() -> None:
    """Once Keras is imported, Streamlit calls keras.backend.clear_session() after every script run
    (ScriptRunner's _clean_problem_modules), and clear_session ends with a full gc.collect(): about
    0.4 s of CPU with TensorFlow loaded, on every rerun of every page. Keep the reset, skip that
    collection when Streamlit's script thread asks for it; other callers are unchanged."""
    import threading

    import keras

    clear_session = keras.backend.clear_session
    if getattr(clear_session, "keeps_memory_on_reruns", False):
        return

    def clear_session_without_gc_on_reruns(free_memory=True):
        if threading.current_thread().name == SCRIPT_THREAD:
            free_memory = False
        return clear_session(free_memory=free_memory)

    clear_session_without_gc_on_reruns.keeps_memory_on_reruns = True
    keras.backend.clear_session = clear_session_without_gc_on_reruns


def _root() -> str:
    return str(common.store().root)


def _store(root: str) -> RunStore:
    return RunStore(root)


def version(run_id: str) -> tuple:
    return common.file_version(run_id)


def class_names(info: RunInfo) -> list[str]:
    names = info.meta.get("class_names")
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    dataset = info.config.dataset if info.config is not None else "mnist"
    return list(CLASS_NAMES.get(dataset, CLASS_NAMES["mnist"]))


# ---------------------------------------------------------------- the test images


@st.cache_data(max_entries=4, show_spinner="Loading the test images…")
def _load_test_images(dataset: str, source: str, path: str | None) -> TestImages:
    x, y, _, detail = load_test_set(dataset, source, path)
    images = np.round(x[:, PAD:-PAD, PAD:-PAD, 0] * 255).astype(np.uint8)
    return TestImages(images, y.astype(np.int64), detail)


def _sources(info: RunInfo) -> list[tuple[str, str | None]]:
    """Where the run's test set can be read from, the run's own source first.

    MNIST's test set is the same 10,000 images in every source, and the bundled sample holds all
    of it, so an MNIST run trained from a Keras download can be audited offline.
    """
    config = info.config
    candidates: list[tuple[str, str | None]] = []
    if config.data_source in ("file", "sample"):
        candidates.append((config.data_source, config.data_path))
    if config.dataset == "mnist":
        candidates.append(("sample", None))
    candidates.append(("auto", None))
    return list(dict.fromkeys(candidates))


def test_images(info: RunInfo, labels: np.ndarray | None = None) -> tuple[TestImages | None, str | None]:
    """(the run's test images, None) or (None, why not). With `labels`, a source must hold exactly those labels."""
    problems = []
    for source, path in _sources(info):
        try:
            found = _load_test_images(info.config.dataset, source, path)
        except (DataError, OSError, ValueError) as exc:
            problems.append(str(exc))
            continue
        if labels is not None and not np.array_equal(found.labels, labels):
            problems.append(f"{found.detail}: its test labels differ from the ones this run was evaluated on")
            continue
        return found, None
    return None, "; ".join(problems) or "no test set found"


def as_x32(image28: np.ndarray) -> np.ndarray:
    """A stored 28x28 uint8 test image as LeNet's input: padded to 32x32, scaled to [0, 1], (32, 32, 1)."""
    return np.pad(np.asarray(image28, np.float32) / np.float32(255), PAD)[:, :, None]


def thumbnail(image28: np.ndarray, scale: int = THUMBNAIL_SCALE) -> np.ndarray:
    return np.kron(np.asarray(image28, np.uint8), np.ones((scale, scale), np.uint8))


def thumbnails(images: TestImages, indices, scale: int = THUMBNAIL_SCALE) -> list[bytes]:
    """Test images as PNG files, encoded once: a page of 60 thumbnails otherwise re-encodes on every rerun."""
    return [_png(images.detail, int(i), scale, images.images[i]) for i in indices]


@st.cache_data(max_entries=4096, show_spinner=False)
def _png(detail: str, index: int, scale: int, _image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(thumbnail(_image, scale)).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- predictions and metrics


@st.cache_data(max_entries=64, show_spinner=False)  # the epoch views read every epoch of a run, twice a script run
def _snapshot(root: str, run_id: str, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """An epoch snapshot is written once and never changes, so (store, run, epoch) is its whole key."""
    return _store(root).read_epoch_snapshot(run_id, epoch)


def epochs(run_id: str) -> list[int]:
    return common.store().epochs_saved(run_id)


def readable_epochs(run_id: str) -> tuple[list[int], list[str]]:
    """The saved epochs whose snapshot can be read, and why each other one cannot: one damaged snapshot
    leaves out its epoch, not the whole history."""
    readable, problems = [], []
    for epoch in epochs(run_id):
        try:
            _snapshot(_root(), run_id, epoch)
        except StoreError as exc:
            problems.append(f"{exc}; it is left out, the other epochs are shown.")
        else:
            readable.append(epoch)
    return readable, problems


def snapshot_probs(run_id: str, epoch: int) -> np.ndarray:
    return _snapshot(_root(), run_id, epoch)[0]


@st.cache_data(max_entries=16, show_spinner="Reading the run's test predictions…")
def _evaluation(root: str, run_id: str, version: tuple) -> tuple[dict, np.ndarray, np.ndarray] | None:
    evaluation = _store(root).read_evaluation(run_id)
    if evaluation is None:
        return None
    metrics, probs, labels = evaluation
    return metrics, np.asarray(probs, np.float32), np.asarray(labels, np.int64)


def predictions(info: RunInfo) -> tuple[Predictions | None, str | None]:
    """The run's stored test evaluation; before it exists (a live run), the latest epoch snapshot."""
    try:
        evaluation = _evaluation(_root(), info.run_id, version(info.run_id))
        if evaluation is not None:
            metrics, probs, labels = evaluation
            if not {"accuracy", "macro_f1"} <= set(metrics):
                metrics = analysis().summary_metrics(labels, probs)
            return Predictions(probs, labels, metrics, "the saved model"), None
        saved = epochs(info.run_id)
        if not saved:
            if not info.active:
                return None, (f"This run ended ({info.status}) before finishing an epoch, so it saved no test "
                              "predictions.")
            return None, "This run has no test predictions yet: it saves them at the end of each epoch."
        probs = snapshot_probs(info.run_id, saved[-1])
    except StoreError as exc:
        return None, str(exc)
    images, problem = test_images(info)
    if images is None:
        return None, f"The test labels for this run's snapshots could not be read: {problem}"
    if len(images.labels) != len(probs):
        return None, (f"The epoch {saved[-1]} snapshot holds {len(probs)} predictions but the test set "
                      f"({images.detail}) has {len(images.labels)} images.")
    metrics = _summary(probs, images.labels)
    return Predictions(probs, images.labels, metrics, f"the epoch {saved[-1]} snapshot"), None


def current_predictions(title: str) -> tuple[RunInfo, Predictions] | None:
    """The opening of a page about the chosen run's test predictions: its title and run caption, then
    (run, predictions); None, with a message shown, when there is no run or no predictions yet."""
    info = common.current_run()
    if info is None:
        return None
    st.title(title)
    st.caption(f"Run **{info.name}** · {info.status}")
    analysis()  # before reading: the TensorFlow import shows a spinner under the title
    found, problem = predictions(info)
    if found is None:
        st.info(problem)
        return None
    return info, found


@st.cache_data(max_entries=32, show_spinner=False)
def _summary(probs: np.ndarray, labels: np.ndarray) -> dict:
    return analysis().summary_metrics(labels, probs)


@st.cache_data(max_entries=32, show_spinner=False)
def confusion_counts(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    return analysis().confusion(labels, probs.argmax(axis=1), n_classes)


@st.cache_data(max_entries=16, show_spinner=False)
def class_report(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> pd.DataFrame:
    return analysis().class_report(labels, probs.argmax(axis=1), names)


@st.cache_data(max_entries=32, show_spinner=False)
def errors(probs: np.ndarray, labels: np.ndarray, sort_by: str = "confidence",
           true_class: int | None = None, pred_class: int | None = None) -> pd.DataFrame:
    return analysis().misclassified(labels, probs, sort_by, true_class, pred_class)


@st.cache_data(max_entries=32, show_spinner=False)
def cell_images(probs: np.ndarray, labels: np.ndarray, true_class: int, pred_class: int) -> pd.DataFrame:
    """The test images of one confusion-matrix cell; an error cell most confident first, the diagonal least."""
    if true_class != pred_class:
        return analysis().misclassified(labels, probs, "confidence", true_class, pred_class)
    pred = probs.argmax(axis=1)
    index = np.flatnonzero((labels == true_class) & (pred == true_class))
    table = pd.DataFrame({"index": index, "true": true_class, "pred": pred_class,
                          "confidence": probs[index, pred_class].astype(float)})
    return table.sort_values(["confidence", "index"]).reset_index(drop=True)


@st.cache_data(max_entries=16, show_spinner=False)
def suspects(probs: np.ndarray, labels: np.ndarray, top: int, min_confidence: float) -> pd.DataFrame:
    return analysis().suspected_label_errors(labels, probs, top, min_confidence)


@st.cache_data(max_entries=8, show_spinner=False)
def class_examples(images: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                   n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(the mean image of each class as uint8 (C, 28, 28), the most confidently right test index per class, or -1)."""
    means = np.zeros((n_classes, *images.shape[1:]), np.uint8)
    typical = np.full(n_classes, -1)
    pred = probs.argmax(axis=1)
    for c in range(n_classes):
        members = labels == c
        if members.any():
            means[c] = np.round(images[members].mean(axis=0)).astype(np.uint8)
        right = np.flatnonzero(members & (pred == c))
        if right.size:
            typical[c] = right[np.argmax(probs[right, c])]
    return means, typical


# ---------------------------------------------------------------- epoch by epoch


def epoch_accuracies(run_id: str, labels: np.ndarray, saved: list[int]) -> list[float]:
    return [float(np.mean(snapshot_probs(run_id, e).argmax(axis=1) == labels)) for e in saved]


def epoch_changes(run_id: str, epoch: int, labels: np.ndarray, saved: list[int]) -> dict[str, np.ndarray] | None:
    """Test indices fixed and broken by `epoch` relative to the previous epoch in `saved`; None for the first."""
    position = saved.index(epoch)
    if position == 0:
        return None
    return analysis().epoch_changes(labels, snapshot_probs(run_id, saved[position - 1]), snapshot_probs(run_id, epoch))


def history(run_id: str, labels: np.ndarray, index: int, saved: list[int]) -> pd.DataFrame:
    """One test image's prediction after each epoch of `saved` (epoch numbers as saved)."""
    table = analysis().correctness_history(labels, [snapshot_probs(run_id, e) for e in saved], index)
    return table.assign(epoch=saved)


def c1_history(run_id: str, saved: list[int]) -> tuple[list[int], np.ndarray]:
    kernels = [_snapshot(_root(), run_id, e)[1] for e in saved]
    return saved, (np.stack(kernels) if kernels else np.zeros((0, 6, 5, 5), np.float32))


# ---------------------------------------------------------------- the model


def model(info: RunInfo):
    """(the run's Keras model, None) or (None, why it cannot be loaded)."""
    if info.active:
        return None, "The model is saved when training ends; the live view below follows the epoch snapshots."
    try:
        if not common.store().has_model(info.run_id):
            return None, "This run has no saved model."
        return common.load_model(info.run_id, version(info.run_id)), None
    except StoreError as exc:
        return None, str(exc)


@st.cache_data(max_entries=64, show_spinner=False)
def feature_maps(root: str, run_id: str, version: tuple, image32: np.ndarray, _model) -> dict[str, np.ndarray]:
    return analysis().feature_maps(_model, image32)


@st.cache_data(max_entries=64, show_spinner=False)
def predict_one(root: str, run_id: str, version: tuple, image32: np.ndarray, _model) -> np.ndarray:
    return analysis().predict_probs(_model, image32[None])[0]


def maps_for(info: RunInfo, loaded_model, image32: np.ndarray) -> dict[str, np.ndarray]:
    return feature_maps(_root(), info.run_id, version(info.run_id), image32, loaded_model)


def probs_for(info: RunInfo, loaded_model, image32: np.ndarray) -> np.ndarray:
    return predict_one(_root(), info.run_id, version(info.run_id), image32, loaded_model)


# ---------------------------------------------------------------- figures


def figure(builder, *args, **kwargs):
    """builder(*args, **kwargs) from figures_audit (a figure, or an image array), built once per distinct input.

    Building a Plotly figure validates every property and takes 20-80 ms; a page redraws several
    on each rerun, so a revisit reuses them. Pages only pass figures to st.plotly_chart, which
    reads them without changing them, so one shared object per input is safe.
    """
    return _figure(builder.__name__, args, kwargs)


@st.cache_resource(max_entries=256, show_spinner=False)
def _figure(name: str, args: tuple, kwargs: dict):
    return getattr(figures_audit, name)(*args, **kwargs)


# ---------------------------------------------------------------- moving between pages


def open_in_gallery(true_class: int | None, pred_class: int | None, opened: int | None = None) -> None:
    """Set the gallery's filters (and, optionally, the tile it opens); the caller then switches page."""
    st.session_state[GALLERY_TRUE] = ALL if true_class is None else int(true_class)
    st.session_state[GALLERY_PRED] = ALL if pred_class is None else int(pred_class)
    st.session_state[GALLERY_PAGE] = 1
    st.session_state[GALLERY_OPEN] = opened


# ---------------------------------------------------------------- one digit to look at (Inside and Predict)

FROM_TEST_SET = "A test image"
FROM_GALLERY = "The image opened in the gallery"
FROM_UPLOAD = "An uploaded picture"
INSIDE_SOURCE = "inside_source"  # the gallery's "Inside the model" button sets it to FROM_GALLERY


def upload_types() -> tuple[list[str], str]:
    """The file extensions the uploader takes and how to say them: every extension Pillow registers for a format
    that core.analysis decodes (the formats its "allowed formats" message names), so the two never disagree."""
    from PIL import Image

    formats = analysis().UPLOAD_FORMATS
    Image.init()
    extensions = sorted(ext.lstrip(".") for ext, name in Image.registered_extensions().items() if name in formats)
    return extensions, ", ".join(formats[:-1]) + f" or {formats[-1]}"


@dataclass(frozen=True)
class Digit:
    x28: np.ndarray  # uint8 (28, 28), MNIST form
    x32: np.ndarray  # float32 (32, 32, 1), LeNet's input
    label: int | None  # the test label, None for an upload
    name: str  # "test image #123" or "upload digit.png"


def _random_index(key: str, count: int) -> None:
    st.session_state[key] = int(np.random.default_rng().integers(count))


def pick_digit(prefix: str, images: TestImages | None, with_gallery: bool = False) -> Digit | None:
    """A test image by index, the gallery's opened tile, or an uploaded picture (never written anywhere)."""
    sources = [FROM_TEST_SET] if images is not None else []
    opened = st.session_state.get(GALLERY_OPEN)
    if with_gallery and images is not None and opened is not None and 0 <= opened < len(images.labels):
        sources.append(FROM_GALLERY)
    sources.append(FROM_UPLOAD)
    key = f"{prefix}_source"
    if st.session_state.get(key) not in (None, *sources):
        st.session_state[key] = sources[0]
    source = st.radio("Image", sources, key=key, horizontal=True)
    if source == FROM_UPLOAD:
        extensions, said = upload_types()
        upload = st.file_uploader(f"A picture of one handwritten digit ({said})", type=extensions,
                                  key=f"{prefix}_upload")
        if upload is None:
            st.caption("Dark ink on light paper or light on dark both work; the picture is cropped, fitted into "
                       "20×20 and centred like MNIST. It stays in memory and is never saved.")
            return None
        try:
            x28, x32 = analysis().preprocess_digit(upload.getvalue())
        except analysis().ImageError as exc:
            st.error(str(exc))
            return None
        return Digit(x28, x32, None, f"upload {upload.name}")
    if source == FROM_GALLERY:
        index = int(opened)
    else:
        count = len(images.labels)
        index_key = f"{prefix}_index"
        left, right = st.columns([4, 1], vertical_alignment="bottom")
        index = int(left.number_input(f"Test index (0–{count - 1})", 0, count - 1, key=index_key))
        right.button("Random", key=f"{prefix}_random", on_click=_random_index, args=(index_key, count))
    x28 = images.images[index]
    return Digit(x28, as_x32(x28), int(images.labels[index]), f"test image #{index}")
