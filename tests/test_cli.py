"""Every `python -m core` command, run as a user would, in a real subprocess."""

import json
import shutil
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
TINY_FLAGS = ["--data-source", "sample", "--train-subset", "600", "--validation-split", "0.1",
              "--epochs", "1", "--batch-size", "64"]


def cli(*args, runs_dir, check=True):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "core", *args, "--runs-dir", str(runs_dir)],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


SHIPPED = ROOT / "cached_models" / "seed-article-full-mnist"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store holding the shipped pretrained run (a real full-MNIST model) under its own id."""
    import shutil

    runs = tmp_path_factory.mktemp("cli_runs")
    shutil.copytree(SHIPPED, runs / SHIPPED.name)
    metrics = json.loads((SHIPPED / "evaluation.json").read_text())
    return runs, {"run_id": SHIPPED.name, "test_metrics": metrics}


def test_train_prints_run_id_and_test_metrics(tmp_path):
    payload = json.loads(cli("train", *TINY_FLAGS, "--name", "cli tiny", "--json", runs_dir=tmp_path).stdout)
    assert payload["status"] == "completed"
    assert (tmp_path / payload["run_id"] / "model.keras").is_file()
    assert 0 < payload["test_metrics"]["accuracy"] <= 1 and payload["test_metrics"]["n"] == 10000
    assert "bundled sample" in payload["data_source"]
    status = json.loads((tmp_path / payload["run_id"] / "status.json").read_text())
    assert status["name"] == "cli tiny" and status["status"] == "completed"


def test_train_progress_bar_never_counts_past_the_epochs_batches(tmp_path):
    # 2,000 images of 192 are 11 batches, run 5 per call of the compiled loop: Keras reports the last call
    # as batch 15
    result = cli("train", "--data-source", "sample", "--train-subset", "2000", "--validation-split", "0",
                 "--batch-size", "192", "--epochs", "1", runs_dir=tmp_path)
    assert "11/11" in result.stderr and "15/11" not in result.stderr


def test_list_shows_runs_and_damaged_folders(trained):
    runs, payload = trained
    (runs / "broken-run").mkdir(exist_ok=True)
    rows = json.loads(cli("list", "--json", runs_dir=runs).stdout)
    by_id = {row["run_id"]: row for row in rows}
    assert by_id[payload["run_id"]]["status"] == "completed"
    assert by_id[payload["run_id"]]["name"] == "Seed article recipe (full MNIST)"
    assert "no config.json" in by_id["broken-run"]["problems"]
    text = cli("list", runs_dir=runs).stdout
    assert payload["run_id"] in text and "broken-run" in text


def test_list_prints_whole_epochs_percentages_and_damaged_evaluations(tmp_path):
    runs = tmp_path / "runs"
    for run_id in ("good-run", "bad-metrics", "bad-predictions"):
        shutil.copytree(SHIPPED, runs / run_id)
    (runs / "bad-metrics" / "evaluation.json").write_text('{"accuracy": 0.98')  # cut short
    (runs / "bad-predictions" / "test_predictions.npz").write_bytes(b"not an archive")
    (runs / "no-config").mkdir()  # a row without epochs: pandas turned the column into floats (5.0)
    rows = {row["run_id"]: row for row in json.loads(cli("list", "--json", runs_dir=runs).stdout)}
    assert rows["good-run"]["problems"] is None
    assert "evaluation.json is damaged" in rows["bad-metrics"]["problems"]
    assert "test_predictions.npz is damaged (not an .npz archive)" in rows["bad-predictions"]["problems"]
    lines = {line.split()[0]: line for line in cli("list", runs_dir=runs).stdout.splitlines()[1:]}
    accuracy = json.loads((SHIPPED / "status.json").read_text())["test_accuracy"]
    assert " 5 " in lines["good-run"] and " 5.0 " not in lines["good-run"]
    assert f"{accuracy:.2%}" in lines["good-run"]


def test_evaluate_prints_accuracy_and_per_class_table(trained):
    runs, payload = trained
    data = json.loads(cli("evaluate", payload["run_id"], "--json", runs_dir=runs).stdout)
    assert data["metrics"]["accuracy"] == pytest.approx(payload["test_metrics"]["accuracy"])
    classes = [row["class"] for row in data["per_class"]]
    assert classes[:10] == [str(i) for i in range(10)] and "macro avg" in classes
    text = cli("evaluate", payload["run_id"], runs_dir=runs).stdout
    assert "precision" in text and "recall" in text and f"{payload['test_metrics']['accuracy']:.4f}" in text


def test_audit_ranks_the_test_set_with_cleanlab(trained):
    """Issue 18: the ranking is cleanlab's label quality score of the stored (epoch-averaged) test probabilities."""
    from core.label_audit import audit_of_run
    from core.store import RunStore

    runs, payload = trained
    data = json.loads(cli("audit", payload["run_id"], "--top", "5", "--epochs", "1", "--json", runs_dir=runs).stdout)
    expected = audit_of_run(RunStore(runs), payload["run_id"], epochs=1)
    assert [row["index"] for row in data["suspects"]] == expected.table["index"].head(5).tolist()
    assert data["estimated_errors"] == expected.estimated_errors and data["epochs_used"] == 1
    _, probs, labels = RunStore(runs).read_evaluation(payload["run_id"])
    for row in data["suspects"]:  # each row agrees with the stored predictions
        assert labels[row["index"]] == int(row["given_label"])
        assert probs[row["index"]].argmax() == int(row["suggested_label"])
        assert row["score"] == pytest.approx(probs[row["index"], labels[row["index"]]], abs=1e-3)
    assert np.asarray(data["noise_matrix"]["counts"]).sum() == len(labels)
    flagged = json.loads(cli("audit", payload["run_id"], "--epochs", "1", "--flagged", "--json", runs_dir=runs).stdout)
    assert flagged["suspects"] and all(row["flagged"] for row in flagged["suspects"])


