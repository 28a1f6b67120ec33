"""Shared fixtures. Each block says who uses it; append new fixtures below the others."""

import contextlib
import os
import shutil
import tempfile

import pytest

from core.config import TrainConfig
from core.store import RunStore

# Dashboards started by the tests load TensorFlow in their training process only when a run is submitted:
# each test has its own store, so its own queue, and a process of several hundred MB per store would add
# up. The browser tests' real server turns the prestart back on (streamlit_server).
os.environ["LENET_WORKER_PRESTART"] = "0"
# What listing checked of each store (core/store/checks.py) goes to a folder of this session, not ~/.cache:
# every test has its own store, so its own cache file.
os.environ.setdefault("LENET_CACHE", tempfile.mkdtemp(prefix="lenet_cache_"))

# ----- dashboard (Train and Runs pages) --------------------------------------------------------

TINY_CONFIG = TrainConfig(data_source="sample", train_subset=600, validation_split=0.1, epochs=1, batch_size=64)
TINY_RUN_NAME = "tiny sample run"


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory):
    """(store root, run id) of one tiny finished run, trained once per test session on the bundled sample."""
    from core.trainer import train

    root = tmp_path_factory.mktemp("tiny_trained_run")
    result = train(TINY_CONFIG, RunStore(root), name=TINY_RUN_NAME)
    assert result.status == "completed", result.error
    return root, result.run_id


@pytest.fixture
def lenet_runs(tmp_path, monkeypatch):
    """An empty run store that RunStore() (and so the dashboard) uses: LENET_RUNS points at it."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("LENET_RUNS", str(root))
    return root


@pytest.fixture
def finished_run(tiny_trained_run, lenet_runs):
    """A copy of the tiny finished run in this test's own store; returns its run id."""
    template, run_id = tiny_trained_run
    shutil.copytree(template / run_id, lenet_runs / run_id)
    return run_id


@pytest.fixture
def offline_sources(monkeypatch):
    """No network probe, no Keras cache, no LENET_DATA: the 'auto' source means the bundled sample, at once."""
    import core.sources
    from dashboard import sidebar

    monkeypatch.setattr(core.sources, "probe_download_host", lambda: False)
    monkeypatch.setenv("KERAS_HOME", "/nonexistent-keras-home")
    monkeypatch.delenv("LENET_DATA", raising=False)
    sidebar.data_source_text.clear()


# ----- CI: a browser test that skips is a failure when LENET_REQUIRE_BROWSER=1 (.ci/run sets it) --------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    import os

    if report.skipped and "browser" in item.nodeid and os.environ.get("LENET_REQUIRE_BROWSER") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"browser test skipped but LENET_REQUIRE_BROWSER=1 requires it: {reason}"


# ----- audit pages (Evaluate, Error gallery, Inside the model, Predict) -----------------------------------

AUDIT_CONFIGS = {
    # The audit issue's run: two epochs, so the epoch scrubber has a previous epoch to compare with.
    "two_epochs": TrainConfig(data_source="sample", train_subset=600, validation_split=0.1, epochs=2, batch_size=64),
    # The 1998 paper's variant, for its C3 connection table.
    "lecun1998": TrainConfig(data_source="sample", variant="lecun1998", train_subset=300, validation_split=0.1,
                             epochs=1, batch_size=64),
}


@pytest.fixture(scope="session")
def audit_trained_runs(tmp_path_factory):
    """(store root, {"two_epochs": run id, "lecun1998": run id}), trained once per test session."""
    from core.trainer import train

    root = tmp_path_factory.mktemp("audit_trained_runs")
    run_ids = {}
    for key, config in AUDIT_CONFIGS.items():
        result = train(config, RunStore(root), name=f"audit {key.replace('_', ' ')}")
        assert result.status == "completed", result.error
        run_ids[key] = result.run_id
    return root, run_ids


# ----- browser tests: one real `streamlit run dashboard/app.py` on a free local port ------------------


@contextlib.contextmanager
def streamlit_server(store, log_path):
    """Run the dashboard on its own store; yields its URL once /_stcore/health answers, stops it after."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(log_path, "w")
    env = {**os.environ, "LENET_RUNS": str(store), "TF_CPP_MIN_LOG_LEVEL": "2", "LENET_WORKER_PRESTART": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
         "--server.headless", "true"], cwd=Path(__file__).resolve().parent.parent, env=env, stdout=log,
        stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start; see {log.name}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


# ----- browser tests: Debian's Chromium, driven by Playwright ------------------------------------------------

CHROMIUM_PATH = "/usr/bin/chromium"
HEADLESS_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@contextlib.contextmanager
def chromium(*extra_args: str):
    """A headless Chromium for a test module's `browser` fixture; `extra_args` e.g. a host-resolver rule."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=[*HEADLESS_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM_PATH),
                                    reason=f"Chromium not found at {CHROMIUM_PATH}: install Debian's chromium "
                                           "package to run the browser tests")


def tsne_children() -> list[int]:
    """This process's t-SNE children (core.representation's `python -c` interpreters), from /proc."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and b"tsne_files" in command:
            found.append(int(entry.name))
    return found
