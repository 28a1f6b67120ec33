"""Fault suite, concurrency: two sessions pressing Train at once, a run deleted while another session shows
it, Stop twice and after the end, a reload during the last epoch, the dashboard's training process killed,
and a terminal training while the dashboard trains. No case may corrupt a run or leave one active for ever."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from core.config import TrainConfig
from core.store import ACTIVE, RunStore, now_iso, owner
from dashboard import common, sidebar, worker
from test_faults_support import ROOT, SHIPPED_ID, copy_shipped

CASES = [
    "two sessions press Train at the same moment",
    "a run deleted in one session while another shows it (audit page)",
    "a run deleted in one session while another manages it (Runs page)",
    "Stop pressed twice on a running run",
    "Stop on a queued run, twice",
    "Stop after the run has ended",
    "the Train page reloaded during the last epoch",
    "the dashboard's training process killed while it holds a run",
    "a terminal trains while the dashboard trains",
    "two dashboards on one store press Train at the same instant; one stops the other's run",
    "Train clicked 20 times fast",
    "Stop clicked again as the next run's Stop appears under the pointer",
]
FORM = {"data_source": "sample", "train_subset": 600, "validation_split": 0.1, "batch_size": 64, "epochs": 2}
GATE = threading.Event()  # the gated trainer's runs end when the test opens it


class GatedTrainer:
    """Stands in for the dashboard's training process: a run is 'running' at epoch 2 of 2 until GATE opens."""

    def start(self) -> None:
        pass

    def __call__(self, config, store: RunStore, run_id: str, stop_event: threading.Event) -> str:
        store.write_status(run_id, status="running", started=now_iso(), phase="training", epochs=2,
                           steps_per_epoch=9, batch_size=64, n_train=540, **owner())
        store.append_metrics(run_id, [
            {"type": "epoch", "epoch": 1, "loss": 1.2, "accuracy": 0.6, "time": 1.0, "learning_rate": 0.001},
            {"type": "batch", "epoch": 2, "batch": 5, "step": 14, "loss": 0.9, "accuracy": 0.7, "time": 1.5}])
        while not GATE.wait(0.02):
            if stop_event.is_set():
                store.write_status(run_id, status="stopped", phase="stopped", ended=now_iso(), epochs_done=1,
                                   model_saved=False)
                return "stopped"
        store.append_metrics(run_id, [{"type": "epoch", "epoch": 2, "loss": 0.8, "accuracy": 0.75, "time": 2.0}])
        store.write_status(run_id, status="completed", phase="completed", ended=now_iso(), epochs_done=2,
                           test_accuracy=0.9, duration=2.0, model_saved=False)
        return "completed"


