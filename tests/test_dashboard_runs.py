"""The Runs page: the table and its filters, comparing runs, HParams, rename, delete, downloads, damaged runs."""

import json
import os
import shutil
import time

import pandas as pd
import pytest

from core.config import TrainConfig
from core.store import RunStore, process_started
from dashboard import figures_runs
from dashboard_apptest import chart, open_app, texts

RUNS = "views/runs.py"
pytestmark = pytest.mark.usefixtures("offline_sources")


def open_runs():
    return open_app(RUNS)


def table(at) -> pd.DataFrame:
    return at.dataframe(key="runs_table").value


def copy_run(lenet_runs, run_id: str, new_id: str, name: str, **status) -> str:
    shutil.copytree(lenet_runs / run_id, lenet_runs / new_id)
    RunStore().write_status(new_id, name=name, **status)
    return new_id


# ----- pure builders ---------------------------------------------------------------------------


def test_runs_frame_has_hyperparameters_and_results(finished_run):
    store = RunStore()
    runs = store.list_runs()
    epochs = {finished_run: store.read_epoch_records(finished_run)}
    frame = figures_runs.runs_frame(runs, epochs)
    row = frame.set_index("run_id").loc[finished_run]
    status = store.read_status(finished_run)
    assert row["name"] == "tiny sample run" and row["status"] == "completed"
    assert (row["optimizer"], row["learning_rate"], row["batch_size"], row["epochs"]) == ("adam", 0.001, 64, 1)
    assert row["test_accuracy"] == pytest.approx(status.test_accuracy)
    assert row["best_val_accuracy"] == pytest.approx(store.read_metrics(finished_run)[1]["val_accuracy"].max())
    assert row["duration_s"] == pytest.approx(status.duration)
    assert row["train_images"] == 540


def test_overlay_and_hparams_figures_hold_each_runs_values():
    epoch_a = pd.DataFrame({"epoch": [1, 2], "val_accuracy": [0.8, 0.9]})
    epoch_b = pd.DataFrame({"epoch": [1], "val_accuracy": [0.7]})
    overlay = figures_runs.overlay_figure({"a": epoch_a, "b": epoch_b}, "validation accuracy")
    assert [(t.name, list(t.y)) for t in overlay.data] == [("a", [0.8, 0.9]), ("b", [0.7])]
    assert overlay.data[0].line.color != overlay.data[1].line.color  # each run its own colour (not two blues)
    frame = pd.DataFrame({"name": ["a", "b", "c"], "dataset": ["mnist", "fashion_mnist", "mnist"],
                          "optimizer": ["adam", "sgd", "adam"], "lr_schedule": ["constant"] * 3,
                          "variant": ["seed"] * 3, "learning_rate": [0.001, 0.01, 0.1], "batch_size": [64, 128, 64],
                          "epochs": [5, 5, 2], "dropout": [0.0, 0.1, 0.0], "train_images": [54000.0] * 3,
                          "augment": [False, True, False], "test_accuracy": [0.98, 0.97, None]})
    parcoords = figures_runs.hparams_figure(frame).data[0]
    dimensions = {d.label.replace("<br>", " "): list(d.values) for d in parcoords.dimensions}
    assert dimensions["test accuracy"] == [0.98, 0.97]  # the run without a test accuracy is left out
    assert dimensions["learning rate"] == pytest.approx([-3, -2])
    assert dimensions["augment"] == [0, 1]
    by_label = {d.label.replace("<br>", " "): d for d in parcoords.dimensions}
    assert parcoords.dimensions[0].label == "dataset" and dimensions["dataset"] == [1, 0]
    assert list(by_label["dataset"].ticktext) == ["fashion_mnist", "mnist"]
    assert by_label["batch size"].tickformat == ",d" and by_label["dropout"].tickformat is None
    # one value on an axis: one tick at it (Plotly drew -1 to 1 around a constant)
    assert list(by_label["training images"].tickvals) == [54000] and list(by_label["training images"].ticktext) == [
        "54,000"]
    assert parcoords.line.colorscale[-1][1] == "#440154"  # the best runs dark (reversed Viridis), not pale yellow
    scatter = figures_runs.hparam_scatter(frame, "batch_size").data[0]
    assert list(scatter.x) == [64, 128] and list(scatter.y) == [0.98, 0.97]


