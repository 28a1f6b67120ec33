"""Sharing from the dashboard (issue 19): Evaluate offers the audit report, Runs > Manage builds a model export
on a click and shows its parity figures (or why it was refused), and two ticked runs get a comparison report."""

import pytest

from core.store import RunStore
from dashboard import share
from dashboard.common import SELECTED_RUN
from dashboard_apptest import open_app, texts

pytestmark = pytest.mark.usefixtures("offline_sources")


def download_labels(at) -> list[str]:
    return [b.label for b in at.get("download_button")]


def test_evaluate_offers_the_audit_report_of_its_run(finished_run):
    at = open_app()
    at.session_state[SELECTED_RUN] = finished_run
    at.switch_page("views/evaluate.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Audit report (.html)" in download_labels(at)
    html = share.report_html(finished_run).decode()  # what the button serves when clicked
    assert finished_run in html and html.count("class=\"plotly-graph-div\"") >= 5


def test_runs_page_builds_an_export_on_a_click_and_shows_its_parity(finished_run, monkeypatch):
    calls = []
    import core.export

    real = core.export.export_model
    monkeypatch.setattr(core.export, "export_model", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    at = open_app("views/runs.py")
    assert calls == [] and "Build and check the export" in [b.label for b in at.button]  # never at page load
    at.radio(key=share.EXPORT_FORMAT).set_value("onnx").run()
    at.button(key="runs_export_build").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert calls == ["onnx"]
    success = texts(at.success)
    assert "agrees with the Keras model, checked with onnxruntime on 1,000 test images" in success and "identical predictions 100.00%" in success
    assert "Download ONNX (.onnx)" in download_labels(at)


def test_runs_page_shows_a_refused_export_with_its_figures(finished_run, monkeypatch):
    import core.export

    monkeypatch.setattr(core.export, "MAX_PROB_DIFF", -1.0)  # any difference is too much: the check must refuse
    at = open_app("views/runs.py")
    at.radio(key=share.EXPORT_FORMAT).set_value("tflite").run()
    at.button(key="runs_export_build").click().run()
    error = texts(at.error)
    assert "disagrees with its Keras model, so it was not written" in error and "largest probability difference" in error
    assert not [label for label in download_labels(at) if label.startswith("Download")]


def test_two_ticked_runs_get_a_comparison_report(finished_run, lenet_runs):
    import shutil

    shutil.copytree(lenet_runs / finished_run, lenet_runs / "20990101-000000-copy-0000")
    RunStore().write_status("20990101-000000-copy-0000", name="a copy")
    at = open_app("views/runs.py")
    assert "Comparison report of the two ticked runs (.html)" not in download_labels(at)
    at.session_state["runs_table"] = {"selection": {"rows": [0, 1], "columns": [], "cells": []}}  # tick both rows
    at.run()
    assert "Comparison report of the two ticked runs (.html)" in download_labels(at)
