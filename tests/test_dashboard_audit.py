"""The audit pages in AppTest: what Evaluate, Error gallery, Inside the model and Predict show, checked
against core.analysis run directly on the model and the test set."""

import base64
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import analysis, digits
from core.data import load_test_set
from core.model import C3_TABLE, c1_kernels, summary_rows
from core.records import EpochSnapshot
from core.store import RunStore
from dashboard.figures_network import map_gap

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
SHIPPED = ROOT / "cached_models" / "seed-article-full-mnist"
TIMEOUT = 180  # seconds for one script run; the first one imports TensorFlow on a busy CPU
NAMES = [str(i) for i in range(10)]
PAGES = ("evaluate", "gallery", "inside", "predict")
SELECTED_RUN = "common_selected_run"


@dataclass
class Truth:
    """One run's model and what core.analysis says about it, computed without the dashboard."""

    run_id: str
    model: object
    probs: np.ndarray
    labels: np.ndarray
    epochs: list
    snapshots: dict  # epoch -> (probs, c1 kernels)

    @property
    def pred(self):
        return self.probs.argmax(axis=1)

    @property
    def cm(self):
        return analysis.confusion(self.labels, self.pred, 10)


@pytest.fixture(scope="module")
def test_set():
    x_test, y_test, _, _ = load_test_set("mnist", "sample")
    return x_test, y_test


def _truth(root: Path, run_id: str, test_set) -> Truth:
    store = RunStore(root)
    x_test, y_test = test_set
    model = store.load_model(run_id)
    epochs = store.epochs_saved(run_id)
    return Truth(run_id, model, analysis.predict_probs(model, x_test), y_test, epochs,
                 {e: snapshot_arrays(store.read_epoch_snapshot(run_id, e)) for e in epochs})


def snapshot_arrays(snapshot) -> tuple:
    return snapshot.probs, snapshot.c1_kernels


@pytest.fixture(scope="module")
def truths(audit_trained_runs, tiny_trained_run, test_set):
    root, run_ids = audit_trained_runs
    tiny_root, tiny_id = tiny_trained_run
    found = {key: _truth(root, run_id, test_set) for key, run_id in run_ids.items()}
    found["one_epoch"] = _truth(tiny_root, tiny_id, test_set)
    return found


@pytest.fixture
def store(audit_trained_runs, tiny_trained_run, lenet_runs, offline_sources):
    """A fresh copy of the three finished runs in this test's own store (LENET_RUNS points at it)."""
    for root, run_id in [(audit_trained_runs[0], r) for r in audit_trained_runs[1].values()] + [tiny_trained_run]:
        shutil.copytree(root / run_id, lenet_runs / run_id)
    return lenet_runs


def open_page(page: str, run_id: str | None = None, **state) -> AppTest:
    """Run the app once (it opens on Train), then switch to an audit page with `state` preset."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    if run_id:
        at.session_state[SELECTED_RUN] = run_id
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


# ----- reading what the page shows --------------------------------------------------------------------


def _plain(value):
    """Plotly writes numpy arrays into the figure JSON as base64 typed arrays; turn them back into arrays."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return array.reshape([int(n) for n in str(shape).split(",")]) if shape else array
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def figure(at: AppTest, key: str) -> dict:
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(f"-{key}"):
            return _plain(json.loads(element.proto.spec))
    raise AssertionError(f"no chart with key {key!r}; charts: {[e.proto.id for e in at.get('plotly_chart')]}")


def has_figure(at: AppTest, key: str) -> bool:
    return any(element.proto.id.endswith(f"-{key}") for element in at.get("plotly_chart"))


def z(at: AppTest, key: str, trace: int = 0) -> np.ndarray:
    return np.asarray(figure(at, key)["data"][trace]["z"], dtype=float)


def tile(values: np.ndarray, i: int, shape: tuple, columns: int, gap: int = 1) -> np.ndarray:
    row, column = divmod(i, columns)
    h, w = shape
    return values[row * (h + gap): row * (h + gap) + h, column * (w + gap): column * (w + gap) + w]


def block(at: AppTest, key: str):
    def walk(node):
        if getattr(node, "key", None) == key:
            return node
        for child in getattr(node, "children", {}).values():
            found = walk(child)
            if found is not None:
                return found
        return None

    found = walk(at.main)
    assert found is not None, f"no block with key {key!r}"
    return found


def elements(node, kind: str) -> list:
    found = [node] if getattr(node, "type", None) == kind else []
    for child in getattr(node, "children", {}).values():
        found.extend(elements(child, kind))
    return found


def image_captions(node) -> list[str]:
    return [img.caption for image in elements(node, "image") for img in image.proto.imgs]


def text_of(node) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption") for e in elements(node, kind))


def metric(at: AppTest, label: str):
    for m in at.metric:
        if m.label == label:
            return m
    raise AssertionError(f"no metric {label!r}; metrics: {[m.label for m in at.metric]}")


