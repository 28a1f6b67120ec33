"""A sweep's definition: the base config, the search space and the search settings, checked before anything runs.

A dimension of the space is a list of choices (`{"choices": [...]}`) or a range (`{"low": a, "high": b, "log":
bool}`); a fixed value goes in the base config. Every bound and choice is checked against the field's own
description in core.config, so the messages name the field and what it allows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from core.config import CHOICES, FIELD_TYPES, PARAMS, TrainConfig

SWEEP_VERSION = 1
SAMPLERS = ("tpe", "random", "grid")
OBJECTIVES = ("val_accuracy",)  # never the test set: test accuracy is shown beside it, never optimised
# Fields a sweep does not search: where the data comes from, and the seed (seeds per configuration does that)
NOT_SEARCHED = ("dataset", "data_source", "data_path", "seed")
SEARCHABLE = tuple(name for name in PARAMS if name not in NOT_SEARCHED)
MAX_SEEDS = 10
MAX_TRIALS = 1000


class SpaceError(ValueError):
    """A one-line refusal of a sweep's definition."""


@dataclass
class SweepSpec:
    """What sweep.json holds: the sweep as its user defined it, plus whether a stop was asked for."""

    name: str
    base: dict  # TrainConfig.to_dict()
    space: dict  # field -> {"choices": [...]} or {"low": ..., "high": ..., "log": bool}
    n_trials: int = 8
    seeds: int = 1  # runs per configuration: seeds base.seed, base.seed + 1, ...
    sampler: str = "tpe"
    pruning: bool = True
    objective: str = "val_accuracy"
    created: str | None = None
    stop_requested: bool = False
    sweep_id: str = ""
    version: int = SWEEP_VERSION

    @classmethod
    def from_dict(cls, data: dict) -> SweepSpec:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)

    def base_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.base)

    def seed_list(self) -> list[int]:
        start = int(self.base.get("seed", 42))
        return [start + k for k in range(self.seeds)]


def _convert(name: str, text: Any) -> Any:
    """One value of `name` from text (the CLI) or JSON, in the field's own type."""
    kind = FIELD_TYPES[name]
    if not isinstance(text, str):
        return text
    text = text.strip()
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if kind in (int, float):
            return kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
    except ValueError:
        allowed = "true or false" if kind is bool else ("an integer" if kind is int else "a number")
        raise SpaceError(f"{name}: {text!r} is not {allowed}") from None
    return text


