"""Issue 18, the label audit: the cleanlab ranking, the K-fold training-set audit, review marks, exclude_train."""

import json
import threading

import numpy as np
import pytest

from core.config import TrainConfig
from core.data import load_dataset, load_raw
from core.label_audit import (
    AuditError,
    audit_labels,
    audit_of_run,
    audit_test,
    check_folds,
    check_mark,
    epoch_averaged,
    marked_for_exclusion,
    review_table,
)
from core.label_audit_train import audit_train, training_images
from core.store import RunStore, StoreError

TINY_AUDIT = TrainConfig(data_source="sample", train_subset=300, validation_split=0.0, epochs=1, batch_size=32)


def noisy_probs(n=400, n_classes=10, flipped=(3, 50, 101, 250), seed=0):
    """Confident, right probabilities of n images, except that the labels at `flipped` were moved to another
    class: the model still says the true class there."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % n_classes
    probs = rng.dirichlet(np.full(n_classes, 0.3), n) * 0.1
    probs[np.arange(n), truth] += 0.9
    probs[list(flipped)] = 0.001
    probs[list(flipped), truth[list(flipped)]] = 0.991  # sure of the true class: above every class's threshold
    labels = truth.copy()
    labels[list(flipped)] = (truth[list(flipped)] + 3) % n_classes
    return labels, probs / probs.sum(axis=1, keepdims=True), truth


def test_flipped_labels_rank_first_with_the_true_class_suggested():
    labels, probs, truth = noisy_probs()
    audit = audit_labels(labels, probs)
    top = audit.table.head(4)
    assert sorted(top["index"]) == [3, 50, 101, 250]
    assert (top["suggested"].to_numpy() == truth[top["index"]]).all()
    assert (top["given"].to_numpy() == labels[top["index"]]).all()
    assert set(audit.suspects["index"]) == {3, 50, 101, 250}
    assert audit.estimated_errors == 4
    # rows: the given label, columns: the true class; image 3 is a 3 labelled 6
    assert audit.joint_counts.sum() == len(labels) and audit.joint_counts[6, 3] >= 1
    assert len(audit.class_quality) == 10 and {"label_issues", "label_quality_score"} <= set(audit.class_quality)


def test_every_method_and_epoch_averaging():
    labels, probs, _ = noisy_probs()
    for method in ("self_confidence", "normalized_margin", "confidence_weighted_entropy"):
        assert audit_labels(labels, probs, method=method).table["index"].iloc[0] in (3, 50, 101, 250)
    with pytest.raises(AuditError, match="method='margin' is not a label quality score"):
        audit_labels(labels, probs, method="margin")
    early = np.full_like(probs, 0.1)
    np.testing.assert_allclose(epoch_averaged([early, probs, probs], 2), probs)
    np.testing.assert_allclose(epoch_averaged([early, probs], 2), (early + probs) / 2)
    audit = audit_test(labels, probs, [early, probs, probs], epochs=3)
    assert audit.epochs_used == 3 and audit_test(labels, probs, [], epochs=3).epochs_used == 1


@pytest.mark.parametrize("folds", [1, 11, 2.5, "3", True])
def test_folds_outside_2_to_10_are_refused(folds):
    with pytest.raises(AuditError, match="choose a whole number from 2 to 10"):
        check_folds(folds)


def test_marks_are_checked_stored_exported_and_a_damaged_file_is_never_overwritten(finished_run, lenet_runs):
    store = RunStore(lenet_runs)
    with pytest.raises(AuditError, match="test image 10000 does not exist; allowed: 0 to 9999"):
        check_mark("test", 10000, "fine", np.arange(10000))
    with pytest.raises(AuditError, match="mark='wrong' is not allowed"):
        check_mark("test", 1, "wrong", np.arange(10))
    with pytest.raises(AuditError, match="train image 7 does not exist"):
        check_mark("train", 7, "fine", np.array([3, 9]))
    store.write_label_mark(finished_run, "test", 12, "wrong label")
    store.write_label_mark(finished_run, "train", 40, "wrong label")
    store.write_label_mark(finished_run, "train", 41, "ambiguous")
    store.write_label_mark(finished_run, "train", 41, None)  # cleared
    marks = RunStore(lenet_runs).read_label_marks(finished_run)  # a new store object: read back from disk
    assert marks == {("test", 12): "wrong label", ("train", 40): "wrong label"}
    assert marked_for_exclusion(marks) == [40]
    labels, probs, _ = noisy_probs(n=20, flipped=(12,))
    table = review_table(audit_labels(labels, probs), "test", marks, [str(i) for i in range(10)])
    assert list(table.columns) == ["index", "split", "given_label", "suggested_label", "score", "mark"]
    assert table.iloc[0].to_dict() | {"score": 0} == {"index": 12, "split": "test", "given_label": "5",
                                                      "suggested_label": "2", "score": 0, "mark": "wrong label"}
    path = lenet_runs / finished_run / "label_marks.json"
    path.write_text('{"marks": [{"split": "test", "ind')
    with pytest.raises(StoreError, match="review marks file .* is damaged"):
        store.read_label_marks(finished_run)
    with pytest.raises(StoreError, match="is damaged"):
        store.write_label_mark(finished_run, "test", 1, "fine")
    assert path.read_text() == '{"marks": [{"split": "test", "ind'  # nothing lost


def test_a_run_without_a_model_or_a_training_audit_is_refused_with_one_line(lenet_runs):
    store = RunStore(lenet_runs)
    run_id = store.create_run(TINY_AUDIT, name="never trained", status="stopped")
    with pytest.raises(AuditError, match="has no model and no test predictions"):
        audit_of_run(store, run_id)
    with pytest.raises(AuditError, match="its training set has not been audited"):
        audit_of_run(store, run_id, "train")
    with pytest.raises(AuditError, match="split='val' is not allowed"):
        audit_of_run(store, run_id, "val")


def test_exclude_train_leaves_out_those_source_indices_and_nothing_else():
    base = TrainConfig(data_source="sample", train_subset=400, validation_split=0.1)
    full = load_dataset(base)
    drop = tuple(int(i) for i in full.train_index[[0, 5, 9]])
    less = load_dataset(base.replace(exclude_train=drop))
    assert less.excluded == 3 and len(less.y_train) == len(full.y_train) - 3
    assert set(full.train_index) - set(less.train_index) == set(drop)
    np.testing.assert_array_equal(less.x_val, full.x_val)  # the same validation images
    assert TrainConfig(exclude_train="9, 3 3").exclude_train == (3, 9)
    assert TrainConfig.from_json(TrainConfig(exclude_train=[5]).to_json()).exclude_train == (5,)
    with pytest.raises(ValueError, match=r"exclude_train=60000 is not a training index; allowed: 0 to 59999"):
        TrainConfig(exclude_train=[60000])
    with pytest.raises(ValueError, match="must be training indices separated by commas"):
        TrainConfig(exclude_train="4, five")


def test_audit_train_gives_out_of_sample_probabilities_of_every_training_image(lenet_runs):
    store = RunStore(lenet_runs)
    run_id = store.create_run(TINY_AUDIT, name="to audit", status="completed")
    assert audit_train(store, threading.Event(), run_id=run_id, folds=2, task_id="audit-1") == "completed"
    result = store.read_train_audit(run_id)
    data = load_dataset(TINY_AUDIT)
    assert result.state == "completed" and result.folds_done == 2 and len(result.fold_seconds) == 2
    np.testing.assert_array_equal(result.indices, data.train_index)
    np.testing.assert_array_equal(result.labels, data.y_train)
    np.testing.assert_allclose(result.probs.sum(axis=1), 1, atol=1e-3)
    assert [info.run_id for info in store.list_runs()] == [run_id]  # the fold runs are gone
    audit = audit_of_run(store, run_id, "train")
    assert set(audit.table["index"]) == set(data.train_index.tolist())
    images, raw = training_images(store, run_id, result), load_raw("mnist", "sample")
    suspect = int(audit.table["index"].iloc[0])  # the gallery shows images[index]: the source's own image
    np.testing.assert_array_equal(images[suspect], raw.x_train[suspect])
    assert raw.y_train[suspect] == audit.table["given"].iloc[0]
    # A re-audit stopped before its first fold ends stopped, and the completed result it would replace is kept
    stop = threading.Event()
    stop.set()
    assert audit_train(store, stop, run_id=run_id, folds=3) == "stopped"
    kept = store.read_train_audit(run_id)
    assert kept.state == "completed" and kept.folds == 2 and "a later audit stopped" in kept.last_attempt
    np.testing.assert_array_equal(kept.probs, result.probs)
    fresh = store.create_run(TINY_AUDIT, name="stopped at once", status="completed")
    assert audit_train(store, stop, run_id=fresh, folds=3) == "stopped"
    with pytest.raises(AuditError, match="training-set audit stopped"):
        audit_of_run(store, fresh, "train")


def test_an_audit_whose_process_died_reads_failed_and_can_be_run_again(lenet_runs):
    store = RunStore(lenet_runs)
    run_id = store.create_run(TINY_AUDIT, name="killed audit", status="completed")
    store.write_train_audit(run_id, state="running", folds=3, pid=2**22 + 7, pid_started="1", host=__import__(
        "socket").gethostname())
    audit = store.read_train_audit(run_id)
    assert audit.state == "failed" and "interrupted" in audit.error
    with pytest.raises(AuditError, match="training-set audit failed: interrupted"):
        audit_of_run(store, run_id, "train")


def test_a_damaged_audit_file_is_reported(lenet_runs):
    store = RunStore(lenet_runs)
    run_id = store.create_run(TINY_AUDIT, name="damaged audit", status="completed")
    (lenet_runs / run_id / "label_audit_train.json").write_text("{not json")
    with pytest.raises(StoreError, match="training-set audit file is damaged"):
        store.read_train_audit(run_id)
    json.loads((lenet_runs / run_id / "config.json").read_text())  # the run itself is untouched


def test_a_fashion_mnist_run_is_audited_the_same_with_its_class_names(lenet_runs, capsys):
    from core.cli import main
    from core.data import CLASS_NAMES

    store = RunStore(lenet_runs)
    run_id = store.create_run(TrainConfig(dataset="fashion_mnist"), name="fashion", status="completed")
    labels, probs, _ = noisy_probs()
    store.save_evaluation(run_id, {"accuracy": 0.99}, probs, labels)
    store.write_status(run_id, class_names=list(CLASS_NAMES["fashion_mnist"]))
    assert main(["audit", run_id, "--epochs", "1", "--top", "4", "--json", "--runs-dir", str(lenet_runs)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {row["index"] for row in payload["suspects"]} == {3, 50, 101, 250}
    row = next(row for row in payload["suspects"] if row["index"] == 3)
    assert (row["given_label"], row["suggested_label"]) == ("Shirt", "Dress")  # a 3 labelled 6, by name
    assert payload["noise_matrix"]["rows_given_columns_true"] == list(CLASS_NAMES["fashion_mnist"])


def test_the_benchmark_ranks_flips_and_times_the_audit_quick(tmp_path):
    from bench import label_audit as bench

    noisy, flipped = bench.flip(np.arange(1000) % 10, 0.05, seed=0)
    assert flipped.sum() == 50 and (noisy[flipped] != (np.arange(1000) % 10)[flipped]).all()
    bench.main(["timing", "--quick", "--folds", "2", "--results-dir", str(tmp_path)])
    timing = json.loads((tmp_path / "label_audit_timing.json").read_text())
    assert timing["final"] == "completed" and timing["folds"] == 2 and len(timing["fold_seconds"]) == 2
    assert timing["images"] == 600 and timing["seconds"] > 0


def test_the_train_command_takes_exclude_train_and_refuses_a_bad_list():
    from core.cli import build_parser, config_from_args, main

    args = build_parser().parse_args(["train", "--exclude-train", "30,4, 4", "--data-source", "sample"])
    assert config_from_args(args).exclude_train == (4, 30)
    assert main(["train", "--exclude-train", "4,x"]) == 2  # "error: exclude_train='4,x' must be ..." on stderr
