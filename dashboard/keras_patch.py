"""The dashboard's one process-wide patch: Streamlit's rerun clean-up keeps Keras' reset but skips its gc.collect().

After every script run, once Keras is imported, Streamlit calls keras.backend.clear_session()
(ScriptRunner's _clean_problem_modules), which ends with a full gc.collect(): a cost on every rerun of
every page with TensorFlow loaded (bench/RESULTS.md, "Why the dashboard's code is as it is"). The
patched clear_session skips that collection when Streamlit's script thread calls it; other callers
are unchanged. app.py applies it at the end of each script run, before Streamlit's clean-up.
"""

from __future__ import annotations

import sys
import threading

SCRIPT_THREAD = "ScriptRunner.scriptThread"  # the name Streamlit gives the thread that runs a page


def skip_gc_on_reruns() -> None:
    """Replace keras.backend.clear_session (importing Keras) by one that keeps memory on Streamlit's reruns."""
    import keras

    clear_session = keras.backend.clear_session
    if getattr(clear_session, "keeps_memory_on_reruns", False):
        return

    def clear_session_without_gc_on_reruns(free_memory=True):
        if threading.current_thread().name == SCRIPT_THREAD:
            free_memory = False
        return clear_session(free_memory=free_memory)

    clear_session_without_gc_on_reruns.keeps_memory_on_reruns = True
    keras.backend.clear_session = clear_session_without_gc_on_reruns


def after_script_run() -> None:
    """Patch Keras once a page has imported it; before that there is nothing to patch (and no cost to skip)."""
    if "keras" in sys.modules:
        skip_gc_on_reruns()