# ----- the page --------------------------------------------------------------------------------


def test_empty_store(lenet_runs):
    at = open_runs()
    assert at.title[0].value == "Runs"
    assert "No runs yet" in texts(at.info)


def test_finished_run_is_listed_with_its_accuracy(finished_run):
    at = open_runs()
    rows = table(at).set_index("run_id")
    status = RunStore().read_status(finished_run)
    assert rows.loc[finished_run, "name"] == "tiny sample run"
    assert rows.loc[finished_run, "test_accuracy"] == pytest.approx(status.test_accuracy)
    labels = {b.label: b for b in at.get("download_button")}
    assert set(labels) == {"Model (.keras)", "Metrics (.csv)", "Config (.json)"}
    assert not labels["Model (.keras)"].proto.disabled


def test_damaged_entries_are_listed_with_their_reason(finished_run, lenet_runs):
    (lenet_runs / "20990101-000000-no-config-0000").mkdir()
    (lenet_runs / "stray.txt").write_text("not a run")
    half = lenet_runs / "20990101-000000-bad-status-0000"
    half.mkdir()
    (half / "config.json").write_text(TrainConfig().to_json())
    (half / "status.json").write_text("{not json")
    at = open_runs()
    assert list(table(at)["run_id"]) == [finished_run]
    [damaged] = [d.value for d in at.dataframe if list(d.value.columns) == ["folder", "reason"]]
    damaged = damaged.set_index("folder")["reason"]
    assert "has no config.json" in damaged["20990101-000000-no-config-0000"]
    assert "stray file" in damaged["stray.txt"]
    assert "status.json is unreadable" in damaged["20990101-000000-bad-status-0000"]


def test_text_status_and_dataset_filters(finished_run, lenet_runs):
    copy_run(lenet_runs, finished_run, "20990101-000000-other-0000", "sgd sweep", status="stopped")
    at = open_runs()
    assert len(table(at)) == 2
    at.text_input(key="runs_filter_text").set_value("SWEEP").run()
    assert list(table(at)["name"]) == ["sgd sweep"]
    at.text_input(key="runs_filter_text").set_value("").run()
    at.multiselect(key="runs_filter_status").set_value(["completed"]).run()
    assert list(table(at)["name"]) == ["tiny sample run"]
    at.multiselect(key="runs_filter_dataset").set_value(["mnist"]).run()
    assert len(table(at)) == 1


def test_selected_runs_are_overlaid(finished_run, lenet_runs):
    copy_run(lenet_runs, finished_run, "20990101-000000-other-0000", "second run")
    at = open_runs()
    assert "Select rows in the table" in texts(at.caption)
    at.session_state["runs_table"] = {"selection": {"rows": [0, 1], "columns": [], "cells": []}}
    at.run()
    overlay = chart(at, "runs_overlay_chart")
    assert sorted(trace["name"] for trace in overlay["data"]) == ["second run", "tiny sample run"]
    test_accuracy = RunStore().read_metrics(finished_run)[1]["test_accuracy"].tolist()  # the default metric
    assert overlay["data"][0]["y"] == pytest.approx(test_accuracy)
    hparams = chart(at, "runs_hparams_chart")
    assert "test<br>accuracy" in [d["label"] for d in hparams["data"][0]["dimensions"]]


