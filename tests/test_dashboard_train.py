"""The Train page: figure builders, the sidebar form, and the live view (AppTest, no server)."""

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dashboard_apptest import APP, component_data, live_chart, open_app, texts
from streamlit.testing.v1 import AppTest

from core import figures_training as figures
from core.records import RunStatus
from core.store import RunStore
from dashboard import common, sidebar

pytestmark = pytest.mark.usefixtures("offline_sources")


# ----- helpers ---------------------------------------------------------------------------------


def set_control(at: AppTest, field: str, value) -> None:
    for kind in ("number_input", "selectbox", "text_input", "slider", "toggle"):
        for widget in getattr(at, kind):
            if widget.key == sidebar.key(field):
                widget.set_value(value)
                return
    raise AssertionError(f"no control for {field}")


def run_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


# ----- figure builders -------------------------------------------------------------------------


def test_smoothing_is_tensorboards_debiased_ema():
    values = [1.0, 0.0, 1.0, 0.0]
    weight = 0.5
    expected, last, total = [], 0.0, 0.0
    for i, value in enumerate(values):  # TensorBoard: last = last*w + (1-w)*v, then divide by 1 - w^(i+1)
        last = last * weight + (1 - weight) * value
        total = 1 - weight ** (i + 1)
        expected.append(last / total)
    np.testing.assert_allclose(figures.smooth(values, weight), expected)
    np.testing.assert_allclose(figures.smooth(values, weight)[:2], [1.0, 1 / 3])


def test_smoothing_zero_returns_the_values_and_bad_weights_are_rejected():
    assert figures.smooth([3.0, 1.0, 2.0], 0).tolist() == [3.0, 1.0, 2.0]
    smoothed = figures.smooth([2.0, np.nan, 2.0], 0.9)
    assert smoothed.iloc[0] == 2.0 and smoothed.iloc[2] == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"weight=1.*\[0, 1\)"):
        figures.smooth([1.0], 1.0)


BATCH = pd.DataFrame({"epoch": [1, 1, 2], "batch": [4, 8, 4], "step": [4, 8, 12],
                      "loss": [2.3, 1.5, 0.9], "accuracy": [0.1, 0.5, 0.7], "time": [1.0, 2.0, 3.0]})
EPOCH = pd.DataFrame({"epoch": [1, 2], "loss": [1.5, 0.8], "accuracy": [0.5, 0.75], "val_loss": [1.2, 0.7],
                      "val_accuracy": [0.6, 0.8], "test_loss": [1.25, 0.72], "test_accuracy": [0.58, 0.79],
                      "learning_rate": [0.001, 0.0005], "images_per_sec": [900.0, 1100.0], "time": [2.5, 5.0]})


def test_batch_figure_holds_the_raw_and_smoothed_metrics():
    figure = figures.batch_figure(BATCH, smoothing=0.5)
    by_name = {trace.name: trace for trace in figure.data}
    assert list(by_name["loss (raw)"].y) == [2.3, 1.5, 0.9]
    assert list(by_name["loss (raw)"].x) == [4, 8, 12]
    np.testing.assert_allclose(by_name["loss (smoothed)"].y, figures.smooth(BATCH["loss"], 0.5))
    np.testing.assert_allclose(by_name["accuracy (smoothed)"].y, figures.smooth(BATCH["accuracy"], 0.5))
    unsmoothed = figures.batch_figure(BATCH, smoothing=0)
    assert [trace.name for trace in unsmoothed.data] == ["loss", "accuracy"]
    assert list(unsmoothed.data[0].y) == [2.3, 1.5, 0.9]


def test_epoch_figure_has_train_validation_and_test_curves():
    figure = figures.epoch_figure(EPOCH)
    curves = {(trace.name, trace.xaxis): list(trace.y) for trace in figure.data}
    assert curves[("train", "x")] == [1.5, 0.8]
    assert curves[("validation", "x")] == [1.2, 0.7]
    assert curves[("test", "x")] == [1.25, 0.72]
    assert curves[("validation", "x2")] == [0.6, 0.8]
    assert curves[("test", "x2")] == [0.58, 0.79]
    no_validation = figures.epoch_figure(EPOCH.drop(columns=["val_loss", "val_accuracy"]))
    assert {trace.name for trace in no_validation.data} == {"train", "test"}


