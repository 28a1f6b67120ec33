"""Fault suite, runs that go wrong: a training process killed mid-epoch, a full or read-only disk at the
start or in the middle of a run, and a learning rate that makes training diverge. No case may lose a saved
run, leave a half-written file behind or leave a run "running" for ever."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.config import TrainConfig
from core.store import RunStore, owner
from test_faults_support import (ROOT, SHIPPED_ID, assert_one_line_error, cli_subprocess, copy_shipped, run_cli,
                                 tree)

TINY = TrainConfig(data_source="sample", train_subset=600, validation_split=0.1, epochs=2, batch_size=64)

FAULTS = [
    "SIGKILL in the middle of an epoch (CLI)",
    "a temporary file left by the killed process",
    "disk full when the run is created (CLI)",
    "disk full at an epoch snapshot (mid-run)",
    "read-only disk when the model is saved (end of run)",
    "store root is a file (CLI train and list)",
    "store root is a file (dashboard)",
    "learning rate 10: loss diverges (CLI)",
    "weights become NaN at the end of an epoch",
    "a hand-written status.json naming a live pid without a start time",
    "the store made read-only mid-run: the final status cannot be written",
    "the run's folder renamed mid-run",
    "a trainer that returns without recording the run's end",
]


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _assert_consistent(root: Path) -> None:
    """No temporary file or heartbeat left, and every JSON file and snapshot of every run parses."""
    # the store's training lock file stays (empty when no training holds it): it is not a temporary file
    leftovers = [p.name for p in root.rglob(".*") if p.is_file() and p != root / ".training.lock"]
    assert leftovers == [], leftovers
    for path in _all_files(root):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path) as data:
                assert data.files
        elif path.name == "metrics.jsonl":
            assert path.read_bytes().endswith(b"\n")
            for line in path.read_text().splitlines():
                json.loads(line)


# ----- a training process killed with SIGKILL ------------------------------------------------------


def _wait_for(predicate, timeout: float, what: str, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {process.stderr.read()[-2000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _mid_second_epoch(runs: Path):
    """The run folder once epoch 1 is recorded and epoch 2 has batch rows."""
    for metrics in runs.glob("2*/metrics.jsonl"):  # run ids start with the date; the shipped run does not
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.endswith("}")]
        if any(r["type"] == "epoch" for r in rows) and any(r["type"] == "batch" and r["epoch"] == 2 for r in rows):
            return metrics.parent
    return None


def test_sigkill_mid_epoch_leaves_an_interrupted_run_with_its_finished_epochs(tmp_path, monkeypatch,
                                                                               offline_sources):
    runs = tmp_path / "runs"
    copy_shipped(runs)
    shipped = tree(runs / SHIPPED_ID)
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--data-source", "sample", "--train-subset", "15000",
         "--epochs", "5", "--json", "--runs-dir", str(runs)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        run = _wait_for(lambda: _mid_second_epoch(runs), 240, "epoch 2 to start", process)
    finally:
        process.kill()  # SIGKILL: no handler runs, nothing is cleaned up
        process.wait()
    assert process.returncode == -signal.SIGKILL
    store = RunStore(runs)
    _, epochs_at_kill = store.read_metrics(run.name)

    # The next start of the CLI: `python -m core list`, in a fresh process.
    listed = cli_subprocess("list", "--json", runs_dir=runs, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {row["run_id"]: row for row in json.loads(listed.stdout)}
    assert rows[run.name]["status"] == "interrupted" and rows[run.name]["problems"] is None
    assert rows[SHIPPED_ID]["status"] == "completed"
    status = store.read_status(run.name)
    assert status.status == "interrupted" and "stopped before it finished" in status.error
    assert not (run / "model.keras").exists()  # no half-written model

    # A temporary file as a kill in the middle of an atomic write leaves it (dead pid, random suffix).
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (run / f".status.json.{dead}.0badc0de.tmp").write_text('{"status": "comp')
    (run / "epochs" / f".epoch_0002.npz.{dead}.0badc0de.tmp").write_bytes(b"PK")

    # The dashboard's start persists "interrupted" and clears the dead process's temporary files.
    from dashboard_apptest import open_app, texts

    from dashboard import common

    monkeypatch.setenv("LENET_RUNS", str(runs))
    at = open_app()
    common.mark_interrupted_once().join(60)  # the start's background thread (the server's warm start begins it)
    assert json.loads((run / "status.json").read_text())["status"] == "interrupted"
    assert "Interrupted: the process training this run stopped before it finished" in texts(at.warning)
    _assert_consistent(runs)
    _, epochs = store.read_metrics(run.name)
    assert epochs.equals(epochs_at_kill) and list(epochs["epoch"])[0] == 1  # the finished epochs are intact
    assert epochs.loc[0, "test_accuracy"] > 0.5
    assert store.read_epoch_snapshot(run.name, 1).probs.shape == (10000, 10)
    assert tree(runs / SHIPPED_ID) == shipped


def test_a_reused_pid_does_not_keep_a_dead_run_running(tmp_path):
    """In a container the next process often gets the dead one's pid: its start time tells them apart."""
    store = RunStore(tmp_path)
    run_id = store.create_run(TINY, name="killed")
    store.write_status(run_id, status="running", pid=os.getpid(), pid_started="1")  # our pid, not our start
    assert store.read_status(run_id).status == "interrupted"
    store.write_status(run_id, status="running", **owner())
    assert store.read_status(run_id).status == "running"  # really alive: left alone