def tile_buttons(at: AppTest) -> list:
    return [b for b in at.button if (b.key or "").startswith("gallery_tile_")]


def files_in(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


# ----- Evaluate -------------------------------------------------------------------------------------


def test_evaluate_headline_matches_analysis(store, truths):
    truth = truths["two_epochs"]
    at = open_page("evaluate", truth.run_id)
    expected = analysis.summary_metrics(truth.labels, truth.probs)
    assert metric(at, "Test accuracy").value == f"{expected['accuracy']:.2%}"
    assert metric(at, "Test accuracy").delta == f"{(expected['accuracy'] - 0.9926) * 100:+.2f} pp"
    assert metric(at, "Test error rate").value == f"{1 - expected['accuracy']:.2%}"
    assert metric(at, "Test error rate").delta == f"{(1 - expected['accuracy'] - 0.0095) * 100:+.2f} pp"
    assert metric(at, "Errors").value == f"{expected['error_count']:,} of 10,000"
    assert metric(at, "Errors").delta == f"{expected['error_count'] - 95:+,}"
    for average in ("macro", "weighted"):
        for name in ("precision", "recall", "F1"):
            shown = metric(at, f"{average.capitalize()} {name}").value
            assert shown == f"{expected[f'{average}_{name.lower()}']:.4f}"


def test_audit_pages_use_the_shared_run_selector(store, truths):
    truth = truths["one_epoch"]
    at = open_page("evaluate")
    selector = at.sidebar.selectbox(key="common_run_widget")
    assert len(selector.options) == 3  # the three finished runs of this store
    selector.set_value(truth.run_id)
    rerun(at)
    assert metric(at, "Test accuracy").value == f"{np.mean(truth.pred == truth.labels):.2%}"
    at.switch_page("views/gallery.py")
    rerun(at)
    errors = int(np.sum(truth.pred != truth.labels))
    assert f"**{errors:,} misclassified test images**" in [m.value for m in at.markdown]


def test_run_selector_reaches_each_of_two_runs_with_the_same_name(store, truths):
    # A preset trained twice under one name gives two runs whose labels would read the same; Streamlit's
    # selectbox tells options apart by label, so the second one could not be chosen.
    first = truths["one_epoch"].run_id
    twin = "20261128-211046-twin-of-the-tiny-run-181f"
    shutil.copytree(store / first, store / twin)
    RunStore(store).write_status(twin, test_accuracy=RunStore(store).read_status(first).test_accuracy)
    at = open_page("evaluate", run_id=first)
    selector = at.sidebar.selectbox(key="common_run_widget")
    assert len(set(selector.options)) == len(selector.options) == 4
    assert sum(twin in label for label in selector.options) == 1
    selector.set_value(twin)
    rerun(at)
    assert at.session_state[SELECTED_RUN] == twin and at.sidebar.selectbox(key="common_run_widget").value == twin
    selector = at.sidebar.selectbox(key="common_run_widget")
    selector.set_value(first)
    rerun(at)
    assert at.session_state[SELECTED_RUN] == first


def test_evaluate_confusion_matrix_counts_and_normalised(store, truths):
    truth = truths["two_epochs"]
    at = open_page("evaluate", truth.run_id)
    np.testing.assert_array_equal(z(at, "evaluate_confusion_chart"), truth.cm)
    at.toggle(key="evaluate_normalize").set_value(True)
    rerun(at)
    expected = analysis.confusion(truth.labels, truth.pred, 10, normalize=True)
    np.testing.assert_allclose(z(at, "evaluate_confusion_chart"), expected, rtol=1e-6)


def test_evaluate_cell_shows_exactly_its_images(store, truths):
    truth = truths["two_epochs"]
    errors = np.where(np.eye(10, dtype=bool), -1, truth.cm)
    true_class, pred_class = np.unravel_index(np.argmax(errors), errors.shape)
    at = open_page("evaluate", truth.run_id, evaluate_cell=(int(true_class), int(pred_class)))
    cell = block(at, "evaluate_cell_gallery")
    count = truth.cm[true_class, pred_class]
    assert f"True {true_class}, predicted {pred_class}: {count:,} misclassified images" in text_of(cell)
    expected = analysis.misclassified(truth.labels, truth.probs, "confidence", true_class, pred_class)
    shown = [int(caption.split(" ")[0][1:]) for caption in image_captions(cell)]
    assert shown == expected["index"].tolist()[:40]
    # The selected cell is outlined in the matrix.
    (outline,) = [s for s in figure(at, "evaluate_confusion_chart")["layout"]["shapes"] if s.get("name") != "diagonal"]
    assert (outline["x0"] + 0.5, outline["y0"] + 0.5) == (pred_class, true_class)


def test_evaluate_diagonal_cell_pages_through_the_correct_images(store, truths):
    truth = truths["two_epochs"]
    at = open_page("evaluate", truth.run_id, evaluate_cell=(1, 1))
    count = truth.cm[1, 1]
    cell = block(at, "evaluate_cell_gallery")
    assert f"True 1, predicted 1: {count:,} correct images" in text_of(cell)
    assert len(image_captions(cell)) == 40
    (pages,) = at.get("pagination")
    assert pages.num_pages == int(np.ceil(count / 40))
    pages.set_value(2)
    rerun(at)
    right = np.flatnonzero((truth.labels == 1) & (truth.pred == 1))
    order = right[np.lexsort((right, truth.probs[right, 1]))]  # least confident first, ties by index
    shown = [int(c.split(" ")[0][1:]) for c in image_captions(block(at, "evaluate_cell_gallery"))]
    assert shown == order[40:80].tolist()


def test_evaluate_confused_pair_button_opens_its_cell(store, truths):
    truth = truths["two_epochs"]
    at = open_page("evaluate", truth.run_id)
    pairs = analysis.most_confused_pairs(truth.cm, NAMES, top=8)
    first = pairs.iloc[0]
    at.button(key=f"evaluate_pair_{first['true']}_{first['pred']}").click()
    rerun(at)
    assert at.session_state["evaluate_cell"] == (int(first["true"]), int(first["pred"]))
    assert (f"True {first['true']}, predicted {first['pred']}: {first['count']:,} misclassified images"
            in text_of(block(at, "evaluate_cell_gallery")))


def test_evaluate_cell_opens_the_gallery_with_its_filters(store, truths):
    truth = truths["two_epochs"]
    errors = np.where(np.eye(10, dtype=bool), -1, truth.cm)
    true_class, pred_class = (int(v) for v in np.unravel_index(np.argmax(errors), errors.shape))
    at = open_page("evaluate", truth.run_id, evaluate_cell=(true_class, pred_class))
    at.button(key="evaluate_to_gallery").click()
    rerun(at)
    assert at.title[0].value == "Error gallery"
    count = truth.cm[true_class, pred_class]
    assert (f"**{count:,} misclassified test images** (true class {true_class}, predicted as {pred_class})"
            in [m.value for m in at.markdown])
    expected = analysis.misclassified(truth.labels, truth.probs, "confidence", true_class, pred_class)
    assert [b.key for b in tile_buttons(at)] == [f"gallery_tile_{i}" for i in expected["index"][:40]]


def test_evaluate_draws_only_the_open_tab(store, truths):
    truth = truths["two_epochs"]
    at = open_page("evaluate", truth.run_id)
    report = analysis.class_report(truth.labels, truth.pred, NAMES)
    shown = at.table[0].value
    for column in ("precision", "recall", "f1", "support"):
        np.testing.assert_allclose(shown[column].to_numpy(dtype=float), report[column].to_numpy(dtype=float))
    assert not has_figure(at, "evaluate_epoch_confusion") and not at.select_slider


def test_evaluate_epoch_scrubber(store, truths):
    truth = truths["two_epochs"]
    assert truth.epochs == [1, 2]
    at = open_page("evaluate", truth.run_id, evaluate_view="Epoch by epoch")
    first, second = (truth.snapshots[e][0] for e in (1, 2))
    accuracy = [float(np.mean(p.argmax(axis=1) == truth.labels)) for p in (first, second)]
    shown = metric(at, "Test accuracy after epoch 2")
    assert shown.value == f"{accuracy[1]:.2%}"
    assert shown.delta == f"{(accuracy[1] - accuracy[0]) * 100:+.2f} pp"
    changes = analysis.epoch_changes(truth.labels, first, second)
    markdown = [m.value for m in at.markdown]
    assert f"**Fixed: {len(changes['fixed']):,}** test images were wrong after epoch 1, right after epoch 2" in markdown
    assert f"**Broken: {len(changes['broken']):,}** test images were right after epoch 1, wrong after epoch 2" in markdown
    np.testing.assert_array_equal(z(at, "evaluate_epoch_confusion"),
                                  analysis.confusion(truth.labels, second.argmax(axis=1), 10))
    at.select_slider(key="evaluate_epoch").set_value(1)
    rerun(at)
    assert metric(at, "Test accuracy after epoch 1").value == f"{accuracy[0]:.2%}"
    np.testing.assert_array_equal(z(at, "evaluate_epoch_confusion"),
                                  analysis.confusion(truth.labels, first.argmax(axis=1), 10))
    assert "The first saved epoch has no previous epoch to compare with." in [c.value for c in at.caption]


def test_evaluate_run_with_one_epoch(store, truths):
    truth = truths["one_epoch"]
    at = open_page("evaluate", truth.run_id, evaluate_view="Epoch by epoch")
    assert metric(at, "Test accuracy").value == f"{np.mean(truth.pred == truth.labels):.2%}"
    assert not at.select_slider
    captions = [c.value for c in at.caption]
    assert "Only epoch 1 was saved, so there is nothing to scrub through yet." in captions
    assert not metric(at, "Test accuracy after epoch 1").delta


# ----- Error gallery --------------------------------------------------------------------------------


def test_gallery_counts_the_errors_and_pages_them(store, truths):
    truth = truths["two_epochs"]
    at = open_page("gallery", truth.run_id)
    expected = analysis.misclassified(truth.labels, truth.probs, "confidence")
    assert len(expected) > 80, "the test needs at least three pages of errors"
    assert f"**{len(expected):,} misclassified test images**" in [m.value for m in at.markdown]
    assert [b.key for b in tile_buttons(at)] == [f"gallery_tile_{i}" for i in expected["index"][:40]]
    first = next(expected.itertuples())
    assert tile_buttons(at)[0].label == f"#{first.index} · {first.true}→{first.pred} · {first.confidence:.0%}"
    (pages,) = at.get("pagination")
    assert pages.num_pages == int(np.ceil(len(expected) / 40))
    pages.set_value(3)
    rerun(at)
    assert [b.key for b in tile_buttons(at)] == [f"gallery_tile_{i}" for i in expected["index"][80:120]]


def test_gallery_filters_and_sorting(store, truths):
    truth = truths["two_epochs"]
    at = open_page("gallery", truth.run_id)
    true_class = int(np.bincount(truth.labels[truth.pred != truth.labels]).argmax())
    at.selectbox(key="gallery_true").set_value(true_class)
    at.radio(key="gallery_sort").set_value("loss")
    rerun(at)
    expected = analysis.misclassified(truth.labels, truth.probs, "loss", true_class=true_class)
    assert (f"**{len(expected):,} misclassified test images** (true class {true_class})"
            in [m.value for m in at.markdown])
    assert [b.key for b in tile_buttons(at)] == [f"gallery_tile_{i}" for i in expected["index"][:40]]
    pred_class = int(expected["pred"].iloc[0])
    at.selectbox(key="gallery_pred").set_value(pred_class)
    rerun(at)
    both = analysis.misclassified(truth.labels, truth.probs, "loss", true_class, pred_class)
    assert len(both) == truth.cm[true_class, pred_class]
    assert [b.key for b in tile_buttons(at)] == [f"gallery_tile_{i}" for i in both["index"][:40]]


def test_gallery_tile_opens_its_details(store, truths, test_set):
    truth = truths["two_epochs"]
    at = open_page("gallery", truth.run_id)
    index = int(analysis.misclassified(truth.labels, truth.probs)["index"].iloc[0])
    at.button(key=f"gallery_tile_{index}").click()
    rerun(at)
    details = block(at, "gallery_details")
    label, pred = int(truth.labels[index]), int(truth.pred[index])
    assert f"#### Test image #{index}: true {label}, predicted {pred} (wrong)" in text_of(details)
    np.testing.assert_allclose(figure(at, "gallery_probs")["data"][0]["y"], truth.probs[index], atol=1e-6)
    assert "C1 feature maps: what each of the six 5×5 filters makes of the image" in image_captions(details)
    history = analysis.correctness_history(truth.labels, [truth.snapshots[e][0] for e in truth.epochs], index)
    trace = figure(at, "gallery_history")["data"][0]
    assert list(trace["x"]) == truth.epochs
    assert list(trace["text"]) == [str(p) for p in history["pred"]]
    at.button(key="gallery_close").click()
    rerun(at)
    assert not has_figure(at, "gallery_probs")


def test_gallery_suspected_label_errors_of_a_weak_model(store, truths):
    truth = truths["two_epochs"]
    at = open_page("gallery", truth.run_id, gallery_view="Suspected label errors")
    at.slider(key="gallery_suspect_confidence").set_value(0.5)
    rerun(at)
    assert analysis.suspected_label_errors(truth.labels, truth.probs, 20, 0.5).empty
    assert [i.value for i in at.info] == [
        "No test image has a label that the model rejects with at least 50% confidence."]


def check_suspects(at: AppTest, labels: np.ndarray, probs: np.ndarray, min_confidence: float = 0.9) -> None:
    expected = analysis.suspected_label_errors(labels, probs, 20, min_confidence)
    assert len(expected) > 0
    for rank, row in enumerate(expected.itertuples(), 1):
        box = block(at, f"gallery_suspect_{row.index}")
        assert f"**{rank}. Labelled {row.given}, model says {row.pred}**" in text_of(box)
        assert image_captions(box) == [f"#{row.index}", f"mean {row.given}", f"typical {row.given}",
                                       f"mean {row.pred}", f"typical {row.pred}"]


# ----- Inside the model ------------------------------------------------------------------------------


def test_inside_summary_and_filters(store, truths):
    truth = truths["two_epochs"]
    at = open_page("inside", truth.run_id)
    table = at.table[0].value
    rows = summary_rows(truth.model)
    assert table.index.tolist() == [r["name"] for r in rows]
    assert table["Type"].tolist() == [r["type"] for r in rows]
    assert table["Output shape"].tolist() == [r["output_shape"] for r in rows]
    assert table["Parameters"].tolist() == [r["params"] for r in rows]
    assert metric(at, "Parameters").value == "61,706"
    assert "Total params: 61,706" in at.code[0].value
    kernels = c1_kernels(truth.model)
    shown = z(at, "inside_filters")
    for i in range(6):
        np.testing.assert_allclose(tile(shown, i, (5, 5), 6), kernels[i], rtol=1e-6)
    at.select_slider(key="inside_filter_epoch").set_value(1)
    rerun(at)
    shown = z(at, "inside_filters")
    for i in range(6):
        np.testing.assert_allclose(tile(shown, i, (5, 5), 6), truth.snapshots[1][1][i], rtol=1e-6)
    assert not has_figure(at, "inside_filters_animation")
    at.toggle(key="inside_animation").set_value(True)
    rerun(at)
    assert len(figure(at, "inside_filters_animation")["frames"]) == 2
    assert not has_figure(at, "inside_c3_table")


def test_inside_feature_maps_of_a_test_image(store, truths, test_set):
    truth = truths["two_epochs"]
    at = open_page("inside", truth.run_id, inside_index=12)
    assert [m.value for m in at.markdown if m.value.startswith("**C") or m.value.startswith("**S")] == [
        "**C1: 6 feature maps of 28×28**", "**S2: 6 maps of 14×14**", "**C3: 16 maps of 10×10**",
        "**S4: 16 maps of 5×5**"]
    at.toggle(key="inside_interactive").set_value(True)
    rerun(at)
    maps = analysis.feature_maps(truth.model, test_set[0][12])
    for layer, count, columns, size in (("c1_conv", 6, 6, 28), ("s2_pool", 6, 6, 14),
                                        ("c3_conv", 16, 8, 10), ("s4_pool", 16, 8, 5)):
        raw = np.asarray(figure(at, f"inside_map_{layer}")["data"][0]["customdata"], dtype=float)[..., 1]
        assert maps[layer].shape == (count, size, size)
        for i in range(count):
            np.testing.assert_allclose(tile(raw, i, (size, size), columns, map_gap(size)), maps[layer][i],
                                       rtol=1e-4, atol=1e-5)
    for layer, units in (("c5_dense", 120), ("f6_dense", 84)):
        bars = figure(at, f"inside_map_{layer}")["data"][0]["y"]
        assert len(bars) == units
        np.testing.assert_allclose(bars, maps[layer], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(figure(at, "inside_output")["data"][0]["y"], truth.probs[12], atol=1e-5)


def test_inside_opens_the_gallery_image(store, truths):
    truth = truths["two_epochs"]
    at = open_page("gallery", truth.run_id, gallery_open=77)
    at.button(key="gallery_to_inside").click()
    rerun(at)
    assert at.title[0].value == "Inside the model"
    assert at.radio(key="inside_source").value == "The image opened in the gallery"
    assert any(img.caption.startswith("test image #77,") for e in at.get("image") for img in e.proto.imgs)


def test_inside_lecun1998_shows_its_connection_table(store, truths):
    truth = truths["lecun1998"]
    at = open_page("inside", truth.run_id)
    np.testing.assert_array_equal(z(at, "inside_c3_table"), C3_TABLE.astype(int))
    assert metric(at, "Parameters").value == f"{truth.model.count_params():,}"


def test_live_run_follows_its_snapshots(store, truths):
    """A run still training: no model yet, so the pages use the newest epoch snapshot."""
    source = truths["two_epochs"]
    runs = RunStore(store)
    run_id = runs.create_run(RunStore(store).read_config(source.run_id), name="live run", status="running")
    runs.write_status(run_id, class_names=NAMES, dataset="mnist")
    probs, c1 = source.snapshots[1]
    runs.save_epoch_snapshot(run_id, EpochSnapshot(1, probs, c1))
    at = open_page("inside", run_id)
    assert "The model is saved when training ends" in at.info[0].value
    shown = z(at, "inside_filters")
    np.testing.assert_allclose(tile(shown, 0, (5, 5), 6), c1[0], rtol=1e-6)
    at = open_page("evaluate", run_id)
    assert metric(at, "Test accuracy").value == f"{np.mean(probs.argmax(axis=1) == source.labels):.2%}"
    assert "From the epoch 1 snapshot on the 10,000 test images." in [c.value for c in at.caption]


# ----- Predict --------------------------------------------------------------------------------------


def test_predict_a_test_image(store, truths):
    truth = truths["two_epochs"]
    at = open_page("predict", truth.run_id, predict_index=3)
    shown = metric(at, "Prediction for test image #3")
    assert shown.value == str(truth.pred[3])
    assert shown.delta == ("right" if truth.pred[3] == truth.labels[3] else f"wrong: the label is {truth.labels[3]}")
    np.testing.assert_allclose(figure(at, "predict_probs")["data"][0]["y"], truth.probs[3], atol=1e-5)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_predict_an_uploaded_picture(store, truths, test_set):
    truth = truths["two_epochs"]
    digit = np.round(test_set[0][0, 2:30, 2:30, 0] * 255).astype(np.uint8)
    upload = _png(np.kron(255 - digit, np.ones((5, 5), np.uint8)))  # dark ink on white paper, 140x140
    before = files_in(store)
    at = open_page("predict", truth.run_id, predict_source="An uploaded picture")
    at.file_uploader(key="predict_upload").set_value(("seven.png", upload, "image/png"))
    rerun(at)
    x28, x32 = digits.preprocess_digit(upload)
    probs = analysis.predict_probs(truth.model, x32[None])[0]
    shown = metric(at, "Prediction for upload seven.png")
    assert shown.value == str(int(np.argmax(probs)))
    np.testing.assert_allclose(figure(at, "predict_probs")["data"][0]["y"], probs, atol=1e-5)
    assert not at.error
    assert files_in(store) == before


@pytest.mark.parametrize("name, content", [
    ("notes.png", b"this is not a picture of a digit"),
    ("empty.png", b""),
    ("huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 2**20 + 1)),
], ids=["not-an-image", "empty", "too-large"])
def test_predict_rejects_a_bad_upload(store, truths, name, content):
    truth = truths["two_epochs"]
    with pytest.raises(digits.ImageError) as raised:
        digits.preprocess_digit(content)
    before = files_in(store)
    at = open_page("predict", truth.run_id, predict_source="An uploaded picture")
    at.file_uploader(key="predict_upload").set_value((name, content, "image/png"))
    rerun(at)
    assert [e.value for e in at.error] == [str(raised.value)]
    assert not any(m.label.startswith("Prediction") for m in at.metric)
    assert files_in(store) == before


# ----- an empty store and the shipped run ---------------------------------------------------------------


def test_empty_store(lenet_runs, offline_sources):
    at = open_page(PAGES[0])
    for page in PAGES:
        at.switch_page(f"views/{page}.py")
        rerun(at)
        assert [i.value for i in at.info] == [
            "No run to show yet. Train one on the Train page, or with `python -m core train`."], page
        assert not at.get("plotly_chart") and not at.get("image"), page


@pytest.fixture
def shipped(lenet_runs, offline_sources):
    if not (SHIPPED / "model.keras").is_file():
        pytest.skip(f"the shipped run {SHIPPED.name} is not in cached_models/")
    shutil.copytree(SHIPPED, lenet_runs / SHIPPED.name)
    return SHIPPED.name


def test_shipped_run_on_every_page(shipped, test_set):
    runs = RunStore(SHIPPED.parent)
    model = runs.load_model(shipped)
    x_test, y_test = test_set
    probs = analysis.predict_probs(model, x_test)
    accuracy = float(np.mean(probs.argmax(axis=1) == y_test))
    assert accuracy == pytest.approx(runs.read_status(shipped).test_accuracy)
    at = open_page("evaluate")
    assert metric(at, "Test accuracy").value == f"{accuracy:.2%}"
    np.testing.assert_array_equal(z(at, "evaluate_confusion_chart"), analysis.confusion(y_test, probs.argmax(axis=1)))
    at = open_page("gallery")
    errors = analysis.misclassified(y_test, probs)
    assert f"**{len(errors):,} misclassified test images**" in [m.value for m in at.markdown]
    at.session_state["gallery_view"] = "Suspected label errors"
    check_suspects(rerun(at), y_test, probs)
    first = int(analysis.suspected_label_errors(y_test, probs, 1)["index"].iloc[0])
    at.button(key=f"gallery_suspect_open_{first}").click()
    rerun(at)
    assert at.session_state["gallery_view"] == "Misclassified"
    assert f"#### Test image #{first}:" in text_of(block(at, "gallery_details"))
    at = open_page("inside")
    assert metric(at, "Parameters").value == "61,706"
    at = open_page("predict")
    assert metric(at, "Prediction for test image #0").value == str(int(probs[0].argmax()))


def test_a_damaged_snapshot_leaves_the_rest_of_evaluate_standing(store, truths):
    truth = truths["two_epochs"]
    (store / truth.run_id / "epochs" / "epoch_0001.npz").write_bytes(b"not a zip file")
    at = open_page("evaluate", truth.run_id, evaluate_view="Epoch by epoch")
    assert metric(at, "Test accuracy").value == f"{np.mean(truth.pred == truth.labels):.2%}"
    assert any("epoch 1 snapshot is damaged" in w.value for w in at.warning)
    # the epoch view leaves out the damaged epoch, not the whole history: epoch 2 is still shown
    accuracy = np.mean(truth.snapshots[2][0].argmax(axis=1) == truth.labels)
    assert metric(at, "Test accuracy after epoch 2").value == f"{accuracy:.2%}"
    assert any("Only epoch 2 can be read" in c.value for c in at.caption)
    assert has_figure(at, "evaluate_epoch_confusion")


def test_a_damaged_snapshot_leaves_the_other_epochs_in_the_image_history_and_filters(store, truths):
    truth = truths["two_epochs"]
    (store / truth.run_id / "epochs" / "epoch_0001.npz").write_bytes(b"not a zip file")
    at = open_page("gallery", truth.run_id)
    index = int(analysis.misclassified(truth.labels, truth.probs)["index"].iloc[0])
    at.button(key=f"gallery_tile_{index}").click()
    rerun(at)
    assert any("epoch 1 snapshot is damaged" in w.value for w in at.warning)
    assert list(figure(at, "gallery_history")["data"][0]["x"]) == [2]
    at = open_page("inside", truth.run_id)
    assert any("epoch 1 snapshot is damaged" in w.value for w in at.warning)
    assert figure(at, "inside_filters")["layout"]["title"]["text"] == "C1 filters after epoch 2"


def test_a_fashion_run_is_not_compared_with_mnist_results(store, truths):
    """Another dataset: no deltas against MNIST's references, its class names, and (since the test
    images found for it do not carry the labels it was evaluated on) test indices instead of thumbnails."""
    from core.data import CLASS_NAMES

    truth = truths["two_epochs"]
    runs = RunStore(store)
    config = runs.read_config(truth.run_id).replace(dataset="fashion_mnist", data_source="auto")
    runs.write_config(truth.run_id, config)
    runs.write_status(truth.run_id, class_names=list(CLASS_NAMES["fashion_mnist"]))
    at = open_page("evaluate", truth.run_id, evaluate_cell=(0, 0))
    assert metric(at, "Test accuracy").value == f"{np.mean(truth.pred == truth.labels):.2%}"
    assert not metric(at, "Test accuracy").delta and not metric(at, "Errors").delta
    assert any("so this fashion_mnist run is not compared with them" in c.value for c in at.caption)
    assert any(w.value.startswith("The test images could not be loaded") for w in at.warning)
    assert "Test indices: " in text_of(block(at, "evaluate_cell_gallery"))
    ticks = figure(at, "evaluate_confusion_chart")["layout"]["xaxis"]["ticktext"]
    assert ticks == list(CLASS_NAMES["fashion_mnist"])


def test_reruns_skip_the_full_garbage_collection_of_keras_clear_session(monkeypatch):
    """Streamlit calls keras.backend.clear_session() after every script run; its gc.collect() took
    about 0.4 s per rerun with TensorFlow loaded. On Streamlit's script thread it is skipped."""
    import gc
    import threading

    import keras

    from dashboard import keras_patch

    keras_patch.skip_gc_on_reruns()
    collections = []
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 0)
    rerun_cleanup = threading.Thread(target=keras.backend.clear_session, name=keras_patch.SCRIPT_THREAD)
    rerun_cleanup.start()
    rerun_cleanup.join()
    assert collections == []
    keras.backend.clear_session()  # any other caller still frees memory
    assert len(collections) == 1


def test_a_run_chosen_by_a_link_beats_what_the_selector_remembers(store, truths):
    """A link names its run in the URL (?run=, as Train's "Audit this run" does); the selector widget must show
    it, not its old value, and keep it on the next reruns (the URL then carries what the selector shows)."""
    at = open_page("evaluate")
    selector = at.sidebar.selectbox(key="common_run_widget")
    other = next(t for t in truths.values() if t.run_id != selector.value)
    at.query_params["run"] = other.run_id
    rerun(at)
    assert at.sidebar.selectbox(key="common_run_widget").value == other.run_id
    assert metric(at, "Test accuracy").value == f"{np.mean(other.pred == other.labels):.2%}"
    at.sidebar.selectbox(key="common_run_widget").set_value(selector.value)
    rerun(at)
    assert at.session_state[SELECTED_RUN] == selector.value  # the old ?run= does not take the box back
    at.query_params["run"] = "../not-a-run"
    rerun(at)
    assert at.session_state[SELECTED_RUN] == selector.value
    assert "The link names a run that is not in this store" in " ".join(i.value for i in at.sidebar.info)


def test_opening_train_keeps_the_run_the_audit_pages_show(store, truths):
    """Issue 20.1: the Train page chose its finished run for the audit pages on every redraw."""
    at = open_page("evaluate")
    chosen = next(t for t in truths.values() if t.run_id != at.sidebar.selectbox(key="common_run_widget").value)
    at.sidebar.selectbox(key="common_run_widget").set_value(chosen.run_id)
    rerun(at)
    at.switch_page("views/train.py").run()
    assert at.get("page_link")  # Train shows a finished run with its "Audit this run" link
    at.switch_page("views/evaluate.py").run()
    assert not at.exception
    assert at.sidebar.selectbox(key="common_run_widget").value == chosen.run_id
    assert metric(at, "Test accuracy").value == f"{np.mean(chosen.pred == chosen.labels):.2%}"


# ----- links a user can share (issue 20, item 7) --------------------------------------------------------


def open_link(page: str, **params) -> AppTest:
    """Open the app at /<page>?params, as a pasted URL does (the query parameters are there from the start)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for name, value in params.items():
        at.query_params[name] = str(value)
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def infos(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.info)


def test_a_gallery_link_opens_its_run_filters_and_image(store, truths):
    truth = truths["two_epochs"]
    errors = np.where(np.eye(10, dtype=bool), -1, truth.cm)
    true_class, pred_class = (int(v) for v in np.unravel_index(np.argmax(errors), errors.shape))
    image = int(analysis.misclassified(truth.labels, truth.probs, "loss", true_class, pred_class)["index"].iloc[0])
    at = open_link("gallery", run=truth.run_id, gallery_true=true_class, gallery_pred=pred_class,
                   gallery_sort="Highest loss first", image=image)
    assert at.session_state["common_selected_run"] == truth.run_id
    assert at.selectbox(key="gallery_true").value == true_class and at.selectbox(key="gallery_pred").value == pred_class
    assert at.radio(key="gallery_sort").value == "loss"
    assert f"Test image #{image}: true {true_class}, predicted {pred_class}" in text_of(block(at, "gallery_details"))
    assert at.query_params["image"] == str(image)
    # Closing the image takes it out of the URL; opening another puts that one in.
    at.button(key="gallery_close").click()
    rerun(at)
    assert "image" not in at.query_params
    other = int(np.flatnonzero(truth.pred != truth.labels)[0])
    at.session_state["gallery_open"] = other  # what a tile's button sets
    rerun(at)
    assert at.query_params["image"] == str(other)


@pytest.mark.parametrize("bad", ["99999", "-1", "seven"])
def test_a_bad_image_in_a_link_gets_a_message(store, truths, bad):
    at = open_link("gallery", run=truths["two_epochs"].run_id, image=bad)
    assert "The link's image is not allowed here (a test index, 0–" in infos(at)
    assert bad not in infos(at)  # a URL's text is never echoed
    assert not any(b.key == "gallery_close" for b in at.button)  # no image opened


def test_an_evaluate_link_opens_its_cell_and_epoch(store, truths):
    truth = truths["two_epochs"]
    at = open_link("evaluate", run=truth.run_id, cell="4-9", evaluate_view="Epoch by epoch", evaluate_epoch=1)
    assert f"True 4, predicted 9: {truth.cm[4, 9]:,}" in text_of(block(at, "evaluate_cell_gallery"))
    assert at.select_slider(key="evaluate_epoch").value == 1
    assert metric(at, "Test accuracy after epoch 1")
    # Clicking another cell's button puts that cell in the URL.
    at.button(key="evaluate_close_cell").click()
    rerun(at)
    assert "cell" not in at.query_params
    at.session_state["evaluate_cell"] = (3, 5)
    rerun(at)
    assert at.query_params["cell"] == "3-5"


@pytest.mark.parametrize("bad", ["4-10", "4", "a-b", "4-9-1"])
def test_a_bad_cell_in_a_link_gets_a_message(store, truths, bad):
    at = open_link("evaluate", run=truths["two_epochs"].run_id, cell=bad)
    assert "The link's cell is not allowed here (true and predicted class, e.g. 4-9)" in infos(at)
    assert not any(b.key == "evaluate_close_cell" for b in at.button)


def test_bad_bound_values_in_a_link_get_a_message(store, truths):
    truth = truths["two_epochs"]
    at = open_link("predict", run=truth.run_id, predict_index=10 ** 6)
    assert "The link's test index (allowed: 0–" in infos(at)
    at = open_link("evaluate", run=truth.run_id, evaluate_view="Epoch by epoch", evaluate_epoch=7)
    assert "The link's epoch (saved: 1–2)" in infos(at)
    assert at.select_slider(key="evaluate_epoch").value == 2  # the default: the last epoch


def test_a_predict_link_opens_its_test_image(store, truths):
    truth = truths["two_epochs"]
    at = open_link("predict", run=truth.run_id, predict_index=12)
    assert at.number_input(key="predict_index").value == 12
    assert metric(at, "Prediction for test image #12").value == str(truth.pred[12])
