"""The dashboard's training queue: one worker thread trains the submitted runs one after another.

The training itself runs in a child process (`python -m dashboard.worker`) that imports TensorFlow once
and stays for the next run. Training in a thread of the Streamlit server does not work: after every
script run, including each rerun of the live fragment, Streamlit calls keras.backend.clear_session(),
which resets the default graph, clears TensorFlow's kernel cache and runs a full gc.collect() under a
training that is in progress; and the server and the training would share one GIL.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.config import TrainConfig
from core.store import RunStore, StoreError, now_iso

ROOT = Path(__file__).resolve().parent.parent
FOREIGN_POLL_SECONDS = 0.5  # how often a waiting job checks whether a terminal's run has ended
STOP_POLL_SECONDS = 0.05  # how often the worker thread forwards a Stop to the training process


@dataclass
class Job:
    """One entry of the queue: a training run (kind "train", id = its run id) or another task of core.tasks."""

    run_id: str  # the task's id: the run id for "train", the caller's choice (e.g. "sweep-<id>") otherwise
    config: TrainConfig | None = None
    kind: str = "train"
    args: dict = field(default_factory=dict)
    label: str = ""
    stop_event: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"  # queued -> running -> done
    error: str | None = None  # a task that raised: its message (a training run records its own in the store)
    status: str = ""  # a task's final word ("completed", "stopped", ...), once it has ended


PRESTART_DELAY_S = 5.0  # s after the training form is shown: TensorFlow loads as the user fills it in (prestart)


class TrainingProcess:
    """Runs tasks of core.tasks (training first) in a long-lived child process; one at a time, Stop forwarded
    within 50 ms. Messages are JSON lines: {"task": {"kind", "args", "root", "id"}} and {"stop": id} on the
    child's stdin, {"id", "status"} on its stdout when a task ends. The child also stops its task if the
    dashboard goes away (stdin closes)."""

    def __init__(self):
        self._process: subprocess.Popen | None = None
        self._replies: queue.Queue = queue.Queue()
        self._starting = threading.Lock()  # the delayed prestart and a Train press may start it at once

    def start(self) -> None:
        """Start the child (it begins importing TensorFlow at once) unless it is already running."""
        with self._starting:
            if self._process is not None and self._process.poll() is None:
                return
            self._replies = queue.Queue()
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
            self._process = subprocess.Popen([sys.executable, "-m", "dashboard.worker"], cwd=ROOT, env=env,
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            threading.Thread(target=self._read, args=(self._process, self._replies), daemon=True,
                             name="lenet-trainer-replies").start()

    @staticmethod
    def _read(process: subprocess.Popen, replies: queue.Queue) -> None:
        for line in process.stdout:
            with contextlib.suppress(ValueError):
                replies.put(json.loads(line))
        replies.put(None)  # the child has exited

    def _send(self, message: dict) -> None:
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()

    def __call__(self, config: TrainConfig, store: RunStore, run_id: str, stop_event: threading.Event) -> str:
        return self.run_task("train", {"run_id": run_id, "config": config.to_dict()}, store, run_id, stop_event)

    def run_task(self, kind: str, args: dict, store: RunStore, task_id: str, stop_event: threading.Event) -> str:
        """Run one task in the child and wait for its end; returns the task's final word."""
        self.start()
        self._send({"task": {"kind": kind, "args": args, "root": str(store.root), "id": task_id}})
        stop_sent = False
        while True:
            if stop_event.is_set() and not stop_sent:
                with contextlib.suppress(OSError):
                    self._send({"stop": task_id})
                stop_sent = True
            try:
                reply = self._replies.get(timeout=STOP_POLL_SECONDS)
            except queue.Empty:
                continue
            if reply is None:
                code = self._process.wait()
                self._process = None
                raise RuntimeError(f"the training process ended unexpectedly (exit code {code})")
            if reply.get("id") == task_id:
                return reply.get("status", "")


