"""Seed groups on the Runs page: the groups' table (mean ± standard deviation, size), their curves as a band, and
"Repeat with N more seeds" for a run (core.seed_groups finds the groups)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.seed_groups import group_of, groups_frame, mean_curve
from core.store import RunInfo, StoreError
from dashboard import common, figures_runs

REPEAT_COUNT = "runs_repeat_count"
MAX_REPEAT = 10


def groups_section(runs: list[RunInfo]) -> None:
    frame = groups_frame(runs)
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


def group_curves(runs: list[RunInfo], run_ids: list[str], epochs: dict[str, list[dict]],
                 metric: str) -> dict[str, pd.DataFrame]:
    """label -> mean/std/n per epoch of `metric` over each selected run's seed group (a group counted once)."""
    column = figures_runs.EPOCH_METRICS[metric]
    curves, seen = {}, set()
    for run_id in run_ids:
        members = [r for r in group_of(runs, run_id) if r.run_id in epochs]
        key = frozenset(r.run_id for r in members)
        if not members or key in seen:
            continue
        seen.add(key)
        frames = [figures_runs.epoch_frame(epochs[r.run_id]) for r in members]
        curves[f"{members[0].name} (n={len(members)})"] = mean_curve(frames, column)
    return curves


def repeat_section(info: RunInfo) -> None:
    """Queue N more runs of this run's recipe, each with a seed its group has not used yet."""
    if info.damaged:
        return
    runs = common.list_runs_cached()
    used = {r.config.seed for r in group_of(runs, info.run_id)}
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
