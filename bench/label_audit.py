"""Label audit: which ranking finds wrong labels best, and how long a K-fold training-set audit takes.

Without any answer key (no published list of MNIST label errors is used), the ranking is judged on synthetic
noise: a known share of labels is flipped to a random other class, the audit ranks the images, and we measure
how well the ranking recovers the flipped ones (average precision; precision at k = the number flipped; the
precision and recall of the set cleanlab flags).

  python -m bench.label_audit ranking [--runs-dir cached_models] [--run seed-article-full-mnist ...]
      each scoring method x epochs averaged, on the runs' stored test probabilities (seconds, no training)
  python -m bench.label_audit folds --data /work/shared/data/mnist.npz [--subset 12000] [--folds 2 3 5]
      K-fold training-set audits of the seed recipe on a subset with 5% flipped labels (minutes)
  python -m bench.label_audit timing --data /work/shared/data/mnist.npz [--folds 3]
      the wall time of `audit-train` of a seed-recipe run on the full MNIST
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench import common

NOISE_RATES = (0.02, 0.05)
NOISE_SEEDS = (0, 1, 2)


def flip(labels: np.ndarray, rate: float, seed: int, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, mask of the flipped ones): `rate` of the labels moved to a random other class."""
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(labels), bool)
    flipped[rng.choice(len(labels), round(rate * len(labels)), replace=False)] = True
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    return noisy, flipped


def recovery(audit, flipped: np.ndarray) -> dict:
    """How well an audit's ranking and flagged set recover the flipped labels."""
    from sklearn.metrics import average_precision_score, precision_score, recall_score

    by_index = audit.table.sort_values("index")
    suspicion = -by_index["score"].to_numpy()
    issue = by_index["issue"].to_numpy()
    k = int(flipped.sum())
    top_k = audit.table["index"].to_numpy()[:k]
    return {"average_precision": float(average_precision_score(flipped, suspicion)),
            "precision_at_k": float(flipped[top_k].mean()),
            "flagged_precision": float(precision_score(flipped, issue, zero_division=0)),
            "flagged_recall": float(recall_score(flipped, issue)),
            "estimated_errors": audit.estimated_errors, "flipped": k}


def ranking(args) -> dict:
    from core.label_audit import METHODS, audit_labels, epoch_averaged
    from core.store import RunStore

    store, rows = RunStore(args.runs_dir), []
    for run_id in args.run:
        _, _, labels = store.read_evaluation(run_id)
        epochs = [store.read_epoch_snapshot(run_id, e).probs for e in store.epochs_saved(run_id)]
        for rate in NOISE_RATES:
            for seed in NOISE_SEEDS:
                noisy, flipped = flip(np.asarray(labels, np.int64), rate, seed)
                for used in sorted({1, 2, 3, len(epochs)}):
                    probs = epoch_averaged(epochs, used)
                    for method in METHODS:  # estimates and flags from the final epoch's, ranking from the mean
                        audit = audit_labels(noisy, epochs[-1], method=method, rank_probs=probs, epochs_used=used)
                        result = recovery(audit, flipped)
                        rows.append({"run": run_id, "rate": rate, "seed": seed, "epochs": used, "method": method,
                                     **result})
    return {"rows": rows, "summary": _summary(rows, ["run", "rate", "epochs", "method"])}


def _summary(rows: list[dict], keys: list[str]) -> list[dict]:
    import pandas as pd

    frame = pd.DataFrame(rows)
    metrics = ["average_precision", "precision_at_k", "flagged_precision", "flagged_recall"]
    table = frame.groupby(keys)[metrics].mean().round(4).reset_index()
    print(table.to_string(index=False), flush=True)
    return table.to_dict("records")


