"""MNIST and Fashion-MNIST for LeNet-5: choose a source (_plan), check and split the arrays, pad them to 32x32."""

from __future__ import annotations

import dataclasses
import functools
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core import sources
from core.sources import IMAGE_SIZE, DataError  # IMAGE_SIZE: 28, the size MNIST stores

if TYPE_CHECKING:  # pragma: no cover
    from core.config import TrainConfig

SAMPLE_PATH = Path(__file__).resolve().parent / "assets" / "mnist_sample.npz"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VARS = {"mnist": "LENET_DATA", "fashion_mnist": "LENET_FASHION_DATA"}

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
}
SOURCES = ("auto", "file", "keras", "sample")
PADDED_SIZE = 32
PAD = (PADDED_SIZE - IMAGE_SIZE) // 2  # LeNet's 32x32 input is the 28x28 digit with 2 zero pixels each side


@dataclasses.dataclass
class RawData:
    """Images as stored: uint8 (N, 28, 28), labels int32 (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "file" | "keras" | "sample" | "debian"
    source_detail: str


@dataclasses.dataclass
class Dataset:
    name: str  # "mnist" | "fashion_mnist"
    class_names: tuple[str, ...]
    x_train: np.ndarray  # float32 (N, 32, 32, 1) in [0, 1]
    y_train: np.ndarray  # int32 (N,)
    x_val: np.ndarray  # float32 (M, 32, 32, 1), M may be 0
    y_val: np.ndarray
    x_test: np.ndarray  # float32 (N_test, 32, 32, 1)
    y_test: np.ndarray
    source: str  # "file" | "keras" | "sample" | "debian"
    source_detail: str  # human readable, shown in the UI
    train_index: np.ndarray | None = None  # int64 (N,): each training image's index in the source's training set
    excluded: int = 0  # how many training images config.exclude_train left out

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


# --------------------------------------------------------------------------- shaping


def prepare_images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 32, 32, 1): zero-pad 2 pixels each side, divide by 255."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"prepare_images: expected images of shape (N, 28, 28), got {x.shape}")
    out = np.zeros((x.shape[0], PADDED_SIZE, PADDED_SIZE, 1), dtype=np.float32)
    inner = out[:, PAD : PAD + IMAGE_SIZE, PAD : PAD + IMAGE_SIZE, 0]
    inner[...] = x  # converted straight into the output and divided in place: no full-size float temporaries
    np.divide(inner, np.float32(255), out=inner)
    return out


def pad_pixels(x: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> uint8 (N, 32, 32, 1): prepare_images' padding without its division, the grey levels
    make_train_dataset keeps (and divides by 255 batch by batch)."""
    x = np.asarray(x, dtype=np.uint8)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"pad_pixels: expected images of shape (N, 28, 28), got {x.shape}")
    out = np.zeros((x.shape[0], PADDED_SIZE, PADDED_SIZE, 1), dtype=np.uint8)
    out[:, PAD : PAD + IMAGE_SIZE, PAD : PAD + IMAGE_SIZE, 0] = x
    return out


def unpad_images(x: np.ndarray) -> np.ndarray:
    """The inverse of prepare_images: float32 (N, 32, 32, 1) in [0, 1] -> uint8 (N, 28, 28)."""
    return np.round(np.asarray(x)[:, PAD:-PAD, PAD:-PAD, 0] * 255).astype(np.uint8)


# --------------------------------------------------------------------------- checking


def _checked(arrays: dict[str, np.ndarray], where: str, dataset: str) -> tuple[np.ndarray, ...]:
    return sources.check_arrays(arrays, where, n_classes=len(CLASS_NAMES[dataset]))


# --------------------------------------------------------------------------- the bundled sample


@functools.lru_cache(maxsize=2)
def _read_sample_cached(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, ...]:
    arrays = _checked(sources.read_npz(Path(path)), path, "mnist")
    for a in arrays:
        a.setflags(write=False)  # shared between callers: nobody may change it in place
    return arrays


def _read_sample() -> tuple[np.ndarray, ...]:
    if not SAMPLE_PATH.is_file():
        raise DataError(f"{SAMPLE_PATH}: the bundled MNIST sample is missing; rebuild it with scripts/build_sample.py")
    st = SAMPLE_PATH.stat()
    return _read_sample_cached(str(SAMPLE_PATH), st.st_mtime_ns, st.st_size)


def _sample_detail(auto: bool) -> str:
    try:
        n = sources.npz_image_count(SAMPLE_PATH)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{SAMPLE_PATH}: the bundled MNIST sample is missing or damaged ({exc}); "
                        "rebuild it with scripts/build_sample.py") from None
    return f"{'Offline' if auto else 'Sample'}: using the bundled sample of {n:,} images"


# --------------------------------------------------------------------------- source choice


