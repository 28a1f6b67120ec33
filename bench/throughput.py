#!/usr/bin/env python
"""Training throughput: the project's trainer, streaming on, against the seed article's plain model.fit.

    python bench/throughput.py --data /path/to/mnist.npz   # full MNIST, 3 interleaved pairs, 2 epochs each
    python bench/throughput.py --quick                     # tiny sample, one pair, in this process

Every side trains the seed recipe (LeNet-5 seed variant, Adam 1e-3, batch 64) on the same arrays:
- plain:   build_model(TrainConfig()) compiled with Adam(1e-3), sparse_categorical_crossentropy and
           metrics=["accuracy"], default compile options, then model.fit(x, y, batch_size=64) on numpy
           arrays (verbose=0: the article's progress bar would only slow the baseline down), in a process
           with TensorFlow's own defaults, as the article's reader runs it (TF_ENABLE_ONEDNN_OPTS and
           TF_NUM_INTRAOP_THREADS unset, TensorFlow imported before core);
- trainer: core.trainer.train() with streaming=True and its defaults, writing to a temporary run store;
- plain+oneDNN (not part of the ratio): the plain side with TF_ENABLE_ONEDNN_OPTS=1, which shows how much
           of the ratio is TensorFlow's oneDNN kernels (core switches them on) and how much the trainer.
Each run is a fresh process and the sides alternate (plain, trainer, plain+oneDNN, plain, ...), so a burst
of load from other users hits every side. Images/s comes from each epoch's wall time, measured by a
callback placed after the streaming one, so the per-epoch test-set evaluation and snapshot count.
"Steady" is epochs 2.. (no compile warm-up); "first" is epoch 1, which includes tracing and compiling.
The figure is the median over pairs of trainer images/s / plain images/s. The target counts as met only
when the per-CPU-second ratio meets it too: a side that another process starves for a whole epoch (it
happens here: a plain epoch of 40 s wall on 34 CPU-seconds, against 21 s the epoch before) makes the
wall-clock ratio look better than the trainer is.
"""

from __future__ import annotations

import os
import sys

from bench import common

NAME = "throughput"
TARGET_RATIO = 3.0
SIDES = ("plain", "trainer", "plain+oneDNN")
# The plain sides get TensorFlow's own thread pools; core asks for one thread per op (the trainer's setting).
PLAIN_THREADS = {"TF_NUM_INTRAOP_THREADS": None}
SIDE_ENV = {"plain": {"TF_ENABLE_ONEDNN_OPTS": None, **PLAIN_THREADS},
            "plain+oneDNN": {"TF_ENABLE_ONEDNN_OPTS": "1", **PLAIN_THREADS}, "trainer": {}}


def worker(payload: dict) -> dict:
    if payload["side"] == "trainer":
        import core  # noqa: F401  first, as `python -m core` and the dashboard load it: it picks TF's kernels
    import keras  # noqa: F401  plain: TensorFlow loads before core, as in the article: TF's defaults stay

    config = common.data_config(payload["data"], epochs=payload["epochs"], seed=payload["seed"])
    data = common.load_data(config)
    clock = common.epoch_clock()
    if payload["side"].startswith("plain"):
        jit = bool(common.plain_fit(data, config, [clock]).jit_compile)
    else:
        common.trainer_run(config, data, f"bench {NAME}", True, [clock])
        jit = None
    return {"side": payload["side"], "images": len(data.x_train), "epochs": clock.epochs, "jit_compile": jit,
            "onednn": common.onednn_on(), "intra_op_threads": os.environ.get("TF_NUM_INTRAOP_THREADS")}


def summarise(run: dict) -> dict:
    return {"first_epoch_images_per_s": run["images"] / run["epochs"][0]["wall"], **common.steady_speed(run)}


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if common.worker_main(argv, worker):
        return {}
    args, path, pairs = common.paired_args(argv, __doc__.splitlines()[1], pairs=3, epochs=2, sides="plain/trainer")
    sides = SIDES[:2] if args.quick else SIDES  # --quick runs in this process: one TensorFlow, one setting
    machine = common.machine()
    runs = common.interleaved_runs(
        "bench.throughput", sides, pairs,
        lambda side: {"side": side, "data": path, "epochs": args.epochs, "seed": 42, "env": SIDE_ENV[side]},
        not args.quick, worker, summarise)
    ratios = []
    for pair in range(pairs):
        plain, trainer = (common.run_of(runs, pair, side) for side in SIDES[:2])
        ratios.append({key: trainer[key] / plain[key] if trainer[key] and plain[key] else None
                       for key in ("steady_images_per_s", "first_epoch_images_per_s", "steady_images_per_cpu_s")})
    measured = common.median(r["steady_images_per_s"] for r in ratios)
    measured_cpu = common.median(r["steady_images_per_cpu_s"] for r in ratios)
    result = {
        "figure": "Training throughput: trainer (streaming on) / plain model.fit, images per second",
        "target": f">= {TARGET_RATIO:g}x",
        "target_ratio": TARGET_RATIO,
        "ratio": measured,
        "ratio_first_epoch": common.median(r["first_epoch_images_per_s"] for r in ratios),
        "ratio_cpu": measured_cpu,
        "ratios": ratios,
        # both must agree: one starved epoch of the baseline can double the wall-clock ratio of its pair
        "meets_target": measured is not None and measured_cpu is not None and min(measured, measured_cpu) >= TARGET_RATIO,
        "plain_images_per_s": common.median(r["steady_images_per_s"] for r in runs if r["side"] == "plain"),
        "trainer_images_per_s": common.median(r["steady_images_per_s"] for r in runs if r["side"] == "trainer"),
        "plain_onednn_images_per_s": common.median(r["steady_images_per_s"] for r in runs
                                                   if r["side"] == "plain+oneDNN"),
        "pairs": pairs, "epochs": args.epochs, "batch_size": 64,
        "runs": runs, "machine": machine,
    }
    common.write_result(args, NAME, result)
    common.print_table(
        "Training throughput (steady = epochs 2.., first = epoch 1 with compile)",
        ["pair", "plain img/s", "trainer img/s", "plain+oneDNN img/s", "ratio steady", "ratio first",
         "ratio per CPU-s"],
        [[n + 1, *((common.run_of(runs, n, side) or {}).get("steady_images_per_s") for side in SIDES),
          r["steady_images_per_s"], r["first_epoch_images_per_s"], r["steady_images_per_cpu_s"]]
         for n, r in enumerate(ratios)])
    print(f"median steady ratio {measured:.2f}x, per CPU-second {measured_cpu:.2f}x (target >= {TARGET_RATIO:g}x): "
          f"{'meets' if result['meets_target'] else 'MISSES'} the target")
    return result


if __name__ == "__main__":
    main()
