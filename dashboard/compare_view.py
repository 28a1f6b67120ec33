"""The comparison of two runs as a block any page can show: `show_comparison(run_a, run_b)` (core.compare does the
statistics): accuracies with their 95% intervals, McNemar's test in a sentence, the two galleries of images one run
gets right and the other wrong, the confusion-matrix difference, and the seed groups' test when both have one."""

from __future__ import annotations

import streamlit as st

from core.compare import CompareError, compare_groups, compare_runs, group_accuracies
from core.seed_groups import group_of
from core.store import RunInfo, StoreError
from dashboard import common, loaders
from dashboard.figure_cache import thumbnails
from dashboard.figures_compare import confusion_difference_figure

GALLERY_SIZE = 40


@st.cache_data(max_entries=16, show_spinner="Comparing the two runs' test predictions…")
def _comparison(root: str, run_a: str, run_b: str, versions: tuple):
    from core.store import RunStore

    return compare_runs(RunStore(root), run_a, run_b)


def show_comparison(info_a: RunInfo, info_b: RunInfo) -> None:
    store = common.store()
    try:
        result = _comparison(str(store.root), info_a.run_id, info_b.run_id,
                             (store.version(info_a.run_id), store.version(info_b.run_id)))
    except (CompareError, StoreError) as exc:
        st.error(f"Cannot compare: {exc}", icon=":material/block:")
        return
    columns = st.columns(2)
    for column, label, acc in ((columns[0], "A", result.a), (columns[1], "B", result.b)):
        column.metric(f"{label}: {common.plain(acc.name)}", f"{acc.value:.2%}",
                      help=f"{acc.correct:,} of {acc.n:,} test images right")
        column.caption(f"95% confidence interval (Wilson): {acc.low:.2%} to {acc.high:.2%}")
    (st.success if result.significant else st.info)(result.sentence + " (exact McNemar test on the paired "
                                                    "test predictions).", icon=":material/balance:")
    _groups(info_a, info_b)
    images, problem = loaders.test_images(info_a)
    left, right = st.columns(2)
    _gallery(left, f"A right, B wrong ({len(result.a_right_b_wrong)})", images, problem, result.a_right_b_wrong)
    _gallery(right, f"B right, A wrong ({len(result.b_right_a_wrong)})", images, problem, result.b_right_a_wrong)
    st.markdown("**Confusion matrix, B minus A**")
    st.caption("Off the diagonal, blue cells are confusions B makes more often, red ones A makes more often.")
    names = info_a.record.class_names or [str(i) for i in range(len(result.confusion_difference))]
    st.plotly_chart(confusion_difference_figure(result.confusion_difference, list(names)), key="compare_confusion",
                    config={"displaylogo": False})


def _gallery(column, title: str, images, problem: str | None, indices: list[int]) -> None:
    column.markdown(f"**{title}**")
    shown = indices[:GALLERY_SIZE]
    if not shown:
        column.caption("None.")
        return
    if images is None:
        column.caption(f"Test indices (no images: {problem}): " + ", ".join(map(str, shown)))
        return
    column.image(thumbnails(images, shown), caption=[f"#{i}" for i in shown])
    if len(indices) > len(shown):
        column.caption(f"The first {len(shown)} of {len(indices)}.")


def _groups(info_a: RunInfo, info_b: RunInfo) -> None:
    runs = common.list_runs_cached()
    groups = [[r.run_id for r in group_of(runs, info.run_id) if r.record.test_accuracy is not None]
              for info in (info_a, info_b)]
    if set(groups[0]) == set(groups[1]):
        st.caption(f"A and B are runs of one recipe (a seed group of {len(groups[0])}): their difference is seed "
                   "noise.")
        return
    if min(len(g) for g in groups) < 2:
        st.caption("For a test of the recipes' means, give each run more seeds (Runs page: Repeat with more seeds, "
                   "or `python -m core train --seeds 42,43,44`).")
        return
    try:
        result = compare_groups(*(group_accuracies(common.store(), group) for group in groups))
    except (CompareError, StoreError) as exc:
        st.caption(str(exc))
        return
    (st.success if result.p_value < 0.05 else st.info)(f"Seed groups: {result.sentence}.", icon=":material/groups:")
