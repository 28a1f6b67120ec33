"""Shared by the benchmarks: arguments, machine facts, data, timing, fresh-process workers, result files."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
WORKER_FLAG = "--worker"
RESULT_PREFIX = "BENCH_RESULT "
QUICK_TRAIN_IMAGES = 256  # --quick: a stratified subset of the bundled sample
QUICK_TEST_IMAGES = 200


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="tiny data from the bundled sample, one repeat, in this process: a smoke test in seconds")
    p.add_argument("--data", help="the full MNIST, a Keras-layout .npz (default: $LENET_DATA)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR), help="where <name>.json is written")
    p.add_argument(WORKER_FLAG, help=argparse.SUPPRESS)  # internal: run one measurement and print its JSON
    return p


def data_path(args) -> str | None:
    """The full-MNIST path, or None in --quick mode; exits with a message when neither is given."""
    if args.quick:
        return None
    path = args.data or os.environ.get("LENET_DATA")
    if not path:
        sys.exit("pass --data PATH (the full MNIST as a Keras-layout .npz) or --quick")
    if not Path(path).is_file():
        sys.exit(f"--data {path}: no such file")
    return str(Path(path).resolve())


def data_config(path: str | None, **changes):
    """The seed recipe's TrainConfig on the full MNIST (path) or on the quick sample (path None)."""
    from core.config import TrainConfig

    if path is None:
        base = TrainConfig(data_source="sample", train_subset=QUICK_TRAIN_IMAGES, validation_split=0.0)
    else:
        base = TrainConfig(data_source="file", data_path=path, validation_split=0.0)
    return base.replace(**changes)


def load_data(config):
    """The dataset for `config`; the quick sample also gets a smaller test set so each epoch's eval is quick."""
    import dataclasses

    from core.data import load_dataset

    data = load_dataset(config)
    if config.data_source == "sample":
        data = dataclasses.replace(data, x_test=data.x_test[:QUICK_TEST_IMAGES], y_test=data.y_test[:QUICK_TEST_IMAGES])
    return data


def plain_fit(data, config, callbacks=()):
    """The seed article's training, as the article writes it: Sequential LeNet-5 compiled with Adam(1e-3),
    sparse_categorical_crossentropy and accuracy, default compile options, model.fit on numpy arrays with
    batch 64 (verbose=0: the article's progress bar would only slow it down). Returns the model."""
    import keras

    from core.config import TrainConfig
    from core.model import build_model

    keras.utils.set_random_seed(config.seed)
    model = build_model(TrainConfig(seed=config.seed))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, batch_size=64, epochs=config.epochs, verbose=0, callbacks=list(callbacks))
    return model


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def epoch_clock():
    """A Keras callback recording each epoch's wall and CPU seconds. Put it last: it then includes the
    other callbacks' epoch-end work (the streaming callback's evaluation and snapshot)."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs: list[dict] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._wall, self._cpu = time.perf_counter(), cpu_seconds()

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append({"wall": time.perf_counter() - self._wall, "cpu": cpu_seconds() - self._cpu})

    return EpochClock()


def onednn_on() -> bool | None:
    """Whether this process's TensorFlow runs its oneDNN kernels (None if TensorFlow cannot say)."""
    try:
        from tensorflow.python.util import (
            _pywrap_util_port,  # private, but the only place TensorFlow tells
        )
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def machine() -> dict:
    """What the figures were measured on; load averages show how busy the shared machine was."""
    import keras
    import tensorflow as tf

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_average_start": load_average()}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_worker(module: str, payload: dict, isolate: bool, worker_fn) -> dict:
    """Run one measurement in a fresh Python process (isolate) or in this one (--quick).

    A fresh process gives each side the TensorFlow defaults, an empty heap and its own compile warm-up.
    """
    if not isolate:
        return worker_fn(payload)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    for key, value in payload.get("env", {}).items():  # None: unset, so TensorFlow uses its own default
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    proc = subprocess.run([sys.executable, "-m", module, WORKER_FLAG, json.dumps(payload)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError(f"{module} worker {payload} exited with {proc.returncode}:\n{proc.stderr[-3000:]}")


def worker_main(argv, worker_fn) -> bool:
    """If argv asks for a worker, run it, print its result line and return True."""
    if WORKER_FLAG not in argv:
        return False
    payload = json.loads(argv[argv.index(WORKER_FLAG) + 1])
    print(RESULT_PREFIX + json.dumps(worker_fn(payload)), flush=True)
    return True


def interleaved_runs(module: str, sides, pairs: int, payload_for, isolate: bool, worker_fn, summarise) -> list[dict]:
    """Run the sides alternately, pair after pair (a, b, a, b, ...), so a burst of load hits every side.

    payload_for(side) gives a run's payload; summarise(run) adds its figures (steady_images_per_s at least)."""
    runs = []
    for pair in range(pairs):
        for side in sides:
            run = run_worker(module, payload_for(side), isolate, worker_fn)
            run.update(pair=pair, side=side, **summarise(run))
            runs.append(run)
            print(f"pair {pair + 1}/{pairs} {side:12s}: steady {run['steady_images_per_s']:8.0f} img/s", flush=True)
    return runs


def paired_args(argv, description: str, pairs: int, epochs: int, sides: str):
    """(args, data path, pairs) for a benchmark of interleaved pairs; --quick means one pair of 2 epochs."""
    p = parser(description)
    p.add_argument("--pairs", type=int, default=pairs, help=f"interleaved {sides} pairs (full mode)")
    p.add_argument("--epochs", type=int, default=epochs, help="epochs per run; epoch 1 is the compile warm-up")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 2
    return args, data_path(args), 1 if args.quick else args.pairs


def trainer_run(config, data, name: str, streaming: bool, callbacks):
    """core.trainer.train() into a temporary run store; returns the run's epoch records (a DataFrame)."""
    from core.trainer import train

    folder, store = temp_store()
    with folder:
        result = train(config, store, name=name, streaming=streaming, dataset=data, callbacks=list(callbacks))
        if result.status != "completed":
            raise RuntimeError(f"trainer run ended {result.status}: {result.error}")
        return store.read_metrics(result.run_id)[1]


def run_of(runs: list[dict], pair: int, side: str) -> dict | None:
    return next((r for r in runs if r["pair"] == pair and r["side"] == side), None)


def steady_speed(run: dict) -> dict:
    """Images per wall second and per CPU second over epochs 2.. (epoch 1 includes tracing and compiling)."""
    steady = run["epochs"][1:]
    if not steady:
        return {"steady_images_per_s": None, "steady_images_per_cpu_s": None}
    return {"steady_images_per_s": run["images"] * len(steady) / sum(e["wall"] for e in steady),
            "steady_images_per_cpu_s": run["images"] * len(steady) / sum(e["cpu"] for e in steady)}


def temp_store():
    from core.store import RunStore

    folder = tempfile.TemporaryDirectory(prefix="lenet-bench-")
    return folder, RunStore(Path(folder.name) / "runs")


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None


def write_result(args, name: str, result: dict) -> Path:
    """bench/results/<name>.json, written to a temporary file first so a reader never sees half of it."""
    folder = Path(args.results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    result = {"name": name, "quick": bool(args.quick), **result}
    result["machine"]["load_average_end"] = load_average()
    target = folder / f"{name}.json"
    tmp = folder / f"{name}.json.tmp"
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, target)
    return target


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [[_cell(v) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  ".join(value.rjust(width) for value, width in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)
