"""Issue 17's views in AppTest: the Why page's four tabs, Predict's epoch picker and drawing, Evaluate's ECE, checked
against core run directly; runs without per-epoch weights and damaged snapshots get a message."""

import base64
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tsne_children
from dashboard_apptest import chart, texts
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import attribution, calibration, layer_health
from core.data import load_test_set
from core.epoch_model import model_at_epoch
from core.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
SHIPPED = ROOT / "cached_models" / "seed-article-full-mnist"
SELECTED_RUN = "common_selected_run"


@pytest.fixture
def store(audit_trained_runs, lenet_runs, offline_sources):
    root, run_ids = audit_trained_runs
    for run_id in run_ids.values():
        shutil.copytree(root / run_id, lenet_runs / run_id)
    return lenet_runs, run_ids


@pytest.fixture(scope="module")
def test_set():
    x, y, _, _ = load_test_set("mnist", "sample")
    return x, y


def open_page(page: str, run_id: str, **state) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    at.session_state[SELECTED_RUN] = run_id
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def image_captions(at: AppTest) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_why_attribution_at_each_epoch_for_any_class(store, test_set):
    root, run_ids = store
    run_id = run_ids["two_epochs"]
    at = open_page("why", run_id, why_index="5")
    slider = at.select_slider(key="why_attr_epoch")
    assert slider.options == ["epoch 1", "epoch 2", "saved model"] and slider.value == 0
    assert image_captions(at)[-1].startswith("Gradient saliency, class ") and image_captions(at)[-1].endswith(
        ", the saved model")
    slider.set_value(1)
    at.selectbox(key="why_attr_method").set_value("occlusion")
    at.selectbox(key="why_attr_class").set_value(3)
    rerun(at)
    assert "Why 3" in texts(at.markdown) and "after epoch 1" in texts(at.markdown)
    assert at.select_slider(key="why_attr_patch").value == 4
    model = model_at_epoch(RunStore(root), run_id, 1)
    expected = attribution.crop(attribution.occlusion(model, test_set[0][5], 3, 4))
    from dashboard import explain_loaders

    shown = explain_loaders._attribution(str(root), run_id, 1, (), test_set[0][5], 3, "occlusion", 4, model)
    np.testing.assert_allclose(shown, expected, atol=1e-6)


def test_why_representation_map_marks_the_errors_of_the_epoch(store):
    root, run_ids = store
    run_id = run_ids["two_epochs"]
    at = open_page("why", run_id, why_view="Representation map", why_map_epoch=1)
    spec = chart(at, "why_map_chart")
    probs = RunStore(root).read_epoch_snapshot(run_id, 1).probs
    labels = load_test_set("mnist", "sample")[1]
    wrong = int((probs.argmax(axis=1) != labels).sum())
    assert len(spec["data"]) == 11 and sum(len(t["x"]) for t in spec["data"][:10]) == len(labels)
    assert spec["data"][10]["name"] == f"misclassified ({wrong:,})"
    assert "PCA, after epoch 1" in spec["layout"]["title"]["text"]


def test_why_tsne_is_queued_and_shown_once_stored(store, monkeypatch):
    root, run_ids = store
    run_id = run_ids["two_epochs"]
    at = open_page("why", run_id, why_view="Representation map", why_map_method="t-SNE")
    assert at.button(key="why_tsne_start").label == "Compute the t-SNE map"
    assert "computed once per run and epoch" in texts(at.caption)
    RunStore(root).save_projection(run_id, 0, "tsne", np.zeros((10_000, 2), np.float32))  # as the task stores it
    rerun(at)
    assert "t-SNE, the saved model" in chart(at, "why_map_chart")["layout"]["title"]["text"]