def test_ticks_stay_on_their_runs_when_rows_move(finished_run, lenet_runs):
    """Issue 20.2: the table reports ticks by row position; a new run at the top, a filter or a delete moved the
    ticks and the chart to other runs. They are kept by run id."""
    copy_run(lenet_runs, finished_run, "20990101-000000-other-0000", "second run",
             created="2099-01-01T00:00:00+00:00")
    at = open_runs()
    assert list(table(at)["name"]) == ["second run", "tiny sample run"]
    at.session_state["runs_table"] = {"selection": {"rows": [1], "columns": [], "cells": []}}  # tick row 1
    at.run()
    assert [t["name"] for t in chart(at, "runs_overlay_chart")["data"]] == ["tiny sample run"]
    copy_run(lenet_runs, finished_run, "20990102-000000-newest-0000", "newest run",
             created="2099-01-02T00:00:00+00:00")  # a run appears at the top: every row moves down
    at.run()
    assert list(table(at)["name"]) == ["newest run", "second run", "tiny sample run"]
    assert [t["name"] for t in chart(at, "runs_overlay_chart")["data"]] == ["tiny sample run"]
    assert at.session_state["runs_table"]["selection"]["rows"] == [2]  # the tick is drawn on its run's row
    at.text_input(key="runs_filter_text").set_value("second").run()  # the ticked run is filtered out
    assert "Select rows in the table" in texts(at.caption)
    at.text_input(key="runs_filter_text").set_value("").run()  # and back: still ticked
    assert [t["name"] for t in chart(at, "runs_overlay_chart")["data"]] == ["tiny sample run"]
    shutil.rmtree(lenet_runs / "20990102-000000-newest-0000")  # deleted elsewhere: the rows move up
    at.run()
    assert [t["name"] for t in chart(at, "runs_overlay_chart")["data"]] == ["tiny sample run"]


def test_rename(finished_run):
    at = open_runs()
    at.text_input(key="runs_new_name").set_value("renamed run")
    [rename] = [b for b in at.button if b.label == "Rename"]
    rename.click().run()
    assert RunStore().read_status(finished_run).name == "renamed run"
    assert "Renamed to 'renamed run'" in texts(at.success)
    assert list(table(at)["name"]) == ["renamed run"]


def test_delete_needs_the_confirmation(finished_run, lenet_runs):
    at = open_runs()
    [delete] = [b for b in at.button if b.label == "Delete run"]
    assert delete.proto.disabled
    at.checkbox(key="runs_confirm_delete").check().run()
    [delete] = [b for b in at.button if b.label == "Delete run"]
    assert not delete.proto.disabled
    delete.click().run()
    assert not (lenet_runs / finished_run).exists()
    assert "Deleted run 'tiny sample run'" in texts(at.success)
    assert "No runs yet" in texts(at.info)


def test_a_running_run_cannot_be_deleted(finished_run, lenet_runs):
    running = copy_run(lenet_runs, finished_run, "20990101-000000-live-0000", "live run", status="running",
                       pid=os.getpid(), pid_started=process_started(os.getpid()))
    at = open_runs()
    at.selectbox(key="runs_managed_run").set_value(running).run()
    assert "it cannot be deleted until it ends" in texts(at.warning)
    assert "Stop it on the Train page." in texts(at.warning)  # any dashboard can stop it there
    [delete] = [b for b in at.button if b.label == "Delete run"]
    assert delete.proto.disabled
    assert (lenet_runs / running).is_dir()


def test_runs_whose_process_died_are_marked_interrupted_at_start(finished_run, lenet_runs):
    dead = copy_run(lenet_runs, finished_run, "20990101-000000-dead-0000", "dead run", status="running",
                    pid=2**22 + 12345)
    at = open_runs()
    # the server writes it down in a background thread (dashboard/common.py), which a busy machine may hold back
    deadline = time.monotonic() + 60
    stored = {}
    while stored.get(dead) != "interrupted" and time.monotonic() < deadline:
        stored = {info.run_id: info.stored_status for info in RunStore().list_runs()}
        time.sleep(0.1)
    assert stored[dead] == "interrupted"  # persisted in status.json, not only shown
    assert table(at).set_index("run_id").loc[dead, "status"] == "interrupted"


