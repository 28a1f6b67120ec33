"""Reading a run's metrics.jsonl: every record checked, and only what was appended since the last read parsed.

A live run appends a line every quarter second; a page that follows it rereads the file each second. The
reader keeps, per file, the records parsed so far and the offset after the last whole line, and next time
parses only the new bytes (a run of 200,000 records is parsed once, not once per second). If the file
shrank, was replaced or had its already-read bytes changed, it is read again from the start.

A record that is valid JSON but not a metrics record a page can draw (`"epoch": "x"`, `"epoch": 1e308`,
`"loss": "high"`) is skipped and reported as a problem of the run, as a line that is not JSON is.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.store.disk import StoreError
from core.store.names import METRICS_FILE

if TYPE_CHECKING:  # pragma: no cover - pandas loads on the first metrics read, not with the store (`list` is quicker)
    import pandas as pd

MAX_EPOCH = 100_000
COUNTS = ("batch", "step", "batches", "steps_done")  # whole numbers >= 0 where present
FLAGS = ("partial",)
CACHED_FILES = 64  # parsed files kept in memory (a page follows a few runs; the Runs overlay ticks a few more)
TAIL_CHECK = 64  # bytes before the read offset compared on each read: an edited file is read again


def record_problem(record) -> str | None:
    """Why `record` (one parsed batch or epoch line) cannot be used, or None when a page can draw it."""
    if not isinstance(record, dict):
        return "is not a record (a JSON object)"
    epoch = record.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
        return f"has epoch {str(epoch)[:20]!r}; allowed: a whole number from 0 to {MAX_EPOCH:,}"
    for key, value in record.items():
        if key in ("type", "epoch") or value is None:
            continue
        if key in FLAGS:
            if not isinstance(value, bool):
                return f"has {key} {str(value)[:20]!r}; allowed: true or false"
        elif key in COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return f"has {key} {str(value)[:20]!r}; allowed: a whole number from 0"
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"has {key} {str(value)[:20]!r}; allowed: a number or null"
        elif isinstance(value, float) and math.isinf(value):
            return f"has {key} {value}; allowed: a finite number, NaN or null"
    return None


def _grown(frame, rows: list[dict]):
    """`frame` with `rows` (records of one type) appended; an empty frame with an epoch column to start."""
    import pandas as pd

    added = pd.DataFrame.from_records(rows, exclude=["type"]) if rows else None
    pieces = [piece for piece in (frame, added) if piece is not None and not piece.empty]
    if not pieces:
        return pd.DataFrame(columns=["epoch"])
    return pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]


@dataclass
class _Parsed:
    identity: tuple  # (device, inode) of the file read
    offset: int = 0  # bytes parsed: up to and including the last newline
    tail: bytes = b""  # the TAIL_CHECK bytes before offset, as read
    lines: int = 0
    records: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    framed: int = 0  # records already in the frames below
    frames: tuple | None = None  # (batch rows, epoch rows) as DataFrames, grown as records are appended


class MetricsReader:
    """Per-process, thread-safe cache of parsed metrics files (LRU of CACHED_FILES)."""

    def __init__(self, capacity: int = CACHED_FILES):
        self._parsed: OrderedDict[str, _Parsed] = OrderedDict()
        self._lock = threading.Lock()
        self._frames_lock = threading.Lock()
        self.capacity = capacity

    def read(self, path: Path, file_name: str) -> tuple[list[dict], list[str]]:
        """(records, problems) of the metrics file at `path`; raises OSError as opening it does."""
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            identity = (stat.st_dev, stat.st_ino)
            key = str(path)
            with self._lock:
                parsed = self._parsed.pop(key, None)
            if parsed is None or not self._still_valid(parsed, identity, stat.st_size, handle):
                parsed = _Parsed(identity)
            handle.seek(parsed.offset)
            new = handle.read(max(0, stat.st_size - parsed.offset))
        self._parse(parsed, new, file_name)
        with self._lock:
            self._parsed[key] = parsed
            while len(self._parsed) > self.capacity:
                self._parsed.popitem(last=False)
        records = list(parsed.records)
        problems = list(parsed.problems)
        if parsed.offset < stat.st_size:
            problems.append(f"{file_name} ends with a truncated line")
        return records, problems

    def frames(self, path: Path, file_name: str):
        """(batch rows, epoch rows) as DataFrames, built only from the records appended since the last call (a
        live run of 200,000 records gets a frame of its few new rows each second, not one of all of them)."""
        self.read(path, file_name)
        with self._lock:
            parsed = self._parsed.get(str(path))
        if parsed is None:  # pushed out of the cache by another thread's reads: build it whole
            parsed = _Parsed(())
            parsed.records = self.read(path, file_name)[0]
        with self._frames_lock:  # two sessions following one run must not both append the same rows
            new = parsed.records[parsed.framed:]
            if new or parsed.frames is None:
                parsed.frames = tuple(_grown(parsed.frames[n] if parsed.frames else None,
                                             [r for r in new if r.get("type") == kind])
                                      for n, kind in enumerate(("batch", "epoch")))
                parsed.framed += len(new)
        batch, epoch = parsed.frames
        return batch.dropna(axis=1, how="all"), epoch.dropna(axis=1, how="all")

    @staticmethod
    def _still_valid(parsed: _Parsed, identity: tuple, size: int, handle) -> bool:
        if parsed.identity != identity or size < parsed.offset:
            return False
        start = parsed.offset - len(parsed.tail)
        handle.seek(start)
        return handle.read(len(parsed.tail)) == parsed.tail

    @staticmethod
    def _parse(parsed: _Parsed, new: bytes, file_name: str) -> None:
        end = new.rfind(b"\n") + 1  # whole lines only; a partial last line waits for the rest
        for line in new[:end].split(b"\n")[:-1]:
            parsed.lines += 1
            try:
                record = json.loads(line)
            except ValueError:
                parsed.problems.append(f"{file_name} line {parsed.lines} is not valid JSON")
                continue
            if isinstance(record, dict) and record.get("type") not in ("batch", "epoch"):
                continue  # another kind of line (a later version's): not a problem, not drawn
            problem = record_problem(record)
            if problem:
                parsed.problems.append(f"{file_name} line {parsed.lines} {problem}")
            else:
                parsed.records.append(record)
        if end:
            parsed.tail = (parsed.tail + new[:end])[-TAIL_CHECK:]
            parsed.offset += end


READER = MetricsReader()


def identity(path: Path) -> list | None:
    """(device, inode, size, modification time) of a file, None when it does not exist: what says it changed."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns]


