"""Is the difference real? (issue 16 items 4 and 5): Wilson intervals, the exact McNemar test, the galleries' indices,
the confusion difference, seed groups and their Welch test, `train --seeds`, `compare --json` and the Compare page."""

import json

import numpy as np
import pytest
from dashboard_apptest import chart, decode, open_app, texts
from scipy import stats

from core import cli
from core.compare import CompareError, compare_groups, compare_predictions, compare_runs, mcnemar_exact, wilson
from core.seed_groups import group_key, groups_frame, mean_curve
from core.store import RunStore

pytestmark = pytest.mark.usefixtures("offline_sources")


def test_wilson_interval_and_exact_mcnemar_match_their_textbook_values():
    low, high = wilson(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)  # Wilson (1927) for 8/10
    assert mcnemar_exact(31, 19) == pytest.approx(stats.binomtest(31, 50, 0.5).pvalue)
    assert mcnemar_exact(0, 0) == 1.0


def test_paired_predictions_give_the_sentence_galleries_and_confusion_difference():
    labels = np.array([0] * 60 + [1] * 40)
    pred_a, pred_b = labels.copy(), labels.copy()
    pred_a[:31] = 1  # A wrong on 31 images that B gets right
    pred_b[60:79] = 0  # B wrong on 19 images that A gets right
    result = compare_predictions(("a", "run A", pred_a), ("b", "run B", pred_b), labels)
    assert result.sentence == "B is right where A is wrong on 31 images and the reverse on 19: p = 0.12, " \
                              "not significant at 5%"
    assert result.b_right_a_wrong == list(range(31)) and result.a_right_b_wrong == list(range(60, 79))
    assert (result.a.correct, result.b.correct) == (69, 81)
    assert result.confusion_difference.tolist() == [[31, -31], [19, -19]]


def test_seed_groups_take_runs_that_differ_only_in_the_seed_and_welch_compares_two():
    from core.config import TrainConfig

    assert group_key(TrainConfig(seed=1)) == group_key(TrainConfig(seed=2)) != group_key(TrainConfig(epochs=3))
    result = compare_groups([0.980, 0.982, 0.981], [0.990, 0.991, 0.989])
    assert result.p_value == pytest.approx(stats.ttest_ind([0.990, 0.991, 0.989], [0.980, 0.982, 0.981],
                                                           equal_var=False).pvalue)
    assert "significant at 5%" in result.sentence and "n=3" in result.sentence
    with pytest.raises(CompareError, match="at least 2 runs in each"):
        compare_groups([0.9], [0.8, 0.7])
    curves = mean_curve([_epochs([0.5, 0.7]), _epochs([0.7, 0.9])], "val_accuracy")
    assert curves["mean"].tolist() == pytest.approx([0.6, 0.8]) and curves["n"].tolist() == [2, 2]


def _epochs(values):
    import pandas as pd

    return pd.DataFrame({"epoch": range(1, len(values) + 1), "val_accuracy": values})


