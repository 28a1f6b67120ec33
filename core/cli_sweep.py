"""`python -m core sweep create|run|status|best|list|stop|delete`: Optuna sweeps whose trials are ordinary runs
(registered by core.cli). The definition is checked before anything is stored; every refusal is one line."""

from __future__ import annotations

import json
import signal
import threading

from core.config import PRESETS, TrainConfig, preset
from core.store import RunStore, StoreError
from core.sweep_space import SAMPLERS, SpaceError, make_spec, parse_dimension

EXECUTORS = ("local", "ray")


def add_commands(commands, hidden_flags) -> None:
    sweep = commands.add_parser("sweep", help="hyperparameter sweeps (Optuna); every trial is an ordinary run")
    actions = sweep.add_subparsers(dest="sweep_command", required=True, parser_class=type(sweep))
    create = actions.add_parser("create", help="define a sweep: base config, search space, trials, seeds")
    create.add_argument("--name", required=True, help="the sweep's name; its runs are named '<name> #<trial>'")
    create.add_argument("--preset", choices=list(PRESETS), help="base config (default: the form's defaults)")
    create.add_argument("--data", dest="data_path", help="Keras-layout .npz or a folder of IDX files")
    create.add_argument("--space", action="append", default=[], metavar="FIELD=SPEC",
                        help="repeatable: field=low:high (a range), field=low:high:log, field=a,b,c (choices) "
                             "or field=value (fixed)")
    create.add_argument("--trials", type=int, default=8, help="trials to run (default 8)")
    create.add_argument("--seeds", type=int, default=1, help="runs per configuration, seeds base, base+1, ...")
    create.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna's sampler (default tpe)")
    create.add_argument("--no-pruning", dest="pruning", action="store_false",
                        help="never end a poor trial early (default: Optuna's median pruner)")
    run = actions.add_parser("run", help="run (or resume) a sweep's trials until it has them all")
    run.add_argument("--executor", choices=EXECUTORS, default="local",
                     help="local: trials in this process (default); ray: trials on a Ray cluster via Ray Tune")
    run.add_argument("--address", help="the Ray cluster: auto or HOST:PORT (default: a local Ray instance)")
    run.add_argument("--parallel", type=int, default=1, help="trials at once (default 1)")
    run.add_argument("--max-trials", type=int, help="at most this many trials from this worker")
    run.add_argument("--beside", action="store_true",
                     help="train beside other trainings of the store, without its one-training lock (the helpers "
                          "that --parallel starts do)")
    status = actions.add_parser("status", help="the sweep's trials: state, parameters, objective, node")
    best = actions.add_parser("best", help="the best trial so far (by validation accuracy)")
    stop = actions.add_parser("stop", help="stop the running trials (as stopped) and start no more")
    delete = actions.add_parser("delete", help="delete a sweep's study (its runs stay in the store)")
    for sub in (run, status, best, stop, delete):
        sub.add_argument("sweep", help="sweep id (see `sweep list`)")
    actions.add_parser("list", help="the sweeps in the store")
    for sub in (create, run, status, best, stop, delete, actions.choices["list"]):
        hidden_flags(sub)


def _emit(args, payload, text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)


def cmd_create(args, store: RunStore) -> int:
    from core import sweep

    base = preset(args.preset) if args.preset else TrainConfig()
    if args.data_path:
        base = base.replace(data_path=args.data_path)
    space = dict(parse_dimension(text) for text in args.space)
    spec = make_spec(args.name, base, space, n_trials=args.trials, seeds=args.seeds, sampler=args.sampler,
                     pruning=args.pruning)
    sweep_id = sweep.create_sweep(store, spec)
    _emit(args, {"sweep_id": sweep_id, **sweep.read_spec(store, sweep_id).to_dict()},
          f"sweep {sweep_id}: {spec.n_trials} trials x {spec.seeds} seed(s), {spec.sampler}, pruning "
          f"{'on' if spec.pruning else 'off'}\nrun it: python -m core sweep run {sweep_id}")
    return 0