EPOCH_MARK = b'"type": "epoch"'  # how json.dumps writes an epoch record's type (append_metrics)


def epoch_records(path: Path, file_name: str) -> tuple[list[dict], list[str]]:
    """Only the epoch records of a metrics file, found without parsing its batch lines (there are hundreds of
    batch lines per epoch): what the Runs table needs of each of 1,000 runs. A line that would be an epoch
    record only in another spelling of JSON is missed here and found by the full read of the run's pages."""
    with open(path, "rb") as handle:
        data = handle.read()
    records, problems = [], []
    for number, line in enumerate(data.split(b"\n"), 1):
        if EPOCH_MARK not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a truncated last line or damage: the listing's full check reports it
        if isinstance(record, dict) and record.get("type") == "epoch":
            problem = record_problem(record)
            if problem:
                problems.append(f"{file_name} line {number} {problem}")
            else:
                records.append(record)
    return records, problems


class EpochCache:
    """Epoch records per metrics file, re-read only when the file changes; small, so thousands are kept."""

    def __init__(self, capacity: int = 4096):
        self._cache: OrderedDict[str, tuple[list, list]] = OrderedDict()
        self._lock = threading.Lock()
        self.capacity = capacity

    def read(self, path: Path, file_name: str) -> list[dict]:
        key = f"{path}:{identity(path)}"
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return list(self._cache[key][0])
        records, problems = epoch_records(path, file_name)
        with self._lock:
            self._cache[key] = (records, problems)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return list(records)


EPOCHS = EpochCache()


@contextlib.contextmanager
def _readable(run_id: str):
    """A metrics file that exists but cannot be read, as a StoreError naming the run (no absolute path)."""
    try:
        yield
    except PermissionError:
        raise StoreError(f"run {run_id!r}: {METRICS_FILE} is not readable (permission denied)") from None
    except OSError as exc:
        raise StoreError(f"run {run_id!r}: {METRICS_FILE} cannot be read ({exc.strerror or exc})") from None


class MetricsReads:
    """RunStore's reads of metrics.jsonl (it provides _existing)."""

    def read_metrics(self, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(batch rows, epoch rows). A partial last line (a write in progress or a crash) is skipped."""
        path = self._existing(run_id) / METRICS_FILE
        with _readable(run_id):
            try:
                return READER.frames(path, METRICS_FILE)  # one incremental read, on the live Train page each second
            except FileNotFoundError:
                import pandas as pd

                return pd.DataFrame(columns=["epoch"]), pd.DataFrame(columns=["epoch"])

    def read_epoch_records(self, run_id: str) -> list[dict]:
        """The run's epoch records only (the Runs table's best validation accuracy and speed), found without
        parsing its batch records and cached per file version: cheap for every run of a large store."""
        try:
            return EPOCHS.read(self._existing(run_id) / METRICS_FILE, METRICS_FILE)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"run {run_id!r}: {METRICS_FILE} cannot be read ({exc.strerror or exc})") from None

    def _read_metric_records(self, run_id: str) -> tuple[list[dict], list[str]]:
        """(the records a page can draw, the problems of the file): see core/store/metrics.py."""
        path = self._existing(run_id) / METRICS_FILE
        with _readable(run_id):
            try:
                return READER.read(path, METRICS_FILE)
            except FileNotFoundError:
                return [], []

    def metrics_csv(self, run_id: str) -> str:
        import pandas as pd

        records, _ = self._read_metric_records(run_id)
        # convert_dtypes: batch and epoch rows share columns, and the empty cells made counts floats ("8.0")
        return pd.DataFrame.from_records(records).convert_dtypes().to_csv(index=False)

