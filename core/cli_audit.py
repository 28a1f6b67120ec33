"""`python -m core audit` (the label audit of a run's test or training set) and `audit-train` (the K-fold
training-set audit), registered by core.cli. Cheap checks come before TensorFlow loads."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from core.label_audit import DEFAULT_EPOCHS, DEFAULT_METHOD, MAX_FOLDS, METHODS, MIN_FOLDS, SPLITS, AuditError
from core.store import RunStore


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_commands(commands, hidden_flags) -> None:
    audit = commands.add_parser("audit", help="suspected label errors of a run's test or training set "
                                              "(confident learning with cleanlab)")
    audit.add_argument("run", help="run id (see `list`)")
    audit.add_argument("--split", choices=SPLITS, default="test",
                       help="test: the run's test predictions; train: its audit-train result (default: test)")
    audit.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                       help=f"cleanlab's label quality score (default: {DEFAULT_METHOD})")
    audit.add_argument("--epochs", type=_positive, default=DEFAULT_EPOCHS,
                       help=f"test split: average the last N epochs' probabilities (default: {DEFAULT_EPOCHS})")
    audit.add_argument("--top", type=_positive, default=20, help="how many suspects to list (default: 20)")
    audit.add_argument("--flagged", action="store_true", help="list only the images cleanlab flags as label issues")
    train = commands.add_parser("audit-train", help="K-fold cross-validated training with the run's config: "
                                                    "out-of-sample probabilities of every training image")
    train.add_argument("run", help="run id (see `list`)")
    train.add_argument("--folds", type=int, default=3, help=f"K, from {MIN_FOLDS} to {MAX_FOLDS} (default: 3)")
    train.add_argument("--data", dest="data_path", help="the run's training data, if its config cannot find it "
                                                        "(a Keras-layout .npz or a folder of IDX files)")
    for sub in (audit, train):
        hidden_flags(sub)


def _names(store: RunStore, run_id: str, n_classes: int) -> list[str]:
    names = store.read_status(run_id).class_names
    return list(names) if names else [str(i) for i in range(n_classes)]


def cmd_audit(args, store: RunStore) -> int:
    from core.label_audit import audit_of_run

    audit = audit_of_run(store, args.run, args.split, method=args.method, epochs=args.epochs)
    names = _names(store, args.run, audit.joint_counts.shape[0])
    marks = store.read_label_marks(args.run)
    ranked = audit.suspects if args.flagged else audit.table
    rows = [{"index": int(row.index), "split": args.split, "given_label": names[row.given],
             "suggested_label": names[row.suggested], "score": round(float(row.score), 6), "flagged": bool(row.issue),
             "mark": marks.get((args.split, int(row.index)))} for row in ranked.head(args.top).itertuples()]
    payload = {"run_id": args.run, "split": args.split, "method": audit.method, "epochs_used": audit.epochs_used,
               "images": len(audit.table), "estimated_errors": audit.estimated_errors,
               "flagged": int(audit.table["issue"].sum()), "suspects": rows,
               "noise_matrix": {"rows_given_columns_true": names, "counts": audit.joint_counts.tolist()},
               "class_quality": audit.class_quality.to_dict("records")}
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
        return 0
    print(f"run {args.run}, {args.split} set: {len(audit.table):,} images; cleanlab estimates "
          f"{audit.estimated_errors} wrong labels and flags {payload['flagged']} "
          f"(ranked by {audit.method}, {audit.epochs_used} epoch(s) averaged)", flush=True)
    if rows:
        import pandas as pd

        print(pd.DataFrame(rows).drop(columns="split").fillna("").to_string(index=False))
    return 0


def cmd_audit_train(args, store: RunStore) -> int:
    from core.label_audit import check_folds
    from core.label_audit_train import check_auditable

    check_folds(args.folds)  # before TensorFlow loads
    check_auditable(store, args.run)
    from core.label_audit_train import audit_train

    stop = threading.Event()

    def on_interrupt(signum, frame):  # first Ctrl+C: stop the fold in training, as the dashboard's Stop does
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping the audit after the current batches (Ctrl+C again to abort)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        outcome = audit_train(store, stop, run_id=args.run, folds=args.folds, data_path=args.data_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    state = store.read_train_audit(args.run)
    payload = {"run_id": args.run, "state": outcome, "folds": state.folds, "images": state.n_images,
               "seconds": state.seconds, "fold_seconds": state.fold_seconds, "error": state.error}
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(f"run {args.run}: training-set audit {outcome} in {state.seconds:.0f} s ({state.folds} folds, "
              f"{state.n_images or 0:,} images)" + (f"; {state.error}" if state.error else ""))
        if outcome == "completed":
            print(f"see the suspects with `python -m core audit {args.run} --split train`")
    if outcome == "failed":
        raise AuditError(state.error or "the training-set audit failed")
    return 0


COMMANDS = {"audit": cmd_audit, "audit-train": cmd_audit_train}