def _check_args(dataset: str, source: str) -> None:
    if dataset not in CLASS_NAMES:
        raise DataError(f"dataset={dataset!r} is unknown; choose one of {', '.join(CLASS_NAMES)}")
    if source not in SOURCES:
        raise DataError(f"source={source!r} is unknown; choose one of {', '.join(SOURCES)}")


def _user_path(dataset: str, path: str | os.PathLike | None) -> Path | None:
    if path is None or str(path).strip() == "":
        path = os.environ.get(ENV_VARS[dataset]) or None
    return Path(os.path.expanduser(str(path))).absolute() if path else None


def _no_fashion_message() -> str:
    return (
        f"Fashion-MNIST not found: {DEBIAN_FASHION_DIR} does not hold its IDX files, there is no Keras "
        f"cache and {sources.PROBE_HOST} cannot be reached; run `apt-get install dataset-fashion-mnist` "
        f"or pass --data (a .npz or a folder of IDX files)"
    )


def _plan(dataset: str, source: str, path: str | os.PathLike | None) -> tuple[str, Path | None, str]:
    """Decide, without reading arrays, which source to use: (kind, location, detail).

    kind is one of file, debian, keras-cache, keras-download, sample. With source="auto" they are tried
    in this order: a file the user names (``path``, else the variable in ENV_VARS; a named path that is
    broken raises, it is never skipped); for Fashion-MNIST, Debian's dataset-fashion-mnist in
    DEBIAN_FASHION_DIR; the Keras cache; the Keras download, only if its host answers the probe within
    PROBE_TIMEOUT seconds; for MNIST, the bundled sample. Raises DataError when a forced source is
    unavailable, or when nothing is available in auto mode.
    """
    _check_args(dataset, source)
    user = _user_path(dataset, path)
    if source == "file" or (source == "auto" and user is not None):
        if user is None:
            raise DataError(
                f"data_source='file' needs a path: set data_path (--data) or the {ENV_VARS[dataset]} variable"
            )
        if not user.exists():
            raise DataError(f"{user}: no such file or folder; pass a Keras-layout .npz or a folder of IDX files")
        return "file", user, f"File: {user}"
    if source == "sample":
        if dataset != "mnist":
            raise DataError(
                "there is no bundled Fashion-MNIST sample; run `apt-get install dataset-fashion-mnist` "
                "or pass --data (a .npz or a folder of IDX files)"
            )
        return "sample", SAMPLE_PATH, _sample_detail(auto=False)
    if source == "auto" and dataset == "fashion_mnist" and sources.has_idx_files(DEBIAN_FASHION_DIR):
        return "debian", DEBIAN_FASHION_DIR, f"Debian dataset-fashion-mnist: {DEBIAN_FASHION_DIR}"
    cache = sources.keras_cache(dataset)
    if cache is not None:
        return "keras-cache", cache, f"Keras cache: {sources.pretty_path(cache)}"
    if sources.probe_download_host():
        target = sources.keras_home() / "datasets" / ("mnist.npz" if dataset == "mnist" else "fashion-mnist")
        return "keras-download", target, f"Keras download: {sources.PROBE_HOST} -> {sources.pretty_path(target)}"
    if source == "keras":
        raise DataError(
            f"{sources.pretty_path(sources.keras_home() / 'datasets')}: no Keras cache of {dataset} and "
            f"{sources.PROBE_HOST}:{sources.PROBE_PORT} did not answer within {sources.PROBE_TIMEOUT:g} s "
            "(offline?); choose another data source"
        )
    if dataset == "fashion_mnist":
        raise DataError(_no_fashion_message())
    return "sample", SAMPLE_PATH, _sample_detail(auto=True)


def describe_source(dataset: str = "mnist", source: str = "auto", path: str | None = None) -> str:
    """Which source load_raw() would use, without reading any arrays. At most ~PROBE_TIMEOUT seconds.

    Raises DataError like load_raw() when a forced source is unavailable.
    """
    return _plan(dataset, source, path)[2]


# --------------------------------------------------------------------------- loading


def _downloaded(dataset: str, source: str) -> RawData:
    """The Keras download; in auto mode, MNIST falls back to the bundled sample if it fails."""
    try:
        arrays = sources.keras_download(dataset)
    except Exception as exc:  # noqa: BLE001 - network errors come in many types
        if source == "keras" or dataset == "fashion_mnist":
            hint = "" if source == "keras" else "; " + _no_fashion_message()
            raise DataError(f"{sources.PROBE_HOST}: Keras download of {dataset} failed ({exc}){hint}") from None
        x_train, y_train, x_test, y_test = _read_sample()
        return RawData(x_train, y_train, x_test, y_test, "sample", _sample_detail(auto=True))
    cache = sources.keras_cache(dataset)
    detail = f"Keras download: {sources.PROBE_HOST}" + (f" -> {sources.pretty_path(cache)}" if cache else "")
    x_train, y_train, x_test, y_test = _checked(arrays, f"Keras download of {dataset}", dataset)
    return RawData(x_train, y_train, x_test, y_test, "keras", detail)