def test_predict_test_index_and_image_file(trained, tmp_path):
    runs, payload = trained
    by_index = json.loads(cli("predict", payload["run_id"], "0", "--json", runs_dir=runs).stdout)
    assert by_index["label"] == 7 and by_index["predicted"] == 7  # the first MNIST test image is a 7
    assert abs(sum(by_index["probabilities"].values()) - 1) < 1e-3
    assert by_index["predicted"] == int(np.argmax(list(by_index["probabilities"].values())))
    picture = Image.new("L", (120, 120), 255)
    ImageDraw.Draw(picture).line([(30, 20), (90, 20), (50, 105)], fill=0, width=10)
    path = tmp_path / "seven.png"
    picture.save(path)
    text = cli("predict", payload["run_id"], str(path), runs_dir=runs).stdout
    assert f"{path}: predicted 7" in text


def test_summary_matches_the_article_layers(trained):
    runs, payload = trained
    data = json.loads(cli("summary", payload["run_id"], "--json", runs_dir=runs).stdout)
    assert data["parameters"] == 61706
    assert [row["name"] for row in data["layers"]][:4] == ["c1_conv", "s2_pool", "c3_conv", "s4_pool"]


@pytest.mark.parametrize("args,expected", [
    (["train", "--learning-rate", "20"], "learning_rate=20.0 is out of range"),
    (["train", "--batch-size", "abc"], "'abc' is not an integer"),
    (["train", "--optimizer", "adagrad"], "invalid choice: 'adagrad'"),
    (["train", "--data", "/nonexistent/mnist.npz", "--epochs", "1"], "/nonexistent/mnist.npz"),
    (["evaluate", "../../etc"], "is not valid"),
    (["evaluate", "no-such-run"], "not found"),
    (["predict", "no-such-run", "3"], "not found"),
    (["audit", "no-such-run", "--top", "0"], "0 must be at least 1"),
    (["audit", "no-such-run", "--split", "validation"], "invalid choice: 'validation'"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_non_zero_with_one_line_and_no_traceback(tmp_path, args, expected):
    result = cli(*args, runs_dir=tmp_path, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:")


@pytest.mark.parametrize("args,expected", [
    (["audit-train", "{run}", "--folds", "11"], "folds=11 is not allowed; choose a whole number from 2 to 10"),
    (["audit-train", "{run}", "--folds", "1"], "folds=1 is not allowed; choose a whole number from 2 to 10"),
    (["predict", "{run}", "10000"], "test index 10000 is out of range; allowed: 0 to 9999"),
    (["predict", "{run}", "/nonexistent/seven.png"],
     "/nonexistent/seven.png: no such image file (give a test index or the path of a picture)"),
])
def test_bad_values_are_refused_before_tensorflow_loads(trained, args, expected):
    # The message is then the only line: TensorFlow prints its own log lines to stderr when it loads, whatever
    # TF_CPP_MIN_LOG_LEVEL says, and the model took seconds to load before the value was looked at.
    runs, payload = trained
    code = ("import sys; from core.cli import main; code = main(sys.argv[1:]); "
            "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'tensorflow not loaded'); sys.exit(code)")
    argv = [a.format(run=payload["run_id"]) for a in args]
    result = subprocess.run([sys.executable, "-c", code, *argv, "--runs-dir", str(runs)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout.strip() == "tensorflow not loaded"
    assert result.stderr.strip() == f"error: {expected}"


def test_predict_bad_index_and_bad_image(trained, tmp_path):
    runs, payload = trained
    result = cli("predict", payload["run_id"], "10000", runs_dir=runs, check=False)
    assert result.returncode == 2 and "out of range; allowed: 0 to 9999" in result.stderr
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    result = cli("predict", payload["run_id"], str(junk), runs_dir=runs, check=False)
    assert result.returncode == 2 and "junk.png" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_stops_a_terminal_run_gracefully(tmp_path):
    import signal
    import time

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--data-source", "sample", "--train-subset", "15000",
         "--epochs", "20", "--json", "--runs-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    metrics = None
    while time.monotonic() < deadline and process.poll() is None:
        found = list(tmp_path.glob("*/metrics.jsonl"))
        if found and found[0].read_text().count('"batch"') >= 1:
            metrics = found[0]
            break
        time.sleep(0.2)
    assert metrics is not None, "training never streamed a batch"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-1000:]
    payload = json.loads(stdout)
    assert payload["status"] == "stopped" and payload["test_metrics"]["n"] == 10000
    assert "Traceback" not in stderr
    assert json.loads((metrics.parent / "status.json").read_text())["status"] == "stopped"
