"""Files written outside the run store (reports, exports): checked first, written atomically, never overwritten
unless asked. Every refusal is an OutputError, one line that names the path."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from core.store.disk import atomic_write_bytes


class OutputError(ValueError):
    """An output path that cannot or may not be written; the message names it and says why."""


def check_output(path: str | os.PathLike, force: bool = False, folder: bool = False) -> Path:
    """The path, once it is known that it can be written: its folder exists and is writable, and it is not an
    existing file (or folder, for `folder`) unless `force`."""
    path = Path(path).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() or path.is_symlink():
        if path.is_dir() != folder:
            kind = "a folder" if path.is_dir() else "a file"
            raise OutputError(f"{path} is {kind}; give the path of {'a folder' if folder else 'a file'} to write")
        if not force:
            raise OutputError(f"{path} already exists; pass --force to overwrite it")
    if not parent.exists():
        raise OutputError(f"{path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is not a folder")
    try:  # os.access says yes to root even on a read-only file system: try it
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise OutputError(f"{path}: the folder {parent} is not writable ({exc.strerror or exc})") from None
    return path


def write_file(path: str | os.PathLike, data: bytes, force: bool = False) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it into place."""
    path = check_output(path, force)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    return path


def write_folder(path: str | os.PathLike, fill: Callable[[Path], None], force: bool = False) -> Path:
    """fill(a temporary folder beside `path`), then rename it to `path` (replacing the old one with `force`)."""
    path = check_output(path, force, folder=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.mkdir()
        fill(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return path