def load_raw(dataset: str = "mnist", source: str = "auto", path: str | None = None) -> RawData:
    """Find and check the data (sources tried in _plan's order); images uint8 (N, 28, 28), labels int32."""
    kind, where, detail = _plan(dataset, source, path)
    if kind == "sample":
        x_train, y_train, x_test, y_test = _read_sample()
        return RawData(x_train, y_train, x_test, y_test, "sample", detail)
    if kind == "keras-download":
        return _downloaded(dataset, source)
    assert where is not None
    arrays = sources.read_path(where)
    x_train, y_train, x_test, y_test = _checked(arrays, str(where), dataset)
    label = {"file": "file", "debian": "debian", "keras-cache": "keras"}[kind]
    return RawData(x_train, y_train, x_test, y_test, label, detail)


def _split(y: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, taken) with `size` taken, stratified by y when possible, reproducible by seed.

    Falls back to a plain seeded shuffle when stratification is impossible (a class with a single
    member, or fewer taken/kept items than classes present).
    """
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    try:
        kept, taken = train_test_split(index, test_size=size, stratify=y, random_state=seed)
    except ValueError:
        kept, taken = train_test_split(index, test_size=size, random_state=seed)
    return np.sort(kept), np.sort(taken)


def load_dataset(config: "TrainConfig", *, lean: bool = False) -> Dataset:
    """load_raw + stratified training subset + stratified validation split + prepare_images.

    lean: the training and validation images as padded uint8 grey levels (pad_pixels: make_train_dataset's own
    form, without the float copy) and no test set; what the learning-rate finder trains on."""
    raw = load_raw(config.dataset, config.data_source, config.data_path)
    prepare = pad_pixels if lean else prepare_images
    class_names = CLASS_NAMES[config.dataset]
    x, y = raw.x_train, raw.y_train
    index = np.arange(len(y))
    if config.train_subset:
        available = len(y)
        if config.train_subset > available:
            raise DataError(
                f"train_subset={config.train_subset} is larger than the {available:,} training images "
                f"this source holds ({raw.source_detail}); use 0 for all or at most {available}"
            )
        if config.train_subset < available:
            _, keep = _split(y, config.train_subset, config.seed)
            x, y, index = x[keep], y[keep], index[keep]
    if config.validation_split > 0:
        n_val = int(round(len(y) * config.validation_split))
        if n_val == 0 or n_val >= len(y):
            raise DataError(
                f"validation_split={config.validation_split} of {len(y)} training images leaves "
                f"{n_val} for validation; use a larger train_subset or another split"
            )
        train_idx, val_idx = _split(y, n_val, config.seed)
        x_val, y_val = prepare(x[val_idx]), y[val_idx].astype(np.int32)
        x, y, index = x[train_idx], y[train_idx], index[train_idx]
    else:
        x_val = np.zeros((0, PADDED_SIZE, PADDED_SIZE, 1), dtype=np.float32)
        y_val = np.zeros((0,), dtype=np.int32)
    x, y, index, excluded = _exclude(x, y, index, config.exclude_train)
    return Dataset(
        name=config.dataset,
        class_names=class_names,
        x_train=prepare(x),
        y_train=np.array(y, dtype=np.int32),
        x_val=x_val,
        y_val=y_val,
        x_test=prepare_images(raw.x_test[:0] if lean else raw.x_test),
        y_test=np.array(raw.y_test[:0] if lean else raw.y_test, dtype=np.int32),
        source=raw.source,
        source_detail=raw.source_detail,
        train_index=index,
        excluded=excluded,
    )


def _exclude(x: np.ndarray, y: np.ndarray, index: np.ndarray, excluded: tuple[int, ...]):
    """Leave out the training images whose source index is in `excluded` (after the subset and the validation
    split, so the run keeps the same validation images and the same other training images)."""
    if not excluded:
        return x, y, index, 0
    keep = ~np.isin(index, np.asarray(excluded, np.int64))
    if not keep.any():
        raise DataError(f"exclude_train leaves no training image (all {len(y)} are excluded)")
    return x[keep], y[keep], index[keep], int(np.count_nonzero(~keep))


def load_test_set(
    dataset: str = "mnist", source: str = "auto", path: str | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """(x_test float32 (N, 32, 32, 1), y_test int32, class_names, source_detail)."""
    raw = load_raw(dataset, source, path)
    return prepare_images(raw.x_test), np.array(raw.y_test, dtype=np.int32), CLASS_NAMES[dataset], raw.source_detail
