"""The server warms its caches as it starts, in the background, so the first page a browser asks for comes sooner.

`streamlit run` opens the browser as the server starts, and the browser spends about a second loading Streamlit's
scripts before it asks for a page. The first page's script run used to start only then, and on a store of 1,000
runs it spent more than a second of it on work no later visit repeats (bench/scale.py, issue 21.12): listing the
store, reading every run's epoch records, marking the runs whose process died as interrupted, and Streamlit's
once-per-process check that it is not in a Python REPL (`inspect.stack()` with the source of every frame,
0.3 s). Here a daemon thread does that work while the
browser loads, into the same caches the page reads: `common.cached_runs()` (a `st.cache_resource`, whose
per-key lock makes a page that asks meanwhile wait for this result instead of listing again) and the store's
epoch cache. It waits for Streamlit's runtime to exist, and it never raises: a page does the same work itself
when this could not.
"""

from __future__ import annotations

import logging
import threading
import time

LOG = logging.getLogger(__name__)
RUNTIME_WAIT = 30.0  # s: how long to wait for Streamlit's runtime before giving up


def _runtime_up(timeout: float) -> bool:
    from streamlit import runtime

    deadline = time.monotonic() + timeout
    while not runtime.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def streamlit_checks() -> None:
    """Streamlit's check, once per process, that it runs in `streamlit run` and not a REPL; it runs when a page
    first draws an element, and inspects that script's whole stack. Done here, on a short stack."""
    from streamlit import delta_generator

    check = getattr(delta_generator, "_maybe_print_use_warning", None)  # private: absent after an upgrade, skipped
    if callable(check):
        check()


def warm() -> int:
    """List the store and read each run's epoch records into the caches the pages read; the runs listed."""
    from dashboard import common

    streamlit_checks()
    runs = common.cached_runs()
    common.mark_interrupted_once()  # from the list just read; a page's startup() finds it under way or done
    common.epoch_records(info.run_id for info in runs if not info.damaged)
    return len(runs)


def _warm_when_up() -> None:
    if not _runtime_up(RUNTIME_WAIT):
        return
    try:
        started = time.perf_counter()
        count = warm()
        LOG.debug("warmed the caches of %d runs in %.2f s", count, time.perf_counter() - started)
    except Exception:  # noqa: BLE001 - a warm-up must never take the server down; the page will do the work
        LOG.debug("warm start failed", exc_info=True)


def start() -> threading.Thread:
    """Start warming the caches in the background (the server calls this once, as it imports the app)."""
    thread = threading.Thread(target=_warm_when_up, name="lenet-warm-start", daemon=True)
    thread.start()
    return thread
