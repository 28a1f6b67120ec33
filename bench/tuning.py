"""Tuning benchmarks (issue 16): the learning-rate finder's time on the full MNIST, and a sweep's overhead.

lr-find: `python -m core lr-find` end to end (a fresh process: imports, data, 300 batches), and lr_find() alone
in this process. Target: at most 15 s on 2 cores.

overhead: one-epoch trials of a sweep through the local executor (`python -m core sweep run --max-trials 1`, one
trial per process) against the same trainings with `python -m core train`, interleaved pair by pair, each a
fresh process. Target: at most 5% more wall time.

    python -m bench.tuning --data /work/shared/data/mnist.npz [--pairs 8] [--results-dir DIR]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from bench import common

LR_FIND_TARGET_S = 15.0
OVERHEAD_TARGET = 0.05


def _timed(argv: list[str]) -> float:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core", *argv], cwd=common.REPO, env=env, capture_output=True, check=False,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"python -m core {' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def data_flags(path: str | None) -> list[str]:
    if path is None:
        return ["--data-source", "sample", "--train-subset", str(common.QUICK_TRAIN_IMAGES * 4)]
    return ["--data-source", "file", "--data", path]


def lr_find_figures(path: str | None) -> dict:
    from core.lr_find import lr_find

    config = common.data_config(path, validation_split=0.0)
    cli = _timed(["lr-find", *data_flags(path), "--validation-split", "0"])
    result = lr_find(config, steps=300)
    return {"cli_wall_s": round(cli, 2), "in_process_s": result.seconds, "batches": result.batches,
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
        import json

        sweep_id = json.loads(created.stdout)["sweep_id"]
        sweep_s, train_s = [], []
        for _ in range(pairs):
            sweep_s.append(_timed(["--runs-dir", root, "sweep", "run", sweep_id, "--max-trials", "1"]))
            train_s.append(_timed(["--runs-dir", root, "train", *flags, "--learning-rate", "0.001"]))
    ratio = sum(sweep_s) / sum(train_s)
    return {"pairs": pairs, "sweep_trial_s": [round(s, 2) for s in sweep_s],
            "cli_train_s": [round(s, 2) for s in train_s], "overhead": round(ratio - 1, 4),
            "target": OVERHEAD_TARGET, "meets_target": ratio - 1 <= OVERHEAD_TARGET}


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=8, help="sweep trials and CLI trainings, alternately (default 8)")
    args = p.parse_args(argv)
    path = common.data_path(args)
    result = {"name": "tuning", "quick": args.quick, "machine": common.machine(),
              "lr_find": lr_find_figures(path), "overhead": overhead_figures(path, 1 if args.quick else args.pairs)}
    result["machine"]["load_average_end"] = common.load_average()
    common.write_result(args, "tuning", result)
    print(f"lr-find: {result['lr_find']['cli_wall_s']} s end to end ({result['lr_find']['in_process_s']} s in "
          f"process), suggestion {result['lr_find']['suggestion']}")
    print(f"sweep overhead: {result['overhead']['overhead']:+.1%} over {result['overhead']['pairs']} pairs")
    return result


if __name__ == "__main__":
    main()
