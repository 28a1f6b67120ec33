"""Fault suite, security: the server's settings, models loaded only from the store as safe .keras files,
and run ids and names that cannot leave cached_models/."""

import json
import pickle
import shutil
import tomllib
from pathlib import Path

import pytest

from core.store import RunStore, StoreError, check_run_id
from test_faults_support import ROOT, SHIPPED_ID, assert_one_line_error, copy_shipped, run_cli, tree


def test_server_settings_are_local_and_guarded():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["address"] == "127.0.0.1"  # not reachable from the network unless asked for
    assert server["enableXsrfProtection"] is True and server["enableCORS"] is True
    assert server["maxUploadSize"] <= 5  # MB, the same cap core.digits.preprocess_digit applies
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False
    assert config["client"]["showErrorDetails"] == "none"  # no tracebacks or paths shown to a browser
    assert config["browser"]["gatherUsageStats"] is False
    from core.digits import preprocess_digit

    assert preprocess_digit.__defaults__[0] == server["maxUploadSize"] * 1_000_000  # the browser counts 10^6


# ----- models: only model.keras inside the store, with safe_mode ---------------------------------------


class Boom:
    """A pickle that would leave a file behind if anything ever unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def _plant_pickle(run: Path, marker: Path) -> None:
    (run / "model.keras").unlink()
    (run / "model.pkl").write_bytes(pickle.dumps(Boom(marker)))
    (run / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(1024))


def _pickle_named_keras(run: Path, marker: Path) -> None:
    (run / "model.keras").write_bytes(pickle.dumps(Boom(marker)))


def _hdf5_named_keras(run: Path, marker: Path) -> None:
    (run / "model.keras").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(4096))


def _lambda_layer(run: Path, marker: Path) -> None:
    """A real .keras archive whose Lambda layer would write the marker when its code is deserialised and run."""
    import keras

    code = eval(f"lambda x: x * (open({str(marker)!r}, 'w').write('ran') * 0 + 1)")  # no closure: saved as is
    inputs = keras.Input((32, 32, 1))
    outputs = keras.layers.Lambda(code)(inputs)
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(outputs))).save(
        run / "model.keras")
    marker.unlink(missing_ok=True)  # building the model may have run it; loading must not run it


def _zip_bomb(run: Path, marker: Path) -> None:
    """A .keras archive of 64 KB whose weights file unpacks to 64 MB, as declared in the archive's directory (the
    check reads only that directory, so 2 GB, as reported, is refused the same way; 64 MB is quicker to build)."""
    import zipfile

    (run / "model.keras").unlink()
    with zipfile.ZipFile(run / "model.keras", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        archive.writestr("config.json", "{}")
        with archive.open("model.weights.h5", "w", force_zip64=True) as handle:
            zeros = bytes(2**24)
            for _ in range(4):
                handle.write(zeros)


def _not_a_lenet(kind: str):
    """A safe, loadable .keras model that is not a LeNet-5: other layer names, a 28x28 input or 3 classes."""
    def plant(run: Path, marker: Path) -> None:
        import keras

        size, classes, prefix = {"other layer names": (32, 10, "layer"), "a 28x28 input": (28, 10, None),
                                 "3 classes": (32, 3, None)}[kind]
        inputs = keras.Input((size, size, 1))
        names = ["c1_conv", "s2_pool", "c3_conv", "s4_pool", "flatten", "c5_dense", "f6_dense", "output"]
        if prefix:
            names = [f"{prefix}_{i}" for i in range(len(names))]
        x = keras.layers.Conv2D(6, 5, activation="relu", name=names[0])(inputs)
        x = keras.layers.AveragePooling2D(2, name=names[1])(x)
        x = keras.layers.Conv2D(16, 5, activation="relu", name=names[2])(x)
        x = keras.layers.AveragePooling2D(2, name=names[3])(x)
        x = keras.layers.Flatten(name=names[4])(x)
        x = keras.layers.Dense(120, activation="relu", name=names[5])(x)
        x = keras.layers.Dense(84, activation="relu", name=names[6])(x)
        outputs = keras.layers.Dense(classes, activation="softmax", name=names[7])(x)
        keras.Model(inputs, outputs).save(run / "model.keras")
    return plant


NOT_LENET = [
    ("other layer names", "it has no layer c1_conv, s2_pool, c3_conv, s4_pool, c5_dense, f6_dense, output"),
    ("a 28x28 input", "its input is (28, 28, 1), the pages need (32, 32, 1)"),
    ("3 classes", "its output is (3), the pages need 10 classes"),
]

# (name, plant, the reason load_model gives)
PLANTED_FILES = [
    ("a pickle and an .h5 next to no model.keras", _plant_pickle, "no model.keras"),
    ("a pickle named model.keras", _pickle_named_keras, "model.keras is corrupt (not a .keras archive)"),
    ("an HDF5 file named model.keras", _hdf5_named_keras, "model.keras is corrupt (not a .keras archive)"),
    ("a .keras with a Lambda layer", _lambda_layer, "Requested the deserialization of a `Lambda` layer"),
    ("a small .keras whose weights unpack to 64 MB (a zip bomb)", _zip_bomb,
     "model.keras declares 3 files and 64.0 MB unpacked; a LeNet-5 model is at most 16 files and 16 MB"),
    *[(f"a safe .keras that is not a LeNet ({kind})", _not_a_lenet(kind),
       f"model.keras loads, but it is not a LeNet-5 of LeNet Lab: {reason}")
      for kind, reason in NOT_LENET],
]


@pytest.mark.parametrize("name,plant,reason", PLANTED_FILES, ids=[p[0] for p in PLANTED_FILES])
def test_planted_model_files_are_never_loaded(capsys, tmp_path, name, plant, reason):
    store_root = tmp_path / "runs"
    copy_shipped(store_root)
    run = store_root / "planted"
    shutil.copytree(store_root / SHIPPED_ID, run)
    marker = tmp_path / "marker"
    plant(run, marker)
    with pytest.raises(StoreError) as excinfo:
        RunStore(store_root).load_model("planted")
    assert reason in str(excinfo.value)
    code, out, err = run_cli(capsys, "summary", "planted", runs_dir=store_root)
    assert_one_line_error(code, err, "run 'planted'", reason)
    assert not marker.exists()  # no pickle was unpickled, no Lambda code ran
    assert RunStore(store_root).load_model(SHIPPED_ID).count_params() == 61706  # the real model still loads


# ----- run ids and names --------------------------------------------------------------------------------

BAD_RUN_IDS = ["../outside", "../../etc/passwd", "/etc/passwd", "runs/../../outside", "..", ".", ".hidden",
               "nul\x00byte", "x" * 101, "", "a b", "C:\\Windows", "~root", "run\nid"]


@pytest.mark.parametrize("run_id", BAD_RUN_IDS, ids=[repr(r)[:24] for r in BAD_RUN_IDS])
def test_a_run_id_cannot_leave_the_store(capsys, tmp_path, run_id):
    store_root = tmp_path / "store"
    copy_shipped(store_root)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "config.json").write_text("{}")
    before = tree(tmp_path)
    store = RunStore(store_root)
    for action in (store.run_dir, store.read_status, store.load_model, store.delete,
                   lambda r: store.rename(r, "new name")):
        with pytest.raises(StoreError, match="is not valid"):
            action(run_id)
    for command in ("evaluate", "summary", "audit", "predict"):
        extra = ["0"] if command == "predict" else []
        code, out, err = run_cli(capsys, command, run_id, *extra, runs_dir=store_root)
        assert code == 2 and "Traceback" not in err and "is not valid" in err
    assert tree(tmp_path) == before


ESCAPING_LINKS = ["a run folder that is a symbolic link to a folder outside the store"]


def test_a_symlinked_run_folder_that_points_outside_is_refused(capsys, tmp_path):
    store_root = tmp_path / "store"
    copy_shipped(store_root)
    shutil.copytree(store_root / SHIPPED_ID, tmp_path / "elsewhere")
    (store_root / "linked").symlink_to(tmp_path / "elsewhere")
    store = RunStore(store_root)
    with pytest.raises(StoreError, match="escapes the store folder"):
        store.load_model("linked")
    code, out, err = run_cli(capsys, "list", "--json", runs_dir=store_root)
    rows = {row["run_id"]: row for row in json.loads(out)}
    assert "a link that escapes the store folder" in rows["linked"]["problems"]
    assert rows[SHIPPED_ID]["status"] == "completed"  # the other runs are still listed


BAD_NAMES = [("x" * 101, False), ("nul\x00", False), ("bell\x07", False), ("   ", False),
             ("../../etc/passwd", True), ("/etc/cron.d/evil", True), ("..\\..\\windows", True),
             ("<script>alert(1)</script>", True)]


@pytest.mark.parametrize("name,accepted", BAD_NAMES, ids=[repr(n)[:24] for n, _ in BAD_NAMES])
def test_a_run_name_is_only_a_label(tmp_path, name, accepted):
    from core.config import TrainConfig

    store_root = tmp_path / "store"
    store = RunStore(store_root)
    if not accepted:
        with pytest.raises(StoreError, match="run name .* is not valid; allowed: 1-100 printable characters"):
            store.create_run(TrainConfig(), name=name)
        assert not store_root.exists() or list(store_root.iterdir()) == []
        return
    run_id = store.create_run(TrainConfig(), name=name)
    check_run_id(run_id)
    assert [p.parent for p in store_root.iterdir()] == [store_root]  # the folder is inside the store
    assert store.read_status(run_id).name == name
    store.rename(run_id, name[::-1])
    assert [p.name for p in store_root.iterdir()] == [run_id]  # renaming never moves the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_rename_in_the_runs_page_refuses_a_bad_name(lenet_runs, offline_sources):
    from dashboard_apptest import open_app, texts

    copy_shipped(lenet_runs)
    at = open_app("views/runs.py")
    for bad in ("nul\x00", "\t"):
        at.text_input(key="runs_new_name").set_value(bad)
        at.button[[b.label for b in at.button].index("Rename")].click().run()
        assert not at.exception
        assert "is not valid; allowed: 1-100 printable characters" in texts(at.error)
    at.text_input(key="runs_new_name").set_value("../../escaped")
    at.button[[b.label for b in at.button].index("Rename")].click().run()
    assert "Renamed to '../../escaped'" in texts(at.success)
    assert sorted(p.name for p in lenet_runs.iterdir()) == [SHIPPED_ID]
    assert RunStore().read_status(SHIPPED_ID).name == "../../escaped"


@pytest.mark.parametrize("page", ["inside", "predict"])
def test_pages_say_what_a_model_that_is_not_a_lenet_is(lenet_runs, offline_sources, page):
    from dashboard_apptest import open_app, texts

    copy_shipped(lenet_runs)
    for kind, _ in NOT_LENET:
        shutil.copytree(lenet_runs / SHIPPED_ID, lenet_runs / kind.replace(" ", "-"))
        _not_a_lenet(kind)(lenet_runs / kind.replace(" ", "-"), lenet_runs / "marker")
    for kind, reason in NOT_LENET:
        at = open_app()
        at.session_state["common_selected_run"] = kind.replace(" ", "-")
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, [e.message for e in at.exception]
        shown = " ".join(texts(getattr(at, k)) for k in ("error", "warning", "info"))
        assert reason in shown, shown