@pytest.fixture
def gated(lenet_runs, offline_sources, monkeypatch):
    """The dashboard's JobManager trains with GatedTrainer; every run is final when the test ends."""
    GATE.clear()
    monkeypatch.setattr(worker, "TrainingProcess", GatedTrainer)
    yield lenet_runs
    GATE.set()
    store = RunStore(lenet_runs)
    deadline = time.monotonic() + 10
    while any(r.active for r in store.list_runs()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [r.run_id for r in store.list_runs() if r.active], "a run was left active"


def _wait(predicate, timeout=20.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _session(name: str):
    from dashboard_apptest import open_app

    at = open_app()
    for field, value in FORM.items():
        for kind in ("number_input", "selectbox"):
            for widget in getattr(at, kind):
                if widget.key == sidebar.key(field):
                    widget.set_value(value)
    at.text_input(key=sidebar.NAME).set_value(name)
    return at


def _first_running_second_queued(root):
    """A session that pressed Train for "first" and then "second": (its AppTest, the store, name -> run id),
    once "first" is running and the page shows it."""
    at = _session("first")
    at.button(key=sidebar.SUBMIT).click().run()
    at.text_input(key=sidebar.NAME).set_value("second")
    at.button(key=sidebar.SUBMIT).click().run()
    store = RunStore(root)
    ids = {info.name: info.run_id for info in store.list_runs()}
    _wait(lambda: store.read_status(ids["first"]).status == "running", what="the first run to start")
    at.run()
    return at, store, ids


def _statuses(root) -> dict[str, str]:
    return {info.name: info.status for info in RunStore(root).list_runs()}


def test_two_sessions_press_train_at_once(gated, monkeypatch):
    from dashboard_apptest import texts

    # Two AppTests in threads share Streamlit's one mock Runtime, which the first run to end removes: a v2 component
    # mounted after that raised "Runtime hasn't been created!" (a real server has one Runtime for all sessions).
    # What is tested here is the queue, so the page's two components are left out.
    monkeypatch.setattr("dashboard.live_panel._PANEL", lambda **kwargs: None)
    monkeypatch.setattr("dashboard.live.watch_visibility", lambda: None)
    alice, bob = _session("alice's run"), _session("bob's run")
    alice.button(key=sidebar.SUBMIT).click()
    bob.button(key=sidebar.SUBMIT).click()
    clicks = [threading.Thread(target=at.run) for at in (alice, bob)]  # both scripts run at the same moment
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    assert not alice.exception and not bob.exception
    _wait(lambda: sorted(_statuses(gated).values()) == ["queued", "running"], what="one running, one queued")
    running = next(name for name, state in _statuses(gated).items() if state == "running")
    waiting = next(name for name, state in _statuses(gated).items() if state == "queued")
    for at in (alice, bob):
        at.run()
        assert f"**{waiting}** — Queued behind run {running} (position 1 in line)" in texts(at.info)
    GATE.set()
    _wait(lambda: set(_statuses(gated).values()) == {"completed"}, what="both runs to complete")
    runs = RunStore(gated).list_runs()
    first, second = sorted(runs, key=lambda r: r.record.started)
    assert first.record.ended <= second.record.started  # one after the other, never together


def test_stop_twice_on_a_running_and_a_queued_run_and_after_the_end(gated):
    from dashboard.common import job_manager

    at, store, ids = _first_running_second_queued(gated)

    queued = f"train_stop_{ids['second']}"
    time.sleep(common.ARM_SECONDS)  # a button that has just appeared ignores clicks (see the repeated-click case)
    at.button(key=queued).click().run()
    assert store.read_status(ids["second"]).status == "stopped"
    assert job_manager().stop(ids["second"]) == "already finished"  # the same button, pressed again

    running = f"train_stop_{ids['first']}"
    button = at.button(key=running)
    button.click().run()
    assert at.session_state["train_stop_message"] == (ids["first"], "stopping")
    assert job_manager().stop(ids["first"]) in ("stopping", "already finished")  # a second press: harmless
    _wait(lambda: not job_manager().owns(ids["first"]), what="the run to stop")
    assert job_manager().stop(ids["first"]) == "already finished"
    at.run()
    assert not at.exception
    assert f"train_stop_{ids['first']}" not in [b.key for b in at.button]  # no Stop once it has ended
    assert {store.read_status(i).status for i in ids.values()} == {"stopped"}


def test_reload_during_the_last_epoch_follows_the_run_to_its_end(gated):
    from dashboard_apptest import component_data, open_app

    at = _session("last epoch")
    at.button(key=sidebar.SUBMIT).click().run()
    store = RunStore(gated)
    [run_id] = [info.run_id for info in store.list_runs()]
    _wait(lambda: store.read_status(run_id).status == "running", what="the run to start")
    reloaded = open_app()  # a new browser session on the same server, as a reload makes
    metrics = {m["label"]: m["value"] for m in component_data(reloaded, "train_live")["feed"]["progress"]["metrics"]}
    assert metrics["Epoch"] == "2/2" and metrics["Batch"] == "5/9"  # the live panel, drawn from the store
    assert "last epoch" in reloaded.subheader[0].value
    GATE.set()
    _wait(lambda: store.read_status(run_id).status == "completed", what="the run to complete")
    reloaded.run()
    assert not reloaded.exception
    assert {m.label: m.value for m in reloaded.metric}["Test accuracy"] == "90.00%"


def test_a_run_deleted_in_another_session(lenet_runs, offline_sources):
    from dashboard_apptest import open_app, texts

    copy_shipped(lenet_runs)
    copy_shipped(lenet_runs, "second-copy")
    viewer = open_app("views/evaluate.py")
    viewer.session_state["common_selected_run"] = "second-copy"
    viewer.run()
    manager = open_app("views/runs.py")
    manager.selectbox(key="runs_managed_run").set_value("second-copy").run()
    deleter = open_app("views/runs.py")
    deleter.selectbox(key="runs_managed_run").set_value("second-copy").run()
    deleter.checkbox(key="runs_confirm_delete").check().run()
    deleter.button[[b.label for b in deleter.button].index("Delete run")].click().run()
    assert "Deleted run" in texts(deleter.success)

    viewer.run()  # the audit page says the run is gone
    assert not viewer.exception
    assert f"run 'second-copy' not found in {lenet_runs}" in texts(viewer.info)
    manager.text_input(key="runs_new_name").set_value("renamed too late")
    manager.button[[b.label for b in manager.button].index("Rename")].click().run()
    assert not manager.exception
    assert f"run 'second-copy' not found in {lenet_runs}" in texts(manager.error)
    assert not (lenet_runs / "second-copy").exists()  # renaming a deleted run does not bring a folder back
    assert RunStore(lenet_runs).read_status(SHIPPED_ID).name == "Seed article recipe (full MNIST)"


def test_killed_training_process_fails_the_run_instead_of_leaving_it_queued(lenet_runs, offline_sources):
    from dashboard.common import job_manager
    from dashboard_apptest import texts

    at = _session("killed underneath")
    at.button(key=sidebar.SUBMIT).click().run()
    store = RunStore(lenet_runs)
    [run_id] = [info.run_id for info in store.list_runs()]
    manager = job_manager()
    _wait(lambda: manager.current() == run_id, what="the run to be handed to the training process")
    manager._train._process.kill()  # SIGKILL, as the OOM killer would
    _wait(lambda: store.read_status(run_id).status not in ACTIVE, what="the run to end")
    status = store.read_status(run_id)
    assert status.status == "failed"
    assert "the training process ended unexpectedly (exit code -9)" in status.error
    at.run()
    assert "Training failed: RuntimeError: the training process ended unexpectedly" in texts(at.error)


def test_a_terminal_waits_while_the_dashboard_trains(tmp_path, offline_sources):
    """One training per store: `core train` in a terminal waits (and says so) until the dashboard's run ends,
    then trains; each run's files hold only its own records."""
    import keras

    from core.trainer import train

    from dashboard.worker import JobManager

    runs = tmp_path / "runs"
    store = RunStore(runs)

    class WaitForTheTerminal(keras.callbacks.Callback):  # keeps the dashboard's run going until the terminal waits
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                _wait(lambda: any((r.record.phase or "").startswith("waiting for run") for r in store.list_runs()),
                      240, "the terminal's run to wait")

    manager = JobManager(store, train_fn=lambda c, s, r, e: train(c, s, run_id=r, stop_event=e, jit_compile=False,
                                                                   callbacks=[WaitForTheTerminal()]).status)
    dashboard_run = manager.submit(TrainConfig(**FORM), "dashboard run")
    _wait(lambda: store.training_holder() == dashboard_run, 60, "the dashboard's run to take the store")
    terminal = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--data-source", "sample", "--train-subset", "600",
         "--validation-split", "0.1", "--epochs", "1", "--json", "--runs-dir", str(runs)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        out, err = terminal.communicate(timeout=300)
    finally:
        terminal.kill()
    assert f"waiting for run {dashboard_run} to finish: one training per run store" in err
    cli_run = json.loads(out)["run_id"]
    assert json.loads(out)["status"] == "completed"
    cli_status, dashboard_status = store.read_status(cli_run), store.read_status(dashboard_run)
    assert dashboard_status.status == "completed"
    assert dashboard_status.ended <= cli_status.started  # one after the other, never together
    for run_id, epochs, name in ((cli_run, [1], "seed mnist"), (dashboard_run, [1, 2], "dashboard run")):
        batch, epoch_rows = store.read_metrics(run_id)
        assert list(epoch_rows["epoch"]) == epochs and batch["epoch"].isin(epochs).all()
        assert store.read_status(run_id).name == name
        assert store.read_evaluation(run_id)[0]["n"] == 10000
        assert not [p.name for p in (runs / run_id).rglob(".*")]  # no heartbeat or stop file left


def test_two_dashboards_on_one_store_train_one_at_a_time_and_each_stops_the_others_run(tmp_path, offline_sources):
    """Two dashboards (two job managers with their own queues) press Train at the same instant: the store's lock
    lets one train while the other's run waits, queued; the second dashboard's Stop ends the first's run."""
    from core.trainer import train

    from dashboard.worker import JobManager

    store = RunStore(tmp_path / "runs")
    config = TrainConfig(**{**FORM, "epochs": 30})

    def trainer(c, s, r, e):
        return train(c, s, run_id=r, stop_event=e, jit_compile=False).status

    first, second = JobManager(store, train_fn=trainer), JobManager(store, train_fn=trainer)
    ids = {}
    presses = [threading.Thread(target=lambda m=m, n=n: ids.update({n: m.submit(config, n)}))
               for m, n in ((first, "first"), (second, "second"))]
    for press in presses:
        press.start()
    for press in presses:
        press.join()
    _wait(lambda: store.training_holder() in ids.values(), 120, "one run to take the store")
    holder = store.training_holder()
    other = next(run_id for run_id in ids.values() if run_id != holder)
    _wait(lambda: store.read_status(holder).phase == "training", 120, "the first run to train")
    assert store.read_status(other).status == "queued"  # waiting, not training beside it
    owner, stranger = (first, second) if first.owns(holder) else (second, first)
    assert stranger.blocking(stranger.waiting()[0] if stranger.waiting() else other) in (holder, None)
    assert stranger.stop(holder) == "stopping (asked through the run store)"
    _wait(lambda: store.read_status(holder).status == "stopped", 30, "the other dashboard's Stop to act")
    _wait(lambda: store.read_status(other).phase == "training", 120, "the waiting run to start")
    assert owner.stop(other) == "stopping (asked through the run store)"
    _wait(lambda: store.read_status(other).status == "stopped", 30, "the second run to stop")
    ended, started = store.read_status(holder).ended, store.read_status(other).training_started
    assert ended <= started  # never two trainings at once


def test_twenty_fast_train_clicks_queue_one_run(gated):
    from dashboard_apptest import texts

    at = _session("clicked")
    for _ in range(20):
        at.button(key=sidebar.SUBMIT).click().run()
    assert not at.exception
    assert [info.name for info in RunStore(gated).list_runs()] == ["clicked"]
    assert "a click acts once" in texts(at.sidebar.error)


def test_a_repeated_stop_click_does_not_stop_the_run_that_takes_its_place(gated):
    from dashboard.common import job_manager

    at, store, ids = _first_running_second_queued(gated)
    time.sleep(common.ARM_SECONDS)
    at.button(key=f"train_stop_{ids['first']}").click().run()  # a deliberate Stop
    _wait(lambda: store.read_status(ids["second"]).status == "running", what="the next run to start")
    at.run()  # the second run's Stop is drawn where the first one's was
    at.button(key=f"train_stop_{ids['second']}").click().run()  # the user's next fast click lands on it
    assert store.read_status(ids["second"]).status == "running" and job_manager().owns(ids["second"])
    assert "press it again to stop this run" in at.session_state["train_stop_message"][1]
    time.sleep(common.ARM_SECONDS)
    at.button(key=f"train_stop_{ids['second']}").click().run()  # pressed again on purpose: it acts
    _wait(lambda: store.read_status(ids["second"]).status == "stopped", what="the second run to stop")
