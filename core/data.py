"""MNIST and Fashion-MNIST: find the data, check it, split it, and shape it for LeNet-5.

Sources, tried in this order when ``source="auto"``:

1. a file the user names: ``path`` (``TrainConfig.data_path``) or, if that is None, the environment
   variable ``LENET_DATA`` (``LENET_FASHION_DATA`` for Fashion-MNIST). Either a Keras-layout ``.npz``
   (keys x_train, y_train, x_test, y_test; uint8 28x28 images) or a folder holding the four original
   IDX files, gzipped or not. A path that is named but broken raises DataError; it is never skipped.
2. Fashion-MNIST only: Debian's package ``dataset-fashion-mnist`` (IDX files in DEBIAN_FASHION_DIR).
3. Keras: its cache (``$KERAS_HOME`` or ``~/.keras``, then ``datasets/mnist.npz``) is read directly
   with numpy; without a cache, the download host is probed for at most PROBE_TIMEOUT seconds and
   only if it answers is ``keras.datasets.<name>.load_data()`` called, so an offline machine falls
   through in a few seconds instead of waiting for a network timeout.
4. MNIST only: the real sample bundled in SAMPLE_PATH (the full test set + a stratified part of the
   training set).

Images come out zero-padded from 28x28 to 32x32, scaled to [0, 1], float32, shape (N, 32, 32, 1).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import socket
import ssl
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from core.config import TrainConfig

SAMPLE_PATH = Path(__file__).resolve().parent / "assets" / "mnist_sample.npz"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VARS = {"mnist": "LENET_DATA", "fashion_mnist": "LENET_FASHION_DATA"}

# The host Keras downloads from. Probed (TCP connect + TLS handshake) before any download.
PROBE_HOST = "storage.googleapis.com"
PROBE_PORT = 443
PROBE_TIMEOUT = 2.0  # seconds; bounds name resolution too

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}
SOURCES = ("auto", "file", "keras", "sample")
KEYS = ("x_train", "y_train", "x_test", "y_test")
# (images, labels) file stems of the original IDX distribution.
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
IMAGE_SIZE = 28
PADDED_SIZE = 32
PAD = (PADDED_SIZE - IMAGE_SIZE) // 2  # LeNet's 32x32 input is the 28x28 digit with 2 zero pixels each side


class DataError(ValueError):
    """The data could not be found or is not what LeNet Lab expects. The message names the path."""


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


def unpad_images(x: np.ndarray) -> np.ndarray:
    """The inverse of prepare_images: float32 (N, 32, 32, 1) in [0, 1] -> uint8 (N, 28, 28)."""
    return np.round(np.asarray(x)[:, PAD:-PAD, PAD:-PAD, 0] * 255).astype(np.uint8)


# --------------------------------------------------------------------------- checking


def _check_images(x: np.ndarray, where: str, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{where}: {what} has shape {x.shape}; expected (N, 28, 28) images")
    if x.shape[0] == 0:
        raise DataError(f"{where}: {what} holds no images")
    if x.dtype == np.uint8:
        return x
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)) or x.dtype == np.bool_:
        raise DataError(f"{where}: {what} has dtype {x.dtype}; expected uint8 grey levels 0-255")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataError(f"{where}: {what} contains NaN or infinite pixel values; expected 0-255")
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > 255:
        raise DataError(f"{where}: {what} has pixel values from {lo:g} to {hi:g}; expected 0-255")
    if np.issubdtype(x.dtype, np.floating) and not np.array_equal(x, np.rint(x)):
        raise DataError(
            f"{where}: {what} has non-integer pixel values (max {hi:g}); expected uint8 grey levels 0-255, "
            "not images already scaled to [0, 1]"
        )
    return x.astype(np.uint8)


def _check_labels(y: np.ndarray, n_images: int, n_classes: int, where: str, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: {what} has shape {y.shape}; expected one label per image, shape (N,)")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)) or y.dtype == np.bool_:
        raise DataError(f"{where}: {what} has dtype {y.dtype}; expected integer class labels")
    if y.shape[0] != n_images:
        raise DataError(f"{where}: {y.shape[0]} labels in {what} but {n_images} images; the counts must match")
    if y.size and (
        not np.isfinite(y).all() or y.min() < 0 or y.max() >= n_classes or not np.array_equal(y, np.rint(y))
    ):
        raise DataError(f"{where}: {what} has labels outside 0-{n_classes - 1}")
    return y.astype(np.int32)


def _checked(arrays: dict[str, np.ndarray], where: str, dataset: str) -> tuple[np.ndarray, ...]:
    n_classes = len(CLASS_NAMES[dataset])
    x_train = _check_images(arrays["x_train"], where, "x_train")
    y_train = _check_labels(arrays["y_train"], len(x_train), n_classes, where, "y_train")
    x_test = _check_images(arrays["x_test"], where, "x_test")
    y_test = _check_labels(arrays["y_test"], len(x_test), n_classes, where, "y_test")
    return x_train, y_train, x_test, y_test


# --------------------------------------------------------------------------- readers


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .npz archive; pass a Keras-layout .npz or a folder of IDX files")
    try:
        with np.load(path, allow_pickle=False) as f:
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise DataError(f"{path}: is a single .npy array, not a .npz with x_train, y_train, x_test, y_test")
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DataError(
                    f"{path}: missing key(s) {', '.join(missing)}; a Keras-layout .npz needs "
                    f"{', '.join(KEYS)} (found: {', '.join(f.files) or 'none'})"
                )
            return {k: f[k] for k in KEYS}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None


def _read_idx(path: Path, magic: int) -> np.ndarray:
    kind = "image" if magic == IDX_IMAGES_MAGIC else "label"
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    ndim = 3 if magic == IDX_IMAGES_MAGIC else 1
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: too short for an IDX {kind} file ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: IDX magic number {found}, expected {magic} for an {kind} file")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: header announces {'x'.join(map(str, dims))} = {expected} bytes of data "
            f"but the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    names = [stem, stem.replace("-idx", ".idx")]
    for name in names:
        for candidate in (folder / name, folder / (name + ".gz")):
            if candidate.is_file():
                return candidate
    return None


def _idx_files(folder: Path) -> dict[str, Path]:
    """The four IDX files of a folder, keyed like the .npz; DataError if any is missing."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    found: dict[str, Path | None] = {}
    for split, (images, labels) in IDX_STEMS.items():
        found[f"x_{split}"] = _find_idx(folder, images)
        found[f"y_{split}"] = _find_idx(folder, labels)
    if not any(found.values()):
        raise DataError(
            f"{folder}: no IDX files found; expected train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (optionally .gz), or pass a .npz file"
        )
    stems = {f"x_{s}": IDX_STEMS[s][0] for s in IDX_STEMS} | {f"y_{s}": IDX_STEMS[s][1] for s in IDX_STEMS}
    missing = [stems[k] for k, v in found.items() if v is None]
    if missing:
        raise DataError(f"{folder}: missing IDX file(s) {', '.join(missing)} (plain or .gz)")
    return found  # type: ignore[return-value]


