"""Who is training in a store, and whether they are still at it: a heartbeat per run, Stop through the store,
and one training per store at a time.

- A training process touches its run's heartbeat file every HEARTBEAT_SECONDS while it trains. A run
  that says "running" but whose heartbeat is older than STALE_SECONDS (its folder moved, the store made
  read-only, the process hung or gone without writing its end) counts as interrupted, and so can be deleted.
- `request_stop(run_id)` leaves a stop file in the run's folder; the trainer's `StopSignal` sees it within
  STOP_CHECK_SECONDS, so any dashboard (or a terminal) can stop any run of the store.
- `TrainingLock` is an exclusive lock on the store's lock file (fcntl.flock): a training holds it from
  start to end, so two dashboards and a terminal on one store train one run at a time. The lock dies
  with its process; the file's text only names the holder for messages.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from core.records import RunStatus
from core.store.disk import pid_alive, process_started
from core.store.names import HEARTBEAT_FILE, METRICS_FILE, STOP_FILE, TRAINING_LOCK_FILE

HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 30.0  # a heartbeat this old on this machine: its writer is gone or stuck
STALE_SECONDS_REMOTE = 120.0  # another host's clock and a shared file system's caching get more slack
STOP_CHECK_SECONDS = 0.2
LOCK_POLL_SECONDS = 0.25

try:
    import fcntl
except ImportError:  # Windows: no lock; trainings there may overlap as before
    fcntl = None


class Heartbeat:
    """While the block runs, touch `folder`/HEARTBEAT_FILE every HEARTBEAT_SECONDS from a daemon thread."""

    def __init__(self, folder: Path):
        self.path = folder / HEARTBEAT_FILE
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lenet-heartbeat", daemon=True)

    def _touch(self) -> None:
        with contextlib.suppress(OSError):  # a read-only or moved folder: the beat stops, the run turns stale
            self.path.touch()

    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            self._touch()

    def __enter__(self) -> "Heartbeat":
        self._touch()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.path.unlink()


def silent_for(folder: Path, since: float | None) -> float:
    """Seconds since the run's writer last showed life: its heartbeat, a metrics line, or `since` (the time its
    status was last written)."""
    last = since if since is not None else 0.0
    for name in (HEARTBEAT_FILE, METRICS_FILE):
        with contextlib.suppress(OSError):
            last = max(last, (folder / name).stat().st_mtime)
    return max(0.0, time.time() - last)


def writer_alive(pid, started: str | None) -> bool:
    """pid_alive, and a pid recorded without its start time counts as alive only where /proc cannot tell
    start times (a hand-written status naming some live process must not keep a run active for ever)."""
    if started is None and isinstance(pid, int) and pid > 0 and process_started(pid) is not None:
        return False
    return pid_alive(pid, started)


def _timestamp(text: str | None) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def request_stop(folder: Path) -> None:
    (folder / STOP_FILE).write_text("stop requested\n")


def stop_requested(folder: Path) -> bool:
    return (folder / STOP_FILE).exists()


class StopSignal:
    """What the trainer checks for Stop: its own event (this process's queue) or a stop file in the run's
    folder (any dashboard or terminal), the file looked at most every STOP_CHECK_SECONDS."""

    def __init__(self, event: threading.Event | None, folder: Path):
        self.event = event or threading.Event()
        self.folder = folder
        self._checked = 0.0

    def is_set(self) -> bool:
        if self.event.is_set():
            return True
        now = time.monotonic()
        if now - self._checked >= STOP_CHECK_SECONDS:
            self._checked = now
            if stop_requested(self.folder):
                self.event.set()
        return self.event.is_set()

    def set(self) -> None:
        self.event.set()

    def clear(self) -> None:
        self.event.clear()


class TrainingLock:
    """One training per store. `acquire` waits (calling `on_wait(holder)` once) until the lock is free or
    `should_stop()` is true; returns whether it holds the lock."""

    def __init__(self, root: Path, run_id: str):
        self.path = root / TRAINING_LOCK_FILE
        self.run_id = run_id
        self._handle = None

    def acquire(self, should_stop: Callable[[], bool] = lambda: False,
                on_wait: Callable[[str], None] | None = None) -> bool:
        if fcntl is None:
            return True
        try:
            self._handle = open(self.path, "a+")
        except OSError:  # a read-only store: the run cannot be written either, and says so
            return True
        waited = False
        while True:
            try:
                fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if should_stop():
                    self._handle.close()
                    self._handle = None
                    return False
                if not waited and on_wait is not None:
                    on_wait(holder(self.path.parent) or "another run")
                waited = True
                time.sleep(LOCK_POLL_SECONDS)
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(self.run_id)
        self._handle.flush()
        return True

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.truncate(0)
                self._handle.flush()
            self._handle.close()  # closing drops the flock
            self._handle = None


def holder(root: Path) -> str | None:
    """The run id training in this store right now (holding its lock), or None."""
    path = root / TRAINING_LOCK_FILE
    if fcntl is None or not path.exists():
        return None
    try:
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                return handle.read().strip() or "another run"
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None
    except OSError:
        return None


class RunLiveness:
    """The store's methods for the above; RunStore inherits them (it provides root, run_dir and _existing)."""

    @staticmethod
    def as_it_is_now(status: RunStatus, folder: Path) -> RunStatus:
        """An active status as it really is: a queued run whose queue is gone never started; a running run
        whose writer died, or has been silent for STALE_SECONDS, is interrupted."""
        here = status.host == socket.gethostname()
        writer_gone = here and not writer_alive(status.pid, status.pid_started)
        if status.status == "queued":
            if not writer_gone:
                return status
            return status.replace(status="stopped", phase="never started", model_saved=False, epochs_done=0,
                                  error="never started: the dashboard or terminal that queued it has closed")
        if writer_gone:
            return status.replace(status="interrupted",
                                  error="the process training this run stopped before it finished")
        silent = silent_for(folder, _timestamp(status.updated))
        if silent > (STALE_SECONDS if here else STALE_SECONDS_REMOTE):
            return status.replace(status="interrupted", error=(
                f"the process training this run has shown no sign of life for {silent:.0f} s (its folder was "
                f"moved or made read-only, or the process hung)"))
        return status

    def heartbeat(self, run_id: str) -> Heartbeat:
        return Heartbeat(self.run_dir(run_id))

    def request_stop(self, run_id: str) -> None:
        """Ask whoever trains `run_id` (any process on a machine that sees this store) to stop it."""
        request_stop(self._existing(run_id))

    def stop_signal(self, run_id: str, event: threading.Event | None = None) -> StopSignal:
        return StopSignal(event, self.run_dir(run_id))

    def training_lock(self, run_id: str) -> TrainingLock:
        return TrainingLock(self.root, run_id)

    def training_holder(self) -> str | None:
        """The run training in this store now, whichever process trains it; None when none does."""
        return holder(self.root)