def test_why_tsne_stops_when_asked_and_says_so(store, monkeypatch):
    import time

    from core.tasks import run_task
    from dashboard import common
    from dashboard.worker import JobManager

    root, run_ids = store
    run_id = run_ids["two_epochs"]  # the real task in a thread of this process, its t-SNE in a child process
    jobs = JobManager(RunStore(root), train_fn=lambda *args: None,
                      task_fn=lambda kind, args, task_store, task_id, stop: run_task(kind, task_store, args, stop))
    monkeypatch.setattr(common, "job_manager", lambda: jobs)
    at = open_page("why", run_id, why_view="Representation map", why_map_method="t-SNE")
    at.button(key="why_tsne_start").click()
    rerun(at)
    deadline = time.monotonic() + 120
    while not tsne_children() and time.monotonic() < deadline:  # the features are computed, the t-SNE runs
        time.sleep(0.05)
    assert tsne_children()
    rerun(at)
    assert "Computing the t-SNE map in the training process" in texts(at.info)
    at.button(key="why_tsne_stop").click()
    rerun(at)
    stopped = time.monotonic()
    job = jobs.get(f"tsne-{run_id}-0")
    while job.state != "done" and time.monotonic() - stopped < 10:
        time.sleep(0.05)
    assert job.state == "done" and job.status == "stopped" and time.monotonic() - stopped < 5
    assert not tsne_children() and RunStore(root).read_projection(run_id, 0, "tsne") is None
    rerun(at)
    assert "The t-SNE map was stopped before it was finished; nothing was stored." in texts(at.warning)
    assert at.button(key="why_tsne_start").label == "Compute the t-SNE map"  # it can be started again


def test_why_calibration_for_one_run_and_overlaid_for_two(store):
    root, run_ids = store
    at = open_page("why", run_ids["two_epochs"], why_view="Calibration")
    _, probs, labels = RunStore(root).read_evaluation(run_ids["two_epochs"])
    expected = calibration.calibration(labels, probs)
    spec = chart(at, "why_reliability")
    assert spec["data"][1]["name"].endswith(f"saved model (ECE {expected.ece:.2%})")
    np.testing.assert_allclose(spec["data"][1]["y"], expected.accuracy, atol=1e-6)
    at.selectbox(key="why_calibration_other").set_value(run_ids["lecun1998"])
    rerun(at)
    spec = chart(at, "why_reliability")
    assert len(spec["data"]) == 3 and spec["data"][2]["name"].startswith("audit lecun1998, saved model")
    assert len(chart(at, "why_confidence")["data"]) == 2


def test_why_layer_health(store, test_set):
    root, run_ids = store
    run_id = run_ids["two_epochs"]
    at = open_page("why", run_id, why_view="Layer health", why_health_layer="c3_conv")
    spec = chart(at, "why_weights")
    assert spec["data"][0]["y"] == ["1", "2"]
    weights = [RunStore(root).read_epoch_snapshot(run_id, e).weights for e in (1, 2)]
    counts = spec["data"][0]["customdata"]
    counts = np.frombuffer(base64.b64decode(counts["bdata"]), np.dtype(counts["dtype"]))
    assert counts.sum() == 2 * weights[0][2].size  # c3's kernel, after both epochs
    updates = chart(at, "why_updates")
    assert [t["name"] for t in updates["data"]] == ["c1_conv", "c3_conv", "c5_dense", "f6_dense", "output"]
    dead = chart(at, "why_dead")
    model = model_at_epoch(RunStore(root), run_id, 2)
    share = layer_health.dead_relus(model, test_set[0])["f6_dense"]
    f6 = next(t for t in dead["data"] if t["name"] == "f6_dense")
    assert f6["y"][-1] == pytest.approx(share)
    at = open_page("why", run_ids["lecun1998"], why_view="Layer health")
    assert "no ReLU layers" in texts(at.caption)


def test_a_run_without_weights_and_a_damaged_snapshot_get_messages(store, lenet_runs):
    _, run_ids = store
    if (SHIPPED / "model.keras").is_file():
        shutil.copytree(SHIPPED, lenet_runs / SHIPPED.name)
        at = open_page("why", SHIPPED.name)
        assert "kept no weights per epoch" in texts(at.caption)
        assert not at.get("select_slider")  # only the saved model to show
        assert image_captions(at)[-1].endswith(", the saved model")
        at.session_state["why_view"] = "Layer health"
        assert "needs the weights of each epoch" in texts(rerun(at).info)
    run_id = run_ids["two_epochs"]
    (lenet_runs / run_id / "epochs" / "epoch_0001.npz").write_bytes(b"damaged")
    at = open_page("why", run_id)
    assert "1 saved epoch(s) hold no readable weights" in texts(at.caption)
    assert at.select_slider(key="why_attr_epoch").options == ["epoch 2", "saved model"]
    at.session_state["why_view"] = "Calibration"
    assert "epoch 1 snapshot is damaged" in texts(rerun(at).warning)
    assert chart(at, "why_reliability")


