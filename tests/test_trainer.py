"""The trainer end to end on tiny real data: a complete run, reproducibility, stop, non-finite loss."""

import json
import threading
import time

import numpy as np
import pytest

import core.speed as speed
from core.config import TrainConfig
from core.store import RunStore
from core.trainer import train

TINY = TrainConfig(data_source="sample", train_subset=600, validation_split=0.1, epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    return store, train(TINY, store, name="tiny")


def test_tiny_training_writes_a_complete_run(finished):
    store, result = finished
    assert result.status == "completed", result.error
    status = store.read_status(result.run_id)
    assert status.status == "completed" and status.model_saved is True
    assert status.data_source == "sample" and "bundled sample" in status.source_detail
    assert status.versions["tensorflow"] and status.parameters == 61706
    assert status.batch_slices == speed.batch_slices(TINY.batch_size, status.n_train)
    assert status.fused_adam is True
    assert store.read_config(result.run_id).data_source == "sample"  # the source used is recorded
    batch, epoch = store.read_metrics(result.run_id)
    assert epoch["epoch"].tolist() == [1, 2]
    for column in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time",
                   "images_per_sec", "test_accuracy"):
        assert epoch[column].notna().all(), column
    assert len(batch) >= 1 and {"loss", "accuracy", "step"} <= set(batch.columns)
    assert store.epochs_saved(result.run_id) == [1, 2]
    snapshot = store.read_epoch_snapshot(result.run_id, 2)
    probs, kernels = snapshot.probs, snapshot.c1_kernels
    assert probs.shape == (10000, 10) and kernels.shape == (6, 5, 5)
    metrics, test_probs, labels = store.read_evaluation(result.run_id)
    assert metrics["n"] == 10000 and abs(metrics["accuracy"] - (test_probs.argmax(1) == labels).mean()) < 1e-9
    assert metrics["accuracy"] == pytest.approx(epoch["test_accuracy"].iloc[-1], abs=2e-3)
    model = store.load_model(result.run_id)
    np.testing.assert_allclose(model.get_layer("c1_conv").kernel.numpy()[:, :, 0, :].transpose(2, 0, 1), kernels)


def test_final_evaluation_is_the_saved_models_own_predictions(finished):
    """The trainer reuses the last epoch's evaluation; it must be what the saved model predicts."""
    from core.analysis import predict_probs
    from core.data import load_test_set

    store, result = finished
    _, test_probs, labels = store.read_evaluation(result.run_id)
    x_test, y_test, _, _ = load_test_set(source="sample")
    np.testing.assert_array_equal(labels, y_test)
    np.testing.assert_allclose(test_probs, predict_probs(store.load_model(result.run_id), x_test), atol=1e-6)
    snapshot = store.read_epoch_snapshot(result.run_id, TINY.epochs).probs
    np.testing.assert_allclose(snapshot, test_probs, atol=1e-3)  # the snapshot is stored as float16


@pytest.mark.parametrize("variable, env, expected", [
    ("TF_ENABLE_ONEDNN_OPTS", None, "1"), ("TF_ENABLE_ONEDNN_OPTS", "0", "0"),  # oneDNN kernels
    ("TF_NUM_INTRAOP_THREADS", None, "1"), ("TF_NUM_INTRAOP_THREADS", "4", "4"),  # one thread per op
])
def test_core_sets_its_tensorflow_switches_unless_told_otherwise(variable, env, expected):
    """core/__init__ sets TensorFlow's switches before TensorFlow loads, keeping a value the user set."""
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != variable}
    if env is not None:
        environ[variable] = env
    code = f"import os, core; print(os.environ.get({variable!r}))"
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_batch_slices_one_per_core_only_with_one_thread_per_op(monkeypatch):
    monkeypatch.setattr(speed, "usable_cpus", lambda: 8)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    assert speed.batch_slices(64) == 4  # slices of at least MIN_SLICE_IMAGES
    assert speed.batch_slices(256) == 8 and speed.batch_slices(16) == 1
    monkeypatch.setattr(speed, "usable_cpus", lambda: 2)
    assert speed.batch_slices(64) == 2 and speed.batch_slices(64, 64 * 3 + 37) == 2
    assert speed.batch_slices(64, 64 * 3 + 1) == 1  # a last batch of 1 image cannot be cut in two
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    monkeypatch.setattr(speed, "tf_intra_op_threads_setting", lambda: 0)  # nothing set with tf.config
    assert speed.batch_slices(64) == 1
    monkeypatch.setattr(speed, "tf_intra_op_threads_setting", lambda: 1)  # one thread set with tf.config
    assert speed.batch_slices(64) == 2