def test_epoch_figure_draws_an_epoch_cut_short_by_stop_hollow():
    stopped = pd.concat([EPOCH, pd.DataFrame({"epoch": [3], "loss": [0.7], "accuracy": [0.8], "partial": [True],
                                              "steps_done": [208]})], ignore_index=True)
    train = [t for t in figures.epoch_figure(stopped).data if t.name == "train"]
    for trace in train:
        assert list(trace.marker.symbol) == ["circle", "circle", "circle-open"]
        assert list(trace.customdata) == ["", "", " (stopped after 208 batches)"]
    assert all("circle-open" not in trace.marker.symbol for trace in figures.epoch_figure(EPOCH).data)


def test_empty_metrics_give_a_waiting_message():
    for figure in (figures.batch_figure(pd.DataFrame(), 0.6), figures.epoch_figure(pd.DataFrame())):
        assert not figure.data
        assert "Waiting" in figure.layout.annotations[0].text


def test_progress_counts_steps_eta_and_throughput():
    status = RunStatus(epochs=3, steps_per_epoch=8, batch_size=64, n_train=500)
    shown = figures.progress(status, BATCH, EPOCH.iloc[:1])
    assert (shown.epoch, shown.batch, shown.epochs) == (2, 4, 3)
    assert shown.fraction == pytest.approx(12 / 24)
    assert shown.eta_seconds == pytest.approx(3.0)  # 12 steps in 3 s, 12 to go
    assert shown.images_per_sec == 900.0  # the finished epoch's measured rate
    assert shown.learning_rate == 0.001
    assert "epoch 2/3" in shown.text and "batch 4/8" in shown.text and "ETA 3s" in shown.text
    before = figures.progress(RunStatus(epochs=2), pd.DataFrame(), pd.DataFrame())
    assert (before.fraction, before.epoch, before.eta_seconds) == (0.0, 0, None)
    # While the data loads the status has no epochs yet: the config's count, not "Epoch 0/1"
    loading = figures.progress(RunStatus(status="running", phase="loading data"), pd.DataFrame(), pd.DataFrame(), 2)
    assert loading.epochs == 2


def test_durations_read_as_the_runs_table_writes_them():
    # The Runs table's cells are Streamlit's localized durations, written by the browser's Intl.DurationFormat
    # (checked with Node 26: "19 sec", "2 min, 43 sec", "1 hr, 5 min, 12 sec", "1 hr, 3 sec"); issue 20.8.
    assert [figures.format_duration(s) for s in (19, 163.4, 3912, 3603, 120)] == [
        "19 sec", "2 min, 43 sec", "1 hr, 5 min, 12 sec", "1 hr, 3 sec", "2 min"]
    assert figures.format_duration(None) == "–" and figures.format_duration(0.2) == "0 sec"


def test_format_seconds():
    assert figures.format_seconds(5.4) == "5s"
    assert figures.format_seconds(125) == "2m 05s"
    assert figures.format_seconds(3 * 3600 + 120) == "3h 02m"
    assert figures.format_seconds(None) == "–"


# ----- the page --------------------------------------------------------------------------------


def test_empty_store_opens_on_train_with_the_form_and_the_offline_source(lenet_runs):
    at = open_app()
    assert at.title[0].value == "Train LeNet-5"
    assert "No run yet" in texts(at.info)
    assert "Offline: using the bundled sample of" in texts(at.sidebar.info)
    keys = {w.key for kind in ("number_input", "selectbox", "text_input", "slider", "toggle") for w in getattr(at, kind)}
    for field in ("dataset", "data_source", "data_path", "train_subset", "validation_split", "variant", "activation",
                  "pooling", "dropout", "optimizer", "momentum", "learning_rate", "lr_schedule", "batch_size",
                  "epochs", "augment", "seed"):
        assert sidebar.key(field) in keys, field
    assert sidebar.NAME in keys
    assert run_folders(lenet_runs) == []


