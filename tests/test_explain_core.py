"""Issue 17's engines: the weights in each epoch snapshot, the model rebuilt at an epoch, the attribution maps
(with Adebayo et al.'s randomisation check and integrated gradients' completeness), calibration, the
representation map and layer health."""

import numpy as np
import pytest
from conftest import tsne_children
from scipy.stats import spearmanr

from core import attribution
from core.analysis import predict_probs
from core.data import load_test_set
from core.epoch_model import model_at_epoch
from core.model import build_model
from core.records import EpochSnapshot
from core.store import RunStore, StoreError


@pytest.fixture(scope="module")
def trained(audit_trained_runs):
    root, run_ids = audit_trained_runs
    store = RunStore(root)
    run_id = run_ids["two_epochs"]
    return store, run_id, model_at_epoch(store, run_id, 2)


@pytest.fixture(scope="module")
def test_set():
    x, y, _, _ = load_test_set("mnist", "sample")
    return x[:200], y[:200]


def test_each_epoch_snapshot_holds_the_weights_that_give_its_predictions(trained, test_set):
    store, run_id, _ = trained
    x, _ = test_set
    for epoch in (1, 2):
        snapshot = store.read_epoch_snapshot(run_id, epoch)
        assert sum(w.size for w in snapshot.weights) == 61_706  # the seed variant
        model = model_at_epoch(store, run_id, epoch)
        assert np.abs(predict_probs(model, x) - snapshot.probs[:200]).max() < 2e-3  # float16 probs
    first, second = (store.read_epoch_snapshot(run_id, e).weights for e in (1, 2))
    assert not np.allclose(first[0], second[0])


def test_a_run_without_weights_or_with_a_damaged_snapshot_says_so(tmp_path, trained):
    store, run_id, _ = trained
    other = RunStore(tmp_path)
    new_id = other.create_run(store.read_config(run_id))
    old = store.read_epoch_snapshot(run_id, 1)
    other.save_epoch_snapshot(new_id, EpochSnapshot(1, old.probs, old.c1_kernels))  # as runs stored before
    with pytest.raises(StoreError, match="kept no weights at epoch 1"):
        model_at_epoch(other, new_id, 1)
    other.save_epoch_snapshot(new_id, EpochSnapshot(2, old.probs, old.c1_kernels, weights=old.weights[:3]))
    with pytest.raises(StoreError, match="epoch 2 weights do not fit"):
        model_at_epoch(other, new_id, 2)
    (tmp_path / new_id / "epochs" / "epoch_0003.npz").write_bytes(b"not a zip")
    with pytest.raises(StoreError, match="epoch 3 snapshot is damaged"):
        model_at_epoch(other, new_id, 3)


def test_integrated_gradients_sum_to_the_logit_difference_within_one_percent(trained, test_set):
    _, _, model = trained
    x, y = test_set
    for index in range(5):
        for target in (int(y[index]), (int(y[index]) + 1) % 10):
            ig = attribution.integrated_gradients(model, x[index], target)
            scores = attribution.logits(model, np.stack([x[index], np.zeros_like(x[index])]))
            expected = scores[0, target] - scores[1, target]
            assert abs(ig.sum() - expected) <= 0.01 * abs(expected), (index, target, ig.sum(), expected)


def test_maps_of_a_model_with_randomised_weights_differ_from_the_trained_models(trained, test_set):
    """Adebayo et al. (2018), model parameter randomisation: a map that explains the model must change when the
    model's weights are replaced by random ones; a map that only shows the digit's edges would not."""
    store, run_id, model = trained
    random_model = build_model(store.read_config(run_id).replace(seed=12345))  # untrained, other seed
    x, y = test_set
    for method in attribution.METHODS:
        correlations = []
        for index in range(6):
            a = attribution.attribution(model, x[index], int(y[index]), method)
            b = attribution.attribution(random_model, x[index], int(y[index]), method)
            assert a.shape == (32, 32) and np.isfinite(a).all() and np.abs(a).max() > 0
            correlations.append(spearmanr(a.ravel(), b.ravel())[0])
        assert np.mean(correlations) < 0.85, (method, correlations)


