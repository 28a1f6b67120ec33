"""The ray executor (issue 16 item 2) on a real local Ray instance (ray.init(num_cpus=2), shared by the tests of
this module): a sweep of 6 trials, 2 at a time, stopped once 4 have completed; a poor trial pruned by the study's
median pruner; and an address that does not answer."""

import itertools
import socket
import threading
import time

import pytest

from core import cli
from core.config import TrainConfig
from core.store import RunStore
from core.sweep import create_sweep, load_study, request_stop
from core.sweep_report import sweep_state
from core.sweep_space import make_spec

ray = pytest.importorskip("ray")
BASE = TrainConfig(data_source="sample", train_subset=300, validation_split=0.2, epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_ray_sweep_runs_trials_two_at_a_time_as_tagged_runs_and_stops(lenet_runs, local_ray):
    from core.sweep_ray import run_on_ray

    store = RunStore(lenet_runs)
    space = {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}
    sweep_id = create_sweep(store, make_spec("ray", BASE, space, n_trials=6, pruning=False))

    def stop_after_four():
        deadline = time.time() + 400
        while time.time() < deadline and sweep_state(store, sweep_id)[2].counts["completed"] < 4:
            time.sleep(1)
        request_stop(store, sweep_id)

    threading.Thread(target=stop_after_four, daemon=True).start()
    assert run_on_ray(store, sweep_id, parallel=2) == "stopped"
    _, frame, summary = sweep_state(store, sweep_id)
    assert summary.counts["completed"] >= 4 and summary.counts["running"] == 0
    assert set(frame["state"]) <= {"completed", "stopped"} and len(frame) <= 6
    assert set(frame["node"]) == {socket.gethostname()}
    runs = {info.run_id: info.record for info in store.list_runs() if info.record.sweep_id == sweep_id}
    assert sorted(r.trial_number for r in runs.values()) == sorted(frame["trial"])
    for row in frame.itertuples():
        (run_id,) = row.runs
        assert runs[run_id].status == ("completed" if row.state == "completed" else "stopped")
    spans = sorted((r.started, r.ended) for r in runs.values())
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans))  # two trials trained at the same time


def test_a_poor_ray_trial_is_pruned_by_the_study_and_its_run_kept(lenet_runs, local_ray):
    from core.sweep_ray import run_on_ray

    store = RunStore(lenet_runs)
    space = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}
    sweep_id = create_sweep(store, make_spec("ray-p", BASE.replace(epochs=3), space, n_trials=3))
    study = load_study(store, sweep_id)
    for rate in (0.01, 0.01, 1e-4):  # the third learns far slower: below the median at epoch 1
        study.enqueue_trial({"learning_rate": rate})
    assert run_on_ray(store, sweep_id, parallel=1) == "completed"
    _, frame, summary = sweep_state(store, sweep_id)
    assert list(frame["state"]) == ["completed", "completed", "pruned"] and summary.counts["pruned"] == 1
    assert frame.loc[2, "node"] == socket.gethostname()
    (run_id,) = frame.loc[2, "runs"]
    status = store.read_status(run_id)
    assert status.status == "pruned" and status.epochs_done < 3 and "pruned by the sweep" in status.error
    assert store.has_model(run_id) and status.test_accuracy is not None
    trials = load_study(store, sweep_id).get_trials()
    assert sorted(trials[2].intermediate_values) == list(range(1, status.epochs_done + 1))  # reported each epoch
    assert all(len(t.intermediate_values) == 3 for t in trials[:2])


def test_a_ray_address_that_does_not_answer_is_refused_in_one_line(lenet_runs, capsys):
    store = RunStore(lenet_runs)
    sweep_id = create_sweep(store, make_spec("ray", BASE, {"learning_rate": {"choices": [1e-3]}}, n_trials=1))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    code = cli.main(["sweep", "run", sweep_id, "--executor", "ray", "--address", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT and f"the Ray cluster at 127.0.0.1:{port} does not answer" in err
    assert err.count("\n") == 1 and sweep_state(store, sweep_id)[1].empty
