"""Seed groups on the Runs page: the groups' table (mean ± standard deviation, size), their curves as a band, and
"Repeat with N more seeds" for a run (core.seed_groups finds the groups)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.seed_groups import group_key, groups_frame, mean_curve
from core.store import RunInfo, StoreError
from dashboard import common, figures_runs

REPEAT_COUNT = "runs_repeat_count"
MAX_REPEAT = 10


@st.cache_resource(max_entries=4, show_spinner=False)
def recipes(root: str, key: str, _runs: tuple[RunInfo, ...]) -> dict[str, str]:
    """Run id -> its recipe (core.seed_groups.group_key), once per run list (`key`): a recipe depends only on the
    run's config, and 1,000 of them took a tenth of a second. Shared as is, never modified."""
    return {info.run_id: group_key(info.config) for info in _runs if info.config is not None}


@st.cache_data(max_entries=4, show_spinner=False)
def cached_groups(root: str, key: str, _runs: tuple[RunInfo, ...]) -> pd.DataFrame:
    """The seed groups of finished runs, once per run list (`key`): finished runs change only with their files."""
    return groups_frame(list(_runs))


def members(runs: list[RunInfo], key: str, run_id: str) -> list[RunInfo]:
    """core.seed_groups.group_of (the runs of `run_id`'s recipe, oldest first) with the recipes looked up in the
    cache, not worked out again for every run."""
    recipe = recipes(str(common.store().root), key, tuple(runs))
    if run_id not in recipe:
        return []
    same = [info for info in runs if recipe.get(info.run_id) == recipe[run_id]]
    return sorted(same, key=lambda r: (r.record.created or "", r.run_id))


def groups_section(runs: list[RunInfo], key: str) -> None:
    frame = cached_groups(str(common.store().root), key, tuple(runs))
    if frame.empty:
        return
    st.subheader("Seed groups")
    st.caption("Runs whose configs differ only in the seed: one recipe. The spread between seeds is the noise any "
               "difference between recipes must beat (Compare page: the test of two groups' means).")
    shown = pd.DataFrame({
        "Group": frame["group"], "Runs": frame["size"], "Seeds": frame["seeds"],
        "Test accuracy (mean ± std)": [f"{m:.2%} ± {s:.2%}" for m, s in
                                       zip(frame["mean_test_accuracy"], frame["std_test_accuracy"])]})
    st.dataframe(shown, hide_index=True, key="runs_groups_table", width="stretch")


def group_curves(runs: list[RunInfo], key: str, run_ids: list[str], metric: str) -> dict[str, pd.DataFrame]:
    """label -> mean/std/n per epoch of `metric` over each selected run's seed group (a group counted once)."""
    column = figures_runs.EPOCH_METRICS[metric]
    curves, seen = {}, set()
    for run_id in run_ids:
        group = members(runs, key, run_id)  # oldest first
        epochs = common.epoch_records(info.run_id for info in group if not info.damaged)
        if not epochs or frozenset(epochs) in seen:
            continue
        seen.add(frozenset(epochs))
        first = next(info for info in group if info.run_id in epochs)  # the group's oldest readable run names it
        frames = [figures_runs.epoch_frame(records) for records in epochs.values()]
        curves[f"{first.name} (n={len(epochs)})"] = mean_curve(frames, column)
    return curves


def repeat_section(info: RunInfo, runs: list[RunInfo], key: str) -> None:
    """Queue N more runs of this run's recipe, each with a seed its group has not used yet."""
    if info.damaged:
        return
    used = {r.config.seed for r in members(runs, key, info.run_id)}
    left, right = st.columns([1, 2], vertical_alignment="bottom")
    count = left.number_input("More seeds", 1, MAX_REPEAT, 2, key=REPEAT_COUNT)
    if right.button(f"Repeat with {count} more seed{'s' * (count != 1)}", key="runs_repeat", icon=":material/repeat:",
                    help="Queues runs of this config that differ only in the seed: a seed group"):
        seeds, candidate = [], info.config.seed
        while len(seeds) < count:
            candidate += 1
            if candidate not in used:
                seeds.append(candidate)
        try:
            for seed in seeds:
                common.job_manager().submit(info.config.replace(seed=seed), f"{info.name} seed {seed}"[:100])
        except (StoreError, ValueError) as exc:
            st.error(f"Not queued: {exc}")
            return
        st.success(f"Queued {count} run(s) with seeds {', '.join(map(str, seeds))}; follow them on the Train page.")
