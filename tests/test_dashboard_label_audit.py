"""Issue 18 in AppTest: the Label audit page's test and training tabs, review marks, CSV and the retraining."""

import base64
import threading
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.label_audit import audit_of_run
from core.label_audit_train import audit_train
from core.store import RunStore
from dashboard import common
from dashboard.worker import JobManager
from tests.dashboard_apptest import APP, chart, texts

pytestmark = pytest.mark.usefixtures("offline_sources")


@pytest.fixture
def manager(lenet_runs, monkeypatch):
    """A real queue whose "training" only records what it was given (no TensorFlow process)."""
    submitted = []

    def train(config, store, run_id, stop_event):
        submitted.append((run_id, config))
        store.write_status(run_id, status="completed")

    jobs = JobManager(RunStore(lenet_runs), train_fn=train, task_fn=lambda *args: submitted.append(args))
    monkeypatch.setattr(common, "job_manager", lambda: jobs)
    return submitted


def open_label_audit(run_id: str, **state) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["run"] = run_id  # as a link to the page names it: the user's choice, kept when runs are added
    at.run()
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page("views/label_audit.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_test_tab_shows_cleanlabs_estimates_and_the_marks_are_stored_and_exported(finished_run, lenet_runs, manager):
    at = open_label_audit(finished_run, label_audit_top=10)
    expected = audit_of_run(RunStore(lenet_runs), finished_run)  # the page's defaults: self-confidence, 3 epochs
    assert metric_values(at) == {"Test images": f"{len(expected.table):,}",
                                 "Wrong labels (cleanlab's estimate)": f"{expected.estimated_errors:,}",
                                 "Flagged as label issues": f"{int(expected.table['issue'].sum()):,}"}
    z = chart(at, "label_audit_noise_test")["data"][0]["z"]  # Plotly's typed array: base64 data and a shape
    z = np.frombuffer(base64.b64decode(z["bdata"]), np.dtype(z["dtype"])).reshape(
        [int(n) for n in str(z["shape"]).split(",")])
    off = expected.joint_counts.astype(float)
    np.fill_diagonal(off, np.nan)
    np.testing.assert_array_equal(np.nan_to_num(z, nan=-1), np.nan_to_num(off, nan=-1))
    first = int(expected.table["index"].iloc[0])
    captions = "\n".join(img.caption for image in at.get("image") for img in image.proto.imgs)
    assert f"#{first} · labelled {expected.table['given'].iloc[0]} · suggested" in captions
    assert len([box for box in at.selectbox if box.key.startswith("label_audit_mark_")]) == 10
    at.selectbox(key=f"label_audit_mark_test_{first}").set_value("wrong label").run()
    assert RunStore(lenet_runs).read_label_marks(finished_run) == {("test", first): "wrong label"}
    csv = at.download_button(key="label_audit_csv_test")
    assert "(1 mark)" in csv.label
    # a restart: a new session reads the mark back from the store
    again = open_label_audit(finished_run)
    assert again.selectbox(key=f"label_audit_mark_test_{first}").value == "wrong label"


def test_a_damaged_marks_file_is_reported_and_kept(finished_run, lenet_runs, manager):
    path = lenet_runs / finished_run / "label_marks.json"
    path.write_text("[1, 2")
    at = open_label_audit(finished_run)
    assert any("review marks file (label_marks.json) is damaged" in e.value for e in at.error)
    assert path.read_text() == "[1, 2"


def test_training_tab_queues_the_audit_then_reviews_and_retrains_without_the_marked_images(
        finished_run, lenet_runs, manager):
    at = open_label_audit(finished_run, label_audit_view="Training set")
    assert "its training set has not been audited" in texts(at.caption)
    at.number_input(key="label_audit_folds").set_value(2)
    at.button(key="label_audit_start").click().run()
    assert manager[0][:2] == ("audit_train", {"run_id": finished_run, "folds": 2,
                                              "task_id": f"audit-train-{finished_run}"})
    store = RunStore(lenet_runs)
    assert audit_train(store, threading.Event(), run_id=finished_run, folds=2) == "completed"
    at = open_label_audit(finished_run, label_audit_view="Training set", label_audit_top=10)
    expected = audit_of_run(store, finished_run, "train")
    assert metric_values(at)["Train images"] == f"{len(expected.table):,}"
    suspect = int(expected.table["index"].iloc[0])
    assert at.button(key="label_audit_retrain").disabled
    at.selectbox(key=f"label_audit_mark_train_{suspect}").set_value("wrong label").run()
    at.button(key="label_audit_retrain").click().run()
    assert not at.exception
    runs = {info.run_id: info for info in store.list_runs()}
    new = [run_id for run_id in runs if run_id != finished_run]
    assert len(new) == 1 and store.read_config(new[0]).exclude_train == (suspect,)
    assert "without 1 marked image" in runs[new[0]].name
    assert any(f"Queued run `{new[0]}`, 1 image left out" in s.value for s in at.success)
    store.write_status(new[0], model_saved=True)  # as if it had trained: the comparison report is offered
    at = open_label_audit(finished_run, label_audit_view="Training set")  # a later session
    assert at.download_button(key=f"label_audit_compare_{new[0]}").label == (
        "Comparison report with tiny sample run without 1 marked image (.html)")


def test_stop_on_the_train_page_stops_the_fold_and_so_the_audit(finished_run, lenet_runs, monkeypatch):
    """A fold trains as a run tagged with the audit's task: the Train page shows it as this dashboard's (no
    "started elsewhere" note) and its Stop asks the fold's trainer to stop, which ends the audit as stopped."""
    from core.store import owner
    from core.store.liveness import stop_requested
    from dashboard.views import train as train_page

    jobs = JobManager(RunStore(lenet_runs), train_fn=lambda *args: None,
                      task_fn=lambda kind, args, store, task_id, stop_event: stop_event.wait(60))
    monkeypatch.setattr(common, "job_manager", lambda: jobs)
    task_id = f"audit-train-{finished_run}"
    jobs.submit_task("audit_train", {"run_id": finished_run, "folds": 2, "task_id": task_id}, task_id)
    store = RunStore(lenet_runs)
    fold = store.create_run(store.read_config(finished_run), name="tiny · label audit fold 1/2")
    store.write_status(fold, status="running", task_id=task_id, phase="training", **owner())
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    assert train_page.ELSEWHERE not in texts(at.caption)
    time.sleep(1.1)  # a button that has just appeared ignores clicks for 1 s (a repeated click)
    at.button(key=f"train_stop_{fold}").click().run()
    assert stop_requested(store.run_dir(fold))
    jobs.stop(task_id)
