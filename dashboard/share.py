"""Sharing from the dashboard: the audit report's download (Evaluate), the comparison report of two ticked runs
and the checked model exports (Runs > Manage). Reports are built when the button is clicked; an export is built
and checked on a click, cached on the run's version, never at page load."""

from __future__ import annotations

import streamlit as st

from core.data import DataError
from core.store import RunInfo, RunStore, StoreError
from dashboard import common

EXPORT_FORMAT = "runs_export_format"
EXPORT_SHOWN = "runs_export_shown"  # (run id, format, version) of the export last built on this page
FORMAT_LABELS = {"keras": "Keras (.keras)", "onnx": "ONNX (.onnx)", "tflite": "TensorFlow Lite / LiteRT (.tflite)"}


def report_html(run_id: str) -> bytes:
    from core.report import build_report

    return build_report(common.store(), run_id).encode("utf-8")


def comparison_html(run_a: str, run_b: str) -> bytes:
    from core.report_compare import build_comparison

    return build_comparison(common.store(), run_a, run_b).encode("utf-8")


def report_button(run_id: str) -> None:
    """Evaluate: the run's audit report as one HTML file, built when clicked."""
    st.download_button("Audit report (.html)", data=lambda: report_html(run_id), file_name=f"{run_id}-report.html",
                       mime="text/html", on_click="ignore", key="evaluate_download_report",
                       icon=":material/summarize:",
                       help="One self-contained HTML file with this page's results, the curves, the config, the "
                            "data source and the library versions. It opens offline in any browser.")


def comparison_button(run_a: str, run_b: str) -> None:
    """Runs: the comparison report of the two ticked runs."""
    st.download_button("Comparison report of the two ticked runs (.html)", data=lambda: comparison_html(run_a, run_b),
                       file_name=f"compare-{run_a}-{run_b}.html", mime="text/html", on_click="ignore",
                       key="runs_download_comparison", icon=":material/compare:")


@st.cache_data(max_entries=8, show_spinner=False)
def _export(root: str, run_id: str, fmt: str, version: tuple):
    """(file bytes or None, Parity or None, seconds, refusal or None); version is the cache key only."""
    from core.export import ExportRefused, export_model

    try:
        result = export_model(RunStore(root), run_id, fmt)
    except ExportRefused as exc:
        return None, exc.parity, 0.0, str(exc)
    except (StoreError, DataError, OSError) as exc:
        return None, None, 0.0, f"Not exported: {exc}"
    return result.data, result.parity, result.seconds, None


def export_section(info: RunInfo) -> None:
    """Runs > Manage: pick a format, build and check it on a click, then download it with its parity figures."""
    from core.export import MAX_PROB_DIFF, MIN_IDENTICAL, PARITY_IMAGES, SUFFIXES

    st.markdown("**Export the model**")
    store = common.store()
    if info.damaged or not store.has_model(info.run_id):
        st.caption("This run has no saved model to export." if not info.damaged else
                   "Damaged runs have nothing reliable to export.")
        return
    fmt = st.radio("Format", list(FORMAT_LABELS), format_func=FORMAT_LABELS.get, key=EXPORT_FORMAT, horizontal=True)
    st.caption(f"Each export is run in its own runtime on {PARITY_IMAGES:,} test images and compared with the Keras "
               f"model; it is offered only if no probability differs by more than {MAX_PROB_DIFF:g} and at least "
               f"{MIN_IDENTICAL:.1%} of the predictions are identical.")
    key = (info.run_id, fmt, store.version(info.run_id))
    if st.button("Build and check the export", key="runs_export_build", icon=":material/fact_check:"):
        with st.spinner(f"Building the {fmt} export and checking it on {PARITY_IMAGES:,} test images…"):
            _export(str(store.root), *key)
        st.session_state[EXPORT_SHOWN] = key
    if st.session_state.get(EXPORT_SHOWN) != key:
        return
    data, parity, seconds, refusal = _export(str(store.root), *key)  # cached by the click above
    if refusal:
        st.error(refusal, icon=":material/block:")
        return
    st.success(f"The export agrees with the Keras model, {parity.text} (took {seconds:.1f} s).",
               icon=":material/verified:")
    st.download_button(f"Download {FORMAT_LABELS[fmt]}", data=data, file_name=f"{info.run_id}{SUFFIXES[fmt]}",
                       mime="application/octet-stream", on_click="ignore", key="runs_download_export",
                       icon=":material/download:")
