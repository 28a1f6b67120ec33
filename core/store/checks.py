"""What listing a store checked of each run's files, kept between processes so a large store lists quickly."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

from core.store.metrics import MetricsReader, _Parsed, identity


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
    """What the last full check of each run's files (metrics, model, evaluation) found, kept between processes
    and keyed on the files' identity, size and modification time, so that listing a store parses only the files
    that changed since.

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
        key = [identity(path) for path in paths]
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


_CHECKS: dict[str, MetricChecks] = {}
_CHECKS_LOCK = threading.Lock()


def metric_checks(root: Path) -> MetricChecks:
    """One MetricChecks per store and process."""
    with _CHECKS_LOCK:
        key = str(root)
        if key not in _CHECKS:
            _CHECKS[key] = MetricChecks(root)
        return _CHECKS[key]
