"""label_smoothing: the hyperparameter added by touching only core/config.py and core/trainer.py. It changes the
loss, and the sidebar, the CLI, the Runs table and HParams show it because they are derived from the config."""

import numpy as np
import pandas as pd
import pytest

from core.config import TrainConfig
from core.store import RunStore
from core.trainer import make_loss, train
from dashboard import figures_runs, sidebar
from dashboard_apptest import open_app

TINY = TrainConfig(data_source="sample", train_subset=3000, validation_split=0.1, epochs=2, batch_size=64)


def test_the_smoothed_loss_is_the_cross_entropy_against_smoothed_labels():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=32).astype(np.float32)
    labels = rng.integers(0, 10, size=32)
    eps = 0.2
    loss = np.asarray(make_loss(TrainConfig(label_smoothing=eps))(labels, probs))
    target = np.full((32, 10), eps / 10) + (1 - eps) * np.eye(10)[labels]
    np.testing.assert_allclose(loss, -(target * np.log(probs)).sum(axis=1), rtol=1e-5)
    assert make_loss(TrainConfig()) == "sparse_categorical_crossentropy"  # 0: Keras' own loss, as before


def test_label_smoothing_changes_what_is_trained_and_is_saved(tmp_path):
    store = RunStore(tmp_path)
    plain = train(TINY, store, name="plain")
    smoothed = train(TINY.replace(label_smoothing=0.3), store, name="smoothed")
    assert plain.status == smoothed.status == "completed"
    assert store.read_config(smoothed.run_id).label_smoothing == 0.3
    plain_epochs, smoothed_epochs = (store.read_metrics(r.run_id)[1] for r in (plain, smoothed))
    # Once the model learns, the smoothed target's own entropy (about 0.9 nats at ε = 0.3) keeps the training loss up
    assert smoothed_epochs["loss"].iloc[-1] > plain_epochs["loss"].iloc[-1] + 0.3
    assert smoothed_epochs["test_accuracy"].iloc[-1] > 0.5  # and it still learns
    store.load_model(smoothed.run_id)  # the model saved with the smoothed loss opens with safe_mode


@pytest.mark.usefixtures("offline_sources")
def test_label_smoothing_shows_in_the_sidebar_runs_and_hparams(finished_run, lenet_runs):
    at = open_app()
    number = [w for w in at.number_input if w.key == sidebar.key("label_smoothing")]
    assert number and number[0].label == "Label smoothing" and number[0].value == 0.0
    assert "allowed: [0, 0.3]" in number[0].help
    runs = RunStore().list_runs()
    frame = figures_runs.runs_frame(runs, {})
    assert frame.loc[0, "label_smoothing"] == 0.0
    assert figures_runs.COLUMNS["label_smoothing"].title == "Label smoothing"
    table = pd.concat([frame, frame.assign(label_smoothing=0.1, test_accuracy=0.5)], ignore_index=True)
    axes = {d.label: list(d.values) for d in figures_runs.hparams_figure(table).data[0].dimensions}
    assert axes["label<br>smoothing"] == [0.0, 0.1]  # two-line axis labels


def test_label_smoothing_flag_on_the_cli():
    from core.cli import build_parser, config_from_args

    args = build_parser().parse_args(["train", "--label-smoothing", "0.1"])
    assert config_from_args(args).label_smoothing == 0.1
    with pytest.raises(ValueError, match=r"label_smoothing=0.5 is out of range; allowed: \[0, 0.3\]"):
        config_from_args(build_parser().parse_args(["train", "--label-smoothing", "0.5"]))
