"""Fault suite, a damaged run store: each damage shows up with its reason in `python -m core list` and on
the Runs page, every other run keeps working, nothing is deleted, and the audit pages say what is wrong
with a run whose files are damaged instead of showing a traceback."""

import json
import os
import shutil
import zipfile

import pytest

from core.store import RunStore
from test_faults_support import SHIPPED, SHIPPED_ID, copy_shipped, run_cli, tree

SHIPPED_ACCURACY = json.loads((SHIPPED / "evaluation.json").read_text())["accuracy"]


def _no_config(run):
    (run / "config.json").unlink()


def _config_not_json(run):
    (run / "config.json").write_text('{"epochs": 5,')


def _config_from_the_future(run):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "config_version": 99, "colour_space": "lab"}))


def _config_unknown_field(run):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "colour_space": "lab"}))


def _config_out_of_range(run):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "epochs": 0}))


def _no_status(run):
    (run / "status.json").unlink()


def _status_not_json(run):
    (run / "status.json").write_bytes(b"\x00\x00\x00\x00")


def _truncated_metrics(run):
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"type": "batch", "epoch": 6, "los')


def _garbage_metrics_line(run):
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines.insert(3, "#### not json ####\n")
    (run / "metrics.jsonl").write_text("".join(lines))


def _metrics_line(value: str):
    """A valid-JSON metrics line with a wrong type, appended: a hand edit or another program's writer."""
    def damage(run):
        with open(run / "metrics.jsonl", "a") as handle:
            handle.write(value + "\n")
    return damage


def _empty_model(run):
    (run / "model.keras").write_bytes(b"")


def _corrupt_model(run):
    (run / "model.keras").write_bytes(os.urandom(4096))


