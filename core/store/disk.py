"""Safe writes and process liveness for the run store: atomic files, run ids and names, who writes a run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_NAME_LENGTH = 100


class StoreError(ValueError):
    """A problem with the run store that a user can read: names the run or path and what is wrong."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_run_id(run_id: Any) -> str:
    """Run ids are folder names inside the store: no separators, no '..', no NUL, at most 100 chars."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        shown = repr(run_id)[:60]
        raise StoreError(
            f"run id {shown} is not valid; allowed: 1-100 characters of letters, digits, '.', '_' "
            f"and '-', not starting with '.' and without '..'"
        )
    return run_id


def check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise StoreError(f"run name {name!r} must be text")
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in cleaned):
        raise StoreError(
            f"run name {cleaned[:40]!r}{'...' if len(cleaned) > 40 else ''} is not valid; allowed: "
            f"1-{MAX_NAME_LENGTH} printable characters"
        )
    return cleaned


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=json_default) + "\n").encode())


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def process_started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, /proc's field 22), or None where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def owner() -> dict:
    """Who writes a run: this process, with its start time so that a reused pid is not taken for it."""
    return {"pid": os.getpid(), "pid_started": process_started(os.getpid()), "host": socket.gethostname()}


def pid_alive(pid: Any, started: str | None = None) -> bool:
    """True if `pid` runs, and (when `started` is known) is the same process that recorded it, not a reuse."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = process_started(pid) if started else None
    return now is None or now == started


# Temporary files of atomic writes: ".<name>.<pid>.<hex>.tmp" and ".model.<pid>.<hex>.keras".
TEMP_PATTERN = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.(tmp|keras)$")


def remove_dead_temp_files(*folders: Path) -> None:
    """A process killed during an atomic write leaves its temporary file; the target was never touched."""
    for directory in folders:
        with contextlib.suppress(OSError):
            for name in os.listdir(directory):  # names, not Paths: every run folder at each server start
                match = TEMP_PATTERN.match(name)
                if match and not pid_alive(int(match.group(1))):
                    with contextlib.suppress(OSError):
                        (directory / name).unlink()


# What a LeNet-5 .keras archive can be: metadata, config and weights (the shipped runs unpack to 0.8 MB at most,
# optimizer state included). Anything declaring more is refused before a byte of it is decompressed.
MAX_ARCHIVE_ENTRIES = 16
MAX_ARCHIVE_UNPACKED = 16 * 2**20


def archive_problem(path: Path, name: str) -> str | None:
    """Why the zip archive at `path` is not something a LeNet can be, judged from its declared sizes (its
    central directory) before anything is read; None when it may be one."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        return f"{name} is corrupt ({exc})"
    unpacked = sum(entry.file_size for entry in entries)
    if len(entries) > MAX_ARCHIVE_ENTRIES or unpacked > MAX_ARCHIVE_UNPACKED:
        return (f"{name} declares {len(entries)} files and {unpacked / 2**20:,.1f} MB unpacked; a LeNet-5 model is "
                f"at most {MAX_ARCHIVE_ENTRIES} files and {MAX_ARCHIVE_UNPACKED // 2**20} MB: refused without "
                f"unpacking it")
    return None
