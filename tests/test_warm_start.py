"""The server warms its caches as it starts (dashboard/warm_start.py): the run list and every run's epoch records
are read into the caches the pages read, and Streamlit's once-per-process REPL check is done off the page's
stack. bench/scale.py measures what it saves on the first visit of a 1,000-run store."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.store import RunStore
from dashboard import common, warm_start

SHIPPED = Path(__file__).resolve().parent.parent / "cached_models"


@pytest.fixture
def shipped_store(lenet_runs):
    """A copy of the two shipped runs in this test's own store; their ids."""
    ids = sorted(entry.name for entry in SHIPPED.iterdir() if entry.is_dir())
    for run_id in ids:
        shutil.copytree(SHIPPED / run_id, lenet_runs / run_id)
    return ids


def test_warming_fills_the_caches_the_first_page_reads(shipped_store, monkeypatch):
    import core.store.metrics as metrics

    common._cached_runs.clear()
    metrics.EPOCHS._cache.clear()
    assert warm_start.warm() == len(shipped_store)
    expected = {run_id: RunStore().read_epoch_records(run_id) for run_id in shipped_store}

    def read_again(*args, **kwargs):
        raise AssertionError("read from disk although the warm start cached it")

    # the page's listing and its epoch records now come from the caches, not from the run folders
    monkeypatch.setattr(RunStore, "list_runs", read_again)
    monkeypatch.setattr(metrics, "epoch_records", read_again)
    assert sorted(info.run_id for info in common.cached_runs()) == shipped_store
    for run_id in shipped_store:
        records = RunStore().read_epoch_records(run_id)
        assert records == expected[run_id] and len(records) >= 5  # the shipped runs trained 5+ epochs


def test_warming_marks_the_runs_whose_process_died_from_the_list_it_read(shipped_store, monkeypatch):
    """Run by the warm start as the server starts, not during the first page, whose script it held off the GIL
    for a second; and from the list just read, not from a second listing of the store."""
    store = RunStore()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = store.create_run(TrainConfig(), "killed")
    store.write_status(killed, status="running", pid=int(dead.stdout))
    temp = store.run_dir(shipped_store[1]) / f".status.json.{int(dead.stdout)}.0123abcd.tmp"  # a killed writer's file
    temp.write_text("{")
    listings, list_runs = [], RunStore.list_runs
    monkeypatch.setattr(RunStore, "list_runs", lambda self: listings.append(1) or list_runs(self))
    common._cached_runs.clear()
    common._mark_interrupted_once.clear()
    warm_start.warm()
    deadline = time.monotonic() + 30
    while "running" in (store.run_dir(killed) / "status.json").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # no page has run: the warm start itself marks
    status = json.loads((store.run_dir(killed) / "status.json").read_text())
    assert status["status"] == "interrupted" and not temp.exists()
    assert listings == [1]
    assert not common.mark_interrupted_once().is_alive()  # a page's startup() finds it done, not a new thread


def test_a_store_that_cannot_be_listed_leaves_the_server_running(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("LENET_RUNS", str(tmp_path / "a-file"))
    common._cached_runs.clear()
    with pytest.raises(Exception, match="not a folder|folder|directory"):
        warm_start.warm()  # what the thread meets
    monkeypatch.setattr(warm_start, "_runtime_up", lambda timeout: True)
    warm_start._warm_when_up()  # the thread's body: it swallows that, the page reports it


def test_streamlits_once_per_process_check_is_done_by_the_warm_start(monkeypatch):
    from streamlit import delta_generator

    # the private names the warm start relies on exist in the pinned Streamlit (an upgrade that drops them fails
    # here, and the warm start then skips the check instead of breaking)
    monkeypatch.setattr(delta_generator, "_use_warning_has_been_displayed", False)
    warm_start.streamlit_checks()
    assert delta_generator._use_warning_has_been_displayed is True


def test_the_warm_start_waits_for_streamlits_runtime():
    assert warm_start._runtime_up(0.1) is False  # a test process has none: the thread gives up, doing nothing