def _read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    files = _idx_files(folder)
    arrays = {}
    for key, path in files.items():
        arrays[key] = _read_idx(path, IDX_IMAGES_MAGIC if key.startswith("x") else IDX_LABELS_MAGIC)
    for split in IDX_STEMS:
        n_x, n_y = len(arrays[f"x_{split}"]), len(arrays[f"y_{split}"])
        if n_x != n_y:
            raise DataError(
                f"{folder}: {files[f'x_{split}'].name} holds {n_x} images but "
                f"{files[f'y_{split}'].name} holds {n_y} labels; the counts must match"
            )
    return arrays


def _read_path(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        return _read_idx_folder(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; pass a Keras-layout .npz or a folder of IDX files")
    return _read_npz(path)


@functools.lru_cache(maxsize=2)
def _read_sample_cached(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, ...]:
    arrays = _checked(_read_npz(Path(path)), path, "mnist")
    for a in arrays:
        a.setflags(write=False)  # shared between callers: nobody may change it in place
    return arrays


def _read_sample() -> tuple[np.ndarray, ...]:
    if not SAMPLE_PATH.is_file():
        raise DataError(f"{SAMPLE_PATH}: the bundled MNIST sample is missing; rebuild it with scripts/build_sample.py")
    st = SAMPLE_PATH.stat()
    return _read_sample_cached(str(SAMPLE_PATH), st.st_mtime_ns, st.st_size)


def _npz_image_count(path: Path) -> int:
    """Images (train + test) in a .npz, read from the array headers only."""
    total = 0
    with zipfile.ZipFile(path) as zf:
        for key in ("x_train", "x_test"):
            with zf.open(key + ".npy") as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape = np.lib.format.read_array_header_1_0(fh)[0]
                else:
                    shape = np.lib.format.read_array_header_2_0(fh)[0]
                total += int(shape[0])
    return total


# --------------------------------------------------------------------------- keras


def _keras_home() -> Path:
    """Where Keras keeps its cache, resolved the way keras/src/backend/config.py does."""
    if "KERAS_HOME" in os.environ:
        return Path(os.path.expanduser(os.environ["KERAS_HOME"]))
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return Path(base) / ".keras"


def _keras_cache(dataset: str) -> Path | None:
    """The cached file (mnist) or folder (fashion) if Keras already downloaded it, else None."""
    homes = [_keras_home()]
    if not os.access(homes[0], os.W_OK):  # get_file() then writes under /tmp/.keras
        homes.append(Path("/tmp/.keras"))
    for home in homes:
        if dataset == "mnist":
            candidate = home / "datasets" / "mnist.npz"
            if candidate.is_file():
                return candidate
        else:
            folder = home / "datasets" / "fashion-mnist"
            if folder.is_dir() and all(_find_idx(folder, s) for pair in IDX_STEMS.values() for s in pair):
                return folder
    return None


def _probe_download_host() -> bool:
    """True if PROBE_HOST:PROBE_PORT completes a TLS handshake within PROBE_TIMEOUT seconds.

    Runs in a daemon thread so that a slow name lookup cannot hold the caller past the timeout, and
    checks the certificate so that an intercepting proxy or captive portal does not count as online.
    """
    host, port, timeout = PROBE_HOST, PROBE_PORT, float(PROBE_TIMEOUT)
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
                    answer.append(True)
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            answer.append(False)

    thread = threading.Thread(target=probe, name="lenet-data-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


def _keras_download(dataset: str) -> dict[str, np.ndarray]:
    """Call keras.datasets.<dataset>.load_data() (downloads into the Keras cache)."""
    import keras  # heavy: imported only when a download is really attempted

    module = keras.datasets.mnist if dataset == "mnist" else keras.datasets.fashion_mnist
    (x_train, y_train), (x_test, y_test) = module.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _pretty(path: Path) -> str:
    home = os.path.expanduser("~")
    text = str(path)
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text


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


def _sample_detail(auto: bool) -> str:
    try:
        n = _npz_image_count(SAMPLE_PATH)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{SAMPLE_PATH}: the bundled MNIST sample is missing or damaged ({exc}); "
                        "rebuild it with scripts/build_sample.py") from None
    return f"{'Offline' if auto else 'Sample'}: using the bundled sample of {n:,} images"


def _no_fashion_message() -> str:
    return (
        f"Fashion-MNIST not found: {DEBIAN_FASHION_DIR} does not hold its IDX files, there is no Keras "
        f"cache and {PROBE_HOST} cannot be reached; run `apt-get install dataset-fashion-mnist` "
        f"or pass --data (a .npz or a folder of IDX files)"
    )


def _plan(dataset: str, source: str, path: str | os.PathLike | None) -> tuple[str, Path | None, str]:
    """Decide, without reading arrays, which source to use: (kind, location, detail).

    kind is one of file, debian, keras-cache, keras-download, sample. Raises DataError when a forced
    source is unavailable, or when nothing is available in auto mode.
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
    if source == "auto" and dataset == "fashion_mnist":
        if DEBIAN_FASHION_DIR.is_dir() and all(_find_idx(DEBIAN_FASHION_DIR, s) for p in IDX_STEMS.values() for s in p):
            return "debian", DEBIAN_FASHION_DIR, f"Debian dataset-fashion-mnist: {DEBIAN_FASHION_DIR}"
    cache = _keras_cache(dataset)
    if cache is not None:
        return "keras-cache", cache, f"Keras cache: {_pretty(cache)}"
    if _probe_download_host():
        target = _keras_home() / "datasets" / ("mnist.npz" if dataset == "mnist" else "fashion-mnist")
        return "keras-download", target, f"Keras download: {PROBE_HOST} -> {_pretty(target)}"
    if source == "keras":
        raise DataError(
            f"{_pretty(_keras_home() / 'datasets')}: no Keras cache of {dataset} and {PROBE_HOST}:{PROBE_PORT} "
            f"did not answer within {PROBE_TIMEOUT:g} s (offline?); choose another data source"
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


def load_raw(dataset: str = "mnist", source: str = "auto", path: str | None = None) -> RawData:
    """Find and check the data; images uint8 (N, 28, 28), labels int32. See the module docstring."""
    kind, where, detail = _plan(dataset, source, path)
    if kind == "sample":
        x_train, y_train, x_test, y_test = _read_sample()
        return RawData(x_train, y_train, x_test, y_test, "sample", detail)
    if kind == "keras-download":
        try:
            arrays = _keras_download(dataset)
        except Exception as exc:  # noqa: BLE001 - network errors come in many types
            if source == "keras" or dataset == "fashion_mnist":
                hint = "" if source == "keras" else "; " + _no_fashion_message()
                raise DataError(f"{PROBE_HOST}: Keras download of {dataset} failed ({exc}){hint}") from None
            x_train, y_train, x_test, y_test = _read_sample()
            return RawData(x_train, y_train, x_test, y_test, "sample", _sample_detail(auto=True))
        cache = _keras_cache(dataset)
        detail = f"Keras download: {PROBE_HOST}" + (f" -> {_pretty(cache)}" if cache else "")
        x_train, y_train, x_test, y_test = _checked(arrays, f"Keras download of {dataset}", dataset)
        return RawData(x_train, y_train, x_test, y_test, "keras", detail)
    assert where is not None
    arrays = _read_path(where)
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


def load_dataset(config: "TrainConfig") -> Dataset:
    """load_raw + stratified training subset + stratified validation split + prepare_images."""
    raw = load_raw(config.dataset, config.data_source, config.data_path)
    class_names = CLASS_NAMES[config.dataset]
    x, y = raw.x_train, raw.y_train
    if config.train_subset:
        available = len(y)
        if config.train_subset > available:
            raise DataError(
                f"train_subset={config.train_subset} is larger than the {available:,} training images "
                f"this source holds ({raw.source_detail}); use 0 for all or at most {available}"
            )
        if config.train_subset < available:
            _, keep = _split(y, config.train_subset, config.seed)
            x, y = x[keep], y[keep]
    if config.validation_split > 0:
        n_val = int(round(len(y) * config.validation_split))
        if n_val == 0 or n_val >= len(y):
            raise DataError(
                f"validation_split={config.validation_split} of {len(y)} training images leaves "
                f"{n_val} for validation; use a larger train_subset or another split"
            )
        train_idx, val_idx = _split(y, n_val, config.seed)
        x_val, y_val = prepare_images(x[val_idx]), y[val_idx].astype(np.int32)
        x, y = x[train_idx], y[train_idx]
    else:
        x_val = np.zeros((0, PADDED_SIZE, PADDED_SIZE, 1), dtype=np.float32)
        y_val = np.zeros((0,), dtype=np.int32)
    return Dataset(
        name=config.dataset,
        class_names=class_names,
        x_train=prepare_images(x),
        y_train=np.array(y, dtype=np.int32),
        x_val=x_val,
        y_val=y_val,
        x_test=prepare_images(raw.x_test),
        y_test=np.array(raw.y_test, dtype=np.int32),
        source=raw.source,
        source_detail=raw.source_detail,
    )


def load_test_set(
    dataset: str = "mnist", source: str = "auto", path: str | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """(x_test float32 (N, 32, 32, 1), y_test int32, class_names, source_detail)."""
    raw = load_raw(dataset, source, path)
    return prepare_images(raw.x_test), np.array(raw.y_test, dtype=np.int32), CLASS_NAMES[dataset], raw.source_detail
