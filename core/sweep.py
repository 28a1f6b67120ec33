"""Sweeps: an Optuna study in the run store (Optuna's journal file), whose every trial is an ordinary run.

A worker (`run_sweep`, the "sweep" task kind and `python -m core sweep run`) asks the study for a trial under the
sweep's lock, trains one run per seed with the trial's parameters, and tells the study the mean validation
accuracy. Several workers, in one process each, may serve one sweep at once: each ask happens under the lock,
so no trial is run twice and the sweep never starts more than its number of trials. A worker that dies leaves
its trial RUNNING; the next worker to ask marks it failed (its run reads "interrupted") and goes on.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from core.store import RunStore, StoreError, now_iso, pid_alive
from core.store.disk import owner
from core.sweep_space import SweepSpec, distributions

STOP_POLL_S = 0.5
PRUNER_STARTUP_TRIALS = 2  # trials that finish before the median pruner may prune one


def load_study(store: RunStore, sweep_id: str):
    """The sweep's Optuna study, created in its journal file on first use."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = read_spec(store, sweep_id)
    storage = JournalStorage(JournalFileBackend(str(store.sweep_journal_path(sweep_id))))
    return optuna.create_study(study_name=sweep_id, storage=storage, direction="maximize",
                               sampler=_sampler(spec), pruner=_pruner(spec), load_if_exists=True)


def _sampler(spec: SweepSpec):
    import optuna

    if spec.sampler == "grid":
        from core.sweep_grid import SweepGrid

        return SweepGrid({k: v["choices"] for k, v in spec.space.items()})
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler()
    return optuna.samplers.TPESampler()


def _pruner(spec: SweepSpec):
    import optuna

    if not spec.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=0)


def create_sweep(store: RunStore, spec: SweepSpec) -> str:
    """Store the spec and create its study; returns the sweep id."""
    sweep_id = store.create_sweep(spec.name, {**spec.to_dict(), "created": now_iso()})
    load_study(store, sweep_id)
    return sweep_id


def read_spec(store: RunStore, sweep_id: str) -> SweepSpec:
    try:
        return SweepSpec.from_dict(store.read_sweep(sweep_id))
    except TypeError as exc:
        raise StoreError(f"sweep {sweep_id!r}: its spec is unreadable ({exc})") from None


def request_stop(store: RunStore, sweep_id: str) -> None:
    """Workers stop their running trials (as stopped) within a second and start no more."""
    store.update_sweep(sweep_id, stop_requested=True)


# ----- the worker -------------------------------------------------------------------------------------------
def run_sweep(store: RunStore, stop_event: threading.Event, sweep_id: str, parallel: int = 1,
              max_trials: int | None = None, exclusive: bool | None = None) -> str:
    """The "sweep" task kind: run trials until the sweep has its number of trials or a stop is asked for.

    parallel > 1 starts parallel - 1 more workers (`python -m core sweep run`) beside this one. max_trials: at
    most this many trials from this worker. exclusive: hold the store's one-training lock while a trial trains
    (default: unless the user asked for trials at once). Returns "completed" or "stopped"."""
    spec = read_spec(store, sweep_id)
    if spec.stop_requested:  # running a stopped sweep resumes it
        store.update_sweep(sweep_id, stop_requested=False)
    stop = threading.Event()
    watcher = threading.Thread(target=watch_stop, args=(store, sweep_id, stop_event, stop), daemon=True)
    watcher.start()
    exclusive = int(parallel) == 1 if exclusive is None else exclusive
    helpers = [_start_helper(store, sweep_id) for _ in range(max(0, int(parallel) - 1))]
    try:
        study, done = load_study(store, sweep_id), 0
        while not stop.is_set() and (max_trials is None or done < max_trials):
            trial = _ask(store, sweep_id, study, spec)
            if trial is None:
                break
            run_trial(store, spec, study, trial, stop, exclusive)
            done += 1
    finally:
        if stop.is_set():
            with contextlib.suppress(StoreError, OSError):
                request_stop(store, sweep_id)  # the helpers stop too
        for helper in helpers:
            helper.wait()
        stop.set()
    return "stopped" if read_spec(store, sweep_id).stop_requested else "completed"


def watch_stop(store: RunStore, sweep_id: str, outer: threading.Event | None, stop: threading.Event) -> None:
    """Set `stop` when the caller stops (the queue's Stop, Ctrl+C) or anyone asks the sweep to stop."""
    while not stop.is_set():
        try:
            requested = read_spec(store, sweep_id).stop_requested
        except (StoreError, OSError):
            requested = True  # the sweep was deleted
        if requested or (outer is not None and outer.is_set()):
            stop.set()
            return
        time.sleep(STOP_POLL_S)


