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


@dataclass
class _Parsed:
    identity: tuple  # (device, inode) of the file read
    offset: int = 0  # bytes parsed: up to and including the last newline
    tail: bytes = b""  # the TAIL_CHECK bytes before offset, as read
    lines: int = 0
    records: list = field(default_factory=list)
    problems: list = field(default_factory=list)


class MetricsReader:
    """Per-process, thread-safe cache of parsed metrics files (LRU of CACHED_FILES)."""

    def __init__(self, capacity: int = CACHED_FILES):
        self._parsed: OrderedDict[str, _Parsed] = OrderedDict()
        self._lock = threading.Lock()
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


def check_file(path: Path, file_name: str) -> list[str]:
    """The problems of a whole metrics file, parsed without keeping its records."""
    parsed = _Parsed(identity=())
    with open(path, "rb") as handle:
        data = handle.read()
    MetricsReader._parse(parsed, data, file_name)
    if parsed.offset < len(data):
        parsed.problems.append(f"{file_name} ends with a truncated line")
    return parsed.problems


def cache_folder() -> Path:
    """Where LeNet Lab keeps what it can recompute: $LENET_CACHE, else the user's cache folder (never the store)."""
    base = os.environ.get("LENET_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "lenet-lab")
    return Path(base)


class MetricChecks:
    """What the last full check of each run's files (metrics, model, evaluation) found, kept between processes and keyed on the file's
    identity, size and modification time, so that listing a store parses only the files that changed since.

    A listing of 1,000 runs used to parse every line of every metrics file to find damage (85% of its time);
    now a fresh `python -m core list` reads one small JSON file instead. The cache holds only problems, which
    are recomputed whenever a file changes; losing it costs one slow listing."""

    def __init__(self, root: Path):
        import hashlib

        digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
        self.path = cache_folder() / f"metrics-checks-{digest}.json"
        self._lock = threading.Lock()
        try:
            self._checks = json.loads(self.path.read_text())
            if not isinstance(self._checks, dict):
                self._checks = {}
        except (OSError, ValueError):
            self._checks = {}
        self._dirty = False

    def problems(self, run_id: str, path: Path, file_name: str) -> list[str]:
        """Raises OSError as reading the file does (FileNotFoundError for a run without metrics)."""
        path.stat()
        return self.cached(run_id, "metrics", [path], lambda: check_file(path, file_name))

    def cached(self, run_id: str, what: str, paths: list[Path], compute) -> list[str]:
        """compute() (a list of problems), or what it returned last time if none of `paths` changed since."""
        key = [_identity(path) for path in paths]
        with self._lock:
            entry = self._checks.get(run_id)
            known = entry.get(what) if isinstance(entry, dict) else None  # a damaged cache: checked again
        if isinstance(known, list) and len(known) == 2 and known[0] == key and isinstance(known[1], list):
            return list(known[1])
        found = compute()
        with self._lock:
            entry = self._checks.get(run_id)
            if not isinstance(entry, dict):
                entry = self._checks[run_id] = {}
            entry[what] = [key, found]
            self._dirty = True
        return found

    def save(self, kept: set[str]) -> None:
        """Write the checks of the runs still in the store (the others are dropped); a cache that cannot be
        written (a read-only home) only makes the next listing slower."""
        with self._lock:
            stale = set(self._checks) - kept
            for run_id in stale:
                del self._checks[run_id]
            if not (self._dirty or stale):
                return
            text = json.dumps(self._checks)
            self._dirty = False
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text)
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _identity(path: Path) -> list | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns]


_CHECKS: dict[str, MetricChecks] = {}
_CHECKS_LOCK = threading.Lock()


def metric_checks(root: Path) -> MetricChecks:
    """One MetricChecks per store and process."""
    with _CHECKS_LOCK:
        key = str(root)
        if key not in _CHECKS:
            _CHECKS[key] = MetricChecks(root)
        return _CHECKS[key]
