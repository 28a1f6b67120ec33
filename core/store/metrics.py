"""Reading a run's metrics.jsonl: every record checked, and only what was appended since the last read parsed.

A live run appends a line every quarter second; a page that follows it rereads the file each second. The
reader keeps, per file, the records parsed so far and the offset after the last whole line, and next time
parses only the new bytes (a run of 200,000 records is parsed once, not once per second). If the file
shrank, was replaced or had its already-read bytes changed, it is read again from the start.

A record that is valid JSON but not a metrics record a page can draw (`"epoch": "x"`, `"epoch": 1e308`,
`"loss": "high"`) is skipped and reported as a problem of the run, as a line that is not JSON is.
"""

from __future__ import annotations

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