def test_attribution_maps_follow_the_class_asked_for_and_refuse_bad_input(trained, test_set):
    _, _, model = trained
    x, y = test_set
    label = int(y[0])
    for method in attribution.METHODS:
        own = attribution.attribution(model, x[0], label, method)
        other = attribution.attribution(model, x[0], (label + 1) % 10, method)
        assert not np.allclose(own, other), method
    assert attribution.crop(own).shape == (28, 28)
    occluded = attribution.occlusion(model, x[0], label, patch=6)
    assert occluded.max() > 0 and occluded[:2].sum() == 0  # the padding is never occluded
    with pytest.raises(ValueError, match="patch size 9 is not allowed"):
        attribution.occlusion(model, x[0], label, patch=9)
    with pytest.raises(ValueError, match="target class 10 is not a class"):
        attribution.saliency(model, x[0], 10)
    with pytest.raises(ValueError, match="attribution method 'lime'"):
        attribution.attribution(model, x[0], label, "lime")
    with pytest.raises(ValueError, match="must be one"):
        attribution.saliency(model, np.zeros((5, 5)), label)


def test_calibration_bins_match_scikit_learn_and_ece_is_their_weighted_gap():
    from sklearn.calibration import calibration_curve

    from core.calibration import calibration

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10) * 0.3, size=500)
    labels = rng.integers(0, 10, size=500)
    found = calibration(labels, probs)
    right = (probs.argmax(axis=1) == labels).astype(int)
    accuracy, confidence = calibration_curve(right, probs.max(axis=1), n_bins=10)
    assert np.allclose(found.accuracy, accuracy) and np.allclose(found.mean_confidence, confidence)
    assert found.counts.sum() == 500
    manual = sum(abs(right[(probs.max(axis=1) > lo) & (probs.max(axis=1) <= lo + 0.1)].mean()
                     - probs.max(axis=1)[(probs.max(axis=1) > lo) & (probs.max(axis=1) <= lo + 0.1)].mean())
                 * ((probs.max(axis=1) > lo) & (probs.max(axis=1) <= lo + 0.1)).sum() / 500
                 for lo in np.arange(0, 1, 0.1) if ((probs.max(axis=1) > lo) & (probs.max(axis=1) <= lo + 0.1)).any())
    assert found.ece == pytest.approx(manual, abs=1e-9)
    perfect = calibration(labels, np.eye(10)[labels])  # always right with confidence 1
    assert perfect.ece == 0.0
    with pytest.raises(ValueError, match="one row of probabilities per label"):
        calibration(labels[:3], probs)


def test_representation_map_and_tsne_task_are_stored_per_epoch(trained, test_set, tmp_path):
    import shutil
    import threading

    from core import representation

    store, run_id, model = trained
    x, _ = test_set
    rows = representation.features(model, x)
    assert rows.shape == (200, 84)
    swapped = representation.FeaturePass(store.read_config(run_id), batch_size=64)  # one model, weights swapped
    for epoch in (1, 2, 1):
        np.testing.assert_allclose(swapped(store.read_epoch_snapshot(run_id, epoch).weights, x),
                                   representation.features(model_at_epoch(store, run_id, epoch), x), atol=1e-4)
    with pytest.raises(ValueError, match="do not fit the run's model"):
        swapped(store.read_epoch_snapshot(run_id, 1).weights[:-1], x)
    points = representation.pca_map(rows)
    assert points.shape == (200, 2) and points[:, 0].var() >= points[:, 1].var()
    copy = RunStore(tmp_path)
    shutil.copytree(store.run_dir(run_id), tmp_path / run_id)
    assert copy.read_projection(run_id, 2, "tsne") is None
    stop = threading.Event()
    stop.set()
    assert representation.tsne_task(copy, stop, run_id, 2) == "stopped"  # Stop before the work starts
    assert copy.read_projection(run_id, 2, "tsne") is None
    copy.save_projection(run_id, 2, "tsne", points)  # as the task stores its map
    assert np.array_equal(copy.read_projection(run_id, 2, "tsne"), points)
    assert representation.tsne_task(copy, threading.Event(), run_id, 2) == "completed"  # cached: not redone
    from core.tasks import resolve

    assert resolve("tsne") is representation.tsne_task  # the dashboard's training process runs it by this kind
    first, again = representation.tsne_map(rows), representation.tsne_map(rows)
    assert first.shape == (200, 2) and np.allclose(first, again)  # seeded: a stored map can be made again


