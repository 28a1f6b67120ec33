"""The dashboard's training queue: one run at a time, in order, and Stop for running and queued runs."""

import threading
import time

import pytest

from core.config import TrainConfig
from core.store import RunStore, now_iso, process_started
from dashboard.worker import JobManager

TINY = TrainConfig(data_source="sample", train_subset=600, validation_split=0.1, epochs=1, batch_size=64)


class FakeTrainer:
    """Stands in for core.trainer.train: writes the statuses it would, and checks stop_event every 10 ms."""

    def __init__(self, seconds: float = 0.6):
        self.seconds = seconds
        self.started: list[tuple[str, float]] = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def __call__(self, config, store: RunStore, run_id: str, stop_event: threading.Event):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.started.append((run_id, time.monotonic()))
        store.write_status(run_id, status="running", started=now_iso(), phase="training")
        try:
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                if stop_event.is_set():
                    store.write_status(run_id, status="stopped", phase="stopped", ended=now_iso())
                    return
                time.sleep(0.01)
            store.write_status(run_id, status="completed", phase="completed", ended=now_iso())
        finally:
            with self.lock:
                self.active -= 1


def wait_for(predicate, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")


def status(store: RunStore, run_id: str) -> str:
    return store.read_status(run_id).status


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def test_submit_creates_a_queued_run_at_once(store):
    started = threading.Event()
    manager = JobManager(store, train_fn=lambda *args: started.wait(5))
    blocker = manager.submit(TINY, "first")
    run_id = manager.submit(TINY, "second")
    assert store.read_status(run_id).status == "queued"
    assert store.read_status(run_id).name == "second"
    assert manager.position(run_id) == 1
    wait_for(lambda: manager.current() == blocker)
    assert manager.blocking(run_id) == blocker
    started.set()


def test_second_submit_waits_and_runs_after_the_first(store):
    trainer = FakeTrainer(seconds=0.5)
    manager = JobManager(store, train_fn=trainer)
    first = manager.submit(TINY, "first")
    second = manager.submit(TINY, "second")
    wait_for(lambda: status(store, first) == "running")
    assert status(store, second) == "queued"
    assert manager.blocking(second) == first
    wait_for(lambda: status(store, second) == "completed")
    assert status(store, first) == "completed"
    assert [run for run, _ in trainer.started] == [first, second]
    assert trainer.max_active == 1  # never two trainings at once
    assert manager.current() is None and not manager.waiting()  # idle


def test_stop_ends_a_running_run_within_a_second(store):
    manager = JobManager(store, train_fn=FakeTrainer(seconds=30))
    run_id = manager.submit(TINY, "long")
    wait_for(lambda: status(store, run_id) == "running")
    start = time.monotonic()
    assert manager.stop(run_id) == "stopping"
    wait_for(lambda: status(store, run_id) == "stopped", timeout=5)
    assert time.monotonic() - start < 1.0
    wait_for(lambda: manager.current() is None and not manager.waiting())  # idle


def test_stop_of_a_queued_run_marks_it_stopped_without_training(store):
    trainer = FakeTrainer(seconds=0.5)
    manager = JobManager(store, train_fn=trainer)
    first = manager.submit(TINY, "first")
    second = manager.submit(TINY, "second")
    assert manager.stop(second) == "stopped before it started"
    assert status(store, second) == "stopped"
    assert manager.position(second) is None
    wait_for(lambda: status(store, first) == "completed")
    wait_for(lambda: manager.current() is None and not manager.waiting())  # idle
    time.sleep(0.1)
    assert [run for run, _ in trainer.started] == [first]
    assert status(store, second) == "stopped"
    assert store.read_status(second).started is None


def test_stop_twice_and_after_the_end_is_harmless(store):
    manager = JobManager(store, train_fn=FakeTrainer(seconds=0.1))
    run_id = manager.submit(TINY)
    wait_for(lambda: status(store, run_id) == "completed")
    wait_for(lambda: manager.current() is None and not manager.waiting())  # idle
    assert manager.stop(run_id) == "already finished"
    assert manager.stop(run_id) == "already finished"
    assert status(store, run_id) == "completed"
    assert "not found" in manager.stop("some-other-run")


def test_a_trainer_that_raises_leaves_a_failed_run(store):
    def broken(*args):
        raise RuntimeError("disk on fire")

    manager = JobManager(store, train_fn=broken)
    run_id = manager.submit(TINY)
    wait_for(lambda: status(store, run_id) == "failed")
    assert "disk on fire" in store.read_status(run_id).error
    second = manager.submit(TINY)  # the worker thread survived
    wait_for(lambda: status(store, second) == "failed")


def test_waits_for_a_run_that_a_terminal_is_training(store, monkeypatch):
    """A terminal's (or another dashboard's) training holds the store's training lock: the queue waits for it."""
    import dashboard.worker as worker

    monkeypatch.setattr(worker, "FOREIGN_POLL_SECONDS", 0.05)
    foreign = store.create_run(TINY, "terminal run", status="running")
    lock = store.training_lock(foreign)
    assert lock.acquire()
    try:
        trainer = FakeTrainer(seconds=0.1)
        manager = JobManager(store, train_fn=trainer)
        run_id = manager.submit(TINY, "dashboard run")
        time.sleep(0.3)
        assert status(store, run_id) == "queued"
        assert manager.blocking(run_id) == foreign
    finally:
        lock.release()
    wait_for(lambda: status(store, run_id) == "completed")


def test_prestart_loads_the_training_process_before_any_submit(tmp_path, monkeypatch):
    """Asked to prestart (the training form is shown), the training process starts, TensorFlow loading, a few
    seconds later (not while the page is drawn), with no Train press; only once however often it is asked."""
    import dashboard.worker

    monkeypatch.setattr(dashboard.worker, "PRESTART_DELAY_S", 0.5)
    manager = JobManager(RunStore(tmp_path))
    time.sleep(1)
    assert manager._train._process is None  # not asked: nothing started (the Runs and audit pages)
    started = []
    monkeypatch.setattr(dashboard.worker.TrainingProcess, "start", lambda self, real=manager._train.start:
                        started.append(1) or real())
    manager.prestart()
    manager.prestart()
    assert manager._train._process is None  # the page is drawn without TensorFlow's import beside it
    deadline = time.monotonic() + 10
    while manager._train._process is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process = manager._train._process
    try:
        assert process is not None and process.poll() is None
        assert "dashboard.worker" in " ".join(process.args)
        time.sleep(0.3)
        assert started == [1]
    finally:
        process.stdin.close()  # the child ends when the dashboard's end of its stdin closes
        process.wait(60)
    assert process.returncode == 0


def test_a_task_queues_behind_a_run_and_stops_like_one(store):
    """Other long work (core.tasks) waits in the same line as training runs, one at a time, and Stop reaches it."""
    order: list[str] = []
    release = threading.Event()

    def task_fn(kind, args, task_store, task_id, stop_event):
        order.append(f"{kind}:{task_id}:{args['n']}")
        while not stop_event.is_set() and not release.is_set():
            time.sleep(0.01)
        return "stopped" if stop_event.is_set() else "completed"

    manager = JobManager(store, train_fn=FakeTrainer(seconds=0.3), task_fn=task_fn)
    run_id = manager.submit(TINY, "first")
    manager.submit_task("train", {"n": 1}, task_id="job-a", label="a task")
    manager.submit_task("train", {"n": 2}, task_id="job-b")
    assert [job.run_id for job in manager.jobs()] == [run_id, "job-a", "job-b"]
    assert manager.get("job-a").label == "a task" and manager.position("job-b") in (2, 3)
    with pytest.raises(ValueError, match="already queued"):
        manager.submit_task("train", {"n": 3}, task_id="job-a")
    wait_for(lambda: manager.current() == "job-a")
    assert status(store, run_id) == "completed" and order == ["train:job-a:1"]  # the run went first
    assert manager.stop("job-b") == "stopped before it started"
    assert manager.stop("job-a") == "stopping"
    wait_for(lambda: manager.current() is None)
    assert order == ["train:job-a:1"]  # job-b never ran
    assert not manager.jobs()


def test_an_unknown_task_kind_is_refused_with_the_known_ones(store):
    manager = JobManager(store, train_fn=FakeTrainer())
    with pytest.raises(ValueError, match="unknown task kind 'sweeep'; known: .*train"):
        manager.submit_task("sweeep", {}, task_id="x")
    assert not manager.jobs()


def test_a_task_that_raises_is_recorded_and_the_line_goes_on(store):
    def task_fn(kind, args, task_store, task_id, stop_event):
        raise RuntimeError("boom")

    manager = JobManager(store, train_fn=FakeTrainer(seconds=0.05), task_fn=task_fn)
    manager.submit_task("train", {}, task_id="bad")
    after = manager.submit(TINY, "after")
    wait_for(lambda: status(store, after) == "completed")
    assert manager.get("bad").error == "RuntimeError: boom"
