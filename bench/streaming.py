#!/usr/bin/env python
"""Streaming overhead: the trainer with the streaming callback against the same trainer with streaming=False.

    python bench/streaming.py --data /path/to/mnist.npz   # full MNIST, 4 interleaved pairs, 3 epochs each
    python bench/streaming.py --quick                     # tiny sample, one pair of 2 epochs, in this process

Streaming writes throttled batch metrics, and at each epoch end predicts the whole test set, stores the
probabilities (float16, compressed) and C1's kernels as a snapshot, and appends the epoch record. Each run
is a fresh process; the sides alternate (silent, streaming, silent, ...). The figure is the median over
pairs of 1 - (streaming images/s) / (silent images/s) on epochs 2.. (epoch 1 includes compiling). The
streaming runs also report their own accounting: the seconds spent in the epoch-end evaluation and
snapshot (eval_time in metrics.jsonl) as a share of their epoch time, a figure that other users' load
cannot blur as much as a ratio of two runs. The target counts as met only when the wall-clock and the
per-CPU-second overheads and that share are all within it.
"""

from __future__ import annotations

import sys

from bench import common

NAME = "streaming"
TARGET_OVERHEAD = 0.03
SIDES = ("silent", "streaming")


def worker(payload: dict) -> dict:
    config = common.data_config(payload["data"], epochs=payload["epochs"], seed=42)
    data = common.load_data(config)
    clock = common.epoch_clock()
    epoch_rows = common.trainer_run(config, data, f"bench {NAME}", payload["side"] == "streaming", [clock])
    eval_times = epoch_rows["eval_time"].tolist() if "eval_time" in epoch_rows else []
    return {"side": payload["side"], "images": len(data.x_train), "epochs": clock.epochs,
            "eval_seconds": [float(t) for t in eval_times]}


def summarise(run: dict) -> dict:
    out = common.steady_speed(run)
    if run["side"] == "streaming":
        out["eval_share"] = sum(run["eval_seconds"][1:]) / sum(e["wall"] for e in run["epochs"][1:])
    return out


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if common.worker_main(argv, worker):
        return {}
    args, path, pairs = common.paired_args(argv, __doc__.splitlines()[1], pairs=4, epochs=3, sides="silent/streaming")
    machine = common.machine()
    runs = common.interleaved_runs("bench.streaming", SIDES, pairs,
                                   lambda side: {"side": side, "data": path, "epochs": args.epochs},
                                   not args.quick, worker, summarise)
    overheads = []
    for pair in range(pairs):
        silent, streaming = (common.run_of(runs, pair, side) for side in SIDES)
        overheads.append({
            "wall": 1 - streaming["steady_images_per_s"] / silent["steady_images_per_s"],
            "cpu": 1 - streaming["steady_images_per_cpu_s"] / silent["steady_images_per_cpu_s"],
            "eval_share": streaming["eval_share"],
        })
    measured = common.median(o["wall"] for o in overheads)
    measured_cpu = common.median(o["cpu"] for o in overheads)
    eval_share = common.median(o["eval_share"] for o in overheads)
    result = {
        "figure": "Streaming overhead: 1 - images/s with streaming / images/s with streaming=False",
        "target": f"<= {TARGET_OVERHEAD:.0%}",
        "target_overhead": TARGET_OVERHEAD,
        "overhead": measured,
        "overhead_cpu": measured_cpu,
        "eval_share": eval_share,
        "overheads": overheads,
        # all three must agree: on a busy machine one pair alone can swing the wall figure by 40 points, and
        # the evaluation's own share is what streaming costs at the least
        "meets_target": measured is not None and max(measured, measured_cpu, eval_share) <= TARGET_OVERHEAD,
        "pairs": pairs, "epochs": args.epochs,
        "runs": runs, "machine": machine,
    }
    common.write_result(args, NAME, result)
    common.print_table(
        "Streaming overhead on epochs 2.. (positive = streaming is slower)",
        ["pair", "silent img/s", "streaming img/s", "overhead", "overhead per CPU-s", "eval+snapshot share"],
        [[n + 1, *(common.run_of(runs, n, side)["steady_images_per_s"] for side in SIDES),
          f"{o['wall']:+.1%}", f"{o['cpu']:+.1%}", f"{o['eval_share']:.1%}"] for n, o in enumerate(overheads)])
    print(f"median overhead {measured:+.1%}, per CPU-second {measured_cpu:+.1%}, evaluation and snapshot "
          f"{eval_share:.1%} of an epoch (target <= {TARGET_OVERHEAD:.0%}): "
          f"{'meets' if result['meets_target'] else 'MISSES'} the target")
    return result


if __name__ == "__main__":
    main()