def cmd_run(args, store: RunStore) -> int:
    from core import sweep

    if args.parallel < 1 or args.parallel > 64:
        raise SpaceError(f"--parallel={args.parallel}; allowed: 1 to 64")
    if args.max_trials is not None and args.max_trials < 1:
        raise SpaceError(f"--max-trials={args.max_trials}; allowed: 1 or more")
    sweep.read_spec(store, args.sweep)  # a deleted or unknown sweep is refused before anything loads
    if args.executor == "ray":
        try:
            from core.sweep_ray import run_on_ray
        except ImportError:
            raise SpaceError("the ray executor needs Ray Tune: pip install -r requirements.txt "
                             "(it pins ray[tune])") from None

        word = run_on_ray(store, args.sweep, address=args.address, parallel=args.parallel)
    else:
        if args.address:
            raise SpaceError("--address is for --executor ray")
        stop = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
        try:
            word = sweep.run_sweep(store, stop, args.sweep, parallel=args.parallel, max_trials=args.max_trials,
                                   exclusive=False if args.beside or args.parallel > 1 else None)
        finally:
            signal.signal(signal.SIGINT, previous)
    return _print_status(args, store, args.sweep, word)


def _print_status(args, store: RunStore, sweep_id: str, word: str | None = None) -> int:
    from core.sweep_report import sweep_state

    _, frame, summary = sweep_state(store, sweep_id)
    payload = {**summary.to_dict(), "trials": json.loads(frame.to_json(orient="records"))}
    if word:
        payload["worker"] = word
    shown = frame.drop(columns=["runs"]).fillna("")
    counts = ", ".join(f"{n} {state}" for state, n in summary.counts.items() if n)
    text = (f"sweep {sweep_id} ({summary.name}): {summary.state}; {len(frame)}/{summary.n_trials} trials"
            + (f" ({counts})" if counts else "") + f"\nspace: {summary.space}\n"
            + (shown.to_string(index=False) if len(frame) else "no trial yet"))
    _emit(args, payload, text)
    return 0


def cmd_status(args, store: RunStore) -> int:
    return _print_status(args, store, args.sweep)


def cmd_best(args, store: RunStore) -> int:
    from core.sweep_report import sweep_state

    _, _, summary = sweep_state(store, args.sweep)
    if summary.best is None:
        raise SpaceError(f"sweep {args.sweep} has no completed trial yet (state: {summary.state})")
    best = summary.best
    test = "" if best["test_accuracy"] is None else f", test accuracy {best['test_accuracy']:.4f}"
    _emit(args, {"sweep_id": args.sweep, **best},
          f"trial {best['trial']}: validation accuracy {best['val_accuracy']:.4f}{test}\n"
          + "\n".join(f"  {k} = {v}" for k, v in best["params"].items()) + f"\nruns: {', '.join(best['runs'])}")
    return 0


def cmd_list(args, store: RunStore) -> int:
    from core.sweep_report import sweep_state

    rows = []
    for sweep_id in store.list_sweeps():
        try:
            _, frame, summary = sweep_state(store, sweep_id)
        except (StoreError, OSError, ValueError) as exc:
            rows.append({"sweep_id": sweep_id, "name": "", "state": "damaged", "error": str(exc)})
            continue
        best = summary.best["val_accuracy"] if summary.best else None
        rows.append({"sweep_id": sweep_id, "name": summary.name, "state": summary.state,
                     "trials": f"{len(frame)}/{summary.n_trials}", "best_val_accuracy": best})
    if args.json or not rows:
        _emit(args, rows, f"no sweeps in {store.root}")
        return 0
    import pandas as pd

    print(pd.DataFrame(rows).fillna("").to_string(index=False))
    return 0


def cmd_stop(args, store: RunStore) -> int:
    from core.sweep import request_stop

    request_stop(store, args.sweep)
    _emit(args, {"sweep_id": args.sweep, "stop_requested": True},
          f"sweep {args.sweep}: stop requested; running trials end as stopped within a second")
    return 0


def cmd_delete(args, store: RunStore) -> int:
    from core.sweep_report import sweep_state

    _, _, summary = sweep_state(store, args.sweep)
    if summary.state == "running":
        raise SpaceError(f"sweep {args.sweep} is running; stop it first (python -m core sweep stop {args.sweep})")
    store.delete_sweep(args.sweep)
    _emit(args, {"sweep_id": args.sweep, "deleted": True}, f"sweep {args.sweep} deleted; its runs stay in the store")
    return 0


SWEEP_COMMANDS = {"create": cmd_create, "run": cmd_run, "status": cmd_status, "best": cmd_best, "list": cmd_list,
                  "stop": cmd_stop, "delete": cmd_delete}


def cmd_sweep(args, store: RunStore) -> int:
    return SWEEP_COMMANDS[args.sweep_command](args, store)


COMMANDS = {"sweep": cmd_sweep}
