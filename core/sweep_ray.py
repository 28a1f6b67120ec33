"""The `ray` executor of a sweep: the same study, searched by Ray Tune with Optuna as its searcher, each trial a
Tune trial that trains the trial's runs on whichever node Ray gives it. The run store must be on a path every node
shares (the trials write their runs there, the searcher writes the study's journal there, and the trials report
their epochs to that journal for the pruner).

Pruning is the study's own median pruner, asked by each trial after every epoch as on the local executor
(core.callbacks.TrialCallback). Not a Tune scheduler: Ray's OptunaSearch gives its study Optuna's NopPruner and
leaves early stopping to Tune's schedulers, which stop a trial by ending its worker (the run would end without its
model and without a final status), and Tune's MedianStoppingRule is another rule (running means) than the study's.

`python -m core sweep run SWEEP --executor ray [--address auto|HOST:PORT] [--parallel N]`."""

from __future__ import annotations

import socket
import threading

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from core.store import RunStore, StoreError
from core.sweep import fail_orphans, load_study, read_spec, tell, train_trial, watch_stop
from core.sweep_space import SpaceError, distributions

NUMBER = "lenet_trial_number"  # the Optuna trial's number and id, passed to the trainable beside the parameters
TRIAL_ID = "lenet_trial_id"
CONNECT_TIMEOUT_S = 3.0


class LabSearch(OptunaSearch):
    """Ray's OptunaSearch on the sweep's own study, which also hands the trainable its trial number and keeps
    what the trial reports (runs, node, test accuracy, outcome) as the trial's attributes, as the local executor
    does."""

    sweep: tuple[str, str] = ("", "")  # (store root, sweep id): set before the search starts

    def suggest(self, trial_id: str):
        if _stop_requested(*self.sweep):
            return Searcher.FINISHED  # no more trials; the running ones stop their own runs
        params = super().suggest(trial_id)
        if params is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        return {**params, NUMBER: ot_trial.number, TRIAL_ID: ot_trial._trial_id}

    def on_trial_result(self, trial_id: str, result: dict):
        """Trials report to Tune once, at their end; each epoch's validation accuracy goes from the trial itself
        to the study (and its pruner), not through Tune."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        from core.sweep import TrialOutcome

        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        result = result or {}
        outcome = TrialOutcome(result.get("outcome") or "failed", values=list(result.get("values") or []),
                               error=result.get("error") or ("the Ray trial raised an error" if error else None))
        for key in ("outcome", "duration", "run_ids", "test_accuracy", "error", "node"):
            if result.get(key) is not None:
                ot_trial.set_user_attr(key, result[key])
        if outcome.state == "completed" and not outcome.values:
            outcome.state = "failed"
        tell(self._ot_study, ot_trial, outcome)
        self._completed_trials.add(trial_id)


def _stop_requested(root: str, sweep_id: str) -> bool:
    try:
        return read_spec(RunStore(root), sweep_id).stop_requested
    except (StoreError, OSError):
        return True  # the sweep was deleted


def ray_trial(config: dict, root: str, sweep_id: str) -> None:
    """The Tune trainable: this trial's runs on this node, then one report with the objective and the runs.

    The trial opens its Optuna trial in the sweep's study (the journal on the shared store), as the local executor
    holds it: its first run reports each epoch's validation accuracy there and asks the study's own pruner (the
    median pruner) whether to stop, so a poor trial ends after that epoch with its run kept and marked pruned."""
    import optuna
    from ray import tune

    store = RunStore(root)
    spec = read_spec(store, sweep_id)
    stop = threading.Event()
    threading.Thread(target=watch_stop, args=(store, sweep_id, None, stop), daemon=True).start()
    params = {name: config[name] for name in spec.space}
    trial = optuna.trial.Trial(load_study(store, sweep_id), int(config[TRIAL_ID]))
    outcome = train_trial(store, spec, int(config[NUMBER]), params, stop, trial=trial,
                          exclusive=False)  # Ray shares out the CPUs
    stop.set()
    report = {**outcome.attributes(), "values": outcome.values, "node": f"{socket.gethostname()}"}
    # Tune wants the metric in every report; a trial that did not complete has none (NaN; the searcher tells the
    # study its real state from "outcome")
    done = outcome.state == "completed" and outcome.values
    report["val_accuracy"] = sum(outcome.values) / len(outcome.values) if done else float("nan")
    tune.report(report)


def connect(address: str | None) -> None:
    """ray.init on the cluster at `address` (auto, HOST:PORT) or a local instance; a one-line error otherwise."""
    import ray

    if address and address != "auto":
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise SpaceError(f"--address {address!r} is not valid; allowed: auto or HOST:PORT (e.g. 10.0.0.5:6379)")
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except OSError:
            raise SpaceError(f"the Ray cluster at {address} does not answer; start its head node there with "
                             f"`ray start --head --port {port}`, or check the address") from None
    try:
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError) as exc:
        raise SpaceError(f"no Ray cluster at {address or 'this machine'}: {str(exc).splitlines()[0]}") from None


def run_on_ray(store: RunStore, sweep_id: str, address: str | None = None, parallel: int = 1) -> str:
    """Run the sweep's remaining trials through Ray Tune; returns "completed" or "stopped"."""
    import ray
    from ray import tune

    spec = read_spec(store, sweep_id)
    if spec.stop_requested:
        store.update_sweep(sweep_id, stop_requested=False)
    connect(address)
    study = load_study(store, sweep_id)
    with store.sweep_lock(sweep_id):
        fail_orphans(store, study)
        left = spec.n_trials - len([t for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"])
    if left <= 0:
        return "completed"
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    search = LabSearch(space=distributions(spec), metric="val_accuracy", mode="max", sampler=study.sampler,
                       study_name=sweep_id,
                       storage=JournalStorage(JournalFileBackend(str(store.sweep_journal_path(sweep_id)))))
    search.sweep = (str(store.root.resolve()), sweep_id)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)) // max(1, parallel))
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= parallel else 0
    trainable = tune.with_resources(tune.with_parameters(ray_trial, root=str(store.root.resolve()),
                                                         sweep_id=sweep_id), {"cpu": cpus, "gpu": gpus})
    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=search, num_samples=left,
                                                              max_concurrent_trials=parallel),
                       run_config=tune.RunConfig(storage_path=str(store.sweep_ray_dir(sweep_id)), name="tune",
                                                 verbose=0))
    tuner.fit()
    for trial_id in set(search._ot_trials) - set(search._completed_trials):  # ended without a report (killed)
        search.on_trial_complete(trial_id, {"outcome": "failed", "error": "the Ray trial ended without a report"})
    return "stopped" if read_spec(store, sweep_id).stop_requested else "completed"