def test_the_table_writes_numbers_like_the_rest_of_the_dashboard(finished_run):
    """Issue 20, item 8: test accuracy in view (third column), two decimals for every accuracy, images/s with
    separators, durations as time spans, a dash (not "None") for an empty cell. The browser writes the text from
    Streamlit's column formats (issue 21.12: a pandas Styler's text cost a second for 1,000 rows), so the table
    keeps the values and sorts by them; tests/test_browser_runs.py reads the text Chromium shows."""
    assert figures_runs.RUN_COLUMNS[:4] == ["name", "status", "test_accuracy", "best_val_accuracy"]
    at = open_runs()
    (element,) = at.dataframe
    assert element.proto.placeholder == figures_runs.MISSING == "–"  # Streamlit's default writes "None"
    config = {key: json.loads(value) if isinstance(value, str) else value
              for key, value in json.loads(element.proto.columns).items()}
    number = {key: (c["type_config"].get("format"), c["type_config"].get("step")) for key, c in config.items()
              if c.get("type_config", {}).get("type") == "number"}
    assert number["test_accuracy"] == number["best_val_accuracy"] == ("percent", 0.0001)  # 89.40%, 98.15%
    assert number["images_per_sec"] == number["train_images"] == number["batch_size"] == ("%,.0f", None)  # 8,367
    assert number["learning_rate"] == ("%g", None) and number["duration_s"] == ("localized", None)
    assert config["name"]["pinned"] is True
    shown = table(at)
    assert str(shown["duration_s"].dtype).startswith("timedelta")  # a time span: sorted by its length
    assert shown["duration_s"].iloc[0] == pd.Timedelta(seconds=round(RunStore().read_status(finished_run).duration))
    frame = pd.DataFrame({"duration_s": [163.2, None, 48.0]})
    assert figures_runs.table_frame(frame)["duration_s"].tolist()[::2] == [pd.Timedelta(seconds=163),
                                                                           pd.Timedelta(seconds=48)]
    assert pd.isna(figures_runs.table_frame(frame)["duration_s"].iloc[1])


def test_the_page_does_not_show_the_stores_absolute_path(finished_run, lenet_runs):
    """Issue 21, item 4: the absolute store path reached the browser in the page's caption."""
    at = open_runs()
    captions = texts(at.caption)
    assert str(lenet_runs) not in captions and "the folder LENET_RUNS names" in captions


def test_epoch_summary_skips_missing_values_and_takes_the_median_speed():
    records = [{"epoch": 1, "val_accuracy": None, "images_per_sec": 900.0},  # the first epoch compiles
               {"epoch": 2, "val_accuracy": 0.97, "images_per_sec": float("nan")},
               {"epoch": 3, "val_accuracy": 0.98, "images_per_sec": 2000.0},
               {"epoch": 4, "val_accuracy": 0.975, "images_per_sec": 2100.0}]
    assert figures_runs.epoch_summary(records) == (0.98, 2000.0)
    assert figures_runs.epoch_summary([]) == (None, None) and figures_runs.epoch_summary(None) == (None, None)


def test_a_large_store_draws_the_hyperparameter_charts_only_when_asked(finished_run, lenet_runs, monkeypatch):
    """Over HPARAMS_OPEN_UP_TO runs the section starts closed and its charts are not drawn (1,000 runs' parallel
    coordinates took the browser seconds on every rerun); opened, they are."""
    copy_run(lenet_runs, finished_run, "20990101-000000-other-0000", "second run")
    monkeypatch.setattr(figures_runs, "HPARAMS_OPEN_UP_TO", 1)
    at = open_runs()
    assert not at.exception
    keys = [element.key for element in at.get("plotly_chart")] if at.get("plotly_chart") else []
    assert "runs_hparams_chart" not in keys and at.dataframe(key="runs_table").value.shape[0] == 2
    at.session_state["runs_hparams_open"] = True  # what the expander's click sets
    at.run()
    assert chart(at, "runs_hparams_chart")["data"][0]["type"] == "parcoords"
