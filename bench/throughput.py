#!/usr/bin/env python
"""Training throughput: the project's trainer, streaming on, against the seed article's plain model.fit.

    python bench/throughput.py --data /path/to/mnist.npz   # full MNIST, 3 interleaved pairs, 2 epochs each
    python bench/throughput.py --quick                     # tiny sample, one pair, in this process

Both sides train the seed recipe (LeNet-5 seed variant, Adam 1e-3, batch 64) on the same arrays:
- plain:   build_model(TrainConfig()) compiled with Adam(1e-3), sparse_categorical_crossentropy and
           metrics=["accuracy"], default compile options, then model.fit(x, y, batch_size=64) on numpy
           arrays (verbose=0: the article's progress bar would only slow the baseline down);
- trainer: core.trainer.train() with streaming=True and its defaults, writing to a temporary run store.
Each run is a fresh process and the sides alternate (plain, trainer, plain, trainer, ...), so a burst of
load from other users hits both sides. Images/s comes from each epoch's wall time, measured by a
callback placed after the streaming one, so the per-epoch test-set evaluation and snapshot count.
"Steady" is epochs 2.. (no compile warm-up); "first" is epoch 1, which includes tracing and compiling.
The figure is the median over pairs of trainer images/s / plain images/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

NAME = "throughput"
TARGET_RATIO = 3.0
SIDES = ("plain", "trainer")


def worker(payload: dict) -> dict:
    import keras

    from core.config import TrainConfig
    from core.model import build_model

    config = common.data_config(payload["data"], epochs=payload["epochs"], seed=payload["seed"])
    data = common.load_data(config)
    clock = common.epoch_clock()
    if payload["side"] == "plain":
        keras.utils.set_random_seed(config.seed)
        model = build_model(TrainConfig(seed=config.seed))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(data.x_train, data.y_train, batch_size=64, epochs=config.epochs, verbose=0, callbacks=[clock])
        jit = bool(model.jit_compile)
    else:
        from core.trainer import train

        folder, store = common.temp_store()
        with folder:
            result = train(config, store, name=f"bench {NAME}", streaming=True, dataset=data, callbacks=[clock])
        if result.status != "completed":
            raise RuntimeError(f"trainer run ended {result.status}: {result.error}")
        jit = None
    return {"side": payload["side"], "images": len(data.x_train), "epochs": clock.epochs, "jit_compile": jit}


def summarise(run: dict) -> dict:
    epochs, n = run["epochs"], run["images"]
    steady = epochs[1:]
    steady_wall = sum(e["wall"] for e in steady)
    steady_cpu = sum(e["cpu"] for e in steady)
    return {
        "first_epoch_images_per_s": n / epochs[0]["wall"],
        "steady_images_per_s": n * len(steady) / steady_wall if steady else None,
        "steady_images_per_cpu_s": n * len(steady) / steady_cpu if steady else None,
    }


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if common.worker_main(argv, worker):
        return {}
    p = common.parser(__doc__.splitlines()[1])
    p.add_argument("--pairs", type=int, default=3, help="interleaved plain/trainer pairs (full mode)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per run; epoch 1 is the compile warm-up")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 2
    path = common.data_path(args)
    pairs = 1 if args.quick else args.pairs
    machine = common.machine()
    runs = []
    for pair in range(pairs):
        for side in SIDES:
            payload = {"side": side, "data": path, "epochs": args.epochs, "seed": 42}
            run = common.run_worker("bench.throughput", payload, not args.quick, worker)
            run.update(pair=pair, **summarise(run))
            runs.append(run)
            print(f"pair {pair + 1}/{pairs} {side:7s}: first epoch {run['first_epoch_images_per_s']:8.0f} img/s, "
                  f"steady {run['steady_images_per_s'] or 0:8.0f} img/s", flush=True)
    ratios = []
    for pair in range(pairs):
        plain, trainer = (next(r for r in runs if r["pair"] == pair and r["side"] == s) for s in SIDES)
        ratios.append({key: trainer[key] / plain[key] if trainer[key] and plain[key] else None
                       for key in ("steady_images_per_s", "first_epoch_images_per_s", "steady_images_per_cpu_s")})
    measured = common.median(r["steady_images_per_s"] for r in ratios)
    result = {
        "figure": "Training throughput: trainer (streaming on) / plain model.fit, images per second",
        "target": f">= {TARGET_RATIO:g}x",
        "target_ratio": TARGET_RATIO,
        "ratio": measured,
        "ratio_first_epoch": common.median(r["first_epoch_images_per_s"] for r in ratios),
        "ratio_cpu": common.median(r["steady_images_per_cpu_s"] for r in ratios),
        "ratios": ratios,
        "meets_target": measured is not None and measured >= TARGET_RATIO,
        "plain_images_per_s": common.median(r["steady_images_per_s"] for r in runs if r["side"] == "plain"),
        "trainer_images_per_s": common.median(r["steady_images_per_s"] for r in runs if r["side"] == "trainer"),
        "pairs": pairs, "epochs": args.epochs, "batch_size": 64,
        "runs": runs, "machine": machine,
    }
    common.write_result(args, NAME, result)
    common.print_table(
        "Training throughput (steady = epochs 2.., first = epoch 1 with compile)",
        ["pair", "plain img/s", "trainer img/s", "ratio steady", "ratio first", "ratio per CPU-s"],
        [[n + 1, runs[2 * n]["steady_images_per_s"], runs[2 * n + 1]["steady_images_per_s"],
          r["steady_images_per_s"], r["first_epoch_images_per_s"], r["steady_images_per_cpu_s"]]
         for n, r in enumerate(ratios)])
    print(f"median steady ratio {measured:.2f}x (target >= {TARGET_RATIO:g}x): "
          f"{'meets' if result['meets_target'] else 'MISSES'} the target")
    return result


if __name__ == "__main__":
    main()
