"""`python -m core compare RUN_A RUN_B [--groups]`: is the difference between two runs (or their seed groups) real?
`python -m core lr-find`: which learning rate to try (registered by core.cli), and `train --seeds`' list of seeds."""

from __future__ import annotations

import argparse
import json

from core.config import PRESETS
from core.store import RunStore


def add_commands(commands, hidden_flags) -> None:
    compare = commands.add_parser("compare", help="two runs' accuracies with 95%% intervals and McNemar's exact test")
    compare.add_argument("run_a", help="run id of A (see `list`)")
    compare.add_argument("run_b", help="run id of B")
    compare.add_argument("--groups", action="store_true",
                         help="compare the seed groups of the two runs (runs differing only in the seed): "
                              "Welch's t-test")
    hidden_flags(compare)


def seed_list(text: str) -> list[int]:
    """`train --seeds 42,43,44`: distinct integers (each checked against the seed's range by the config)."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct seeds, e.g. 42,43,44")
    return seeds


def add_lr_find(commands):
    """The lr-find subparser (core.cli adds the config flags, as for train)."""
    lr_find = commands.add_parser("lr-find", help="learning-rate range test (Smith 2017) of a config: suggests a rate")
    lr_find.add_argument("--preset", choices=list(PRESETS), help="start from a preset; flags override it")
    lr_find.add_argument("--data", dest="data_path", help="Keras-layout .npz or a folder of IDX files")
    lr_find.add_argument("--steps", type=int, default=300, help="batches of the test (default 300; 10 to 5000)")
    lr_find.add_argument("--min-rate", type=float, default=1e-6, help="the first batch's rate (default 1e-6)")
    lr_find.add_argument("--max-rate", type=float, default=1.0, help="the last batch's rate (default 1)")
    return lr_find


def cmd_lr_find(args, config) -> int:
    from core.lr_find import lr_find

    result = lr_find(config, steps=args.steps, min_rate=args.min_rate, max_rate=args.max_rate)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    suggestion = f"{result.suggestion:.3g}" if result.suggestion else "none (the loss never fell)"
    lowest = f"; lowest smoothed loss at {result.minimum:.3g}" if result.minimum else ""
    print(f"{result.batches} batches in {result.seconds:.1f} s, rates {result.rates[0]:.2g} to {result.rates[-1]:.2g}\n"
          f"suggested learning rate: {suggestion} (the steepest fall of the smoothed loss){lowest}")
    return 0


def cmd_compare(args, store: RunStore) -> int:
    from core.compare import CompareError, compare_groups, compare_runs, group_accuracies
    from core.seed_groups import group_of

    store.read_status(args.run_a)
    store.read_status(args.run_b)
    if args.groups:
        runs = store.list_runs()
        groups = [[r.run_id for r in group_of(runs, run) if r.record.test_accuracy is not None]
                  for run in (args.run_a, args.run_b)]
        if set(groups[0]) == set(groups[1]):
            raise CompareError("the two runs are in the same seed group; give runs of two different recipes")
        result = compare_groups(*(group_accuracies(store, group) for group in groups))
        payload = {**result.to_dict(), "runs_a": groups[0], "runs_b": groups[1]}
        print(json.dumps(payload, indent=2) if args.json else result.sentence)
        return 0
    comparison = compare_runs(store, args.run_a, args.run_b)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
        return 0
    for label, acc in (("A", comparison.a), ("B", comparison.b)):
        print(f"{label} {acc.name} ({acc.run_id}): {acc.value:.2%} of {acc.n} "
              f"(95% CI {acc.low:.2%} to {acc.high:.2%}, Wilson)")
    print(comparison.sentence)
    return 0


COMMANDS = {"compare": cmd_compare}
