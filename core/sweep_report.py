"""What a sweep is now: its trials as a table and a summary, read from its study (shared by the CLI and the page)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from core.store import RunStore
from core.sweep import load_study, read_spec
from core.sweep_space import SweepSpec, describe

TRIAL_STATES = ("running", "completed", "pruned", "failed", "stopped")


def trial_state(trial) -> str:
    """Optuna's state, with a failed trial that was stopped on request called stopped."""
    name = trial.state.name
    if name == "FAIL":
        return "stopped" if trial.user_attrs.get("outcome") == "stopped" else "failed"
    return {"RUNNING": "running", "COMPLETE": "completed", "PRUNED": "pruned", "WAITING": "waiting"}.get(name, name)


def trials_frame(study, spec: SweepSpec) -> pd.DataFrame:
    """One row per trial: state, parameters, objective (mean validation accuracy), test accuracy, duration, node."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        rows.append({
            "trial": trial.number,
            "state": trial_state(trial),
            **{name: trial.params.get(name) for name in spec.space},
            "val_accuracy": trial.value if trial.state.name == "COMPLETE" else None,
            "test_accuracy": attrs.get("test_accuracy"),
            "duration_s": attrs.get("duration"),
            "node": attrs.get("node") or attrs.get("host"),
            "runs": list(attrs.get("run_ids", [])),
            "error": attrs.get("error"),
        })
    columns = ["trial", "state", *spec.space, "val_accuracy", "test_accuracy", "duration_s", "node", "runs", "error"]
    return pd.DataFrame(rows, columns=columns)


@dataclass
class SweepSummary:
    sweep_id: str
    name: str
    state: str  # running, stopped, finished, waiting (trials left to run: `sweep run` starts or resumes it)
    space: str
    sampler: str
    pruning: bool
    seeds: int
    n_trials: int
    counts: dict  # trial state -> number of trials
    best: dict | None  # trial, val_accuracy, test_accuracy, params, runs

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(spec: SweepSpec, frame: pd.DataFrame, study=None) -> SweepSummary:
    counts = {state: int((frame["state"] == state).sum()) for state in TRIAL_STATES}
    if counts["running"]:
        state = "running"
    elif spec.stop_requested:
        state = "stopped"
    elif len(frame) >= spec.n_trials:
        state = "finished"
    else:
        state = "waiting"
    done = frame[frame["state"] == "completed"]
    best = None
    if len(done):
        row = done.loc[done["val_accuracy"].astype(float).idxmax()]
        best = {"trial": int(row["trial"]), "val_accuracy": float(row["val_accuracy"]),
                "test_accuracy": None if pd.isna(row["test_accuracy"]) else float(row["test_accuracy"]),
                "params": {name: _plain(row[name]) for name in spec.space}, "runs": row["runs"]}
    return SweepSummary(spec.sweep_id, spec.name, state, describe(spec), spec.sampler, spec.pruning, spec.seeds,
                        spec.n_trials, counts, best)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def sweep_state(store: RunStore, sweep_id: str) -> tuple[SweepSpec, pd.DataFrame, SweepSummary]:
    """(spec, trials table, summary) of one sweep, read now."""
    spec = read_spec(store, sweep_id)
    frame = trials_frame(load_study(store, sweep_id), spec)
    return spec, frame, summarize(spec, frame)