@pytest.mark.parametrize("slices", [2, 3])
def test_sliced_train_step_applies_the_whole_batch_gradient(slices):
    """The sliced step is the same SGD step as Keras' own, batch by batch, including a short last batch.

    Plain SGD, not Adam: Adam divides by the gradient's own scale, so it would hide a wrongly scaled sum."""
    import keras

    from core.model import build_model
    from core.speed import use_sliced_train_step

    rng = np.random.default_rng(1)
    x = rng.random((64 * 3 + 37, 32, 32, 1), np.float32)  # the last batch, 37 images, slices unevenly
    y = rng.integers(0, 10, len(x))
    fitted = []
    for sliced in (False, True):
        keras.utils.set_random_seed(0)
        model = build_model(TINY)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], jit_compile=False)
        if sliced:
            use_sliced_train_step(model, slices)
        history = model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0).history
        fitted.append((model.get_weights(), history))
    (plain_weights, plain_history), (sliced_weights, sliced_history) = fitted
    moved = max(float(np.abs(w - w0).max()) for w, w0 in zip(plain_weights, build_model(TINY).get_weights()))
    assert moved > 1e-2  # the steps are big enough for a wrong gradient to show
    for a, b in zip(plain_weights, sliced_weights):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(sliced_history[key], plain_history[key], rtol=1e-5)


@pytest.mark.parametrize("schedule", [False, True])
def test_fused_adam_takes_keras_adam_steps(schedule):
    """TensorFlow's Adam kernel gives Keras' Adam steps: weights and both moments, with a constant learning
    rate and with a schedule. Three steps only: Adam divides by the gradient's own scale, so the float32
    rounding of a near-zero gradient grows into visible differences over tens of steps."""
    import keras

    from core.model import build_model
    from core.speed import use_fused_adam

    rng = np.random.default_rng(2)
    x = rng.random((64 * 3, 32, 32, 1), np.float32)
    y = rng.integers(0, 10, len(x))
    fitted = []
    for fused in (False, True):
        keras.utils.set_random_seed(0)
        model = build_model(TINY)
        rate = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=3) if schedule else 1e-2
        model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy",
                      jit_compile=False)
        if fused:
            assert use_fused_adam(model.optimizer)
        model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
        moments = [v.numpy() for v in model.optimizer.variables]  # both moments, the step count, the rate
        assert len(moments) >= 2 * len(model.trainable_weights)
        fitted.append((model.get_weights(), moments))
    (weights, moments), (fused_weights, fused_moments) = fitted
    moved = max(float(np.abs(w - w0).max()) for w, w0 in zip(weights, build_model(TINY).get_weights()))
    assert moved > 1e-2  # a step without Adam's bias correction, or with another epsilon, would be off by more
    for a, b in zip(weights + moments, fused_weights + fused_moments):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_fused_adam_only_replaces_plain_adam():
    import keras

    from core.speed import use_fused_adam

    assert use_fused_adam(keras.optimizers.Adam()) is True
    for other in (keras.optimizers.Adam(amsgrad=True), keras.optimizers.SGD(), keras.optimizers.AdamW()):
        assert use_fused_adam(other) is False


def test_a_last_batch_smaller_than_the_slices_trains(tmp_path, monkeypatch):
    """129 training images at batch 64 leave a last batch of 1 image, which cannot be cut into slices."""
    monkeypatch.setattr(speed, "usable_cpus", lambda: 2)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    store = RunStore(tmp_path)
    result = train(TINY.replace(train_subset=129, validation_split=0.0, epochs=1), store)
    assert result.status == "completed", result.error
    status = store.read_status(result.run_id)
    assert status.n_train == 129 and status.batch_slices == 1


def test_training_batches_reshuffle_each_epoch_without_tf_data_autotuning():
    """Autotuning off (its thread stalled each epoch's start for seconds); every epoch still sees each image
    once, in a new order, from the same seed."""
    x = np.arange(200, dtype=np.float32).reshape(200, 1, 1, 1) / np.float32(255)
    y = np.arange(200, dtype=np.int32)
    dataset = speed.make_train_dataset(x, y, TrainConfig(batch_size=64, seed=5))
    assert dataset.options().autotune.enabled is False
    epochs = [np.concatenate([labels.numpy() for _, labels in dataset]) for _ in range(2)]
    for order in epochs:
        assert sorted(order) == list(range(200))
    assert not np.array_equal(epochs[0], epochs[1])
    again = speed.make_train_dataset(x, y, TrainConfig(batch_size=64, seed=5))
    assert np.array_equal(np.concatenate([labels.numpy() for _, labels in again]), epochs[0])


def test_auto_jit_means_onednn_without_xla_else_xla(monkeypatch):
    from core.speed import resolve_jit_compile

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert resolve_jit_compile("auto") is False
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert resolve_jit_compile("auto") is True
    assert resolve_jit_compile(False) is False and resolve_jit_compile(True) is True


