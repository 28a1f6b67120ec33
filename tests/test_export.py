"""Model exports (issue 19): each format loaded in its own runtime agrees with the Keras model; a tampered export
is refused with its figures; TensorBoard event files and the tidy metrics table hold the run's values; bad
output paths, a run without a model and an unknown format each get one line and nothing is overwritten."""

import shutil

import numpy as np
import pandas as pd
import pytest

from core import cli, export
from core.analysis import predict_probs
from core.store import RunStore
from core.testset import run_test_set
from conftest import TINY_CONFIG


@pytest.fixture
def store(finished_run, lenet_runs):
    return RunStore(lenet_runs)


def run_cli(capsys, *args):
    code = cli.main([*args])
    out, err = capsys.readouterr()
    return code, out, err


def own_runtime(fmt: str, data: bytes, x: np.ndarray, tmp_path) -> np.ndarray:
    """The export's probabilities from its own runtime, loaded from the bytes the export offers."""
    path = tmp_path / f"model{export.SUFFIXES[fmt]}"
    path.write_bytes(data)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.resize_tensor_input(inp["index"], list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])
    import keras

    return predict_probs(keras.saving.load_model(path, safe_mode=True, compile=False), x)


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_each_export_agrees_with_the_keras_model_in_its_own_runtime(store, finished_run, fmt, tmp_path):
    result = export.export_model(store, finished_run, fmt)
    parity = result.parity
    assert parity.images == 1000 and parity.ok and parity.max_prob_diff < 1e-4 and parity.identical >= 0.999
    x, _, _ = run_test_set(store.read_config(finished_run))
    x = x[:1000]
    reference = predict_probs(store.load_model(finished_run), x)
    probs = own_runtime(fmt, result.data, x, tmp_path)
    assert probs.shape == (1000, 10)
    assert np.abs(probs - reference).max() == pytest.approx(parity.max_prob_diff, abs=1e-6)
    assert np.mean(probs.argmax(1) == reference.argmax(1)) == parity.identical


def test_a_tampered_export_is_refused_with_its_figures_and_not_written(store, finished_run, monkeypatch, tmp_path,
                                                                       capsys):
    import onnx
    from onnx import numpy_helper

    write = export.WRITERS["onnx"]

    def tampered(store_, run_id, model, path):  # the converter "loses" the output layer's bias
        write(store_, run_id, model, path)
        graph = onnx.load(str(path))
        for tensor in graph.graph.initializer:
            if numpy_helper.to_array(tensor).shape == (10,):
                tensor.CopyFrom(numpy_helper.from_array(np.linspace(-5, 5, 10).astype(np.float32), tensor.name))
        onnx.save(graph, str(path))

    monkeypatch.setitem(export.WRITERS, "onnx", tampered)
    with pytest.raises(export.ExportRefused) as refused:
        export.export_model(store, finished_run, "onnx")
    assert not refused.value.parity.ok and refused.value.parity.max_prob_diff > 0.01
    target = tmp_path / "model.onnx"
    code, out, err = run_cli(capsys, "export", finished_run, "--format", "onnx", "-o", str(target))
    assert code == 2 and not target.exists() and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("error: the onnx export of run") and "largest probability difference" in line
    assert "identical predictions" in line


def test_cli_export_writes_the_file_and_its_parity(store, finished_run, tmp_path, capsys):
    target = tmp_path / "model.tflite"
    code, out, err = run_cli(capsys, "export", finished_run, "--format", "tflite", "-o", str(target), "--json")
    assert code == 0, err
    import json

    payload = json.loads(out)
    assert target.read_bytes()[4:8] == b"TFL3"  # the FlatBuffer identifier of a TensorFlow Lite model
    assert payload["parity"]["images"] == 1000 and payload["parity"]["identical_predictions"] >= 0.999
    assert payload["seconds"] < 10


