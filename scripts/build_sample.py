#!/usr/bin/env python
"""Rebuild core/assets/mnist_sample.npz, the real MNIST sample LeNet Lab falls back to offline.

The sample is the complete MNIST test set (10,000 images, original order) plus a class-balanced
random part of the training set (--train-per-class images of each digit, kept in original order),
in the Keras .npz layout (x_train, y_train, x_test, y_test, uint8) plus provenance keys
source_sha256 and train_index (positions in the full training set).

The output is byte-for-byte reproducible: a fixed seed picks the images, and the zip is written
with fixed timestamps and deflate level 9 (np.load reads it like any np.savez_compressed file).

    python scripts/build_sample.py --source PATH/TO/mnist.npz [--out core/assets/mnist_sample.npz]
                                   [--train-per-class 1900] [--max-bytes 4800000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from core.data import SAMPLE_PATH, DataError, load_raw

ROOT = Path(__file__).resolve().parents[1]

SEED = 20_240_501  # fixed: the same source always gives the same sample
DEFAULT_TRAIN_PER_CLASS = 1900  # largest multiple of 100 that keeps the file under 4.8 MB (4,736,128 bytes)
DEFAULT_MAX_BYTES = 4_800_000
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def pick_train_indices(y_train: np.ndarray, per_class: int, seed: int = SEED) -> np.ndarray:
    """`per_class` random indices of each class, sorted so the sample keeps MNIST's order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(10):
        members = np.flatnonzero(y_train == label)
        if per_class > len(members):
            raise ValueError(f"--train-per-class={per_class} but class {label} has only {len(members)} images")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps so rebuilding gives identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    tmp.replace(path)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="a full MNIST .npz in the Keras layout (60,000 + 10,000)")
    parser.add_argument("--out", default=str(SAMPLE_PATH), help=f"output .npz (default: {SAMPLE_PATH})")
    parser.add_argument("--train-per-class", type=int, default=DEFAULT_TRAIN_PER_CLASS,
                        help=f"training images of each digit (default: {DEFAULT_TRAIN_PER_CLASS})")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help=f"fail if the output is larger (default: {DEFAULT_MAX_BYTES:,}; 0 = no limit)")
    args = parser.parse_args(argv)

    source = Path(args.source).expanduser()
    try:
        raw = load_raw("mnist", source="file", path=str(source))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if raw.x_train.shape[0] != 60_000 or raw.x_test.shape[0] != 10_000:
        print(f"error: {source}: expected the full MNIST set (60,000 + 10,000 images), found "
              f"{raw.x_train.shape[0]:,} + {raw.x_test.shape[0]:,}", file=sys.stderr)
        return 2
    if args.train_per_class < 1:
        print("error: --train-per-class must be at least 1", file=sys.stderr)
        return 2

    index = pick_train_indices(raw.y_train, args.train_per_class)
    out = Path(args.out).expanduser()
    write_npz(out, {
        "x_train": raw.x_train[index].astype(np.uint8),
        "y_train": raw.y_train[index].astype(np.uint8),
        "x_test": raw.x_test.astype(np.uint8),
        "y_test": raw.y_test.astype(np.uint8),
        "train_index": index.astype(np.uint16),
        "source_sha256": np.array(sha256(source)),
    })
    size = out.stat().st_size
    print(f"{out}: {len(index):,} training + {len(raw.x_test):,} test images, "
          f"{size:,} bytes, sha256 {sha256(out)}")
    if args.max_bytes and size > args.max_bytes:
        print(f"error: {out} is {size:,} bytes, over --max-bytes={args.max_bytes:,}; "
              "lower --train-per-class", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