def test_same_seed_gives_the_same_final_metrics(finished, tmp_path):
    store, first = finished
    again = train(TINY, RunStore(tmp_path), name="again")
    _, epoch_a = store.read_metrics(first.run_id)
    _, epoch_b = RunStore(tmp_path).read_metrics(again.run_id)
    for column in ("loss", "accuracy", "val_loss", "test_accuracy"):
        assert epoch_a[column].tolist() == epoch_b[column].tolist(), column


def test_stop_from_another_thread_ends_as_stopped_with_a_model(tmp_path):
    store = RunStore(tmp_path)
    stop = threading.Event()
    config = TrainConfig(data_source="sample", train_subset=15000, validation_split=0.0, epochs=20, batch_size=32)
    run_id = store.create_run(config)
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=train(config, store, run_id=run_id, stop_event=stop)))
    worker.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and store.read_metrics(run_id)[0].empty:
        time.sleep(0.1)  # wait until batches are streaming
    assert not store.read_metrics(run_id)[0].empty, "training never started"
    stop.set()
    pressed = time.monotonic()
    while worker.is_alive() and store.read_status(run_id).phase == "training":
        time.sleep(0.02)
    latency = time.monotonic() - pressed  # until fit returned and the trainer moved on to saving
    worker.join(120)
    assert result["r"].status == "stopped"
    status = store.read_status(run_id)
    assert status.status == "stopped" and status.model_saved is True
    # Stop lands mid-epoch: the epoch it cut short is recorded as partial and not counted as done
    _, epochs = store.read_metrics(run_id)
    [partial] = epochs[epochs["partial"].eq(True)].to_dict("records")
    assert status.epochs_done == partial["epoch"] - 1 == int(epochs["partial"].ne(True).sum()) < 20
    assert status.stopped_batch == partial["steps_done"] > 0
    assert store.load_model(run_id) is not None
    assert latency < 3.0, f"fit took {latency:.2f} s to stop"


def test_stop_before_training_trains_nothing(tmp_path):
    store = RunStore(tmp_path)
    stop = threading.Event()
    stop.set()
    result = train(TINY, store, stop_event=stop)
    assert result.status == "stopped"
    assert store.read_status(result.run_id).model_saved is False


def test_non_finite_loss_fails_the_run_with_epoch_and_batch(tmp_path, monkeypatch):
    import keras

    store = RunStore(tmp_path)

    class PoisonAfterFirstEpoch(keras.callbacks.Callback):
        """Set one weight to NaN at the start of epoch 2, as a diverging update would."""

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                kernel = self.model.get_layer("output").kernel
                kernel.assign(np.full(kernel.shape, np.nan, np.float32))

    result = train(TINY.replace(epochs=3), store, callbacks=[PoisonAfterFirstEpoch()])
    assert result.status == "failed"
    assert "loss became nan at epoch 2, batch" in result.error
    status = store.read_status(result.run_id)
    assert status.nonfinite["epoch"] == 2 and status.nonfinite["batch"] >= 1
    assert status.model_epoch == 1 and status.model_saved is True
    weights = store.load_model(result.run_id).get_layer("output").kernel.numpy()
    assert np.isfinite(weights).all()  # the last finite model was kept


def test_bad_data_path_fails_the_run_with_a_message(tmp_path):
    store = RunStore(tmp_path)
    result = train(TINY.replace(data_source="file", data_path=str(tmp_path / "missing.npz")), store)
    assert result.status == "failed" and "missing.npz" in result.error
    assert store.read_status(result.run_id).status == "failed"
    assert json.loads((store.run_dir(result.run_id) / "status.json").read_text())["error"] == result.error


def test_handed_over_training_images_are_freed_and_others_kept(tmp_path):
    """The CLI hands its loaded data over; a caller that does not keeps its arrays untouched."""
    from core.data import load_dataset

    config = TINY.replace(epochs=1)
    kept, handed = load_dataset(config), load_dataset(config)
    n = len(kept.x_train)
    assert train(config, RunStore(tmp_path), dataset=kept).status == "completed"
    assert len(kept.x_train) == len(kept.y_train) == n  # still the caller's
    result = train(config, RunStore(tmp_path), dataset=handed, hand_over_dataset=True)
    assert result.status == "completed"
    assert handed.x_train.shape == (0, 32, 32, 1) and len(handed.y_train) == 0
    assert len(handed.x_test) == 10000  # only the training images are released
    assert RunStore(tmp_path).read_status(result.run_id).n_train == n


