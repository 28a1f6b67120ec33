#!/usr/bin/env python
"""Memory: peak RSS while training on the full MNIST, and RSS growth over 5 consecutive trainings in one process.

    python bench/memory.py --data /path/to/mnist.npz   # 5 x 1 epoch of the seed recipe in one fresh process
    python bench/memory.py --quick                     # 2 x 1 epoch on a tiny sample, in this process

One process calls core.trainer.train() again and again, the way a long-lived dashboard server would, each
time loading the data from the file itself (dataset=None). After each run the RSS is read from
/proc/self/status (after gc.collect()); the peak is VmHWM, the most the process ever held. Growth is the
RSS after the last run minus the RSS after the first: what each further training leaves behind.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from bench import common

NAME = "memory"
PEAK_LIMIT_MB = 1536.0
GROWTH_LIMIT_MB = 100.0


def proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def worker(payload: dict) -> dict:
    import keras  # noqa: F401 - imported before the first reading, as in a server that has already loaded it

    import core  # noqa: F401 - first, as `python -m core` and the dashboard's worker load it (TF's kernels)
    from core.trainer import train

    config = common.data_config(payload["data"], epochs=1)
    folder, store = common.temp_store()
    baseline = proc_status_mb("VmRSS")
    trainings = []
    with folder:
        for n in range(payload["trainings"]):
            result = train(config.replace(seed=42 + n), store, name=f"bench {NAME} {n + 1}")
            if result.status != "completed":
                raise RuntimeError(f"training {n + 1} ended {result.status}: {result.error}")
            gc.collect()
            trainings.append({"rss_mb": proc_status_mb("VmRSS"), "peak_rss_mb": proc_status_mb("VmHWM"),
                              "test_accuracy": result.test_metrics["accuracy"]})
    return {"baseline_rss_mb": baseline, "trainings": trainings}


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if common.worker_main(argv, worker):
        return {}
    p = common.parser(__doc__.splitlines()[1])
    p.add_argument("--trainings", type=int, default=5)
    args = p.parse_args(argv)
    path = common.data_path(args)
    trainings = 2 if args.quick else args.trainings
    machine = common.machine()
    run = common.run_worker("bench.memory", {"data": path, "trainings": trainings}, not args.quick, worker)
    rows = run["trainings"]
    peak = max(r["peak_rss_mb"] for r in rows)
    growth = rows[-1]["rss_mb"] - rows[0]["rss_mb"]
    meets = peak <= PEAK_LIMIT_MB and growth <= GROWTH_LIMIT_MB
    result = {
        "figure": "Memory: peak RSS while training, RSS growth over consecutive trainings in one process",
        "target": f"peak <= {PEAK_LIMIT_MB:g} MB; growth <= {GROWTH_LIMIT_MB:g} MB",
        "peak_limit_mb": PEAK_LIMIT_MB, "growth_limit_mb": GROWTH_LIMIT_MB,
        "peak_rss_mb": peak, "growth_mb": growth,
        "growth_per_training_mb": growth / (len(rows) - 1) if len(rows) > 1 else None,
        "baseline_rss_mb": run["baseline_rss_mb"], "trainings": rows, "isolated_process": not args.quick,
        "meets_target": meets, "machine": machine,
    }
    common.write_result(args, NAME, result)
    common.print_table("Memory over consecutive trainings in one process",
                       ["training", "RSS after MB", "peak so far MB", "test accuracy"],
                       [[n + 1, r["rss_mb"], r["peak_rss_mb"], f"{r['test_accuracy']:.4f}"] for n, r in enumerate(rows)])
    print(f"peak {peak:.0f} MB (<= {PEAK_LIMIT_MB:g}), growth {growth:+.0f} MB (<= {GROWTH_LIMIT_MB:g}): "
          f"{'meets' if meets else 'MISSES'} the target")
    return result


if __name__ == "__main__":
    main()