def child_main() -> None:
    """The training process: read tasks from stdin, run them one by one, report each end on stdout."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # library prints must not corrupt the replies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C on the server: finish via the closed stdin instead
    jobs: queue.Queue = queue.Queue()
    stop = threading.Event()
    lock = threading.Lock()
    current: dict = {"run_id": None, "stop_requested": set()}

    def read_commands() -> None:
        for line in sys.stdin:
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                message = json.loads(line)
                if "task" in message:
                    jobs.put(message["task"])
                elif "stop" in message:
                    with lock:
                        current["stop_requested"].add(message["stop"])
                        if message["stop"] == current["run_id"]:
                            stop.set()
        stop.set()  # the dashboard is gone: end the run in progress as "stopped", with its model saved
        jobs.put(None)

    threading.Thread(target=read_commands, daemon=True).start()
    import keras

    from core.tasks import run_task

    while (job := jobs.get()) is not None:
        with lock:
            current["run_id"] = job["id"]
            if job["id"] in current["stop_requested"]:
                stop.set()
            else:
                stop.clear()
        try:
            status = run_task(job["kind"], RunStore(job["root"]), job["args"], stop)
        except Exception as exc:  # noqa: BLE001 - a task's own failure must not end the process
            print(f"task {job['id']} ({job['kind']}) failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = "failed"
        with lock:
            current["run_id"] = None
        keras.backend.clear_session()  # the next task starts from a clean Keras state
        try:
            replies.write(json.dumps({"id": job["id"], "status": status}) + "\n")
        except BrokenPipeError:  # the dashboard has gone; the run's end is in the store
            return


class JobManager:
    """Owns the queue of runs this dashboard trains. Never calls Streamlit: the pages only read the store.

    Submitting creates the run in the store at once with status "queued", so every tab (and the
    terminal's `python -m core list`) sees it. One thread hands the jobs in order to the training
    process; a run that a terminal is training is waited for, so two trainings never share the CPU.
    Other long work (core.tasks: sweeps, audits, ...) queues in the same line with `submit_task`.
    `train_fn(config, store, run_id, stop_event)` and `task_fn(kind, args, store, task_id, stop_event)`
    replace the training process in tests."""

    def __init__(self, store: RunStore, train_fn: Callable | None = None, task_fn: Callable | None = None):
        self.store = store
        self._train = train_fn or TrainingProcess()
        self._task = task_fn or getattr(self._train, "run_task", None)
        self._queue: queue.Queue[Job] = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._prestarted = False
        self._thread = threading.Thread(target=self._loop, name="lenet-train-worker", daemon=True)
        self._thread.start()

    def prestart(self) -> None:
        """Start the training process PRESTART_DELAY_S from now, once: the training form asks. Other pages do not:
        its import took ~4 CPU-s of the 2 cores as the Runs table's first rows were ticked (bench/RESULTS.md)."""
        with self._lock:
            first, self._prestarted = not self._prestarted, True
        if first and isinstance(self._train, TrainingProcess):
            timer = threading.Timer(PRESTART_DELAY_S, self._train.start)
            timer.daemon = True
            timer.start()

    # ----- what the pages call -----------------------------------------------------------------
    def submit(self, config: TrainConfig, name: str | None = None) -> str:
        """Create the run as "queued" and put it in line; returns its run id."""
        run_id = self.store.create_run(config, name=name or None, status="queued")
        if isinstance(self._train, TrainingProcess):
            self._train.start()  # again if the training process has ended since
        job = Job(run_id, config)
        with self._lock:
            self._jobs[run_id] = job
        self._queue.put(job)
        return run_id

    def submit_task(self, kind: str, args: dict, task_id: str, label: str = "") -> str:
        """Queue a task of core.tasks (JSON `args`) behind the runs already in line; returns task_id. The task
        writes its own progress and results through the store; `stop(task_id)` sets its stop event."""
        from core.tasks import resolve

        resolve(kind)  # an unknown kind is refused here, not in the training process
        with self._lock:
            if task_id in self._jobs and self._jobs[task_id].state != "done":
                raise ValueError(f"task {task_id!r} is already queued or running")
            job = Job(task_id, kind=kind, args=args, label=label or kind)
            self._jobs[task_id] = job
        if isinstance(self._train, TrainingProcess):
            self._train.start()
        self._queue.put(job)
        return task_id

    def get(self, task_id: str) -> Job | None:
        """The queue entry of a run or task this dashboard was given (finished ones included)."""
        with self._lock:
            return self._jobs.get(task_id)

    def jobs(self) -> list[Job]:
        """The queued and running entries, in line order (a copy: reading it changes nothing)."""
        with self._lock:
            return [job for job in self._jobs.values() if job.state != "done"]

    def stop(self, run_id: str) -> str:
        """Ask a run to stop. A queued run ends as "stopped" at once; stopping twice is harmless."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None:
                return self._stop_elsewhere(run_id)
            job.stop_event.set()
            if job.state != "queued":
                return "stopping" if job.state == "running" else "already finished"
            job.state, job.status = "done", "stopped"
        if job.config is None:  # a task: nothing in the store to mark
            return "stopped before it started"
        with contextlib.suppress(OSError, StoreError):
            self.store.write_status(run_id, status="stopped", phase="stopped", ended=now_iso(),
                                    error=None, model_saved=False, epochs_done=0)
        return "stopped before it started"

    def _stop_elsewhere(self, run_id: str) -> str:
        """Another dashboard's or a terminal's run: ask its trainer through the store (a stop file it checks)."""
        try:
            if self.store.read_status(run_id).status not in ("queued", "running"):
                return "already finished"
            self.store.request_stop(run_id)
        except (OSError, StoreError) as exc:
            return f"could not ask it to stop ({exc})"
        return "stopping (asked through the run store)"

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
                if job.config is not None:  # a run submitted from the form
                    self._train(job.config, self.store, job.run_id, job.stop_event)
                    self._end_if_left_active(job.run_id)
                else:
                    job.status = self._task(job.kind, job.args, self.store, job.run_id, job.stop_event) or ""
            except Exception as exc:  # noqa: BLE001 - the trainer records its own errors; this is a last resort
                if job.config is None:
                    job.error = f"{type(exc).__name__}: {exc}"
                    continue  # the finally below still marks it done
                with contextlib.suppress(OSError, StoreError):
                    self.store.write_status(job.run_id, status="failed", phase="failed", ended=now_iso(),
                                            error=f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    job.state = "done"
                    self._current = None

    def _end_if_left_active(self, run_id: str) -> None:
        """The trainer is done with the run: if its status still says queued or running (the trainer could not
        write its end), end it here, so that nothing waits behind it."""
        with contextlib.suppress(OSError, StoreError):
            if self.store.read_status(run_id).status in ("queued", "running"):
                self.store.write_status(run_id, status="failed", phase="failed", ended=now_iso(),
                                        error="the trainer ended without recording how the run ended")

    def _foreign_running(self) -> str | None:
        """A run that another dashboard or a terminal is training in this store right now (it holds the store's
        training lock); the training process waits for the lock as well, so this only tells the pages why."""
        holder = self.store.training_holder()
        with self._lock:
            mine = set(self._jobs)
        return holder if holder and holder not in mine else None


if __name__ == "__main__":
    child_main()
