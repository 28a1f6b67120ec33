"""The Label audit page's parts: cached audits, the suspects' gallery with review marks, the CSV, the retraining."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import figures_audit, figures_label_audit
from core.label_audit import MARKS, AuditError, LabelAudit, check_mark, marked_for_exclusion, review_table
from core.store import RunInfo, RunStore, StoreError
from dashboard import common, pages, share
from dashboard.figure_cache import figure

MARK_MESSAGE = "label_audit_mark_message"
RETRAIN_MESSAGE = "label_audit_retrain_message"
TILE_COLUMNS = 5
UNMARKED = "unmarked"


@st.cache_data(max_entries=16, show_spinner="Ranking the labels with cleanlab…")
def _audit(root: str, run_id: str, version: tuple, split: str, method: str, epochs: int) -> LabelAudit:
    from core.label_audit import audit_of_run

    return audit_of_run(RunStore(root), run_id, split, method=method, epochs=epochs)


def audit(info: RunInfo, split: str, method: str, epochs: int) -> tuple[LabelAudit | None, str | None]:
    """(the split's audit, None) or (None, why there is none)."""
    store = common.store()
    try:
        return _audit(str(store.root), info.run_id, store.audit_version(info.run_id), split, method, epochs), None
    except (AuditError, StoreError) as exc:
        return None, str(exc)


@st.cache_data(max_entries=2, show_spinner="Loading the training images…")
def _training_images(root: str, run_id: str, version: tuple) -> np.ndarray:
    from core.label_audit_train import training_images

    store = RunStore(root)
    return training_images(store, run_id, store.read_train_audit(run_id))


def training_images(info: RunInfo) -> tuple[np.ndarray | None, str | None]:
    """The source's training images (uint8, by source index), or (None, why they cannot be shown)."""
    store = common.store()
    try:
        return _training_images(str(store.root), info.run_id, store.audit_version(info.run_id)), None
    except (AuditError, StoreError, ValueError, OSError) as exc:
        return None, str(exc)


def marks(info: RunInfo) -> dict[tuple[str, int], str]:
    try:
        return common.store().read_label_marks(info.run_id)
    except StoreError as exc:
        st.error(str(exc), icon=":material/warning:")
        return {}


def mark_key(split: str, index: int) -> str:
    return f"label_audit_mark_{split}_{index}"


def save_mark(run_id: str, split: str, index: int, valid: np.ndarray) -> None:
    """The mark control's callback: store the new mark (or clear it); a refusal is shown above the gallery."""
    chosen = st.session_state.get(mark_key(split, index))
    try:
        check_mark(split, index, None if chosen in (None, UNMARKED) else chosen, valid)
        common.store().write_label_mark(run_id, split, index, None if chosen in (None, UNMARKED) else chosen)
        st.session_state[MARK_MESSAGE] = None
    except (AuditError, StoreError) as exc:
        st.session_state[MARK_MESSAGE] = str(exc)


def gallery(info: RunInfo, result: LabelAudit, split: str, images: np.ndarray, names: list[str], top: int) -> None:
    """The `top` most suspect images, each with its given and suggested class, its score and its mark."""
    stored = marks(info)
    if st.session_state.get(MARK_MESSAGE):
        st.error(st.session_state[MARK_MESSAGE], icon=":material/warning:")
    valid = result.table["index"].to_numpy()
    shown = result.table.head(top)
    rows = shown.itertuples()
    for _ in range(0, len(shown), TILE_COLUMNS):
        for column, row in zip(st.columns(TILE_COLUMNS), rows):
            index = int(row.index)
            with column.container(border=True, key=f"label_audit_tile_{split}_{index}"):
                st.image(figures_audit.thumbnail(images[index]), output_format="PNG",
                         caption=f"#{index} · labelled {names[row.given]} · suggested {names[row.suggested]}")
                flag = " · **flagged**" if row.issue else ""
                st.caption(f"label quality {row.score:.2g}{flag}")
                key = mark_key(split, index)
                st.session_state.setdefault(key, stored.get((split, index), UNMARKED))
                st.selectbox("Mark", [UNMARKED, *MARKS], key=key, label_visibility="collapsed",
                             on_change=save_mark, args=(info.run_id, split, index, valid))


def downloads(info: RunInfo, result: LabelAudit, split: str, names: list[str]) -> None:
    table = review_table(result, split, marks(info), names)
    marked = int((table["mark"] != "").sum())
    st.download_button(f"Download the review as CSV ({figures_audit.count(marked, 'mark')})",
                       table.to_csv(index=False).encode(), file_name=f"{info.run_id}-{split}-label-review.csv",
                       mime="text/csv", key=f"label_audit_csv_{split}", icon=":material/download:")


def noise_and_classes(result: LabelAudit, split: str, names: list[str]) -> None:
    left, right = st.columns([3, 2])
    left.plotly_chart(figure(figures_label_audit.noise_matrix_figure, result.joint_counts, names),
                      key=f"label_audit_noise_{split}")
    quality = result.class_quality.assign(**{"class": [names[i] for i in result.class_quality["class_index"]]})
    right.markdown("**Label quality per class** (cleanlab; lowest first)")
    right.dataframe(quality.sort_values("label_quality_score")[
        ["class", "label_issues", "label_noise", "label_quality_score"]].rename(columns={
            "label_issues": "suspect labels", "label_noise": "noise rate", "label_quality_score": "quality"}),
        hide_index=True, width="stretch")


def retrain(info: RunInfo, config) -> None:
    """Queue a run with the run's config minus the training images marked "wrong label" (and the data source
    its training-set audit used, so the indices name the same images)."""
    from core.label_audit_train import audited_config

    excluded = marked_for_exclusion(marks(info))
    try:
        config = audited_config(common.store(), info.run_id, common.store().read_train_audit(info.run_id))
    except StoreError:
        pass
    new = config.replace(exclude_train=tuple(sorted(set(config.exclude_train) | set(excluded))))
    name = f"{info.name} without {figures_audit.count(len(excluded), 'marked image')}"[:100]
    try:
        run_id = common.job_manager().submit(new, name)
    except (ValueError, StoreError) as exc:
        st.session_state[RETRAIN_MESSAGE] = ("error", str(exc))
        return
    st.session_state[RETRAIN_MESSAGE] = ("ok", run_id)
    try:  # remembered with the audit, so its comparison is offered here in any later session
        audit = common.store().read_train_audit(info.run_id)
        common.store().write_train_audit(info.run_id, retrained=[*(audit.retrained if audit else []), run_id])
    except StoreError:
        pass


def retrain_panel(info: RunInfo, config) -> None:
    excluded = marked_for_exclusion(marks(info))
    st.button(f"Train without the marked images ({len(excluded)})", key="label_audit_retrain",
              icon=":material/replay:", disabled=not excluded, on_click=retrain, args=(info, config),
              help="Queues a run with this run's settings and the training images marked 'wrong label' left out "
                   "(its config's 'Excluded training images')")
    message = st.session_state.get(RETRAIN_MESSAGE)
    if message and message[0] == "error":
        st.error(message[1])
    elif message:
        st.success(f"Queued run `{message[1]}`, {figures_audit.count(len(excluded), 'image')} left out. "
                   "Follow it on Train; once it has finished, its comparison report with this run is offered here.", icon=":material/check_circle:")
        pages.link("train", "Follow it on Train")
    compare(info.run_id)


def compare(run_id: str) -> None:
    """The runs retrained without marked images that have finished: each one's comparison report with this run."""
    try:
        retrained = common.store().read_train_audit(run_id).retrained
    except (StoreError, AttributeError):
        return
    for other in retrained:
        try:
            status = common.store().read_status(other)
        except StoreError:  # deleted since
            continue
        if status.model_saved:
            st.download_button(f"Comparison report with {common.plain(status.name)} (.html)",
                               data=lambda other=other: share.comparison_html(run_id, other), on_click="ignore",
                               file_name=f"compare-{run_id}-{other}.html", mime="text/html",
                               key=f"label_audit_compare_{other}", icon=":material/compare:")
