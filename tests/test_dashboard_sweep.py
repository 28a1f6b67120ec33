"""The Sweep page (issue 16 items 1-3): a sweep created from the page runs in the training queue, a Train press
queues behind it, and the page shows its trials, Optuna's figures and Stop; a click on a trial opens its run on
the audit pages."""

import threading
import time

import pytest
from dashboard_apptest import chart, open_app, texts

from core.config import TrainConfig
from core.store import RunStore
from core.sweep import create_sweep, run_sweep
from core.sweep_report import sweep_state
from core.sweep_space import make_spec
from dashboard import common, sidebar

pytestmark = pytest.mark.usefixtures("offline_sources")
PAGE = "views/sweep.py"
BASE = TrainConfig(data_source="sample", train_subset=300, validation_split=0.2, epochs=1, batch_size=64)


def _set_sidebar(at, **values) -> None:
    for field, value in values.items():
        widget = next(w for kind in ("number_input", "selectbox", "text_input", "slider", "toggle")
                      for w in getattr(at, kind) if w.key == sidebar.key(field))
        widget.set_value(value)


def _wait(predicate, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_a_finished_sweep_shows_its_trials_figures_and_links_to_its_runs(lenet_runs):
    store = RunStore(lenet_runs)
    space = {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}, "batch_size": {"choices": [32, 64]}}
    sweep_id = create_sweep(store, make_spec("page sweep", BASE, space, n_trials=3, pruning=False))
    run_sweep(store, threading.Event(), sweep_id)
    _, frame, summary = sweep_state(store, sweep_id)
    at = open_app(PAGE)
    assert "page sweep" in at.subheader[0].value and f"Sweep `{sweep_id}` · **finished**" in texts(at.caption)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trials"] == "3/3"
    assert metrics["Best validation accuracy"] == f"{summary.best['val_accuracy']:.2%}"
    table = next(d.value for d in at.dataframe if "trial" in d.value.columns)
    assert list(table["trial"]) == [0, 1, 2] and list(table["state"]) == ["completed"] * 3
    history = chart(at, "sweep_fig_history")
    objective = next(t for t in history["data"] if t.get("mode") == "markers")
    assert sorted(objective["y"]) == pytest.approx(sorted(frame["val_accuracy"]))
    for key in ("parallel", "importance", "slice", "contour"):
        assert chart(at, f"sweep_fig_{key}")["data"], key
    assert "Click a trial to open its run on the audit pages." in texts(at.caption)


def _click_trial(at, row: int):
    at.session_state["sweep_trials"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_clicking_a_trial_opens_its_run_on_the_audit_pages(lenet_runs):
    store = RunStore(lenet_runs)
    space = {"learning_rate": {"choices": [1e-3, 3e-3, 1e-2]}}
    sweep_id = create_sweep(store, make_spec("click", BASE, space, n_trials=3, sampler="grid", pruning=False))
    run_sweep(store, threading.Event(), sweep_id)
    _, frame, _ = sweep_state(store, sweep_id)
    (run_id,) = frame.loc[1, "runs"]
    newest = max(store.list_runs(), key=lambda r: r.record.created).run_id
    assert newest != run_id  # the audit pages' default run is another one
    at = _click_trial(open_app(PAGE), 1)
    assert at.title[0].value == "Evaluate" and at.query_params[common.RUN_PARAM] == run_id
    assert at.session_state[common.SELECTED_RUN] == run_id and f"Run **{'click #1'}**" in texts(at.caption)
    at.switch_page(PAGE).run()  # back on the Sweep page: the click is not taken again
    assert at.title[0].value == "Sweep" and not at.session_state["sweep_trials"]["selection"]["rows"]
    at.switch_page("views/gallery.py").run()  # the chosen run stays chosen on the other audit pages
    assert at.session_state[common.SELECTED_RUN] == run_id


def test_a_trial_of_several_seeds_lists_its_runs_when_clicked(lenet_runs):
    store = RunStore(lenet_runs)
    sweep_id = create_sweep(store, make_spec("seeds", BASE, {"learning_rate": {"choices": [1e-3]}}, n_trials=1,
                                             seeds=2, pruning=False))
    run_sweep(store, threading.Event(), sweep_id)
    runs = sweep_state(store, sweep_id)[1].loc[0, "runs"]
    at = _click_trial(open_app(PAGE), 0)
    assert at.title[0].value == "Sweep"
    links = {link.label for link in at.get("page_link")}
    assert {f"Open trial 0's run {run_id}" for run_id in runs} <= links and len(runs) == 2


def test_create_and_run_queues_the_sweep_in_the_training_process_and_train_waits_behind_it(lenet_runs):
    at = open_app(PAGE)
    _set_sidebar(at, data_source="sample", train_subset=600, validation_split=0.2, batch_size=64, epochs=2)
    at.number_input[0].set_value(2)  # trials (the sidebar's controls have keys; the sweep form's come first here)
    next(b for b in at.button if b.label == "Create and run").click().run()
    assert not at.exception and not at.error, [e.message for e in at.exception] + [e.value for e in at.error]
    store = RunStore()
    [sweep_id] = store.list_sweeps()
    assert "created and queued: 2 trials" in texts(at.success)
    _wait(lambda: any(r.record.sweep_id == sweep_id and r.status == "running" for r in store.list_runs()))
    at.switch_page("views/train.py").run()
    assert "Trial 0 of sweep" in texts(at.caption)
    _set_sidebar(at, data_source="sample", train_subset=300, validation_split=0.2, batch_size=64, epochs=1)
    at.button(key=sidebar.SUBMIT).click().run()
    queued = next(r for r in store.list_runs() if r.record.sweep_id is None)
    assert queued.status == "queued"  # the Train press waits behind the sweep
    _wait(lambda: store.read_status(queued.run_id).status == "completed", timeout=300)
    _, frame, summary = sweep_state(store, sweep_id)
    assert summary.state == "finished" and len(frame) == 2
    trial_runs = [r for r in store.list_runs() if r.record.sweep_id == sweep_id]
    assert all(r.record.pid == store.read_status(queued.run_id).pid for r in trial_runs)  # one training process


def test_stop_on_the_page_stops_the_running_trial(lenet_runs):
    store = RunStore(lenet_runs)
    sweep_id = create_sweep(store, make_spec("long", BASE.replace(epochs=80), {"learning_rate": {"choices": [1e-3]}},
                                             n_trials=1))
    worker = threading.Thread(target=run_sweep, args=(store, threading.Event(), sweep_id))
    worker.start()
    _wait(lambda: sweep_state(store, sweep_id)[2].state == "running", timeout=60)
    at = open_app(PAGE)
    at.button(key="sweep_stop").click().run()
    worker.join(60)
    _, frame, summary = sweep_state(store, sweep_id)
    assert list(frame["state"]) == ["stopped"] and summary.state == "stopped"