def test_layer_health_histograms_updates_and_dead_relus(trained, test_set):
    from core import layer_health

    store, run_id, model = trained
    x, _ = test_set
    names = layer_health.kernel_names(model)
    kernels = [layer_health.layer_kernels(names, store.read_epoch_snapshot(run_id, e).weights) for e in (1, 2)]
    assert list(kernels[0]) == ["c1_conv", "c3_conv", "c5_dense", "f6_dense", "output"]
    centres, counts = layer_health.weight_histograms([k["c1_conv"] for k in kernels])
    assert counts.shape == (2, len(centres)) and (counts.sum(axis=1) == 150).all()
    updates = layer_health.relative_updates([1, 2], kernels)
    row = updates[updates.layer == "c1_conv"].iloc[0]
    expected = np.linalg.norm(kernels[1]["c1_conv"] - kernels[0]["c1_conv"]) / np.linalg.norm(kernels[0]["c1_conv"])
    assert row.epoch == 2 and row.relative_update == pytest.approx(expected)
    dead = layer_health.dead_relus(model, x)
    assert set(dead) == {"c1_conv", "c3_conv", "c5_dense", "f6_dense"} and all(0 <= v <= 1 for v in dead.values())
    killed = build_model(store.read_config(run_id))
    killed.set_weights(model.get_weights())
    bias = killed.get_layer("f6_dense").bias
    bias.assign(np.full(bias.shape, -1e3, np.float32))  # every F6 unit below zero on every image
    assert layer_health.dead_relus(killed, x)["f6_dense"] == 1.0


def _wait_for(condition, seconds: float) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(condition())


def test_stopping_a_running_tsne_ends_its_process_at_once_and_stores_nothing(trained, tmp_path):
    import shutil
    import threading
    import time

    from core import representation

    rows = np.random.default_rng(0).normal(size=(20_000, 84)).astype(np.float32)  # minutes of t-SNE
    stop, ended = threading.Event(), {}
    worker = threading.Thread(target=lambda: ended.update(points=representation.tsne_map(rows, stop)))
    worker.start()
    assert _wait_for(tsne_children, 60)
    time.sleep(3)  # scikit-learn is now inside TSNE.fit
    assert tsne_children() and worker.is_alive()
    stop.set()
    start = time.monotonic()
    worker.join(10)
    assert not worker.is_alive() and time.monotonic() - start < 3
    assert ended["points"] is None and not tsne_children()

    store, run_id, _ = trained  # the task: stopped while its child runs, it says so and stores nothing
    copy = RunStore(tmp_path)
    shutil.copytree(store.run_dir(run_id), tmp_path / run_id)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    stop = threading.Event()
    worker = threading.Thread(target=lambda: ended.update(status=representation.tsne_task(copy, stop, run_id, 1)))
    worker.start()
    assert _wait_for(tsne_children, 60)
    stop.set()
    worker.join(10)
    assert ended["status"] == "stopped" and not tsne_children()
    assert copy.read_projection(run_id, 1, "tsne") is None
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # not even a temporary file
