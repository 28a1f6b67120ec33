"""`python -m core`: train, list, evaluate, audit, predict and summary from a terminal (report, export and
export-metrics: core.cli_share; sweep: core.cli_sweep; compare: core.cli_compare)."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from pathlib import Path

from core import cli_audit, cli_compare, cli_share, cli_sweep
from core.config import FIELD_TYPES, PARAMS, PRESETS, TrainConfig, describe_range, preset
from core.store import RunStore, StoreError

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1


class CliError(Exception):
    """A one-line message for the user; the CLI exits non-zero without a traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage dump is long; one line names the problem
        switch = re.match(r"argument (--[\w-]+)/(--no-[\w-]+): ignored explicit argument", message)
        if switch:  # --augment=yes: say how a switch is written
            message += f"; allowed: {switch.group(1)} or {switch.group(2)}, without a value"
        raise CliError(f"{self.prog}: {message}")


def _parse_number(kind):
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    return parse


def _positive_int(text: str) -> int:
    value = _parse_number(int)(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"--top={value} must be at least 1")
    return value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_flag(parser: argparse.ArgumentParser, name: str, p, default) -> None:
    """A flag for one TrainConfig field, from its description: choices, a switch, or a number with its range."""
    kind = FIELD_TYPES[name]
    help_text = (f"{p.label}" + (f": {p.help}" if p.help else "")).replace("%", "%%")  # argparse formats help with %
    if p.choices:
        parser.add_argument(_flag(name), choices=p.choices, help=f"{help_text} (default: {default})")
    elif kind is bool:
        parser.add_argument(_flag(name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif kind is tuple:  # a list of indices: "12,345"
        parser.add_argument(_flag(name), metavar="I,J,...", help=help_text)
    else:
        parser.add_argument(_flag(name), type=_parse_number(kind), metavar=kind.__name__.upper(),
                            help=f"{help_text}; allowed: {describe_range(name)} (default: {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="LeNet Lab: train and audit LeNet-5 runs.")
    parser.add_argument("--runs-dir", help="run store folder (default: cached_models/ or $LENET_RUNS)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train a run headless (the dashboard can watch it live)")
    train.add_argument("--preset", choices=list(PRESETS), help="start from a preset; flags override it")
    train.add_argument("--name", help="run name shown in the dashboard")
    train.add_argument("--data", dest="data_path", help="Keras-layout .npz or a folder of IDX files")
    train.add_argument("--seeds", type=cli_compare.seed_list, help="one run per seed, e.g. 42,43,44: a seed group")
    lr_find = cli_compare.add_lr_find(commands)  # the same config flags as train
    for sub in (train, lr_find):
        for name, p in PARAMS.items():
            if name != "data_path":
                _add_config_flag(sub, name, p, getattr(TrainConfig(), name))
        _hidden_flags(sub)

    listing = commands.add_parser("list", help="show the runs in the store")
    evaluate = commands.add_parser("evaluate", help="accuracy and the per-class table of a run")
    predict = commands.add_parser("predict", help="predict a test image (by index) or an image file")
    summary = commands.add_parser("summary", help="print the run model's summary")
    for sub in (evaluate, predict, summary):
        sub.add_argument("run", help="run id (see `list`)")
    predict.add_argument("image", help="test-set index, or a PNG/JPEG file of a handwritten digit")
    for sub in (listing, evaluate, predict, summary):
        _hidden_flags(sub)
    cli_audit.add_commands(commands, _hidden_flags)  # audit, audit-train
    cli_share.add_commands(commands, _hidden_flags)  # report, export, export-metrics
    cli_sweep.add_commands(commands, _hidden_flags)  # sweep create/run/status/best/list/stop/delete
    cli_compare.add_commands(commands, _hidden_flags)  # compare
    return parser


def _hidden_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--runs-dir", dest="sub_runs_dir", help=argparse.SUPPRESS)
    sub.add_argument("--json", dest="sub_json", action="store_true", help=argparse.SUPPRESS)


def config_from_args(args) -> TrainConfig:
    base = preset(args.preset) if args.preset else TrainConfig()
    changes = {name: getattr(args, name) for name in PARAMS if getattr(args, name, None) is not None}
    if args.data_path and "data_source" not in changes and base.data_source == "auto":
        changes["data_source"] = "auto"
    return base.replace(**changes)


def _emit(args, payload, text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)


def cmd_train(args, store: RunStore) -> int:
    config = config_from_args(args)
    if args.seeds and args.seed is not None:
        raise CliError("give --seed or --seeds, not both")
    configs = [config.replace(seed=seed) for seed in args.seeds] if args.seeds else [config]
    base_name = args.name or f"{config.variant} {config.dataset}"
    outcomes = [_train_one(args, store, c, f"{base_name} seed {c.seed}" if args.seeds else args.name) for c in configs]
    _emit(args, [p for p, _ in outcomes] if args.seeds else outcomes[0][0], "\n".join(t for _, t in outcomes))
    return 0 if all(p["status"] in ("completed", "stopped") for p, _ in outcomes) else EXIT_RUN_FAILED


def _train_one(args, store: RunStore, config: TrainConfig, name: str | None) -> tuple[dict, str]:
    from core.data import load_dataset
    from core.trainer import train

    # Bad data (a broken --data file, a subset larger than the source) fails here, before a run exists.
    data = load_dataset(config)
    callbacks = []
    if not args.json:
        from core.callbacks import ProgressBar

        callbacks.append(ProgressBar())
    run_id = store.create_run(config, name=name)
    print(f"run {run_id}", file=sys.stderr)
    stop = threading.Event()

    def on_interrupt(signum, frame):  # first Ctrl+C: stop like the dashboard's Stop; second: abort
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after the current batches; the run ends as stopped (Ctrl+C again to abort)",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = train(config, store, run_id=run_id, callbacks=callbacks, dataset=data, stop_event=stop,
                       hand_over_dataset=True,  # frees the training images once the input graph holds them
                       on_wait=lambda holder: print(f"waiting for run {holder} to finish: one training per run "
                                                    f"store (Ctrl+C to cancel)", file=sys.stderr))
    finally:
        signal.signal(signal.SIGINT, previous)
    status = store.read_status(run_id)
    payload = {"run_id": run_id, "status": result.status, "error": result.error,
               "data_source": status.source_detail, "duration_s": round(result.duration, 1),
               "test_metrics": result.test_metrics}
    lines = [f"run {run_id}: {result.status} in {result.duration:.1f} s",
             f"data: {status.source_detail or '?'}"]
    if result.test_metrics:
        m = result.test_metrics
        lines.append(f"test accuracy {m['accuracy']:.4f}  errors {m['error_count']}/{m['n']}  "
                     f"macro F1 {m['macro_f1']:.4f}  loss {m['loss']:.4f}")
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    return payload, "\n".join(lines)


def cmd_list(args, store: RunStore) -> int:
    rows = []
    for info in store.list_runs():
        record = info.record
        rows.append({
            "run_id": info.run_id, "name": info.name, "status": info.status,
            "dataset": record.dataset or (info.config.dataset if info.config else None),
            "variant": info.config.variant if info.config else None,
            "epochs": info.config.epochs if info.config else None,
            "test_accuracy": record.test_accuracy, "created": record.created,
            "problems": "; ".join(info.problems) or None,
        })
    if args.json:
        _emit(args, rows, "")
        return 0
    if not rows:
        print(f"no runs in {store.root}")
        return 0
    import pandas as pd

    shown = [{**row, "epochs": "" if row["epochs"] is None else row["epochs"],
              "test_accuracy": "" if row["test_accuracy"] is None else f"{row['test_accuracy']:.2%}"} for row in rows]
    print(pd.DataFrame(shown).fillna("").to_string(index=False))
    return 0


def _evaluation(store: RunStore, run_id: str):
    """(metrics, probabilities, labels): stored, or computed now from the model and the test set."""
    stored = store.read_evaluation(run_id)
    if stored is not None:
        return stored
    from core.analysis import predict_probs, summary_metrics

    x_test, y_test, _, _ = _test_set(store, run_id)
    probs = predict_probs(store.load_model(run_id), x_test)
    return summary_metrics(y_test, probs), probs, y_test


def _test_set(store: RunStore, run_id: str):
    from core.data import load_test_set

    config = store.read_config(run_id)
    return load_test_set(config.dataset, config.data_source, config.data_path)


def _class_names(store: RunStore, run_id: str, n_classes: int) -> tuple[str, ...]:
    names = store.read_status(run_id).class_names
    return tuple(names) if names else tuple(str(i) for i in range(n_classes))


def cmd_evaluate(args, store: RunStore) -> int:
    from core.analysis import class_report

    metrics, probs, y_test = _evaluation(store, args.run)
    names = _class_names(store, args.run, probs.shape[1])
    report = class_report(y_test, probs.argmax(axis=1), names)
    payload = {"run_id": args.run, "metrics": metrics, "per_class": report.reset_index(names="class").to_dict("records")}
    text = (f"run {args.run}\naccuracy {metrics['accuracy']:.4f}  errors {metrics['error_count']}/{metrics['n']}\n"
            f"{report.to_string(float_format=lambda v: f'{v:.4f}')}")
    _emit(args, payload, text)
    return 0


def _check_test_index(index: int, n_test: int) -> None:
    if not 0 <= index < n_test:
        raise CliError(f"test index {index} is out of range; allowed: 0 to {n_test - 1}")


def cmd_predict(args, store: RunStore) -> int:
    by_index = args.image.lstrip("-").isdigit()
    path = Path(args.image)
    # What can be checked without TensorFlow is checked first, so a typo is refused at once and on one line.
    if by_index and isinstance(n_test := store.read_status(args.run).n_test, int):
        _check_test_index(int(args.image), n_test)
    if not by_index and not path.is_file():
        raise CliError(f"{args.image}: no such image file (give a test index or the path of a picture)")
    import numpy as np

    from core.analysis import predict_probs
    from core.digits import ImageError, preprocess_digit

    model = store.load_model(args.run)
    if by_index:
        x_test, y_test, _, _ = _test_set(store, args.run)
        index = int(args.image)
        _check_test_index(index, len(x_test))
        image, source, truth = x_test[index], f"test image {index}", int(y_test[index])
    else:
        try:
            _, image = preprocess_digit(path.read_bytes())
        except ImageError as exc:
            raise CliError(f"{args.image}: {exc}") from None
        source, truth = str(path), None
    probs = predict_probs(model, image[np.newaxis])[0]
    names = _class_names(store, args.run, len(probs))
    predicted = int(np.argmax(probs))
    payload = {"run_id": args.run, "input": source, "predicted": predicted, "predicted_label": names[predicted],
               "label": truth, "probabilities": {names[i]: round(float(p), 6) for i, p in enumerate(probs)}}
    lines = [f"{source}: predicted {names[predicted]} ({probs[predicted]:.4f})"
             + (f", label {names[truth]}" if truth is not None else "")]
    lines += [f"  {names[i]:>12}: {p:.4f} {'#' * int(round(p * 40))}" for i, p in enumerate(probs)]
    _emit(args, payload, "\n".join(lines))
    return 0


def cmd_summary(args, store: RunStore) -> int:
    from core.model import summary_rows, summary_text

    model = store.load_model(args.run)
    _emit(args, {"run_id": args.run, "layers": summary_rows(model), "parameters": int(model.count_params())},
          summary_text(model))
    return 0


COMMANDS = {"train": cmd_train, "list": cmd_list, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "summary": cmd_summary, **cli_audit.COMMANDS, **cli_share.COMMANDS, **cli_sweep.COMMANDS,
            **cli_compare.COMMANDS, "lr-find": lambda args, store: cli_compare.cmd_lr_find(args, config_from_args(args))}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = build_parser().parse_args(argv)
        args.json = args.json or getattr(args, "sub_json", False)
        store = RunStore(getattr(args, "sub_runs_dir", None) or args.runs_dir)
        if getattr(args, "run", None) is not None:
            store.read_status(args.run)  # a bad or unknown run id fails fast, before TensorFlow loads
        return COMMANDS[args.command](args, store)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except (ValueError, StoreError, OSError) as exc:  # config validation, store and data problems
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return EXIT_BAD_INPUT