def test_bad_input_gets_one_line_and_nothing_is_overwritten(store, finished_run, lenet_runs, tmp_path, capsys):
    existing = tmp_path / "existing.keras"
    existing.write_bytes(b"keep me")
    bare = store.create_run(TINY_CONFIG, name="never trained", status="stopped")
    cases = [
        (["export", finished_run, "--format", "keras", "-o", str(existing)], "already exists; pass --force"),
        (["export", bare, "--format", "onnx", "-o", str(tmp_path / "x.onnx")], "has no saved model"),
        (["export", finished_run, "--format", "pickle", "-o", str(tmp_path / "x")], "invalid choice: 'pickle'"),
        (["export", finished_run, "--format", "onnx", "-o", str(tmp_path / "missing" / "x.onnx")], "does not exist"),
        (["export", finished_run, "--format", "onnx", "-o", str(existing / "x.onnx")], "is not a folder"),
        (["export", finished_run, "--format", "onnx", "-o", "/proc/lenet.onnx"], "the folder /proc is not writable"),
        (["export", finished_run, "--format", "tensorboard", "-o", str(existing)], "is a file"),
        (["export-metrics", "-o", str(existing)], "already exists"),
        (["export-metrics", "--format", "xlsx"], "invalid choice: 'xlsx'"),
    ]
    for args, expected in cases:
        code, out, err = run_cli(capsys, *args)
        assert code == 2 and out == "", args
        [line] = err.strip().splitlines()
        assert line.startswith("error: ") and expected in line, (args, line)
    assert existing.read_bytes() == b"keep me" and not (tmp_path / "x.onnx").exists()
    code, _, err = run_cli(capsys, "export", finished_run, "--format", "keras", "-o", str(existing), "--force")
    assert code == 0, err
    assert existing.read_bytes() == (lenet_runs / finished_run / "model.keras").read_bytes()


def test_tensorboard_event_files_hold_the_runs_curves(store, finished_run, tmp_path, capsys):
    import tensorflow as tf

    target = tmp_path / "tb"
    code, out, err = run_cli(capsys, "export", finished_run, "--format", "tensorboard", "-o", str(target))
    assert code == 0, err
    assert "tensorboard --logdir" in out
    found = {}
    for events in target.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                scalar = float(tf.make_ndarray(value.tensor))
                found.setdefault((events.parent.name, value.tag), []).append((event.step, scalar))
    batch, epoch = store.read_metrics(finished_run)
    assert found[("train", "epoch_accuracy")] == [(1, pytest.approx(epoch["accuracy"].iloc[0]))]
    assert found[("validation", "epoch_loss")] == [(1, pytest.approx(epoch["val_loss"].iloc[0]))]
    assert found[("test", "epoch_accuracy")] == [(1, pytest.approx(epoch["test_accuracy"].iloc[0]))]
    assert [s for s, _ in found[("train", "batch_loss")]] == batch["step"].tolist()
    code, _, err = run_cli(capsys, "export", finished_run, "--format", "tensorboard", "-o", str(target))
    assert code == 2 and "already exists; pass --force" in err


def test_export_metrics_is_one_tidy_table_across_runs(store, finished_run, lenet_runs, tmp_path, capsys):
    other = "20990101-000000-copy-0000"
    shutil.copytree(lenet_runs / finished_run, lenet_runs / other)
    store.write_status(other, name="copy")
    code, out, _ = run_cli(capsys, "export-metrics")
    assert code == 0
    table = pd.read_csv(__import__("io").StringIO(out))
    assert list(table.columns) == ["run_id", "run_name", "kind", "epoch", "batch", "step", "time", "metric", "value"]
    assert set(table["run_id"]) == {finished_run, other}
    _, epoch = store.read_metrics(finished_run)
    row = table[(table.run_id == finished_run) & (table.kind == "epoch") & (table.metric == "test_accuracy")]
    assert row["value"].tolist() == pytest.approx(epoch["test_accuracy"].tolist())
    parquet = tmp_path / "metrics.parquet"
    code, _, err = run_cli(capsys, "export-metrics", "-o", str(parquet))
    assert code == 0, err
    back = pd.read_parquet(parquet)
    assert len(back) == len(table) and back["value"].tolist() == pytest.approx(table["value"].tolist())


def test_the_1998_variants_custom_layers_export_too(audit_trained_runs):
    """lecun1998 has its own layers (scaled tanh, trainable subsampling, C3's connection table): the converters
    must turn them into plain ops that onnxruntime and LiteRT run the same way."""
    root, run_ids = audit_trained_runs
    store = RunStore(root)
    for fmt in ("onnx", "tflite"):
        parity = export.export_model(store, run_ids["lecun1998"], fmt).parity
        assert parity.ok and parity.identical >= 0.999, (fmt, parity)
