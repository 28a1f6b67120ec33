"""Tuning benchmarks (issue 16): the learning-rate finder's time on the full MNIST, and a sweep's overhead.

lr-find: `python -m core lr-find` end to end (a fresh process: imports, data, 300 batches), and lr_find() alone
in this process. Target: at most 15 s on 2 cores.

overhead: one-epoch trials of a sweep through the local executor (`python -m core sweep run --max-trials 1`, one
trial per process) against the same trainings with `python -m core train`, interleaved pair by pair (which side
goes first alternates), each a fresh process: wall and CPU seconds of each. Target: at most 5% more wall time.

parallel: trials per hour of a sweep with 1 and with 2 trials at once, on the local and the Ray executor.

search: a 16-trial TPE search with pruning over learning rate, batch size, dropout and epochs (1-3) against
random search with the same budget: best validation accuracy and total time.

    python -m bench.tuning --data /work/shared/data/mnist.npz [--pairs 8] [--results-dir DIR]
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from bench import common

LR_FIND_TARGET_S = 15.0
OVERHEAD_TARGET = 0.05


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], cpu: list | None = None) -> float:
    """Wall seconds of `python -m core ARGV` in a fresh process; its CPU seconds (user + system) go in `cpu`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start, start_cpu = time.perf_counter(), _cpu_of_children()
    proc = subprocess.run([sys.executable, "-m", "core", *argv], cwd=common.REPO, env=env, capture_output=True,
                          check=False,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"python -m core {' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    if cpu is not None:
        cpu.append(_cpu_of_children() - start_cpu)
    return time.perf_counter() - start


def data_flags(path: str | None) -> list[str]:
    if path is None:
        return ["--data-source", "sample", "--train-subset", str(common.QUICK_TRAIN_IMAGES * 4)]
    return ["--data-source", "file", "--data", path]


def lr_find_figures(path: str | None) -> dict:
    from core.lr_find import lr_find

    config = common.data_config(path, validation_split=0.0)
    cpu: list[float] = []
    cli = _timed(["lr-find", *data_flags(path), "--validation-split", "0"], cpu)
    result = lr_find(config, steps=300)
    return {"cli_wall_s": round(cli, 2), "cli_cpu_s": round(cpu[0], 2), "in_process_s": result.seconds,
            "batches": result.batches,
            "suggestion": result.suggestion, "target_s": LR_FIND_TARGET_S, "meets_target": cli <= LR_FIND_TARGET_S}


def overhead_figures(path: str | None, pairs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="lenet-bench-sweep-") as root:
        flags = [*data_flags(path), "--validation-split", "0.1", "--epochs", "1"]
        spec = [f"--space={f.lstrip('-').replace('-', '_')}={v}" for f, v in zip(flags[::2], flags[1::2])
                if f != "--data"]
        created = subprocess.run([sys.executable, "-m", "core", "--runs-dir", root, "sweep", "create", "--name",
                                  "bench", *(["--data", path] if path else []), *spec,
                                  "--space", "learning_rate=0.001,0.0011", "--trials", str(pairs), "--no-pruning",
                                  "--json"], capture_output=True, text=True, cwd=common.REPO, check=True)
        sweep_id = json.loads(created.stdout)["sweep_id"]
        sweep_s, train_s, sweep_cpu, train_cpu, loads = [], [], [], [], []
        for index in range(pairs):  # alternate which side goes first: a trend in the load hits both alike
            loads.append(common.load_average()[0])
            sides = [lambda: sweep_s.append(_timed(["--runs-dir", root, "sweep", "run", sweep_id, "--max-trials",
                                                    "1"], sweep_cpu)),
                     lambda: train_s.append(_timed(["--runs-dir", root, "train", *flags, "--learning-rate", "0.001"],
                                                   train_cpu))]
            for side in sides if index % 2 == 0 else sides[::-1]:
                side()
    ratio, cpu_ratio = sum(sweep_s) / sum(train_s), sum(sweep_cpu) / sum(train_cpu)
    pair_ratios = sorted(a / b for a, b in zip(sweep_s, train_s, strict=True))
    return {"pairs": pairs, "sweep_trial_s": [round(s, 2) for s in sweep_s],
            "cli_train_s": [round(s, 2) for s in train_s], "sweep_trial_cpu_s": [round(s, 2) for s in sweep_cpu],
            "cli_train_cpu_s": [round(s, 2) for s in train_cpu], "load_1min_before_each_pair": loads,
            "overhead": round(ratio - 1, 4), "overhead_median_pair": round(statistics.median(pair_ratios) - 1, 4),
            "overhead_cpu": round(cpu_ratio - 1, 4), "target": OVERHEAD_TARGET,
            "meets_target": ratio - 1 <= OVERHEAD_TARGET}


def parallel_figures(path: str | None, trials: int, subset: int) -> dict:
    """Trials per hour of one sweep of `trials` one-epoch trials, with 1 and 2 trials at once, on each executor."""
    figures = {}
    for executor in ("local", "ray"):
        for parallel in (1, 2):
            with tempfile.TemporaryDirectory(prefix="lenet-bench-parallel-") as root:
                flags = [*data_flags(path), "--validation-split", "0.1", "--epochs", "1"]
                spec = [f"--space={f.lstrip('-').replace('-', '_')}={v}" for f, v in zip(flags[::2], flags[1::2])
                        if f != "--data"] + [f"--space=train_subset={subset}"]
                created = subprocess.run([sys.executable, "-m", "core", "--runs-dir", root, "sweep", "create",
                                          "--name", "bench", *(["--data", path] if path else []), *spec,
                                          "--space", "learning_rate=0.0005:0.005:log", "--trials", str(trials),
                                          "--no-pruning", "--json"], capture_output=True, text=True,
                                         cwd=common.REPO, check=True)
                sweep_id = json.loads(created.stdout)["sweep_id"]
                seconds = _timed(["--runs-dir", root, "sweep", "run", sweep_id, "--executor", executor,
                                  "--parallel", str(parallel)])
            figures[f"{executor}_{parallel}"] = {"seconds": round(seconds, 1),
                                                 "trials_per_hour": round(trials * 3600 / seconds, 1)}
    return {"trials": trials, "train_subset": subset, **figures}


def search_figures(path: str | None, trials: int, subset: int) -> dict:
    """A TPE search with pruning against random search with the same budget of trials: best validation accuracy
    and total time. Space: learning rate (log), batch size, dropout, epochs 1-3."""
    figures = {}
    for sampler in ("tpe", "random"):
        with tempfile.TemporaryDirectory(prefix="lenet-bench-search-") as root:
            flags = [*data_flags(path), "--validation-split", "0.1"]
            spec = [f"--space={f.lstrip('-').replace('-', '_')}={v}" for f, v in zip(flags[::2], flags[1::2])
                    if f != "--data"] + [f"--space=train_subset={subset}"]
            created = subprocess.run([sys.executable, "-m", "core", "--runs-dir", root, "sweep", "create", "--name",
                                      "bench", *(["--data", path] if path else []), *spec,
                                      "--space", "learning_rate=0.0001:0.1:log", "--space", "batch_size=32,64,128,256",
                                      "--space", "dropout=0:0.5", "--space", "epochs=1:3", "--trials", str(trials),
                                      "--sampler", sampler, "--json"],
                                     capture_output=True, text=True, cwd=common.REPO, check=True)
            sweep_id = json.loads(created.stdout)["sweep_id"]
            seconds = _timed(["--runs-dir", root, "sweep", "run", sweep_id])
            status = subprocess.run([sys.executable, "-m", "core", "--runs-dir", root, "sweep", "status", sweep_id,
                                     "--json"], capture_output=True, text=True, cwd=common.REPO, check=True)
            summary = json.loads(status.stdout)
        best = summary["best"] or {}
        figures[sampler] = {"seconds": round(seconds, 1), "best_val_accuracy": best.get("val_accuracy"),
                            "best_test_accuracy": best.get("test_accuracy"), "best_params": best.get("params"),
                            "counts": summary["counts"]}
    return {"trials": trials, "train_subset": subset, **figures}


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=8, help="sweep trials and CLI trainings, alternately (default 8)")
    p.add_argument("--only", choices=("lr_find", "overhead", "parallel", "search"), action="append",
                   help="run only these parts (repeatable; default: all)")
    p.add_argument("--parallel-trials", type=int, default=4, help="trials of each parallel sweep (default 4)")
    p.add_argument("--parallel-subset", type=int, default=12000, help="training images of their trials")
    p.add_argument("--search-trials", type=int, default=16, help="trials of each search (default 16)")
    p.add_argument("--search-subset", type=int, default=0, help="training images of the searches (0: all)")
    args = p.parse_args(argv)
    path = common.data_path(args)
    parts = args.only or ["lr_find", "overhead", "parallel", "search"]
    result = {"name": "tuning", "quick": args.quick, "machine": common.machine()}
    if "lr_find" in parts:
        result["lr_find"] = lr_find_figures(path)
    if "overhead" in parts:
        result["overhead"] = overhead_figures(path, 1 if args.quick else args.pairs)
    if "parallel" in parts:
        result["parallel"] = parallel_figures(path, 2 if args.quick else args.parallel_trials,
                                              600 if args.quick else args.parallel_subset)
    if "search" in parts:
        result["search"] = search_figures(path, 3 if args.quick else args.search_trials,
                                          600 if args.quick else args.search_subset)
    result["machine"]["load_average_end"] = common.load_average()
    common.write_result(args, "tuning" if len(parts) == 4 else "tuning-" + "-".join(parts), result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return result


if __name__ == "__main__":
    main()
