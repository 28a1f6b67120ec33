#!/usr/bin/env python
"""Storing the model's weights in each epoch snapshot: the trainer with them against the trainer without.

    python bench/epoch_weights.py --data /path/to/mnist.npz   # full MNIST, 3 interleaved pairs, 3 epochs each
    python bench/epoch_weights.py --quick                     # tiny sample, one pair of 2 epochs, in this process

Both sides stream (probabilities and C1 kernels each epoch); the "with" side also keeps the 61,706 weights
(core.callbacks.StreamingCallback.save_weights). Each run is a fresh process; the sides alternate. Two figures:
the median over pairs of 1 - (images/s with) / (images/s without) on epochs 2.., which the machine's load blurs
by several points, and the accounting: the epoch-end evaluation and snapshot's seconds (eval_time in
metrics.jsonl) with the weights minus without, as a share of an epoch; and the weights' own cost timed alone
(get_weights and their part of the snapshot write, direct_cost) over the median epoch. The target is the last.
"""

from __future__ import annotations

import sys

from bench import common

NAME = "epoch_weights"
TARGET_SHARE = 0.01
SIDES = ("without", "with")


def worker(payload: dict) -> dict:
    from core.callbacks import StreamingCallback

    StreamingCallback.save_weights = payload["side"] == "with"
    config = common.data_config(payload["data"], epochs=payload["epochs"], seed=42)
    data = common.load_data(config)
    clock = common.epoch_clock()
    epoch_rows = common.trainer_run(config, data, f"bench {NAME}", True, [clock])
    return {"side": payload["side"], "images": len(data.x_train), "epochs": clock.epochs,
            "eval_seconds": [float(t) for t in epoch_rows["eval_time"].tolist()],
            "direct_seconds": direct_cost(config, len(data.x_test))}


def direct_cost(config, n_test: int, repeats: int = 20) -> float:
    """The weights' own cost, timed alone: model.get_weights() plus writing a snapshot with them minus without
    (the same probabilities and kernels), the median of `repeats`. Load on the machine blurs it far less than
    a ratio of two training runs."""
    import statistics
    import time

    import numpy as np

    from core.model import build_model, c1_kernels
    from core.records import EpochSnapshot

    model = build_model(config)
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=n_test).astype(np.float32)
    folder, store = common.temp_store()
    with folder:
        run_id = store.create_run(config)
        costs = []
        for epoch in range(1, repeats + 1):
            start = time.perf_counter()
            store.save_epoch_snapshot(run_id, EpochSnapshot(epoch, probs, c1_kernels(model)))
            without = time.perf_counter() - start
            start = time.perf_counter()
            weights = tuple(model.get_weights())
            store.save_epoch_snapshot(run_id, EpochSnapshot(epoch, probs, c1_kernels(model), weights=weights))
            costs.append(time.perf_counter() - start - without)
    return statistics.median(costs)


def summarise(run: dict) -> dict:
    out = common.steady_speed(run)
    out["eval_seconds_steady"] = common.median(run["eval_seconds"][1:])
    out["epoch_seconds_steady"] = common.median(e["wall"] for e in run["epochs"][1:])
    return out


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if common.worker_main(argv, worker):
        return {}
    args, path, pairs = common.paired_args(argv, __doc__.splitlines()[1], pairs=3, epochs=3, sides="without/with")
    machine = common.machine()
    runs = common.interleaved_runs("bench.epoch_weights", SIDES, pairs,
                                   lambda side: {"side": side, "data": path, "epochs": args.epochs},
                                   not args.quick, worker, summarise)
    rows = []
    for pair in range(pairs):
        without, with_weights = (common.run_of(runs, pair, side) for side in SIDES)
        extra = with_weights["eval_seconds_steady"] - without["eval_seconds_steady"]
        rows.append({"wall": 1 - with_weights["steady_images_per_s"] / without["steady_images_per_s"],
                     "extra_seconds": extra, "share": extra / with_weights["epoch_seconds_steady"]})
    share = common.median(r["share"] for r in rows)
    direct = common.median(r["direct_seconds"] for r in runs)
    epoch_seconds = common.median(r["epoch_seconds_steady"] for r in runs)
    direct_share = direct / epoch_seconds
    result = {
        "figure": "Weights in each epoch snapshot: extra epoch-end seconds as a share of an epoch",
        "target": f"<= {TARGET_SHARE:.0%}", "target_share": TARGET_SHARE, "share": share,
        "direct_seconds": direct, "epoch_seconds": epoch_seconds, "direct_share": direct_share,
        "extra_seconds": common.median(r["extra_seconds"] for r in rows),
        "overhead_wall": common.median(r["wall"] for r in rows), "pairs_detail": rows,
        "meets_target": direct_share <= TARGET_SHARE,
        "pairs": pairs, "epochs": args.epochs, "runs": runs, "machine": machine,
    }
    common.write_result(args, NAME, result)
    common.print_table(
        "Weights in each epoch snapshot, epochs 2.. (positive = slower with the weights)",
        ["pair", "without img/s", "with img/s", "overhead (wall)", "extra epoch-end s", "share of an epoch"],
        [[n + 1, *(common.run_of(runs, n, side)["steady_images_per_s"] for side in SIDES),
          f"{r['wall']:+.1%}", f"{r['extra_seconds']:+.3f}", f"{r['share']:+.2%}"] for n, r in enumerate(rows)])
    print(f"the weights alone (get_weights + their share of the snapshot write): {direct:.4f} s of a "
          f"{epoch_seconds:.2f} s epoch = {direct_share:.2%} (target <= {TARGET_SHARE:.0%}): "
          f"{'meets' if result['meets_target'] else 'MISSES'} the target. Between runs: epoch-end "
          f"{result['extra_seconds']:+.3f} s ({share:+.2%}), wall-clock ratio {result['overhead_wall']:+.1%}")
    return result


if __name__ == "__main__":
    main()