def _start_helper(store: RunStore, sweep_id: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", "sweep", "run", sweep_id, "--runs-dir", str(store.root),
                             "--parallel", "1", "--beside"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ask(store: RunStore, sweep_id: str, study, spec: SweepSpec):
    """A new trial, or None when the sweep has all its trials; under the sweep's lock."""
    with store.sweep_lock(sweep_id):
        fail_orphans(store, study)
        started = [t for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"]  # enqueued: not yet
        if len(started) >= spec.n_trials:
            return None
        trial = study.ask(distributions(spec))
        for key, value in {**owner(), "started": now_iso(), "run_ids": []}.items():
            trial.set_user_attr(key, value)
        return trial


def fail_orphans(store: RunStore, study) -> list[int]:
    """Mark failed the RUNNING trials whose worker died (on this host); their active runs interrupted."""
    import socket

    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != socket.gethostname() or pid_alive(attrs.get("pid"), attrs.get("pid_started")):
            continue
        for run_id in attrs.get("run_ids", []):
            with contextlib.suppress(StoreError, OSError):
                status = store.read_status(run_id)
                if status.status == "interrupted":
                    store.write_status(run_id, status="interrupted", ended=now_iso(), error=status.error)
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        failed.append(trial.number)
    return failed


# ----- one trial --------------------------------------------------------------------------------------------
@dataclass
class TrialOutcome:
    state: str  # completed, pruned, failed, stopped
    values: list[float] = field(default_factory=list)  # each seed's final validation accuracy
    test_accuracies: list[float] = field(default_factory=list)
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)
    duration: float = 0.0

    def attributes(self) -> dict:
        """What the study keeps of the trial beside its value (the Sweep page's table reads them)."""
        found = {"outcome": self.state, "duration": self.duration, "run_ids": self.run_ids}
        if self.test_accuracies:
            found["test_accuracy"] = sum(self.test_accuracies) / len(self.test_accuracies)
        if self.error:
            found["error"] = self.error[:500]
        return found


def run_trial(store: RunStore, spec: SweepSpec, study, trial, stop: threading.Event,
              exclusive: bool = True) -> TrialOutcome:
    """Train the trial's runs (one per seed) and tell the study how it went."""
    outcome = train_trial(store, spec, trial.number, trial.params, stop, trial=trial, exclusive=exclusive)
    for key, value in outcome.attributes().items():
        trial.set_user_attr(key, value)
    tell(study, trial, outcome)
    return outcome


def tell(study, trial, outcome: TrialOutcome) -> None:
    from optuna.trial import TrialState

    if outcome.state == "completed":
        study.tell(trial, sum(outcome.values) / len(outcome.values))
    else:
        study.tell(trial, state=TrialState.PRUNED if outcome.state == "pruned" else TrialState.FAIL)


def train_trial(store: RunStore, spec: SweepSpec, number: int, params: dict, stop: threading.Event,
                trial=None, exclusive: bool = True) -> TrialOutcome:
    """One trial's runs, one per seed, tagged with the sweep and `number`. With an Optuna `trial`, the first run
    reports to its pruner and the trial's run_ids attribute follows the runs as they are created."""
    started = time.perf_counter()
    try:
        config = spec.base_config().replace(**params)
    except (ValueError, TypeError) as exc:
        outcome = TrialOutcome("failed", error=f"these parameters make no valid config: {exc}")
    else:
        outcome = _train_seeds(store, spec, number, config, stop, trial, exclusive)
    outcome.duration = round(time.perf_counter() - started, 2)
    return outcome


def _train_seeds(store: RunStore, spec: SweepSpec, number: int, config, stop: threading.Event,
                 trial=None, exclusive: bool = True) -> TrialOutcome:
    from core.callbacks import TrialCallback
    from core.trainer import train

    outcome = TrialOutcome("completed")
    for index, seed in enumerate(spec.seed_list()):
        seeded = config.replace(seed=seed)
        suffix = f" seed {seed}" if spec.seeds > 1 else ""
        run_id = store.create_run(seeded, name=f"{spec.name} #{number}{suffix}")
        store.write_status(run_id, sweep_id=spec.sweep_id, trial_number=number)
        outcome.run_ids.append(run_id)
        if trial is not None:
            trial.set_user_attr("run_ids", outcome.run_ids)
        watcher = TrialCallback(trial if spec.pruning and index == 0 else None)  # the first seed feeds the pruner
        result = train(seeded, store, run_id=run_id, stop_event=stop, callbacks=[watcher], exclusive=exclusive)
        status = store.read_status(run_id)
        if status.test_accuracy is not None:
            outcome.test_accuracies.append(status.test_accuracy)
        if watcher.pruned_at is not None and result.status == "completed":
            store.write_status(run_id, status="pruned", phase="pruned",
                               error=f"pruned by the sweep after epoch {watcher.pruned_at}: its validation accuracy "
                                     f"was below the median of earlier trials at that epoch")
            outcome.state = "pruned"
            return outcome
        if result.status != "completed":
            outcome.state, outcome.error = ("stopped" if result.status == "stopped" else "failed"), result.error
            return outcome
        if watcher.val_accuracy is None:
            outcome.state, outcome.error = "failed", "the run recorded no validation accuracy"
            return outcome
        outcome.values.append(watcher.val_accuracy)
    return outcome
