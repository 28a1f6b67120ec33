#!/usr/bin/env python
"""Test accuracy of a recipe on the full MNIST: the seed article's (3 seeds) or the "Best accuracy" preset.

    python bench/accuracy.py --recipe seed --data /path/to/mnist.npz   # 5 epochs x 3 seeds -> accuracy_seed.json
    python bench/accuracy.py --recipe best --data /path/to/mnist.npz   # the preset x 3 seeds, timed -> accuracy_best.json
    python bench/accuracy.py --recipe seed --quick                     # tiny sample, 1 epoch, in this process
    python bench/accuracy.py --recipe best --from-run RUNS/RUN_ID      # record a finished run of the preset
    python bench/accuracy.py --recipe seed --with-plain --data ...     # also the article's own plain fit

Each seed trains in a fresh process with core.trainer.train() and the trainer's defaults (streaming on, as a
user gets it); the figure is the final test accuracy on the 10,000 MNIST test images. For the best recipe
the training time is the trainer's own train_time (model.fit, including compiling and the per-epoch
evaluation), next to the machine's load average, since other users' jobs on the same 2 cores slow it down.
--from-run records a run already trained with the preset (e.g. by `python -m core train --preset ...`)
instead of training it again; its config must be the preset's on the file source.
--with-plain (seed recipe) also trains, for each seed and in its own fresh process with TensorFlow's
defaults, the article's code itself (plain model.fit on numpy arrays), so the trainer's accuracy can be
told apart from what the recipe gives.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

from bench import common

RECIPES = {
    # preset name, target median test accuracy, training time limit (s), seeds in full mode
    "seed": ("Seed article", 0.989, None, (42, 43, 44)),
    "best": ("Best accuracy", 0.9945, 300.0, (42, 43, 44)),
}


def worker(payload: dict) -> dict:
    if payload.get("side") == "plain":
        return plain_worker(payload)
    from core.config import preset
    from core.trainer import train

    recipe = preset(RECIPES[payload["recipe"]][0])
    if payload["data"] is None:  # quick: the recipe's options on a few hundred sample images, one epoch
        config = common.data_config(None).replace(**{k: getattr(recipe, k) for k in (
            "variant", "activation", "pooling", "dropout", "optimizer", "learning_rate", "momentum",
            "lr_schedule", "augment")}, epochs=1, batch_size=min(recipe.batch_size, 64), seed=payload["seed"])
    else:
        config = recipe.replace(data_source="file", data_path=payload["data"], seed=payload["seed"])
    data = common.load_data(config)
    folder, store = common.temp_store()
    load_before = common.load_average()
    cpu_start = common.cpu_seconds()
    wall_start = time.perf_counter()
    with folder:
        result = train(config, store, name=f"bench accuracy {payload['recipe']}", dataset=data)
        status = store.read_status(result.run_id)
        _, epoch_rows = store.read_metrics(result.run_id)
    if result.status != "completed":
        raise RuntimeError(f"run ended {result.status}: {result.error}")
    return {
        "seed": config.seed, "config": config.to_dict(),
        "test_accuracy": result.test_metrics["accuracy"],
        "test_accuracy_by_epoch": [float(a) for a in epoch_rows.get("test_accuracy", [])],
        "train_time_s": status.train_time, "duration_s": result.duration,
        "wall_s": time.perf_counter() - wall_start, "cpu_s": common.cpu_seconds() - cpu_start,
        "load_average_before": load_before, "load_average_after": common.load_average(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "pid": os.getpid(),
    }


def plain_worker(payload: dict) -> dict:
    import keras  # noqa: F401  before core, as in the article: TensorFlow keeps its default kernels

    config = common.data_config(payload["data"], epochs=1 if payload["data"] is None else 5, seed=payload["seed"])
    data = common.load_data(config)
    wall_start = time.perf_counter()
    model = common.plain_fit(data, config)
    train_time = time.perf_counter() - wall_start
    _, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=2048, verbose=0)
    return {"side": "plain", "seed": config.seed, "test_accuracy": float(accuracy), "train_time_s": train_time,
            "load_average_before": None, "load_average_after": common.load_average()}


def finished_run(folder: str, recipe: str) -> dict:
    """The figures of a run trained elsewhere, read through the run store; refuses a run of another recipe."""
    from core.config import preset
    from core.store import RunStore

    path = Path(folder).resolve()
    store = RunStore(path.parent)
    config, status = store.read_config(path.name), store.read_status(path.name)
    expected = preset(RECIPES[recipe][0])
    differing = [k for k, v in expected.to_dict().items()
                 if k not in ("data_source", "data_path") and config.to_dict().get(k) != v]
    if differing or status.status != "completed" or status.n_train != 60_000:
        sys.exit(f"{path}: not a completed full-MNIST run of the {RECIPES[recipe][0]!r} preset "
                 f"(differs in {differing}, status {status.status!r}, n_train {status.n_train})")
    _, epoch_rows = store.read_metrics(path.name)
    return {
        "seed": config.seed, "config": config.to_dict(), "run": str(path),
        "test_accuracy": status.test_accuracy,
        "test_accuracy_by_epoch": [float(a) for a in epoch_rows.get("test_accuracy", [])],
        "train_time_s": status.train_time, "duration_s": status.duration,
        "load_average_before": None, "load_average_after": None,
    }


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if common.worker_main(argv, worker):
        return {}
    p = common.parser(__doc__.splitlines()[1])
    p.add_argument("--recipe", choices=sorted(RECIPES), default="seed")
    p.add_argument("--seeds", type=int, nargs="+", help="override the recipe's seeds")
    p.add_argument("--from-run", help="a finished run folder of the recipe's preset: record it, train nothing")
    p.add_argument("--with-plain", action="store_true",
                   help="seed recipe: also train the article's plain model.fit for each seed, for comparison")
    args = p.parse_args(argv)
    if args.with_plain and args.recipe != "seed":
        sys.exit("--with-plain compares the seed recipe only")
    path = None if args.from_run else common.data_path(args)
    preset_name, target_accuracy, time_limit, seeds = RECIPES[args.recipe]
    seeds = args.seeds or (seeds[:1] if args.quick else seeds)
    machine = common.machine()
    runs = []
    if args.from_run:
        seeds = ()
        runs.append(finished_run(args.from_run, args.recipe))
    plain_runs = []
    for seed in seeds:
        run = common.run_worker("bench.accuracy", {"recipe": args.recipe, "data": path, "seed": seed},
                                not args.quick, worker)
        runs.append(run)
        if args.with_plain:
            plain_runs.append(common.run_worker("bench.accuracy", {"side": "plain", "data": path, "seed": seed},
                                                not args.quick, worker))
            print(f"seed {seed}: the article's plain fit: test accuracy {plain_runs[-1]['test_accuracy']:.4f}",
                  flush=True)
        print(f"seed {seed}: test accuracy {run['test_accuracy']:.4f}, training {run['train_time_s']:.0f} s "
              f"(load average {run['load_average_before'][0]:.1f} -> {run['load_average_after'][0]:.1f})", flush=True)
    accuracies = [r["test_accuracy"] for r in runs]
    accuracy = common.median(accuracies)
    train_time = common.median(r["train_time_s"] for r in runs)
    meets = accuracy >= target_accuracy and (time_limit is None or train_time <= time_limit)
    result = {
        "figure": f"Test accuracy, {preset_name} recipe" + (" (median over seeds)" if len(runs) > 1 else ""),
        "recipe": args.recipe, "preset": preset_name,
        "target": f">= {target_accuracy:.2%} test accuracy" + (f" in <= {time_limit:g} s of training"
                                                                if time_limit else ""),
        "target_accuracy": target_accuracy, "time_limit_s": time_limit,
        "accuracy": accuracy, "accuracy_min": min(accuracies), "accuracy_max": max(accuracies),
        "spread": max(accuracies) - min(accuracies),
        "train_time_s": train_time,
        "meets_target": meets, "seeds": [r["seed"] for r in runs], "runs": runs, "machine": machine,
    }
    if plain_runs:
        result["plain_fit"] = {"accuracy": common.median(r["test_accuracy"] for r in plain_runs),
                               "accuracies": [r["test_accuracy"] for r in plain_runs], "runs": plain_runs}
    common.write_result(args, f"accuracy_{args.recipe}", result)
    common.print_table(f"Test accuracy, {preset_name} recipe",
                       ["seed", "test accuracy", "train time s", "load avg before", "load avg after"],
                       [[r["seed"], f"{r['test_accuracy']:.4f}", r["train_time_s"],
                         (r["load_average_before"] or [None])[0], (r["load_average_after"] or [None])[0]] for r in runs])
    print(f"median {accuracy:.4f} (min {min(accuracies):.4f}, max {max(accuracies):.4f}); "
          f"target {result['target']}: {'meets' if meets else 'MISSES'} it")
    if plain_runs:
        print(f"the article's plain fit, same seeds: median {result['plain_fit']['accuracy']:.4f} "
              f"({', '.join(f'{a:.4f}' for a in result['plain_fit']['accuracies'])})")
    return result


if __name__ == "__main__":
    main()
