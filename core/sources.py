"""Read and check MNIST from where it may be: a Keras-layout .npz, a folder of IDX files, the Keras cache or download."""

from __future__ import annotations

import gzip
import os
import socket
import ssl
import threading
import zipfile
from pathlib import Path

import numpy as np

KEYS = ("x_train", "y_train", "x_test", "y_test")
# (images, labels) file stems of the original IDX distribution.
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
IMAGE_SIZE = 28  # MNIST and Fashion-MNIST store 28x28 uint8 images

# The host Keras downloads from. Probed (TCP connect + TLS handshake) before any download.
PROBE_HOST = "storage.googleapis.com"
PROBE_PORT = 443
PROBE_TIMEOUT = 2.0  # seconds; bounds name resolution too


class DataError(ValueError):
    """The data could not be found or is not what LeNet Lab expects. The message names the path."""


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


def check_arrays(arrays: dict[str, np.ndarray], where: str, n_classes: int) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) as uint8 images and int32 labels; DataError naming `where` if bad."""
    x_train = _check_images(arrays["x_train"], where, "x_train")
    y_train = _check_labels(arrays["y_train"], len(x_train), n_classes, where, "y_train")
    x_test = _check_images(arrays["x_test"], where, "x_test")
    y_test = _check_labels(arrays["y_test"], len(x_test), n_classes, where, "y_test")
    return x_train, y_train, x_test, y_test


# --------------------------------------------------------------------------- .npz


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of a Keras-layout .npz (KEYS), unchecked."""
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


def npz_image_count(path: Path) -> int:
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


# --------------------------------------------------------------------------- IDX


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


def has_idx_files(folder: Path) -> bool:
    """True if the folder holds all four IDX files (plain or .gz)."""
    return folder.is_dir() and all(_find_idx(folder, stem) for pair in IDX_STEMS.values() for stem in pair)


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


def read_path(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of a .npz file or of a folder of IDX files, keyed like KEYS, unchecked."""
    if path.is_dir():
        return _read_idx_folder(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; pass a Keras-layout .npz or a folder of IDX files")
    return read_npz(path)


# --------------------------------------------------------------------------- keras


def keras_home() -> Path:
    """Where Keras keeps its cache, resolved the way keras/src/backend/config.py does."""
    if "KERAS_HOME" in os.environ:
        return Path(os.path.expanduser(os.environ["KERAS_HOME"]))
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return Path(base) / ".keras"


def keras_cache(dataset: str) -> Path | None:
    """The cached file (mnist) or folder (fashion) if Keras already downloaded it, else None."""
    homes = [keras_home()]
    if not os.access(homes[0], os.W_OK):  # get_file() then writes under /tmp/.keras
        homes.append(Path("/tmp/.keras"))
    for home in homes:
        if dataset == "mnist":
            candidate = home / "datasets" / "mnist.npz"
            if candidate.is_file():
                return candidate
        else:
            folder = home / "datasets" / "fashion-mnist"
            if has_idx_files(folder):
                return folder
    return None


def probe_download_host() -> bool:
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


def keras_download(dataset: str) -> dict[str, np.ndarray]:
    """Call keras.datasets.<dataset>.load_data() (downloads into the Keras cache)."""
    import keras  # heavy: imported only when a download is really attempted

    module = keras.datasets.mnist if dataset == "mnist" else keras.datasets.fashion_mnist
    (x_train, y_train), (x_test, y_test) = module.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def pretty_path(path: Path) -> str:
    """The path with the home folder written as ~."""
    home = os.path.expanduser("~")
    text = str(path)
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text