def _truncated_model(run):
    data = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(data[: len(data) // 2])


def _stray_file(run):
    shutil.rmtree(run)
    run.write_text("someone saved their notes here")


def _bad_folder_name(run):
    run.rename(run.with_name("my run (copy)"))


def _unreadable(run):
    pass  # os.access is patched for this folder in the test: as root, chmod cannot block a read


# (name, damage, the reason `list` and the Runs page give, whether the run is still listed as a run)
DAMAGES = [
    ("folder without a config", _no_config, "no config.json", False),
    ("config not JSON", _config_not_json, "config.json is invalid: config is not valid JSON", False),
    ("config of a future version", _config_from_the_future, "config_version=99 was written by a newer LeNet Lab", False),
    ("config with an unknown field", _config_unknown_field, "unknown config field(s) ['colour_space']", False),
    ("config out of range", _config_out_of_range, "epochs=0 is out of range", False),
    ("no status", _no_status, "no status.json", False),
    ("status not JSON", _status_not_json, "status.json is unreadable", False),
    ("truncated last metrics line", _truncated_metrics, "metrics.jsonl ends with a truncated line", True),
    ("garbage metrics line", _garbage_metrics_line, "metrics.jsonl line 4 is not valid JSON", True),
    ("metrics epoch not a number", _metrics_line('{"type": "epoch", "epoch": "x", "loss": 0.1}'),
     "has epoch 'x'; allowed: a whole number from 0 to 100,000", True),
    ("metrics epoch 1e308", _metrics_line('{"type": "batch", "epoch": 1e308, "batch": 1, "loss": 0.1}'),
     "has epoch '1e+308'; allowed: a whole number", True),
    ("metrics loss a word", _metrics_line('{"type": "batch", "epoch": 1, "batch": 2, "loss": "high"}'),
     "has loss 'high'; allowed: a number or null", True),
    ("zero-byte model", _empty_model, "model.keras is empty (0 bytes)", True),
    ("corrupt model", _corrupt_model, "model.keras is corrupt (not a .keras archive)", True),
    ("truncated model", _truncated_model, "model.keras is corrupt (not a .keras archive)", True),
    ("stray file", _stray_file, "not a run folder: a stray file in the store", False),
    ("folder name not a run id", _bad_folder_name, "folder name is not a valid run id", False),
    ("unreadable folder", _unreadable, "run folder is not readable (permission denied)", False),
]
DAMAGED_ID = "damaged-run"


@pytest.fixture
def unreadable(monkeypatch):
    """Make os.access deny the folders named 'unreadable-*', as a folder owned by another user would."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if "unreadable-" in str(path)
                        else real_access(path, mode, *a, **k))


def _damaged_store(root, name, damage):
    """The shipped run, untouched, next to a damaged copy; returns the damaged entry's name."""
    copy_shipped(root)
    entry_id = "unreadable-run" if damage is _unreadable else DAMAGED_ID
    run = root / entry_id
    shutil.copytree(root / SHIPPED_ID, run)
    damage(run)
    return "my run (copy)" if damage is _bad_folder_name else entry_id


@pytest.mark.parametrize("name,damage,reason,still_a_run", DAMAGES, ids=[d[0] for d in DAMAGES])
def test_list_shows_the_damage_and_the_other_run_works(capsys, tmp_path, unreadable, name, damage, reason,
                                                       still_a_run):
    entry = _damaged_store(tmp_path, name, damage)
    before = tree(tmp_path)
    code, out, err = run_cli(capsys, "list", "--json", runs_dir=tmp_path)
    assert code == 0, err
    rows = {row["run_id"]: row for row in json.loads(out)}
    assert reason in rows[entry]["problems"]
    assert (rows[entry]["status"] == "completed") is still_a_run
    healthy = rows[SHIPPED_ID]
    assert healthy["status"] == "completed" and healthy["problems"] is None
    code, out, err = run_cli(capsys, "list", runs_dir=tmp_path)  # the table a person reads
    assert code == 0 and entry in out and reason[:30] in " ".join(out.split())
    code, out, err = run_cli(capsys, "evaluate", SHIPPED_ID, "--json", runs_dir=tmp_path)
    assert code == 0 and json.loads(out)["metrics"]["accuracy"] == pytest.approx(SHIPPED_ACCURACY)
    assert tree(tmp_path) == before  # listing never repairs or deletes anything


@pytest.fixture
def every_damage(lenet_runs, unreadable):
    """One store holding the shipped run and one copy per damage."""
    copy_shipped(lenet_runs)
    entries = {}
    for name, damage, reason, _ in DAMAGES:
        slug = name.replace(" ", "-").replace("-a-", "-")
        entry_id = f"unreadable-{slug}" if damage is _unreadable else f"damaged-{slug}"
        run = lenet_runs / entry_id
        shutil.copytree(lenet_runs / SHIPPED_ID, run)
        damage(run)
        if damage is _bad_folder_name:
            entry_id = "my run (copy)"
        entries[entry_id] = reason
    return entries


def test_runs_page_lists_every_damage_with_its_reason(every_damage, lenet_runs, offline_sources):
    from dashboard_apptest import open_app

    before = tree(lenet_runs)
    at = open_app("views/runs.py")
    [damaged] = [d.value for d in at.dataframe if list(d.value.columns) == ["folder", "reason"]]
    damaged = damaged.set_index("folder")["reason"].to_dict()
    table = at.dataframe(key="runs_table").value.set_index("run_id")
    for entry, reason in every_damage.items():
        shown = damaged.get(entry) or table["problems"].get(entry)
        assert shown and reason in shown, (entry, shown)
    assert table.loc[SHIPPED_ID, "status"] == "completed" and table.isna().loc[SHIPPED_ID, "problems"]
    assert table.loc[SHIPPED_ID, "test_accuracy"] == pytest.approx(SHIPPED_ACCURACY)
    assert tree(lenet_runs) == before


def test_a_damaged_run_is_deleted_only_when_asked(every_damage, lenet_runs, offline_sources):
    from dashboard_apptest import open_app, texts

    at = open_app("views/runs.py")
    at.selectbox(key="runs_managed_run").set_value("damaged-no-status").run()
    at.checkbox(key="runs_confirm_delete").check().run()
    at.button[[b.label for b in at.button].index("Delete run")].click().run()
    assert not at.exception
    assert "Deleted run" in texts(at.success)
    assert not (lenet_runs / "damaged-no-status").exists()
    assert (lenet_runs / SHIPPED_ID / "model.keras").is_file()
    assert len(RunStore().list_runs()) == len(every_damage)  # the others are all still there


def _not_a_keras_zip(run):
    """A zip archive, so the quick check passes, that Keras cannot read as a model."""
    (run / "model.keras").unlink()
    with zipfile.ZipFile(run / "model.keras", "w") as archive:
        archive.writestr("config.json", '{"class_name": "Sequential"}')


def _broken_results(run):
    """The model is fine; the stored evaluation and every epoch snapshot are not."""
    (run / "evaluation.json").write_text("{not json")
    for snapshot in (run / "epochs").iterdir():
        snapshot.write_bytes(b"PK\x03\x04 cut short")


AUDIT_PAGES = ("evaluate", "gallery", "inside", "predict")
AUDIT_DAMAGES = [("broken-model", _not_a_keras_zip), ("broken-results", _broken_results)]


def _messages(at) -> str:
    from dashboard_apptest import texts

    return " ".join(texts(getattr(at, kind)) for kind in ("error", "warning", "info", "caption"))


@pytest.mark.parametrize("page", AUDIT_PAGES)
def test_audit_pages_on_damaged_runs_say_what_is_wrong(lenet_runs, offline_sources, page):
    from dashboard_apptest import open_app

    copy_shipped(lenet_runs)
    for run_id, damage in AUDIT_DAMAGES:
        shutil.copytree(lenet_runs / SHIPPED_ID, lenet_runs / run_id)
        damage(lenet_runs / run_id)
    at = open_app()
    at.session_state["common_selected_run"] = "broken-model"
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    if page in ("inside", "predict"):  # the pages that need the model itself
        assert "model.keras could not be loaded" in _messages(at)
    at.session_state["common_selected_run"] = "broken-results"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    if page in ("evaluate", "gallery"):
        assert "damaged" in _messages(at)
    if page == "inside":
        assert "the epoch 1 snapshot is damaged" in _messages(at)


# ----- one unreadable file: reported as permission denied, on that run only ----------------------------
# As root, chmod cannot block a read: each case denies one path of one run the way the OS would (EACCES).

PERMISSION_CASES = [
    "metrics.jsonl unreadable (Runs page, Train page)",
    "epochs/ unreadable (Inside)",
    "run folder read-only at Rename",
    "model.keras unreadable (list)",
]
DENIED_ID = "denied-run"


@pytest.fixture
def denied(lenet_runs, monkeypatch, offline_sources):
    """The shipped run and a copy of it, DENIED_ID; `deny(name)` makes that file or folder of the copy raise
    PermissionError when opened, listed or written."""
    import builtins
    import pathlib

    copy_shipped(lenet_runs)
    shutil.copytree(lenet_runs / SHIPPED_ID, lenet_runs / DENIED_ID)
    denied_paths: dict[str, bool] = {}  # path -> only writes denied (a read-only folder)
    real_open, real_iterdir, real_access = builtins.open, pathlib.Path.iterdir, os.access

    def blocked(path, writing: bool = False) -> bool:
        text = os.fspath(path)
        return any((text == p or text.startswith(p + "/")) and (writing or not write_only)
                   for p, write_only in denied_paths.items())

    def fake_open(path, mode="r", *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and blocked(path, writing=any(c in mode for c in "wax+")):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, mode, *args, **kwargs)

    def fake_iterdir(self):
        if blocked(self):
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(pathlib.Path, "iterdir", fake_iterdir)
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if blocked(path) and mode & os.R_OK
                        else real_access(path, mode, *a, **k))

    def deny(name: str, write_only: bool = False) -> None:
        denied_paths[str(lenet_runs / DENIED_ID / name) if name else str(lenet_runs / DENIED_ID)] = write_only

    return deny


def test_an_unreadable_metrics_file_is_reported_on_its_run_and_the_run_can_still_be_deleted(denied, lenet_runs):
    from dashboard_apptest import open_app, texts

    denied("metrics.jsonl")
    at = open_app("views/runs.py")
    assert not at.exception, [e.message for e in at.exception]
    table = at.dataframe(key="runs_table").value.set_index("run_id")
    assert "metrics.jsonl is not readable (permission denied)" in table.loc[DENIED_ID, "problems"]
    assert table.isna().loc[SHIPPED_ID, "problems"]
    at.selectbox(key="runs_managed_run").set_value(DENIED_ID).run()
    at.checkbox(key="runs_confirm_delete").check().run()
    at.button[[b.label for b in at.button].index("Delete run")].click().run()
    assert not at.exception and not (lenet_runs / DENIED_ID).exists()
    assert "Deleted run" in texts(at.success)


def test_an_unreadable_epochs_folder_is_reported_on_inside(denied, lenet_runs):
    from dashboard_apptest import open_app

    denied("epochs")
    at = open_app()
    at.session_state["common_selected_run"] = DENIED_ID
    at.switch_page("views/inside.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert "epochs/ is not readable (permission denied)" in _messages(at)
    assert str(lenet_runs) not in _messages(at)  # no absolute path reaches the browser


def test_rename_in_a_read_only_run_folder_says_so(denied, lenet_runs):
    from dashboard_apptest import open_app, texts

    denied("", write_only=True)  # the folder: its status file cannot be written
    at = open_app("views/runs.py")
    at.selectbox(key="runs_managed_run").set_value(DENIED_ID).run()
    at.text_input(key="runs_new_name").set_value("new name")
    at.button[[b.label for b in at.button].index("Rename")].click().run()
    assert not at.exception, [e.message for e in at.exception]
    message = texts(at.error)
    assert "cannot be renamed: its folder is read-only (permission denied)" in message
    assert str(lenet_runs) not in message


def test_an_unreadable_model_is_not_called_corrupt(denied, capsys, lenet_runs):
    denied("model.keras")
    code, out, err = run_cli(capsys, "list", "--json", runs_dir=lenet_runs)
    rows = {row["run_id"]: row for row in json.loads(out)}
    assert "model.keras is not readable (permission denied)" in rows[DENIED_ID]["problems"]
    assert "corrupt" not in rows[DENIED_ID]["problems"]
