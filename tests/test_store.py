"""The run store: atomic writes, listing with damaged folders, ids that cannot escape, interrupted runs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core.config import TrainConfig
from core.records import EpochSnapshot, RunStatus
from core.store import RunStore, StoreError, check_run_id


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def test_create_run_writes_config_and_status(store):
    run_id = store.create_run(TrainConfig(epochs=2), name="first try")
    assert store.read_config(run_id) == TrainConfig(epochs=2)
    status = store.read_status(run_id)
    assert status.status == "queued" and status.name == "first try" and status.pid == os.getpid()
    [info] = store.list_runs()
    assert info.run_id == run_id and info.name == "first try" and not info.damaged


def test_runs_are_listed_newest_first_by_creation_time_not_by_folder_name(store):
    # The shipped runs have names for ids, not dates: sorting by the id put them above every newer run.
    ids = {name: store.create_run(TrainConfig(), name=name) for name in ("a", "b", "c")}
    store.write_status(ids["a"], created="2026-11-28T21:00:00.250+00:00")
    store.write_status(ids["c"], created="2026-11-28T21:00:00+00:00")
    store.write_status(ids["b"], created="2026-11-28T08:00:00+00:00")
    (store.root / "no-status-yet").mkdir()  # damaged, no creation time: its folder's time (now) places it
    assert [info.name for info in store.list_runs()] == ["no-status-yet", "a", "c", "b"]


def test_metrics_append_and_partial_last_line_is_skipped(store):
    run_id = store.create_run(TrainConfig())
    store.append_metrics(run_id, [{"type": "batch", "epoch": 1, "batch": 5, "loss": 2.0},
                                  {"type": "epoch", "epoch": 1, "loss": 1.5, "val_accuracy": 0.5}])
    with open(store.run_dir(run_id) / "metrics.jsonl", "a") as handle:
        handle.write('{"type": "batch", "epoch": 2, "ba')  # a write cut short
    batch, epoch = store.read_metrics(run_id)
    assert batch["loss"].tolist() == [2.0]
    assert epoch["val_accuracy"].tolist() == [0.5]
    store.write_status(run_id, status="completed")
    [info] = store.list_runs()
    assert "metrics.jsonl ends with a truncated line" in info.problems


def test_metrics_csv_keeps_counts_whole_and_values_exact(store):
    run_id = store.create_run(TrainConfig())
    store.append_metrics(run_id, [{"type": "batch", "epoch": 1, "batch": 8, "step": 8, "loss": 2.25},
                                  {"type": "epoch", "epoch": 1, "loss": 1.5, "test_accuracy": 0.9872}])
    lines = store.metrics_csv(run_id).splitlines()
    assert lines[0].split(",") == ["type", "epoch", "batch", "step", "loss", "test_accuracy"]
    assert lines[1:] == ["batch,1,8,8,2.25,", "epoch,1,,,1.5,0.9872"]


def test_epoch_snapshots_and_evaluation_round_trip(store):
    run_id = store.create_run(TrainConfig())
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=50).astype(np.float32)
    kernels = np.arange(150, dtype=np.float32).reshape(6, 5, 5)
    store.save_epoch_snapshot(run_id, EpochSnapshot(1, probs, kernels))
    store.save_epoch_snapshot(run_id, EpochSnapshot(2, probs, kernels * 2, {"weights_c1": kernels + 1}))
    assert store.epochs_saved(run_id) == [1, 2]
    snapshot = store.read_epoch_snapshot(run_id, 2)
    assert snapshot.epoch == 2 and snapshot.probs.dtype == np.float32
    np.testing.assert_allclose(snapshot.probs, probs, atol=1e-3)
    np.testing.assert_array_equal(snapshot.c1_kernels, kernels * 2)
    np.testing.assert_array_equal(snapshot.extras["weights_c1"], kernels + 1)  # room for what later features add
    assert store.read_epoch_snapshot(run_id, 1).extras == {}
    with pytest.raises(StoreError, match="clash"):
        store.save_epoch_snapshot(run_id, EpochSnapshot(3, probs, kernels, {"probs": probs}))
    labels = np.arange(50) % 10
    store.save_evaluation(run_id, {"accuracy": 0.5}, probs, labels)
    metrics, got_probs, got_labels = store.read_evaluation(run_id)
    assert metrics == {"accuracy": 0.5}
    np.testing.assert_array_equal(got_labels, labels)
    assert not [p for p in store.run_dir(run_id).rglob("*.tmp")]  # no temporary files left behind


@pytest.mark.parametrize("bad", ["../escape", "/etc", "a/b", "..", ".hidden", "x\0y", "a" * 101, "", None])
def test_run_ids_cannot_escape_the_store(store, bad):
    with pytest.raises(StoreError, match="not valid"):
        store.run_dir(bad)


@pytest.mark.parametrize("bad", ["", "   ", "x" * 101, "tab\tname", "nul\0name"])
def test_bad_run_names_are_refused(store, bad):
    run_id = store.create_run(TrainConfig())
    with pytest.raises(StoreError, match="run name"):
        store.rename(run_id, bad)


def test_rename_keeps_the_id_and_delete_refuses_a_running_run(store):
    run_id = store.create_run(TrainConfig())
    store.rename(run_id, "renamed")
    assert store.list_runs()[0].name == "renamed"
    store.write_status(run_id, status="running")
    with pytest.raises(StoreError, match="still running"):
        store.delete(run_id)
    store.write_status(run_id, status="completed")
    store.delete(run_id)
    assert store.list_runs() == []


def test_damaged_entries_are_listed_with_reasons_and_others_keep_working(store):
    good = store.create_run(TrainConfig(), name="good")
    store.write_status(good, status="completed", model_saved=False)
    (store.root / "no-config").mkdir()
    (store.root / "no-config" / "status.json").write_text('{"status": "completed"}')
    (store.root / "stray.txt").write_text("hello")
    future = store.create_run(TrainConfig(), name="future")
    (store.run_dir(future) / "config.json").write_text(json.dumps({"config_version": 999}))
    broken_model = store.create_run(TrainConfig(), name="broken model")
    store.write_status(broken_model, status="completed")
    (store.run_dir(broken_model) / "model.keras").write_bytes(b"")
    runs = {info.run_id: info for info in store.list_runs()}
    assert not runs[good].damaged and runs[good].problems == []
    assert runs["no-config"].damaged and "has no config.json" in " ".join(runs["no-config"].problems)
    assert runs["stray.txt"].damaged and "stray file" in runs["stray.txt"].problems[0]
    assert runs[future].damaged and "newer LeNet Lab" in " ".join(runs[future].problems)
    assert "model.keras is empty" in " ".join(runs[broken_model].problems)
    assert (store.root / "stray.txt").exists()  # nothing is deleted without the user asking


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any folder")
def test_unreadable_folder_is_reported(store):
    run_id = store.create_run(TrainConfig())
    os.chmod(store.run_dir(run_id), 0)
    try:
        [info] = store.list_runs()
        assert info.damaged and "not readable" in info.problems[0]
    finally:
        os.chmod(store.run_dir(run_id), 0o755)


def test_run_of_a_dead_process_shows_as_interrupted(store):
    run_id = store.create_run(TrainConfig())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store.write_status(run_id, status="running", pid=int(dead.stdout))
    assert store.read_status(run_id).status == "interrupted"
    assert store.mark_interrupted() == [run_id]
    assert json.loads((store.run_dir(run_id) / "status.json").read_text())["status"] == "interrupted"


def test_check_run_id_accepts_normal_ids():
    assert check_run_id("20261128-101010-seed-mnist-ab12") == "20261128-101010-seed-mnist-ab12"


def test_status_is_typed_and_unknown_fields_are_refused(store):
    run_id = store.create_run(TrainConfig(), name="typed")
    status = store.write_status(run_id, phase="training", n_train=540, test_accuracy=0.5)
    assert isinstance(status, RunStatus) and (status.phase, status.n_train, status.test_accuracy) == ("training", 540, 0.5)
    with pytest.raises(StoreError, match=r"unknown status field\(s\) \['tset_accuracy'\]"):
        store.write_status(run_id, tset_accuracy=0.9)
    assert store.read_status(run_id).test_accuracy == 0.5  # the refused write changed nothing
    assert store.list_runs()[0].record.n_train == 540


def test_a_status_file_of_another_version_still_opens(store):
    """Keys this version does not know (an older or newer writer's) are ignored, missing ones take defaults."""
    run_id = store.create_run(TrainConfig(), name="old")
    path = store.run_dir(run_id) / "status.json"
    path.write_text(json.dumps({"status": "completed", "name": "old", "legacy_key": [1, 2], "test_accuracy": 0.9}))
    status = store.read_status(run_id)
    assert (status.status, status.name, status.test_accuracy, status.n_train) == ("completed", "old", 0.9, None)
    store.rename(run_id, "renamed")
    assert json.loads(path.read_text())["legacy_key"] == [1, 2]  # what another version wrote is kept


def test_version_and_signature_change_with_the_runs_files(store):
    run_id = store.create_run(TrainConfig(), name="watched")
    version, signature = store.version(run_id), store.signature()
    store.append_metrics(run_id, [{"type": "batch", "epoch": 1, "batch": 1, "step": 1, "loss": 2.0}])
    grown = store.version(run_id)
    assert grown != version and store.signature() == signature  # metrics do not change the run list
    store.save_epoch_snapshot(run_id, EpochSnapshot(1, np.full((4, 10), 0.1, np.float32), np.zeros((6, 5, 5))))
    assert store.version(run_id) != grown  # a new epoch snapshot
    store.rename(run_id, "renamed")
    assert store.signature() != signature
    other = store.create_run(TrainConfig(), name="other", status="completed")
    assert len(store.signature()) == 2 and store.version("no-such-run") == ()
    store.delete(other)
    assert len(store.signature()) == 1


def test_metrics_are_parsed_once_and_then_only_what_was_appended(tmp_path, monkeypatch):
    """A live run's page rereads metrics.jsonl every second: only the appended bytes are parsed again, and a
    file edited or replaced under the reader is read again from the start."""
    import json as json_module

    import core.store.metrics as metrics

    store = RunStore(tmp_path)
    run_id = store.create_run(TrainConfig(), name="live")
    store.append_metrics(run_id, [{"type": "batch", "epoch": 1, "batch": b, "loss": 1.0 / b} for b in range(1, 1001)])
    parsed = []
    real_loads = json_module.loads
    monkeypatch.setattr(metrics.json, "loads", lambda line: parsed.append(line) or real_loads(line))
    batch, _ = store.read_metrics(run_id)
    assert len(batch) == 1000 and len(parsed) == 1000
    parsed.clear()
    store.append_metrics(run_id, [{"type": "batch", "epoch": 1, "batch": 1001, "loss": 0.5}])
    batch, _ = store.read_metrics(run_id)
    assert len(batch) == 1001 and len(parsed) == 1  # only the new line
    path = tmp_path / run_id / "metrics.jsonl"
    path.write_text(path.read_text().replace('"batch": 3,', '"batch": 33,'))  # edited by hand
    parsed.clear()
    batch, _ = store.read_metrics(run_id)
    assert len(parsed) == 1001 and 33 in set(batch["batch"])  # read again from the start
    with open(path, "a") as handle:
        handle.write('{"type": "batch", "epoch": 1, "batch": 1002, "lo')  # a write in progress
    batch, _ = store.read_metrics(run_id)
    assert len(batch) == 1001
    with open(path, "a") as handle:
        handle.write('ss": 0.25}\n')  # ... completed
    batch, _ = store.read_metrics(run_id)
    assert len(batch) == 1002 and batch["loss"].iloc[-1] == 0.25


def test_a_run_being_created_is_never_listed_half_written(tmp_path, monkeypatch):
    """create_run builds the folder under a hidden name and renames it into place: a listing taken while the
    config is written sees no run, not a damaged one."""
    import core.store.store as store_module

    store = RunStore(tmp_path)
    seen = []
    real_write = store_module.atomic_write_json

    def list_while_writing(path, data):
        seen.append([(info.run_id, info.status) for info in store.list_runs()])
        return real_write(path, data)

    monkeypatch.setattr(store_module, "atomic_write_json", list_while_writing)
    run_id = store.create_run(TrainConfig(), name="new")
    assert seen == [[]]  # mid-creation: nothing listed
    assert [(info.run_id, info.status, info.problems) for info in store.list_runs()] == [(run_id, "queued", [])]
    assert [p.name for p in tmp_path.iterdir()] == [run_id]  # nothing left of the building folder


def test_a_queued_run_whose_dashboard_closed_never_started(tmp_path):
    """Not "interrupted": it never ran. It reads stopped, phase "never started", and the start-up writes it."""
    import subprocess
    import sys

    store = RunStore(tmp_path)
    run_id = store.create_run(TrainConfig(), name="left in line")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store.write_status(run_id, pid=int(dead.stdout), pid_started="1")  # the dashboard that queued it is gone
    status = store.read_status(run_id)
    assert (status.status, status.phase, status.epochs_done) == ("stopped", "never started", 0)
    assert "never started" in status.error
    assert store.mark_interrupted() == [run_id]
    assert json.loads((tmp_path / run_id / "status.json").read_text())["status"] == "stopped"


def test_listing_checks_a_runs_files_once_until_they_change(tmp_path, monkeypatch):
    """A fresh process listing the store reuses what the last listing found (the check cache), parses a metrics
    file again only when it changed, and finds damage done since."""
    import core.store.checks as checks

    store = RunStore(tmp_path)
    run_id = store.create_run(TrainConfig(), name="listed")
    store.write_status(run_id, status="completed", model_saved=False)
    store.append_metrics(run_id, [{"type": "epoch", "epoch": 1, "loss": 0.5}])
    assert store.list_runs()[0].problems == []
    checked = []
    real = checks.check_file
    monkeypatch.setattr(checks, "check_file", lambda path, name: checked.append(path) or real(path, name))
    checks._CHECKS.clear()  # as a new process would start: only the cache file remains
    assert store.list_runs()[0].problems == [] and checked == []
    with open(tmp_path / run_id / "metrics.jsonl", "a") as handle:
        handle.write('{"type": "epoch", "epoch": "two"}\n')
    problems = store.list_runs()[0].problems
    assert len(checked) == 1 and problems == ["metrics.jsonl line 2 has epoch 'two'; allowed: a whole number from 0 "
                                              "to 100,000"]