# ----- a full or read-only disk ------------------------------------------------------------------------


def _fail_replace(monkeypatch, target_name: str, code: int):
    """os.replace into `target_name` fails with `code`, as it does on a full or read-only disk."""
    real = os.replace

    def replace(source, destination, *args, **kwargs):
        if Path(destination).name == target_name:
            raise OSError(code, os.strerror(code), str(destination))
        return real(source, destination, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_disk_full_when_the_run_is_created(capsys, tmp_path, monkeypatch, offline_sources):
    copy_shipped(tmp_path)
    before = tree(tmp_path)
    _fail_replace(monkeypatch, "config.json", errno.ENOSPC)
    code, out, err = run_cli(capsys, "train", "--data-source", "sample", "--train-subset", "600",
                             runs_dir=tmp_path)
    assert_one_line_error(code, err, "cannot write run", str(tmp_path), "No space left on device")
    assert tree(tmp_path) == before  # no half-created run; the saved run untouched


@pytest.mark.parametrize("target,code,message", [
    ("epoch_0002.npz", errno.ENOSPC, "No space left on device"),
    ("model.keras", errno.EROFS, "Read-only file system"),
], ids=["disk full at epoch 2", "read-only at the model save"])
def test_disk_failure_mid_run_ends_the_run_failed(tmp_path, monkeypatch, target, code, message):
    from core.trainer import train

    copy_shipped(tmp_path)
    shipped = tree(tmp_path / SHIPPED_ID)
    _fail_replace(monkeypatch, target, code)
    result = train(TINY, RunStore(tmp_path), name="doomed", jit_compile=False)  # XLA would only add compile time
    assert result.status == "failed"
    assert result.error == f"cannot write the run in the run store: {message}"
    status = RunStore(tmp_path).read_status(result.run_id)
    assert status.status == "failed" and status.error == result.error  # not stuck in "running"
    _, epochs = RunStore(tmp_path).read_metrics(result.run_id)
    assert 1 in set(epochs["epoch"])  # what was written before the fault is kept
    assert tree(tmp_path / SHIPPED_ID) == shipped
    _assert_consistent(tmp_path)


def test_store_root_that_is_a_file_cli(capsys, tmp_path, offline_sources):
    root = tmp_path / "cached_models"
    root.write_text("not a folder")
    code, out, err = run_cli(capsys, "train", "--data-source", "sample", "--train-subset", "600", runs_dir=root)
    assert_one_line_error(code, err, f"the run store {root} is a file, not a folder")
    code, out, err = run_cli(capsys, "list", runs_dir=root)
    assert_one_line_error(code, err, f"cannot read the run store {root}", "Not a directory")
    assert root.read_text() == "not a folder"


def test_store_root_that_is_a_file_dashboard(tmp_path, monkeypatch, offline_sources):
    from dashboard import sidebar
    from dashboard_apptest import open_app, texts

    root = tmp_path / "cached_models"
    root.write_text("not a folder")
    monkeypatch.setenv("LENET_RUNS", str(root))
    at = open_app()
    assert f"cannot read the run store {root}" in texts(at.error)
    at.button(key=sidebar.SUBMIT).click().run()
    assert not at.exception
    assert f"Not started: the run store {root} is a file, not a folder" in texts(at.sidebar.error)
    at.switch_page("views/runs.py").run()
    assert not at.exception and f"cannot read the run store {root}" in texts(at.error)


# ----- divergence --------------------------------------------------------------------------------------


def test_learning_rate_10_fails_the_run_with_epoch_and_batch(capsys, tmp_path, monkeypatch, offline_sources):
    """Adam at 10 (the highest rate allowed) blows the logits up to ~1e10 within the first 9 batches."""
    import core.speed

    monkeypatch.setattr(core.speed, "resolve_jit_compile", lambda jit: False)  # XLA would only add compile time
    code, out, err = run_cli(capsys, "train", "--data-source", "sample", "--train-subset", "600",
                             "--validation-split", "0.1", "--epochs", "2", "--learning-rate", "10", "--json",
                             runs_dir=tmp_path)
    assert code == 1
    payload = json.loads(out)
    assert payload["status"] == "failed"
    error = payload["error"]
    assert error.startswith("training diverged: loss became ") and " at epoch 1, batch 9 " in error
    assert "learning_rate=10.0" in error and "no finite model was kept" in error
    assert err.strip().splitlines()[-1] == f"error: {error}"
    status = RunStore(tmp_path).read_status(payload["run_id"])
    assert status.nonfinite["epoch"] == 1 and status.nonfinite["batch"] == 9
    assert status.model_saved is False and status.model_epoch is None
    assert not (tmp_path / payload["run_id"] / "model.keras").exists()

    from dashboard_apptest import open_app, texts

    monkeypatch.setenv("LENET_RUNS", str(tmp_path))
    at = open_app()
    assert f"Training failed: {error}" in texts(at.error)


def test_weights_that_turn_nan_after_the_last_loss_keep_the_last_finite_model(tmp_path):
    """The epoch's last update can break the weights after the last loss was logged: caught at epoch end."""
    import keras

    from core.trainer import train

    class BreakLastUpdateOfEpoch2(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 2 and batch + 1 >= self.params["steps"]:
                bias = self.model.get_layer("c5_dense").bias
                bias.assign(np.full(bias.shape, np.inf, np.float32))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1

    result = train(TINY.replace(epochs=3), RunStore(tmp_path), callbacks=[BreakLastUpdateOfEpoch2()],
                   jit_compile=False)
    assert result.status == "failed"
    assert "the weights became non-finite at epoch 2, batch 9" in result.error
    assert "kept the model from the end of epoch 1, the last finite one" in result.error
    status = RunStore(tmp_path).read_status(result.run_id)
    assert status.model_epoch == 1 and status.model_saved is True
    model = RunStore(tmp_path).load_model(result.run_id)
    assert all(np.isfinite(w).all() for w in model.get_weights())


# ----- runs stuck "running" --------------------------------------------------------------------------


def test_a_hand_written_running_status_naming_a_live_pid_is_interrupted_and_deletable(tmp_path):
    import socket

    store = RunStore(tmp_path)
    run_id = store.create_run(TINY, "hand written")
    status = json.loads((tmp_path / run_id / "status.json").read_text())
    status.update(status="running", pid=1, host=socket.gethostname())  # pid 1 lives; no pid_started
    status.pop("pid_started")
    (tmp_path / run_id / "status.json").write_text(json.dumps(status))
    assert store.read_status(run_id).status == "interrupted"
    assert [info.status for info in store.list_runs()] == ["interrupted"]
    store.delete(run_id)
    assert not (tmp_path / run_id).exists()


def test_a_run_whose_final_status_cannot_be_written_turns_interrupted(tmp_path, monkeypatch):
    """The store turns read-only after training: train() cannot record the end, so the run's heartbeat stops and
    the run reads "interrupted" once it is stale; then it can be deleted and nothing waits behind it."""
    import core.store.liveness as liveness
    from core.trainer import train

    monkeypatch.setattr(liveness, "STALE_SECONDS", 1.0)
    store = RunStore(tmp_path)
    real_write = RunStore.write_status

    def read_only_after_training(self, run_id, **changes):
        if changes.get("phase") == "saving" or changes.get("status") in ("completed", "failed"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_write(self, run_id, **changes)

    monkeypatch.setattr(RunStore, "write_status", read_only_after_training)
    result = train(TINY, store, name="read-only at the end", jit_compile=False)
    assert result.status == "failed" and "Read-only file system" in result.error
    monkeypatch.setattr(RunStore, "write_status", real_write)
    assert json.loads((tmp_path / result.run_id / "status.json").read_text())["status"] == "running"
    time.sleep(1.2)
    status = store.read_status(result.run_id)
    assert status.status == "interrupted" and "no sign of life" in status.error
    assert store.training_holder() is None  # the lock went with the training
    store.delete(result.run_id)


def test_a_run_whose_folder_is_renamed_mid_run_does_not_stay_running(tmp_path, monkeypatch):
    import keras

    import core.store.liveness as liveness
    from core.trainer import train

    monkeypatch.setattr(liveness, "STALE_SECONDS", 1.0)
    store = RunStore(tmp_path)
    moved = {}

    class RenameTheFolder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                run = next(p for p in tmp_path.iterdir() if p.is_dir())
                moved["to"] = run.rename(tmp_path / f"{run.name}-moved")

    result = train(TINY, store, name="moved", jit_compile=False, callbacks=[RenameTheFolder()])
    assert result.status == "failed"
    run_id = moved["to"].name
    time.sleep(1.2)
    assert store.read_status(run_id).status == "interrupted"  # its writer never wrote to the new name
    store.delete(run_id)
    assert store.training_holder() is None


def test_the_job_manager_ends_a_run_its_trainer_left_running(tmp_path):
    from core.store import now_iso
    from dashboard.worker import JobManager

    store = RunStore(tmp_path)

    def forgetful(config, store_, run_id, stop_event):  # writes "running", never the end
        store_.write_status(run_id, status="running", started=now_iso(), phase="training", **owner())

    manager = JobManager(store, train_fn=forgetful)
    first = manager.submit(TINY, "forgotten")
    second = manager.submit(TINY, "next")
    deadline = time.monotonic() + 10
    while store.read_status(second).status != "failed" and time.monotonic() < deadline:
        time.sleep(0.02)
    for run_id in (first, second):
        status = store.read_status(run_id)
        assert status.status == "failed" and "without recording how the run ended" in status.error
