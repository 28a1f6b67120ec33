"""Seed groups: runs whose configs differ only in the seed, summarised as mean ± standard deviation with their size."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from core.store import RunInfo

IGNORED = ("seed", "data_path")  # the same data read from another path is the same recipe


def group_key(config) -> str:
    """The config without its seed, as text: equal for runs of one recipe."""
    data = {k: v for k, v in config.to_dict().items() if k not in IGNORED}
    return json.dumps(data, sort_keys=True)


def seed_groups(runs: list[RunInfo], finished_only: bool = True) -> dict[str, list[RunInfo]]:
    """Recipe key -> its runs (oldest first); only runs with a test accuracy when finished_only."""
    groups: dict[str, list[RunInfo]] = {}
    for info in sorted(runs, key=lambda r: (r.record.created or "", r.run_id)):
        if info.config is None or (finished_only and info.record.test_accuracy is None):
            continue
        groups.setdefault(group_key(info.config), []).append(info)
    return groups


def group_of(runs: list[RunInfo], run_id: str) -> list[RunInfo]:
    """The runs of `run_id`'s seed group (itself included, oldest first), finished or not."""
    target = next((r for r in runs if r.run_id == run_id and r.config is not None), None)
    if target is None:
        return []
    key = group_key(target.config)
    members = [r for r in runs if r.config is not None and group_key(r.config) == key]
    return sorted(members, key=lambda r: (r.record.created or "", r.run_id))


def groups_frame(runs: list[RunInfo], min_size: int = 2) -> pd.DataFrame:
    """One row per seed group of at least `min_size` finished runs: name, size, seeds, mean ± std test accuracy."""
    rows = []
    for members in seed_groups(runs).values():
        if len(members) < min_size:
            continue
        accuracies = np.array([m.record.test_accuracy for m in members], float)
        rows.append({"group": members[0].name, "size": len(members),
                     "seeds": ", ".join(str(m.config.seed) for m in members),
                     "mean_test_accuracy": float(accuracies.mean()),
                     "std_test_accuracy": float(accuracies.std(ddof=1)),
                     "runs": [m.run_id for m in members]})
    return pd.DataFrame(rows, columns=["group", "size", "seeds", "mean_test_accuracy", "std_test_accuracy", "runs"])


def mean_curve(curves: list[pd.DataFrame], metric: str) -> pd.DataFrame:
    """Per epoch: the mean, standard deviation and count of `metric` over a group's epoch tables."""
    stacked = pd.concat([c[["epoch", metric]] for c in curves if metric in c and "epoch" in c], ignore_index=True)
    if stacked.empty:
        return pd.DataFrame(columns=["epoch", "mean", "std", "n"])
    grouped = stacked.dropna().groupby("epoch")[metric]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1).fillna(0.0),
                         "n": grouped.count()}).reset_index()
