"""The dashboard's training queue: one worker thread trains the submitted runs one after another."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from core.config import TrainConfig
from core.store import RunStore, StoreError, now_iso

FOREIGN_POLL_SECONDS = 0.5  # how often a waiting job checks whether a terminal's run has ended


@dataclass
class Job:
    run_id: str
    config: TrainConfig
    stop_event: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"  # queued -> running -> done


def _default_train(config: TrainConfig, store: RunStore, run_id: str, stop_event: threading.Event):
    from core.trainer import train

    return train(config, store, run_id=run_id, stop_event=stop_event)


class JobManager:
    """Owns the queue of runs this process trains. Never calls Streamlit: the pages only read the store.

    Submitting creates the run in the store at once with status "queued", so every tab (and the
    terminal's `python -m core list`) sees it. One thread trains the jobs in order; a run being
    trained by another process (a terminal) is waited for, so two trainings never share the CPU.
    """

    def __init__(self, store: RunStore, train_fn: Callable | None = None):
        self.store = store
        self._train = train_fn or _default_train
        self._queue: queue.Queue[Job] = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._thread = threading.Thread(target=self._loop, name="lenet-train-worker", daemon=True)
        self._thread.start()

    # ----- what the pages call -----------------------------------------------------------------
    def submit(self, config: TrainConfig, name: str | None = None) -> str:
        """Create the run as "queued" and put it in line; returns its run id."""
        run_id = self.store.create_run(config, name=name or None, status="queued")
        job = Job(run_id, config)
        with self._lock:
            self._jobs[run_id] = job
        self._queue.put(job)
        return run_id

    def stop(self, run_id: str) -> str:
        """Ask a run to stop. A queued run ends as "stopped" at once; stopping twice is harmless."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None:
                return f"run {run_id} is not trained by this dashboard"
            job.stop_event.set()
            if job.state != "queued":
                return "stopping" if job.state == "running" else "already finished"
            job.state = "done"
        with contextlib.suppress(OSError, StoreError):
            self.store.write_status(run_id, status="stopped", phase="stopped", ended=now_iso(),
                                    error=None, model_saved=False, epochs_done=0)
        return "stopped before it started"

    def owns(self, run_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(run_id)
            return job is not None and job.state != "done"

    def waiting(self) -> list[str]:
        """Run ids still in line, first to train first."""
        with self._lock:
            return [job.run_id for job in self._jobs.values() if job.state == "queued"]

    def current(self) -> str | None:
        with self._lock:
            return self._current.run_id if self._current else None

    def blocking(self, run_id: str) -> str | None:
        """The run that `run_id` is waiting behind: the one training now, or a terminal's run."""
        current = self.current()
        if current and current != run_id:
            return current
        return self._foreign_running()

    def position(self, run_id: str) -> int | None:
        """1 for the next run to train, 2 for the one after, ...; None if not waiting."""
        line = self.waiting()
        return line.index(run_id) + 1 if run_id in line else None

    def idle(self) -> bool:
        with self._lock:
            return self._current is None and not any(job.state == "queued" for job in self._jobs.values())

    # ----- the worker thread -------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            while self._foreign_running() and not job.stop_event.is_set():
                time.sleep(FOREIGN_POLL_SECONDS)
            with self._lock:
                if job.state != "queued":  # stopped while waiting in line
                    continue
                job.state = "running"
                self._current = job
            try:
                self._train(job.config, self.store, job.run_id, job.stop_event)
            except Exception as exc:  # noqa: BLE001 - the trainer records its own errors; this is a last resort
                with contextlib.suppress(OSError, StoreError):
                    self.store.write_status(job.run_id, status="failed", phase="failed", ended=now_iso(),
                                            error=f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    job.state = "done"
                    self._current = None

    def _foreign_running(self) -> str | None:
        """A run in this store that another live process on this machine (a terminal) is training right now.

        The store already shows a run whose process died as "interrupted"; a run from another host cannot
        be checked, so it does not hold up the queue.
        """
        try:
            runs = self.store.active_runs()
        except StoreError:
            return None
        with self._lock:
            mine = set(self._jobs)
        for info in runs:
            if (info.status == "running" and info.run_id not in mine and info.meta.get("pid") != os.getpid()
                    and info.meta.get("host") == socket.gethostname()):
                return info.run_id
        return None