def test_the_training_form_prestarts_the_training_process_and_the_runs_page_does_not(lenet_runs, monkeypatch):
    """TensorFlow loads while the user fills in the form (Train, Sweep), not beside a Runs or audit page's work."""
    from dashboard.worker import JobManager

    asked = []
    monkeypatch.setenv("LENET_WORKER_PRESTART", "1")
    monkeypatch.setattr(JobManager, "prestart", lambda self: asked.append(self.store.root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.switch_page("views/runs.py").run()
    assert not at.exception and asked == []
    at.switch_page("views/train.py").run()
    assert asked == [common.store().root.resolve()]
    at.switch_page("views/sweep.py").run()
    assert len(asked) == 2


def test_finished_run_shows_its_curves_accuracy_and_audit_link(finished_run, lenet_runs):
    status = RunStore().read_status(finished_run)
    batch, epoch = RunStore().read_metrics(finished_run)
    at = open_app()
    assert "tiny sample run" in at.subheader[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{status.test_accuracy:.2%}"
    assert metrics["Epochs"] == "1/1"
    assert metrics["Training time"] == figures.format_duration(status.duration)  # as the Runs table writes it
    assert "Sample: using the bundled sample" in texts(at.caption)
    links = at.get("page_link")
    assert links and links[0].proto.page == "evaluate"
    assert links[0].proto.query_string == f"run={finished_run}"  # the link names its run in the URL
    assert "common_selected_run" not in at.session_state  # drawing Train chooses nothing for the audit pages
    epochs = live_chart(at, "epoch")
    validation = [t for t in epochs["data"] if t["name"] == "validation" and t["xaxis"] == "x2"][0]
    assert validation["y"] == pytest.approx(epoch["val_accuracy"].tolist())
    batches = live_chart(at, "batch")
    assert batches["data"][0]["y"] == pytest.approx(batch["loss"].tolist())


def test_failed_run_shows_its_error(finished_run, lenet_runs):
    RunStore().write_status(finished_run, status="failed", error="loss became nan at epoch 1, batch 3")
    at = open_app()
    assert "loss became nan at epoch 1, batch 3" in texts(at.error)


def test_a_run_stopped_mid_epoch_says_how_far_it_got(finished_run, lenet_runs):
    RunStore().write_status(finished_run, status="stopped", epochs=8, epochs_done=1, stopped_batch=208,
                            steps_per_epoch=268)
    at = open_app()
    assert ("Stopped after 1 of 8 epochs, 208 of 268 batches into epoch 2; the saved model is the one at that batch, "
            "and the curves' epoch 2 point (hollow) covers only those batches.") in texts(at.warning)
    assert {m.label: m.value for m in at.metric}["Epochs"] == "1/8"


def test_a_run_that_failed_before_training_does_not_say_it_is_waiting(lenet_runs):
    from core.config import TrainConfig

    store = RunStore()
    run_id = store.create_run(TrainConfig(), name="bad data path")
    store.write_status(run_id, status="failed", phase="failed", error="/tmp/x.png: not a .npz archive")
    at = open_app()
    assert "/tmp/x.png: not a .npz archive" in texts(at.error)
    messages = [live_chart(at, name)["layout"]["annotations"][0]["text"] for name in ("batch", "epoch")]
    assert messages == ["The run ended before its first batch.", "No epoch finished before the run ended."]
    assert "**Data:** none loaded: the run ended before its data was read." in texts(at.caption)
    for page, expected in (("evaluate", "This run ended (failed) before finishing an epoch"),
                           ("inside", "neither a saved model nor weights from any epoch")):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception and expected in texts(at.info) + texts(at.warning)
        assert "yet" not in texts(at.info) + texts(at.warning)


def test_damaged_folder_does_not_break_the_train_page(finished_run, lenet_runs):
    (lenet_runs / "20990101-000000-broken-0000").mkdir()
    (lenet_runs / "stray.txt").write_text("not a run")
    at = open_app()
    assert "tiny sample run" in at.subheader[0].value


def test_batch_size_larger_than_the_subset_is_refused_next_to_the_control(lenet_runs):
    at = open_app()
    set_control(at, "data_source", "sample")
    set_control(at, "train_subset", 600)
    set_control(at, "batch_size", 1000)
    at.button(key=sidebar.SUBMIT).click().run()
    errors = texts(at.sidebar.error)
    assert "batch_size=1000" in errors and "allowed: 1 to 540" in errors
    assert "Not started" in errors
    assert run_folders(lenet_runs) == []


@pytest.mark.parametrize("field, value, expected", [
    ("learning_rate", 0.0, "learning_rate=0.0 is out of range; allowed: (0, 10]"),
    ("activation", "tanh", "activation='tanh' applies to the seed variant only"),
    ("data_source", "file", "data_source='file' needs data_path"),
])
def test_invalid_values_name_field_value_and_allowed_range(lenet_runs, field, value, expected):
    at = open_app()
    if field == "activation":
        set_control(at, "variant", "lecun1998")
    set_control(at, field, value)
    at.button(key=sidebar.SUBMIT).click().run()
    assert expected in texts(at.sidebar.error)
    assert run_folders(lenet_runs) == []


def test_preset_fills_the_controls_without_starting_anything(lenet_runs):
    at = open_app()
    at.selectbox(key=sidebar.PRESET).set_value("Quick demo").run()
    assert at.number_input(key=sidebar.key("train_subset")).value == 6000
    assert at.number_input(key=sidebar.key("batch_size")).value == 128
    assert at.number_input(key=sidebar.key("epochs")).value == 2
    assert at.text_input(key=sidebar.NAME).value == "Quick demo"
    assert run_folders(lenet_runs) == []


def wait_for_status(store: RunStore, run_id: str, wanted: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = store.read_status(run_id).status
        if state in wanted:
            return state
        time.sleep(0.25)
    raise AssertionError(f"run {run_id} still {state} after {timeout} s")


def test_training_from_the_form_queues_a_second_run_and_completes(lenet_runs):
    at = open_app()
    for field, value in (("data_source", "sample"), ("train_subset", 600), ("validation_split", 0.1),
                         ("batch_size", 64), ("epochs", 1)):
        set_control(at, field, value)
    at.text_input(key=sidebar.NAME).set_value("ui run")
    at.button(key=sidebar.SUBMIT).click().run()
    assert not at.exception
    store = RunStore()
    [first] = [r.run_id for r in store.list_runs()]
    assert store.read_status(first).name == "ui run"

    at.text_input(key=sidebar.NAME).set_value("second ui run")
    at.button(key=sidebar.SUBMIT).click().run()
    second = next(r.run_id for r in store.list_runs() if r.run_id != first)
    assert store.read_status(second).status == "queued"
    assert "**second ui run** — Queued behind run ui run (position 1 in line)" in texts(at.info)
    remove = at.button(key=f"train_stop_{second}")
    assert remove.label == "Remove from queue"  # not a second "Stop" next to the running run's
    time.sleep(common.ARM_SECONDS)  # a button that has just appeared ignores clicks
    remove.click().run()
    assert store.read_status(second).status == "stopped"

    assert wait_for_status(store, first, {"completed", "failed"}, timeout=180) == "completed"
    assert store.read_status(first).pid != os.getpid()  # trained in the dashboard's training process
    at = open_app()
    assert "ui run" in at.subheader[0].value
    assert at.metric[0].label == "Test accuracy"
    at.switch_page("views/runs.py").run()
    table = at.dataframe[0].value
    assert table.set_index("run_id").loc[first, "status"] == "completed"
    assert table.set_index("run_id").loc[second, "status"] == "stopped"


def test_a_run_training_in_a_terminal_is_followed_and_stop_asks_it_through_the_store(finished_run, lenet_runs):
    import shutil
    import socket

    from core.store import process_started

    terminal_run = "20990101-000000-terminal-0000"
    shutil.copytree(lenet_runs / finished_run, lenet_runs / terminal_run)
    RunStore().write_status(terminal_run, name="terminal run", status="running", phase="training", pid=1,
                            pid_started=process_started(1), host=socket.gethostname())  # alive, not this process
    at = open_app()
    assert "terminal run" in at.subheader[0].value
    assert "Started by another dashboard or a terminal" in texts(at.caption)
    panel = component_data(at, "train_live")
    assert panel["progress"] and panel["poll"]  # the live panel shows its progress and follows the run
    assert [m["label"] for m in panel["feed"]["progress"]["metrics"]] == ["Epoch", "Batch", "ETA", "Images/s",
                                                                          "Learning rate"]
    time.sleep(common.ARM_SECONDS)
    at.button(key=f"train_stop_{terminal_run}").click().run()
    assert at.session_state["train_stop_message"] == (terminal_run, "stopping (asked through the run store)")
    assert (lenet_runs / terminal_run / ".stop").exists()  # what its trainer's StopSignal looks for


def test_the_forms_hints_follow_the_controls_before_train_is_pressed(lenet_runs):
    """Issue 20.5: inside an st.form the hints went stale until Train was pressed."""
    at = open_app()
    assert "Momentum is ignored by adam." in texts(at.sidebar.caption)
    at.sidebar.selectbox(key=sidebar.key("optimizer")).set_value("sgd").run()
    assert not [c for c in texts(at.sidebar.caption) if "Momentum is ignored" in c]
    at.sidebar.selectbox(key=sidebar.key("variant")).set_value("lecun1998").run()
    for field in ("activation", "pooling"):
        assert at.sidebar.selectbox(key=sidebar.key(field)).disabled, field
    assert at.sidebar.slider(key=sidebar.key("dropout")).disabled
    assert "lecun1998 ignores activation, pooling and dropout; leave them at relu, average, 0." in texts(at.sidebar.caption)
    at.sidebar.text_input(key=sidebar.key("data_path")).set_value("/nonexistent/mnist.npz").run()
    assert "/nonexistent/mnist.npz" in texts(at.sidebar.error) and "Offline" not in texts(at.sidebar.info)
    assert run_folders(lenet_runs) == []  # nothing started without Train


def test_use_these_settings_and_a_reload_keep_the_forms_values(finished_run, lenet_runs):
    """Issue 20.6: a run's config goes back into the form from Runs and from Train's summary; the URL keeps it."""
    config = RunStore().read_config(finished_run)
    at = open_app("views/runs.py")
    [use] = [b for b in at.button if b.key == "runs_use_settings"]
    use.click().run()
    assert at.session_state[sidebar.key("train_subset")] == config.train_subset
    at.switch_page("views/train.py").run()
    assert at.sidebar.number_input(key=sidebar.key("train_subset")).value == config.train_subset
    assert at.sidebar.text_input(key=sidebar.NAME).value == "tiny sample run (again)"
    assert at.query_params["train_subset"] in (str(config.train_subset), [str(config.train_subset)])
    at.sidebar.number_input(key=sidebar.key("learning_rate")).set_value(0.01).run()
    on_train = [b for b in at.button if b.key == f"train_use_{finished_run}"]
    assert on_train and on_train[0].label == "Use these settings"
    on_train[0].click().run()
    assert at.sidebar.number_input(key=sidebar.key("learning_rate")).value == config.learning_rate
    # a reload is a new session with the same URL
    reloaded = AppTest.from_file(str(APP), default_timeout=60)
    reloaded.query_params.update({"train_subset": "600", "epochs": "3", "optimizer": "adagrad"})
    reloaded.run()
    assert reloaded.sidebar.number_input(key=sidebar.key("train_subset")).value == 600
    assert reloaded.sidebar.number_input(key=sidebar.key("epochs")).value == 3
    assert reloaded.sidebar.selectbox(key=sidebar.key("optimizer")).value == "adam"  # not allowed: the default
    assert "The link's value for optimizer was not allowed" in texts(reloaded.sidebar.caption)


def test_an_interrupted_run_counts_the_epochs_it_saved(finished_run, lenet_runs):
    """Issue 21, item 13: an interrupted run without epochs_done said "Epochs 30/30" after 4 epochs."""
    store = RunStore()
    store.write_status(finished_run, status="interrupted", epochs=30, epochs_done=None)
    saved = len(store.read_metrics(finished_run)[1])
    at = open_app()
    assert [m.value for m in at.metric if m.label == "Epochs"] == [f"{saved}/30"]


def test_a_long_run_is_drawn_from_2000_means_that_keep_every_batch():
    """200,000 batch records: the chart gets 2,000 points, each the mean of the batches it covers, so the mean
    over the run is unchanged and the browser can redraw it every second."""
    n = 200_000
    rng = np.random.default_rng(0)
    batch = pd.DataFrame({"epoch": np.arange(n) // 938 + 1, "batch": np.arange(n) % 938 + 1, "step": np.arange(n) + 1,
                          "batches": rng.integers(1, 4, n), "loss": rng.random(n), "accuracy": rng.random(n)})
    figure = figures.batch_figure(batch)
    [loss, accuracy] = figure.data
    assert len(loss.x) == figures.MAX_BATCH_POINTS and loss.x[-1] == n
    thinned = figures.thin_batches(batch)
    assert thinned["batches"].sum() == batch["batches"].sum()  # every batch is in one point
    weighted = (batch["loss"] * batch["batches"]).sum() / batch["batches"].sum()
    assert (thinned["loss"] * thinned["batches"]).sum() / thinned["batches"].sum() == pytest.approx(weighted)
    assert "batches up to epoch" in " ".join(loss.text) or "batches " in loss.text[1]
    short = batch.iloc[:500]
    assert len(figures.batch_figure(short).data[0].x) == 500  # a short run keeps every record