def parse_dimension(text: str) -> tuple[str, dict | Any]:
    """`name=low:high[:log]` (a range), `name=a,b,c` (choices) or `name=value` (fixed): (name, dimension or value)."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not value.strip():
        raise SpaceError(f"--space {text!r}: write name=low:high[:log], name=a,b,c or name=value")
    if name not in PARAMS:
        _check_name(name)
    if ":" in value and name != "data_path":
        parts = value.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].strip() != "log"):
            raise SpaceError(f"--space {text!r}: a range is low:high or low:high:log")
        return name, {"low": _convert(name, parts[0]), "high": _convert(name, parts[1]), "log": len(parts) == 3}
    if "," in value and name != "data_path":
        return name, {"choices": [_convert(name, v) for v in value.split(",") if v.strip()]}
    return name, _convert(name, value)


def _check_name(name: str) -> None:
    if name not in PARAMS:
        raise SpaceError(f"unknown field {name!r} in the search space; allowed: {', '.join(SEARCHABLE)}")
    if name in NOT_SEARCHED:
        raise SpaceError(f"{name} cannot be searched; allowed: {', '.join(SEARCHABLE)}"
                         + (" (use seeds per configuration for seeds)" if name == "seed" else ""))


def _check_value(base: TrainConfig, name: str, value: Any) -> None:
    try:
        base.replace(**{name: value})
    except (ValueError, TypeError) as exc:
        raise SpaceError(f"search space: {exc}") from None


def check_dimension(base: TrainConfig, name: str, dimension: dict) -> dict:
    """The dimension, checked and normalised; SpaceError names what is wrong and what is allowed."""
    _check_name(name)
    if not isinstance(dimension, dict) or not (set(dimension) <= {"choices", "low", "high", "log"}):
        raise SpaceError(f"{name}: a dimension is {{'choices': [...]}} or {{'low': a, 'high': b, 'log': bool}}")
    if "choices" in dimension:
        choices = [_convert(name, v) for v in dimension["choices"]]
        if not choices or len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"{name}: give at least one choice, each once (got {choices})")
        for value in choices:
            _check_value(base, name, value)
        return {"choices": choices}
    if name in CHOICES or FIELD_TYPES[name] is bool:
        allowed = ", ".join(map(str, CHOICES.get(name, (True, False))))
        raise SpaceError(f"{name} takes choices, not a range; allowed: {allowed}")
    if "low" not in dimension or "high" not in dimension:
        raise SpaceError(f"{name}: a range needs low and high")
    low, high = _convert(name, dimension["low"]), _convert(name, dimension["high"])
    log = bool(dimension.get("log", False))
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
        raise SpaceError(f"{name}: low and high must be finite numbers (got {low!r}, {high!r})")
    if low > high:
        raise SpaceError(f"{name}: low {low:g} is above high {high:g}; give low <= high")
    if log and low <= 0:
        raise SpaceError(f"{name}: a log range must stay above 0 (got low {low:g}); give low > 0 or drop :log")
    _check_value(base, name, low)
    _check_value(base, name, high)
    return {"low": low, "high": high, "log": log}


def make_spec(name: str, base: TrainConfig, space: dict, n_trials: int = 8, seeds: int = 1, sampler: str = "tpe",
              pruning: bool = True, objective: str = "val_accuracy") -> SweepSpec:
    """A checked SweepSpec (fixed values of `space`, given as plain values, go into the base config)."""
    if not isinstance(name, str) or not name.strip():
        raise SpaceError("a sweep needs a name")
    fixed = {k: _convert(k, v) for k, v in space.items() if not isinstance(v, dict)}
    for key in fixed:
        if key not in PARAMS:
            _check_name(key)  # any field may be fixed; only SEARCHABLE ones may vary
    try:
        base = base.replace(**fixed)
    except (ValueError, TypeError) as exc:
        raise SpaceError(f"fixed value: {exc}") from None
    dimensions = {k: check_dimension(base, k, v) for k, v in space.items() if isinstance(v, dict)}
    if not dimensions:
        raise SpaceError("the search space is empty: give at least one field a range or a list of choices")
    if sampler not in SAMPLERS:
        raise SpaceError(f"sampler {sampler!r} is unknown; allowed: {', '.join(SAMPLERS)}")
    if objective not in OBJECTIVES:
        raise SpaceError(f"objective {objective!r} is not allowed; allowed: {', '.join(OBJECTIVES)} "
                         f"(the test set is never the objective)")
    if base.validation_split <= 0:
        raise SpaceError("the objective is validation accuracy, so the base config needs validation_split > 0 "
                         "(allowed: up to 0.5)")
    if not isinstance(n_trials, int) or not 1 <= n_trials <= MAX_TRIALS:
        raise SpaceError(f"trials={n_trials!r}; allowed: 1 to {MAX_TRIALS}")
    if not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise SpaceError(f"seeds per configuration={seeds!r}; allowed: 1 to {MAX_SEEDS}")
    if sampler == "grid":
        ranged = [k for k, v in dimensions.items() if "choices" not in v]
        if ranged:
            raise SpaceError(f"a grid search needs choices, not ranges: {', '.join(ranged)}")
        points = math.prod(len(v["choices"]) for v in dimensions.values())
        n_trials = min(n_trials, points)  # the grid is exhausted after its last point
    return SweepSpec(name=name.strip(), base=base.to_dict(), space=dimensions, n_trials=n_trials, seeds=seeds,
                     sampler=sampler, pruning=bool(pruning), objective=objective)


def distributions(spec: SweepSpec) -> dict:
    """Optuna's distributions of the space (an int field's range is an IntDistribution)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    result = {}
    for name, dim in spec.space.items():
        if "choices" in dim:
            result[name] = CategoricalDistribution(dim["choices"])
        elif FIELD_TYPES[name] is int:
            result[name] = IntDistribution(int(dim["low"]), int(dim["high"]), log=dim["log"])
        else:
            result[name] = FloatDistribution(float(dim["low"]), float(dim["high"]), log=dim["log"])
    return result


def describe(spec: SweepSpec) -> str:
    """The space in one line, as the CLI takes it: learning_rate=0.0001:0.1:log batch_size=64,128."""
    parts = []
    for name, dim in spec.space.items():
        if "choices" in dim:
            parts.append(f"{name}={','.join(str(v) for v in dim['choices'])}")
        else:
            parts.append(f"{name}={dim['low']:g}:{dim['high']:g}{':log' if dim['log'] else ''}")
    return " ".join(parts)


MODES = ("fixed", "choices", "range", "log range")


def space_from_rows(rows: list[tuple[str, str, str]]) -> dict:
    """The space from the Sweep page's table: (field, mode, text) rows; a fixed row left empty keeps the base."""
    space: dict = {}
    for name, mode, text in rows:
        text = (text or "").strip()
        if mode not in MODES:
            raise SpaceError(f"{name}: how {mode!r} is unknown; allowed: {', '.join(MODES)}")
        if mode == "fixed":
            if text:
                space[name] = _convert(name, text)
            continue
        if not text:
            example = "choices, like 64,128" if mode == "choices" else "range, like 0.1:0.5"
            raise SpaceError(f"{name}: give its {example}")
        if mode == "choices":
            space[name] = {"choices": [_convert(name, v) for v in text.split(",") if v.strip()]}
            continue
        bounds = text.replace(",", ":").split(":")
        if len(bounds) != 2:
            raise SpaceError(f"{name}: a range is low:high (got {text!r})")
        space[name] = {"low": _convert(name, bounds[0]), "high": _convert(name, bounds[1]), "log": mode == "log range"}
    return space
