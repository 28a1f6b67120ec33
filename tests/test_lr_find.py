"""The learning-rate finder (issue 16 item 6): the range test's rates, losses and suggestion, its refusals, the CLI,
and the sidebar's button that runs it in the training process and puts the suggestion in the form."""

import json
import time

import numpy as np
import pytest
from dashboard_apptest import chart, decode, open_app

from core import cli
from core.config import TrainConfig
from core.lr_find import lr_find, read_result, smooth, suggest
from core.store import RunStore
from dashboard import sidebar

pytestmark = pytest.mark.usefixtures("offline_sources")
SMALL = TrainConfig(data_source="sample", train_subset=2000, validation_split=0.0)


def test_smoothing_is_debiased_and_the_suggestion_is_the_steepest_fall_before_the_minimum():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # debiased: no pull towards 0 at the start
    rates = list(np.logspace(-6, 0, 61))
    loss = [2.3 - 2.0 / (1 + np.exp(-(np.log10(r) + 3) * 4)) for r in rates]  # falls fastest at 1e-3
    loss[-10:] = [5.0] * 10  # then diverges
    steepest, lowest = suggest(rates, loss)
    assert steepest == pytest.approx(1e-3, rel=0.3) and lowest < 1e-0


def test_the_range_test_raises_the_rate_exponentially_and_suggests_a_rate_within_it():
    result = lr_find(SMALL, steps=60)
    assert result.batches == len(result.rates) == len(result.losses) <= 60
    ratios = np.diff(np.log(result.rates))
    assert np.allclose(ratios, ratios[0]) and result.rates[0] == pytest.approx(1e-6)
    assert result.losses[0] == pytest.approx(np.log(10), abs=0.3)  # an untrained 10-class model
    assert result.suggestion is not None and result.rates[0] < result.suggestion < result.rates[-1]


def test_the_finder_trains_on_the_same_batches_from_lean_data():
    """lean=True keeps the training images as padded grey levels (no float copy, no test set); the input pipeline
    then gives exactly the batches it gives from the float images."""
    from core.data import load_dataset
    from core.speed import make_train_dataset

    config = SMALL.replace(validation_split=0.1)
    full, lean = load_dataset(config), load_dataset(config, lean=True)
    assert lean.x_train.dtype == np.uint8 and len(lean.x_test) == 0 and len(full.x_test) > 0
    np.testing.assert_array_equal(lean.x_train, np.rint(full.x_train * 255).astype(np.uint8))
    np.testing.assert_array_equal(lean.y_train, full.y_train)
    for a, b in zip(make_train_dataset(full.x_train, full.y_train, config).take(2),
                    make_train_dataset(lean.x_train, lean.y_train, config).take(2), strict=True):
        np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
        np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())


def test_cli_lr_find_imports_no_training_callbacks(tmp_path):
    """`python -m core lr-find` loads what the range test needs, not the trainer's callbacks (and their
    scikit-learn metrics): a fresh process, as a user runs it."""
    import subprocess
    import sys

    code = ("import sys; from core import cli; code = cli.main(['--runs-dir', sys.argv[1], 'lr-find', "
            "'--data-source', 'sample', '--validation-split', '0', '--steps', '20', '--json']); "
            "print(sorted(m for m in ('sklearn.metrics', 'core.callbacks', 'core.analysis') "
            "if m in sys.modules), code, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0 and done.stderr.strip().splitlines()[-1] == "[] 0", done.stderr[-2000:]


def test_cli_lr_find_refuses_bad_ranges_at_once_and_reports_json(lenet_runs, capsys):
    assert cli.main(["lr-find", "--steps", "5"]) == cli.EXIT_BAD_INPUT
    assert "steps=5; allowed: 10 to 5000" in capsys.readouterr().err
    assert cli.main(["lr-find", "--min-rate", "1", "--max-rate", "0.1"]) == cli.EXIT_BAD_INPUT
    assert "need 0 < min_rate < max_rate" in capsys.readouterr().err
    assert cli.main(["lr-find", "--data-source", "sample", "--train-subset", "2000", "--validation-split", "0",
                     "--steps", "40", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["batches"] == len(payload["rates"]) and payload["state"] == "completed"


def test_the_sidebar_finder_runs_in_the_training_process_and_its_suggestion_fills_the_form(lenet_runs):
    at = open_app()
    for field, value in (("data_source", "sample"), ("train_subset", 2000), ("validation_split", 0.0)):
        next(w for kind in ("number_input", "selectbox") for w in getattr(at, kind)
             if w.key == sidebar.key(field)).set_value(value)
    at.button(key="lr_find_start").click().run()
    assert not at.exception, [e.message for e in at.exception]
    result_id = at.session_state["lr_find_result_id"]
    store = RunStore()
    deadline = time.time() + 120
    while time.time() < deadline:
        result = read_result(store, result_id)
        if result is not None and result.state not in ("running",):
            break
        time.sleep(0.5)
    assert result.state == "completed" and result.suggestion
    time.sleep(1.5)  # the queue marks the task done just after its result is written
    at.run()
    figure = chart(at, "lr_find_chart")
    assert decode(figure["data"][1]["y"]) == pytest.approx(result.smoothed)
    at.button(key="lr_find_use").click().run()
    assert at.session_state[sidebar.key("learning_rate")] == pytest.approx(float(f"{result.suggestion:.2g}"))