@pytest.fixture(scope="module")
def trained_group(tmp_path_factory):
    """Two runs of one recipe (seeds 42, 43) and a third of another, trained once with `train --seeds`."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("seed_group")
    flags = ["--runs-dir", str(root), "--data-source", "sample", "--train-subset", "600", "--epochs", "1", "--json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["train", "--seeds", "42,43", "--name", "tiny", *flags]) == 0
    group = [p["run_id"] for p in json.loads(out.getvalue())]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["train", "--name", "other", "--learning-rate", "0.003", *flags]) == 0
    return root, group, json.loads(out.getvalue())["run_id"]


@pytest.fixture
def seed_group(trained_group, lenet_runs):
    import shutil

    root, group, other = trained_group
    for run_id in (*group, other):
        shutil.copytree(root / run_id, lenet_runs / run_id)
    return group, other


def test_train_seeds_makes_a_seed_group_and_compare_reports_json(seed_group, lenet_runs, capsys):
    (first, second), other = seed_group
    store = RunStore(lenet_runs)
    assert [store.read_config(r).seed for r in (first, second)] == [42, 43]
    frame = groups_frame(store.list_runs())
    assert len(frame) == 1 and frame.loc[0, "size"] == 2 and sorted(frame.loc[0, "runs"]) == sorted([first, second])
    accuracies = [store.read_status(r).test_accuracy for r in (first, second)]
    assert frame.loc[0, "mean_test_accuracy"] == pytest.approx(np.mean(accuracies))
    assert cli.main(["compare", first, other, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    expected = compare_runs(store, first, other)
    assert payload["a"]["accuracy"] == pytest.approx(accuracies[0])
    assert payload["b_right_a_wrong"] == expected.b_only and payload["p_value"] == pytest.approx(expected.p_value)
    assert payload["sentence"].startswith(f"B is right where A is wrong on {expected.b_only} image")
    assert cli.main(["compare", first, first]) == cli.EXIT_BAD_INPUT
    assert "give two different runs" in capsys.readouterr().err
    assert cli.main(["compare", first, other, "--groups"]) == cli.EXIT_BAD_INPUT
    assert "at least 2 runs in each (got 2 and 1)" in capsys.readouterr().err


def test_the_compare_page_shows_intervals_the_sentence_and_the_confusion_difference(seed_group, lenet_runs):
    (first, _), other = seed_group
    store = RunStore(lenet_runs)
    at = open_app()
    at.query_params["a"], at.query_params["b"] = first, other
    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.message for e in at.exception]
    expected = compare_runs(store, first, other)
    assert [m.value for m in at.metric] == [f"{expected.a.value:.2%}", f"{expected.b.value:.2%}"]
    assert f"{expected.a.low:.2%} to {expected.a.high:.2%}" in texts(at.caption)
    assert expected.sentence in texts(at.success) + texts(at.info)
    heatmap = chart(at, "compare_confusion")["data"][0]
    assert np.array(decode(heatmap["z"])).ravel().tolist() == expected.confusion_difference.ravel().tolist()


def test_the_runs_page_shows_seed_groups_their_band_and_repeats_a_run_with_more_seeds(seed_group, lenet_runs):
    from dashboard import common

    (first, second), other = seed_group
    store = RunStore(lenet_runs)
    at = open_app("views/runs.py")
    groups = next(d.value for d in at.dataframe if "Seeds" in d.value.columns)
    accuracies = [store.read_status(r).test_accuracy for r in (first, second)]
    assert groups.loc[0, "Runs"] == 2 and groups.loc[0, "Seeds"] == "42, 43"
    expected = f"{np.mean(accuracies):.2%} ± {np.std(accuracies, ddof=1):.2%}"
    assert groups.loc[0, "Test accuracy (mean ± std)"] == expected
    drawn = at.session_state["runs_drawn_ids"]
    at.session_state["runs_table"] = {"selection": {"rows": [drawn.index(first), drawn.index(other)],
                                                       "columns": [], "cells": []}}
    at.run()
    at.toggle(key="runs_as_groups").set_value(True).run()
    traces = {t["name"]: t for t in chart(at, "runs_group_overlay_chart")["data"]}
    assert {"tiny seed 42 (n=2)", "tiny seed 42 (n=2) ± std", "other (n=1)"} <= set(traces)
    mean = traces["tiny seed 42 (n=2)"]
    _, curve_a = store.read_metrics(first)
    _, curve_b = store.read_metrics(second)
    from dashboard import figures_runs

    column = figures_runs.EPOCH_METRICS[at.selectbox(key="runs_overlay_metric").value]
    assert decode(mean["y"])[0] == pytest.approx((curve_a[column][0] + curve_b[column][0]) / 2)
    assert any(link.label.startswith("Is the difference real?") for link in at.get("page_link"))

    at.selectbox(key="runs_managed_run").set_value(first).run()
    at.button(key="runs_repeat").click().run()
    queued = [r for r in store.list_runs() if r.run_id not in (first, second, other)]
    manager = common._job_manager(str(lenet_runs.resolve()))
    for info in queued:
        manager.stop(info.run_id)
    assert sorted(store.read_config(r.run_id).seed for r in queued) == [44, 45]
    assert all(store.read_config(r.run_id).replace(seed=42) == store.read_config(first) for r in queued)
