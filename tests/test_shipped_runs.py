"""The pretrained runs in cached_models/: real full-MNIST models of the presets, auditable on a fresh clone."""

from pathlib import Path

import numpy as np
import pytest

from core import analysis
from core.config import PRESETS
from core.data import load_test_set
from core.store import RunStore

SHIPPED = RunStore(Path(__file__).resolve().parent.parent / "cached_models")
RUNS = {"seed-article-full-mnist": ("Seed article", 0.987), "best-accuracy-full-mnist": ("Best accuracy", 0.9945)}
DATA_FIELDS = ("data_source", "data_path")


@pytest.fixture(scope="module")
def test_set():
    x_test, y_test, _, _ = load_test_set(source="sample")  # the bundled sample holds the full MNIST test set
    return x_test, y_test


@pytest.mark.parametrize("run_id", sorted(RUNS))
def test_shipped_run_is_its_preset_trained_on_full_mnist(run_id, test_set):
    preset, floor = RUNS[run_id]
    config, status = SHIPPED.read_config(run_id), SHIPPED.read_status(run_id)
    expected = PRESETS[preset].to_dict()
    assert {k: v for k, v in config.to_dict().items() if k not in DATA_FIELDS} == \
        {k: v for k, v in expected.items() if k not in DATA_FIELDS}
    assert status.status == "completed" and status.n_train == 60_000 and status.epochs_done == config.epochs
    assert SHIPPED.epochs_saved(run_id) == list(range(1, config.epochs + 1))
    x_test, y_test = test_set
    probs = analysis.predict_probs(SHIPPED.load_model(run_id), x_test)  # .keras, safe_mode
    accuracy = float(np.mean(probs.argmax(axis=1) == y_test))
    assert accuracy == pytest.approx(status.test_accuracy, abs=1e-4) and accuracy >= floor
    metrics, stored_probs, labels = SHIPPED.read_evaluation(run_id)
    np.testing.assert_array_equal(labels, y_test)
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-4)
