"""Sweeps (issue 16 item 1): the definition's checks, trials as ordinary tagged runs, pruning, a diverging trial,
Stop, two workers on one study, and a worker killed mid-trial."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from core import cli
from core.config import TrainConfig
from core.store import RunStore
from core.sweep import create_sweep, load_study, request_stop, run_sweep
from core.sweep_report import sweep_state
from core.sweep_space import SpaceError, make_spec, parse_dimension

BASE = TrainConfig(data_source="sample", train_subset=300, validation_split=0.2, epochs=1, batch_size=64)
LR = {"low": 1e-4, "high": 1e-2, "log": True}


def _sweep(store, space, **settings):
    return create_sweep(store, make_spec("tiny", BASE, space, **settings))


def _run_ids_of(store, sweep_id):
    return {info.run_id: info.record for info in store.list_runs() if info.record.sweep_id == sweep_id}


@pytest.mark.parametrize("space, message", [
    ({"learning_rate": {"low": 0.1, "high": 0.001}}, "learning_rate: low 0.1 is above high 0.001"),
    ({"lr": {"low": 0.1, "high": 1}}, "unknown field 'lr'"),
    ({"learning_rate": {"low": 0, "high": 0.1, "log": True}}, "a log range must stay above 0"),
    ({"batch_size": {"low": 0, "high": 64}}, "batch_size=0 is out of range"),
    ({"optimizer": {"low": 1, "high": 2}}, "optimizer takes choices, not a range"),
    ({"optimizer": {"choices": ["adam", "nadam"]}}, "optimizer='nadam' is not allowed"),
    ({}, "the search space is empty"),
])
def test_a_bad_search_space_is_refused_in_one_line(space, message):
    with pytest.raises(SpaceError, match=message.replace("(", r"\(")):
        make_spec("s", BASE, space)


def test_the_objective_is_never_the_test_set_and_needs_a_validation_split():
    with pytest.raises(SpaceError, match="validation_split > 0"):
        make_spec("s", BASE.replace(validation_split=0.0), {"learning_rate": LR})
    with pytest.raises(SpaceError, match="never the objective"):
        make_spec("s", BASE, {"learning_rate": LR}, objective="test_accuracy")
    with pytest.raises(SpaceError, match="grid search needs choices"):
        make_spec("s", BASE, {"learning_rate": LR}, sampler="grid")


def test_cli_dimensions_parse_ranges_choices_and_fixed_values():
    assert parse_dimension("learning_rate=1e-4:1e-1:log") == ("learning_rate", {"low": 1e-4, "high": 0.1, "log": True})
    assert parse_dimension("batch-size=64,128") == ("batch_size", {"choices": [64, 128]})
    assert parse_dimension("augment=true") == ("augment", True)
    with pytest.raises(SpaceError, match="'x' is not a number"):
        parse_dimension("dropout=x:0.5")


def test_cli_refuses_a_deleted_sweep_and_a_bad_space(lenet_runs, capsys):
    code = cli.main(["sweep", "create", "--name", "s", "--space", "learning_rate=0:0.1:log"])
    assert code == cli.EXIT_BAD_INPUT and "a log range must stay above 0" in capsys.readouterr().err
    sweep_id = _sweep(RunStore(lenet_runs), {"learning_rate": LR})
    assert cli.main(["sweep", "delete", sweep_id]) == 0
    capsys.readouterr()
    for action in ("run", "status", "stop"):
        assert cli.main(["sweep", action, sweep_id]) == cli.EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.startswith("error:") and "not found" in err and err.count("\n") == 1


def test_trials_are_tagged_runs_and_best_is_the_highest_validation_accuracy(lenet_runs, capsys):
    store = RunStore(lenet_runs)
    sweep_id = _sweep(store, {"learning_rate": LR, "batch_size": {"choices": [32, 64]}}, n_trials=3, pruning=False)
    assert cli.main(["sweep", "run", sweep_id, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["state"] == "finished" and payload["counts"]["completed"] == 3
    runs = _run_ids_of(store, sweep_id)
    assert sorted(r.trial_number for r in runs.values()) == [0, 1, 2]
    assert all(r.status == "completed" for r in runs.values())
    for trial in payload["trials"]:
        (run_id,) = trial["runs"]
        config = store.read_config(run_id)
        assert config.learning_rate == pytest.approx(trial["learning_rate"])
        assert config.batch_size == trial["batch_size"]
        _, epochs = store.read_metrics(run_id)
        assert trial["val_accuracy"] == pytest.approx(epochs["val_accuracy"].iloc[-1])
        assert trial["test_accuracy"] == pytest.approx(runs[run_id].test_accuracy)
    assert cli.main(["sweep", "best", sweep_id, "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["val_accuracy"] == pytest.approx(max(t["val_accuracy"] for t in payload["trials"]))


def test_a_poor_trial_is_pruned_and_its_run_kept(lenet_runs):
    store = RunStore(lenet_runs)
    sweep_id = create_sweep(store, make_spec("p", BASE.replace(epochs=3), {"learning_rate": LR}, n_trials=3))
    study = load_study(store, sweep_id)
    for rate in (0.01, 0.01, 1e-4):  # the third learns far slower: below the median at epoch 1
        study.enqueue_trial({"learning_rate": rate})
    assert run_sweep(store, threading.Event(), sweep_id) == "completed"
    _, frame, summary = sweep_state(store, sweep_id)
    assert list(frame["state"]) == ["completed", "completed", "pruned"] and summary.counts["pruned"] == 1
    (run_id,) = frame.loc[2, "runs"]
    status = store.read_status(run_id)
    assert status.status == "pruned" and status.epochs_done < 3 and "pruned by the sweep" in status.error
    assert store.has_model(run_id) and status.test_accuracy is not None


def test_a_diverging_trial_fails_and_the_sweep_goes_on(lenet_runs):
    store = RunStore(lenet_runs)
    base = BASE.replace(optimizer="sgd", momentum=0.99)
    sweep_id = create_sweep(store, make_spec("d", base, {"learning_rate": {"low": 1e-3, "high": 10.0}},
                                             n_trials=2, pruning=False))
    study = load_study(store, sweep_id)
    study.enqueue_trial({"learning_rate": 10.0})
    study.enqueue_trial({"learning_rate": 0.01})
    run_sweep(store, threading.Event(), sweep_id)
    _, frame, _ = sweep_state(store, sweep_id)
    assert list(frame["state"]) == ["failed", "completed"]
    assert "diverged" in frame.loc[0, "error"]


def test_stop_ends_the_running_trial_as_stopped_and_starts_no_more(lenet_runs):
    store = RunStore(lenet_runs)
    sweep_id = _sweep(store, {"learning_rate": LR, "epochs": {"choices": [60]}}, n_trials=3)
    worker = threading.Thread(target=run_sweep, args=(store, threading.Event(), sweep_id))
    worker.start()
    _wait_for_training(store, sweep_id)
    request_stop(store, sweep_id)
    worker.join(60)
    assert not worker.is_alive()
    _, frame, summary = sweep_state(store, sweep_id)
    assert list(frame["state"]) == ["stopped"] and summary.state == "stopped"
    (run_id,) = frame.loc[0, "runs"]
    assert store.read_status(run_id).status == "stopped"


def _wait_for_training(store, sweep_id, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        records = _run_ids_of(store, sweep_id)
        if any(r.phase == "training" for r in records.values()):
            return next(run_id for run_id, r in records.items() if r.phase == "training")
        time.sleep(0.2)
    raise AssertionError("no trial started training")


def _worker(root, sweep_id, *extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "core", "sweep", "run", sweep_id, "--runs-dir", str(root), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def test_two_local_workers_share_one_study_without_losing_or_repeating_a_trial(lenet_runs):
    store = RunStore(lenet_runs)
    sweep_id = _sweep(store, {"learning_rate": LR}, n_trials=4, pruning=False)
    workers = [_worker(lenet_runs, sweep_id) for _ in range(2)]
    for worker in workers:
        assert worker.wait(180) == 0, worker.stderr.read().decode()[-2000:]
    _, frame, _ = sweep_state(store, sweep_id)
    assert list(frame["trial"]) == [0, 1, 2, 3] and set(frame["state"]) == {"completed"}
    runs = _run_ids_of(store, sweep_id)
    assert sorted(r.trial_number for r in runs.values()) == [0, 1, 2, 3]  # one run per trial, none twice
    assert sorted(run for runs_of_trial in frame["runs"] for run in runs_of_trial) == sorted(runs)
    assert len({r.pid for r in runs.values()}) == 2  # both workers took trials


def test_a_worker_killed_mid_trial_fails_its_trial_and_the_sweep_goes_on(lenet_runs):
    store = RunStore(lenet_runs)
    sweep_id = _sweep(store, {"learning_rate": LR, "epochs": {"choices": [1, 60]}}, n_trials=2, pruning=False)
    study = load_study(store, sweep_id)
    study.enqueue_trial({"learning_rate": 1e-3, "epochs": 60})
    study.enqueue_trial({"learning_rate": 1e-3, "epochs": 1})
    worker = _worker(lenet_runs, sweep_id)
    killed_run = _wait_for_training(store, sweep_id)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(30)
    assert run_sweep(store, threading.Event(), sweep_id) == "completed"
    _, frame, summary = sweep_state(store, sweep_id)
    assert list(frame["state"]) == ["failed", "completed"] and summary.state == "finished"
    assert frame.loc[0, "runs"] == [killed_run]
    assert store.read_status(killed_run).status == "interrupted"


def test_a_grid_has_at_most_as_many_trials_as_points():
    spec = make_spec("g", BASE, {"learning_rate": {"choices": [1e-3, 2e-3]}, "batch_size": {"choices": [32]}},
                     n_trials=5, sampler="grid")
    assert spec.n_trials == 2


def test_a_grid_sweep_runs_every_point_to_the_end(lenet_runs):
    """Optuna's GridSampler calls study.stop() once its grid is covered, which raises outside study.optimize: the
    sweep's last trial used to crash the worker."""
    store = RunStore(lenet_runs)
    sweep_id = _sweep(store, {"learning_rate": {"choices": [1e-3, 3e-3]}}, n_trials=2, sampler="grid", pruning=False)
    assert run_sweep(store, threading.Event(), sweep_id) == "completed"
    _, frame, summary = sweep_state(store, sweep_id)
    assert summary.state == "finished" and list(frame["state"]) == ["completed", "completed"]
    assert sorted(frame["learning_rate"]) == [1e-3, 3e-3]


def test_seeds_per_configuration_train_one_run_per_seed_and_the_objective_is_their_mean(lenet_runs):
    store = RunStore(lenet_runs)
    sweep_id = _sweep(store, {"learning_rate": {"choices": [3e-3]}}, n_trials=1, seeds=2, pruning=False)
    run_sweep(store, threading.Event(), sweep_id)
    _, frame, _ = sweep_state(store, sweep_id)
    runs = frame.loc[0, "runs"]
    assert [store.read_status(r).name for r in runs] == ["tiny #0 seed 42", "tiny #0 seed 43"]
    assert [store.read_config(r).seed for r in runs] == [42, 43]
    finals = [store.read_metrics(r)[1]["val_accuracy"].iloc[-1] for r in runs]
    assert frame.loc[0, "val_accuracy"] == pytest.approx(sum(finals) / 2)
    tests = [store.read_status(r).test_accuracy for r in runs]
    assert frame.loc[0, "test_accuracy"] == pytest.approx(sum(tests) / 2)