def _drawing(image: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return {"png": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(), "strokes": [[[1, 1]]]}


def test_predict_a_drawing_at_an_epoch_and_bad_drawings(store, test_set):
    from core import digits

    root, run_ids = store
    run_id = run_ids["two_epochs"]
    digit = np.kron(np.round(test_set[0][0, 2:30, 2:30, 0] * 255).astype(np.uint8), np.ones((10, 10), np.uint8))
    at = open_page("predict", run_id, predict_source="A drawing", predict_epoch=1,
                   predict_canvas={"drawing": _drawing(digit)})
    _, x32 = digits.preprocess_digit(base64.b64decode(_drawing(digit)["png"].split(",")[1]))
    probs = model_at_epoch(RunStore(root), run_id, 1).predict(x32[None], verbose=0)[0]
    assert [m.value for m in at.metric if m.label == "Prediction for your drawing"] == [str(int(probs.argmax()))]
    np.testing.assert_allclose(chart(at, "predict_probs")["data"][0]["y"], probs, atol=1e-5)
    assert "(after epoch 1)" in texts(at.markdown)
    at.session_state["predict_canvas"] = {"drawing": _drawing(np.zeros((280, 280), np.uint8))}
    assert texts(rerun(at).warning) == "The drawing is blank: draw a digit on the black square."
    assert not [m for m in at.metric if m.label.startswith("Prediction")]
    noise = (np.random.default_rng(0).random((280, 280)) > 0.7).astype(np.uint8) * 255
    at.session_state["predict_canvas"] = {"drawing": _drawing(noise)}
    assert "looks like noise, not one digit" in texts(rerun(at).warning)
    assert [m for m in at.metric if m.label == "Prediction for your drawing"]  # the rest of the page still works


def test_evaluate_headline_shows_the_ece(store):
    root, run_ids = store
    at = open_page("evaluate", run_ids["two_epochs"])
    _, probs, labels = RunStore(root).read_evaluation(run_ids["two_epochs"])
    expected = calibration.calibration(labels, probs)
    assert [m.value for m in at.metric if m.label == "Calibration error (ECE)"] == [f"{expected.ece:.2%}"]


def test_predict_follows_the_newest_epoch_of_a_run_training_now(store):
    from core.records import EpochSnapshot

    root, run_ids = store
    source = RunStore(root)
    old = [source.read_epoch_snapshot(run_ids["two_epochs"], e) for e in (1, 2)]
    run_id = source.create_run(source.read_config(run_ids["two_epochs"]), name="live run", status="running")
    for epoch, snapshot in zip((1, 2), old):
        source.save_epoch_snapshot(run_id, EpochSnapshot(epoch, snapshot.probs, snapshot.c1_kernels,
                                                         weights=snapshot.weights))
    at = open_page("predict", run_id, predict_index="0")
    assert "Run **live run** · running" in texts(at.caption)
    assert at.select_slider(key="predict_epoch").value == 2 and "(after epoch 2)" in texts(at.markdown)
    source.save_epoch_snapshot(run_id, EpochSnapshot(3, old[1].probs, old[1].c1_kernels, weights=old[0].weights))
    rerun(at)
    assert at.select_slider(key="predict_epoch").value == 3  # it followed the new epoch
    assert at.select_slider(key="predict_epoch").options == ["epoch 1", "epoch 2", "epoch 3"]  # no saved model yet
    at.select_slider(key="predict_epoch").set_value(1)
    rerun(at)
    source.save_epoch_snapshot(run_id, EpochSnapshot(4, old[1].probs, old[1].c1_kernels, weights=old[1].weights))
    rerun(at)
    assert at.select_slider(key="predict_epoch").value == 1 and "(after epoch 1)" in texts(at.markdown)


def test_inside_feature_maps_and_attribution_at_an_epoch(store, test_set):
    from core import analysis

    root, run_ids = store
    run_id = run_ids["two_epochs"]
    at = open_page("inside", run_id, inside_index="4", inside_maps_epoch=1, inside_interactive=True)
    expected = analysis.feature_maps(model_at_epoch(RunStore(root), run_id, 1), test_set[0][4])
    np.testing.assert_allclose(chart(at, "inside_output")["data"][0]["y"], expected["output"], atol=1e-5)
    assert "after epoch 1" in texts(at.markdown)
    assert image_captions(at)[-1].endswith(", after epoch 1")  # the attribution map follows the same slider