def _seed_run(store, path: str | None, subset: int, epochs: int = 5) -> str:
    """A completed-looking seed-recipe run (config only) for audit-train to read."""
    from core.config import TrainConfig

    source = {"data_source": "file", "data_path": path} if path else {"data_source": "sample"}
    config = TrainConfig(validation_split=0.0, train_subset=subset, epochs=epochs, **source)
    run_id = store.create_run(config, name="bench seed recipe", status="completed")
    return run_id


def folds(args, path: str | None) -> dict:
    """K-fold audits of a subset whose training labels were flipped (the data is patched, not the file)."""
    from core import data as data_module
    from core.label_audit_train import audit_train
    from core.store import RunStore

    rows = []
    original = data_module.load_raw
    for seed in NOISE_SEEDS[: args.seeds]:
        def noisy_raw(*a, _seed=seed, **kw):
            raw = original(*a, **kw)
            raw.y_train, _ = flip(np.asarray(raw.y_train, np.int64), 0.05, _seed)
            return raw
        data_module.load_raw = noisy_raw
        try:
            for k in args.folds:
                with tempfile.TemporaryDirectory() as root:
                    store = RunStore(root)
                    run_id = _seed_run(store, path, args.subset, epochs=5 if path else 1)
                    started = time.perf_counter()
                    audit_train(store, threading.Event(), run_id=run_id, folds=k)
                    seconds = time.perf_counter() - started
                    result = store.read_train_audit(run_id)
                    rows.extend(_fold_rows(result, original, path, seed, k, seconds))
        finally:
            data_module.load_raw = original
    return {"rows": rows, "summary": _summary(rows, ["folds", "method"])}


def _fold_rows(result, original, path, seed, k, seconds) -> list[dict]:
    from core.label_audit import METHODS, audit_labels

    raw = original("mnist", "file" if path else "sample", path)
    clean = np.asarray(raw.y_train, np.int64)[result.indices]
    flipped = clean != result.labels
    rows = []
    for method in METHODS:
        audit = audit_labels(result.labels, result.probs, indices=np.arange(len(result.labels)), method=method)
        rows.append({"seed": seed, "folds": k, "method": method, "seconds": round(seconds, 1),
                     **recovery(audit, flipped)})
    print(f"seed {seed} K={k}: {seconds:.0f} s", flush=True)
    return rows


def timing(args, path: str | None) -> dict:
    from core.label_audit_train import audit_train
    from core.store import RunStore

    with tempfile.TemporaryDirectory() as root:
        store = RunStore(root)
        run_id = _seed_run(store, path, 0 if path else 600, epochs=5 if path else 1)
        started = time.perf_counter()
        final = audit_train(store, threading.Event(), run_id=run_id, folds=args.folds[0])
        seconds = time.perf_counter() - started
        result = store.read_train_audit(run_id)
    print(f"audit-train K={args.folds[0]}: {final} in {seconds:.1f} s ({len(result.labels)} images)", flush=True)
    return {"folds": args.folds[0], "seconds": round(seconds, 1), "images": len(result.labels), "final": final,
            "fold_seconds": result.fold_seconds}


def main(argv=None) -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("part", choices=("ranking", "folds", "timing"))
    p.add_argument("--runs-dir", default=str(common.REPO / "cached_models"))
    p.add_argument("--run", nargs="+", default=["seed-article-full-mnist", "best-accuracy-full-mnist"])
    p.add_argument("--folds", type=int, nargs="+", default=[3])
    p.add_argument("--subset", type=int, default=12000)
    p.add_argument("--seeds", type=int, default=2)
    args = p.parse_args(argv)
    started = time.perf_counter()
    if args.part == "ranking":
        result = ranking(args)
    else:
        path = common.data_path(args)
        if args.quick:
            args.subset = 600
        result = folds(args, path) if args.part == "folds" else timing(args, path)
    result.update(machine=common.machine(), load_average_end=common.load_average(),
                  wall_seconds=round(time.perf_counter() - started, 1))
    out = Path(args.results_dir) / f"label_audit_{args.part}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