def test_train_creates_no_variable_while_tracing_so_the_step_is_traced_once(tmp_path):
    """Keras creates the optimizer's and the metrics' variables in the first trace, which makes TensorFlow
    trace the train step a second time (~0.8 s before the first point); the trainer builds them first."""
    import tensorflow as tf

    made_in_graph = []

    def creator(next_creator, **kwargs):
        if not tf.executing_eagerly():
            made_in_graph.append(kwargs.get("name"))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        result = train(TINY.replace(epochs=1), RunStore(tmp_path))
    assert result.status == "completed"
    assert made_in_graph == []


def test_training_state_built_first_traces_the_step_once_and_leaves_the_metrics_clean():
    import keras

    from core.model import build_model
    from core.speed import build_training_state

    keras.utils.set_random_seed(0)
    model = build_model(TINY)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=4, jit_compile=False)
    build_training_state(model)
    traces, step = [], model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    x = np.random.default_rng(0).random((256, 32, 32, 1), np.float32)
    y = np.arange(256) % 10
    logs = model.fit(x, y, batch_size=64, epochs=1, verbose=0).history
    assert len(traces) == 1
    # The metrics hold only the fit's own 256 images, not the zero image that built them.
    assert logs["accuracy"][0] * 256 == pytest.approx(round(logs["accuracy"][0] * 256), abs=1e-3)


def test_batch_records_count_an_epochs_last_short_call_as_it_is(tmp_path):
    """Keras reports the last call of the compiled loop as a full steps_per_execution; 11 batches of 4 per
    call are 4, 8, 11 (not 12), and the step axis goes on from 11."""
    import keras

    from core.callbacks import StreamingCallback
    from core.model import build_model

    config = TrainConfig(data_source="sample", validation_split=0.0, batch_size=8, epochs=2)
    store = RunStore(tmp_path)
    run_id = store.create_run(config, name="short last call")
    keras.utils.set_random_seed(1)
    model = build_model(config)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=4)
    rng = np.random.default_rng(0)
    x, y = rng.random((88, 32, 32, 1), dtype=np.float32), rng.integers(0, 10, 88)
    streamer = StreamingCallback(store, run_id, x[:20], y[:20], batch_size=8, n_train=88, batch_interval=0.0)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, callbacks=[streamer], verbose=0)
    batch, epoch = store.read_metrics(run_id)
    assert batch["batch"].tolist() == [4, 8, 11, 4, 8, 11]
    assert batch["step"].tolist() == [4, 8, 11, 15, 19, 22]
    assert epoch["epoch"].tolist() == [1, 2]


class _RecordingStore:
    def __init__(self):
        self.records = []

    def append_metrics(self, run_id, records):
        self.records.extend(records)


def test_batch_records_hold_each_stretchs_own_mean_not_the_running_mean():
    """Issue 20.4: Keras logs the epoch's running mean; a record holds the mean of its own batches (images
    weighted, the last batch short), so the curve does not jump at each epoch's start."""
    from core.callbacks import StreamingCallback

    losses = np.array([2.0, 1.0, 0.5, 0.25, 4.0])  # per batch; batch 64, 300 images: the last batch has 44
    sizes = np.array([64, 64, 64, 64, 44])
    store = _RecordingStore()
    callback = StreamingCallback(store, "run", np.zeros((0, 32, 32, 1)), np.zeros(0), batch_size=64, n_train=300,
                                 batch_interval=0.0)
    callback.set_params({"steps": 5, "epochs": 2})
    callback.on_train_begin()
    for epoch in range(2):
        callback.on_epoch_begin(epoch)
        for batch in range(5):
            seen = sizes[: batch + 1]
            running = float((losses[: batch + 1] * seen).sum() / seen.sum())
            callback.on_train_batch_end(batch, {"loss": running, "accuracy": running / 10})
    assert [r["loss"] for r in store.records] == pytest.approx(list(losses) * 2)
    assert [r["accuracy"] for r in store.records] == pytest.approx(list(losses / 10) * 2)
    assert [r["batches"] for r in store.records] == [1] * 10 and store.records[5]["step"] == 6
    # throttled: a record covers every batch since the previous one
    store.records.clear()
    callback.on_epoch_begin(2)
    callback.on_train_batch_end(0, {"loss": 2.0, "accuracy": 0.2})
    callback.batch_interval = 1e9  # the next two calls are throttled away
    for batch in (1, 2):
        seen = sizes[: batch + 1]
        callback.on_train_batch_end(batch, {"loss": float((losses[: batch + 1] * seen).sum() / seen.sum()),
                                             "accuracy": 0.0})
    callback.batch_interval, callback.last_write = 0.0, 0.0
    seen = sizes[:4]
    callback.on_train_batch_end(3, {"loss": float((losses[:4] * seen).sum() / seen.sum()), "accuracy": 0.0})
    assert [r["batches"] for r in store.records] == [1, 3]
    assert store.records[1]["loss"] == pytest.approx((1.0 + 0.5 + 0.25) / 3)
