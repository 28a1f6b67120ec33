"""One validated dataclass that holds every hyperparameter of a run, plus the presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any

CONFIG_VERSION = 1


@dataclass(frozen=True)
class Param:
    """What a TrainConfig field is, for every place that shows or checks it: the sidebar form, the CLI flags,
    the validation messages, the Runs table and the HParams axes are all derived from these."""

    label: str  # the form's label
    short: str  # the Runs table's column and the HParams axis
    help: str = ""
    group: str = "Optimisation"  # the form's section: Data, Model or Optimisation
    choices: tuple[str, ...] = ()  # a choice field; otherwise a number, a switch or a path
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    applies_when: dict = field(default_factory=dict)  # e.g. {"variant": ("seed",)}: ignored otherwise
    step: float | None = None  # the form's step for a number
    format: str | None = None  # printf format for the form and the table, e.g. "%.2f"
    slider: bool = False  # a slider rather than a number box
    log: bool = False  # spans decades: log axis in HParams
    in_runs: bool = True  # a column of the Runs table and an axis of HParams


def param(default: Any, **description: Any) -> Any:
    """A TrainConfig field with its description (a Param) attached."""
    return field(default=default, metadata={"param": Param(**description)})


SEED_VARIANT_ONLY = {"variant": ("seed",)}
SEED_ONLY_HELP = "Seed variant only: lecun1998 uses the paper's scaled tanh and trainable subsampling"


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = param("mnist", label="Dataset", short="dataset", group="Data", choices=("mnist", "fashion_mnist"))
    data_source: str = param(
        "auto", label="Data source", short="data source", group="Data", choices=("auto", "file", "keras", "sample"),
        help="auto: your file, then Keras' cache or download, then the bundled MNIST sample.", in_runs=False)
    data_path: str | None = param(
        None, label="Data path", short="data path", group="Data", in_runs=False,
        help="A Keras-layout .npz or a folder of the four IDX files; used by the 'file' source, and by 'auto' when given.")
    train_subset: int = param(
        0, label="Training images (0 = all)", short="training subset", group="Data", low=0, high=60_000, step=1000,
        help="A stratified subset of the training set", in_runs=False)  # the Runs table shows the images used
    validation_split: float = param(
        0.1, label="Validation split", short="validation split", group="Data", low=0.0, high=0.5, step=0.05,
        format="%.2f", help="Held out from the training images, stratified", in_runs=False)
    variant: str = param("seed", label="Variant", short="variant", group="Model", choices=("seed", "lecun1998"),
                         help="seed: the article's network; lecun1998: the 1998 paper's LeNet-5.")
    activation: str = param("relu", label="Activation", short="activation", group="Model",
                            choices=("relu", "tanh", "sigmoid"), applies_when=SEED_VARIANT_ONLY, help=SEED_ONLY_HELP,
                            in_runs=False)
    pooling: str = param("average", label="Pooling", short="pooling", group="Model", choices=("average", "max"),
                         applies_when=SEED_VARIANT_ONLY, help=SEED_ONLY_HELP, in_runs=False)
    dropout: float = param(0.0, label="Dropout", short="dropout", group="Model", low=0.0, high=0.9, step=0.05,
                           format="%.2f", slider=True, applies_when=SEED_VARIANT_ONLY,
                           help=SEED_ONLY_HELP + "; before each dense layer")
    optimizer: str = param("adam", label="Optimizer", short="optimizer", choices=("adam", "sgd", "rmsprop"))
    learning_rate: float = param(0.001, label="Learning rate", short="learning rate", low=0.0, high=10.0,
                                 low_inclusive=False, step=0.0005, format="%g", log=True,
                                 help="The article's Adam rate is 0.001")
    momentum: float = param(0.9, label="Momentum", short="momentum", low=0.0, high=0.999, step=0.05, format="%.3f",
                            applies_when={"optimizer": ("sgd", "rmsprop")}, help="Used by sgd and rmsprop only",
                            in_runs=False)
    lr_schedule: str = param("constant", label="Learning-rate schedule", short="schedule",
                             choices=("constant", "cosine", "step"),
                             help="constant; cosine decay to 0; step: ×0.1 at 50% and 75% of training")
    label_smoothing: float = param(
        0.0, label="Label smoothing", short="label smoothing", low=0.0, high=0.3, step=0.05, format="%.2f",
        help="Train against (1 - ε)·one-hot + ε/classes instead of the one-hot label (Szegedy et al. 2016); 0 = off")
    batch_size: int = param(64, label="Batch size", short="batch size", low=1, high=4096, step=16,
                            help="The article's batch is 64")
    epochs: int = param(5, label="Epochs", short="epochs", low=1, high=200, step=1, help="The article trains 5")
    augment: bool = param(False, label="Augment (small random shifts and rotations)", short="augment",
                          help="Random shifts of up to 2 pixels and rotations of up to 10° in the input pipeline")
    exclude_train: tuple[int, ...] = param(
        (), label="Excluded training images", short="excluded images", group="Data",
        help="Training-set indices left out of training, e.g. the images a label audit marked 'wrong label'; "
             "comma-separated, empty = none")
    seed: int = param(42, label="Seed", short="seed", low=0, high=2**31 - 1, step=1, in_runs=False,
                      help="Fixes weights, shuffling, splits and augmentation")

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_train", parse_indices(self.exclude_train))
        validate(self)
        for name, kind in FIELD_TYPES.items():
            if kind is float:
                object.__setattr__(self, name, float(getattr(self, name)))  # 10 and 10.0 are the same rate

    def to_dict(self) -> dict[str, Any]:
        return {"config_version": CONFIG_VERSION, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = dict(data)
        version = data.pop("config_version", CONFIG_VERSION)
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise ValueError(
                f"config_version={version!r} was written by a newer LeNet Lab; "
                f"this version reads config_version <= {CONFIG_VERSION}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; allowed fields are {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"config is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("config JSON must be an object")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


PARAMS: dict[str, Param] = {f.name: f.metadata["param"] for f in fields(TrainConfig)}
FIELD_TYPES: dict[str, type] = {f.name: type(f.default) if f.default is not None else str for f in fields(TrainConfig)}
CHOICES: dict[str, tuple[str, ...]] = {name: p.choices for name, p in PARAMS.items() if p.choices}
# Numeric ranges: (low, high, low_inclusive, high_inclusive)
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    name: (p.low, p.high, p.low_inclusive, p.high_inclusive) for name, p in PARAMS.items() if p.low is not None}


def describe_range(name: str) -> str:
    """A numeric field's allowed range as text, e.g. (0, 10]."""
    low, high, low_inc, high_inc = RANGES[name]
    return f"{'[' if low_inc else '('}{number_text(low)}, {number_text(high)}{']' if high_inc else ')'}"


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"  # 2147483647, not 2.14748e+09


MAX_TRAIN_INDEX = 59_999  # the largest training index of MNIST and Fashion-MNIST (60,000 images)


def parse_indices(value: Any) -> tuple[int, ...]:
    """exclude_train from a list, a tuple or text ("12, 345"): sorted, without repeats; ValueError otherwise."""
    if isinstance(value, str):
        parts = [part for part in value.replace(";", ",").replace(" ", ",").split(",") if part]
        if not all(part.isdigit() for part in parts):
            raise ValueError(f"exclude_train={value[:40]!r} must be training indices separated by commas; "
                             f"allowed: whole numbers 0 to {MAX_TRAIN_INDEX}")
        value = [int(part) for part in parts]
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise ValueError(f"exclude_train={str(value)[:40]} must be a list of training indices; "
                         f"allowed: whole numbers 0 to {MAX_TRAIN_INDEX}")
    outside = [v for v in value if not 0 <= v <= MAX_TRAIN_INDEX]
    if outside:
        raise ValueError(f"exclude_train={outside[0]} is not a training index; "
                         f"allowed: 0 to {MAX_TRAIN_INDEX}")
    return tuple(sorted(set(value)))


def indices_text(value: tuple[int, ...]) -> str:
    return ", ".join(str(v) for v in value)


def applies(config: "TrainConfig", name: str) -> bool:
    """Whether a field is used with this config's other choices (dropout by the seed variant, momentum by sgd)."""
    return all(getattr(config, other) in allowed for other, allowed in PARAMS[name].applies_when.items())


def _check_number(cfg: TrainConfig, name: str) -> None:
    value = getattr(cfg, name)
    integer = FIELD_TYPES[name] is int
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"{name}={value!r} must be {kind} in {describe_range(name)}")
    low, high, low_inc, high_inc = RANGES[name]
    above = value >= low if low_inc else value > low
    below = value <= high if high_inc else value < high
    if not (above and below) or value != value:
        raise ValueError(f"{name}={value!r} is out of range; allowed: {describe_range(name)}")


def validate(cfg: TrainConfig) -> None:
    """Raise ValueError naming the field, the value and what is allowed."""
    for name, choices in CHOICES.items():
        value = getattr(cfg, name)
        if value not in choices:
            raise ValueError(f"{name}={value!r} is not allowed; choose one of {', '.join(choices)}")
    for name in RANGES:
        _check_number(cfg, name)
    for name, kind in FIELD_TYPES.items():
        if kind is bool and not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"{name}={getattr(cfg, name)!r} must be true or false")
    _check_combinations(cfg)


def _check_combinations(cfg: TrainConfig) -> None:
    if cfg.data_path is not None and (not isinstance(cfg.data_path, str) or not cfg.data_path.strip()):
        raise ValueError(f"data_path={cfg.data_path!r} must be a non-empty path or omitted")
    if cfg.data_source == "file" and not cfg.data_path:
        raise ValueError("data_source='file' needs data_path: a Keras-layout .npz or a folder of IDX files")
    if cfg.variant == "lecun1998":
        defaults = TrainConfig.__dataclass_fields__
        for name in (n for n, p in PARAMS.items() if p.applies_when == SEED_VARIANT_ONLY):
            if getattr(cfg, name) != defaults[name].default:
                raise ValueError(
                    f"{name}={getattr(cfg, name)!r} applies to the seed variant only; "
                    f"lecun1998 uses the paper's scaled tanh and trainable subsampling "
                    f"(leave {name} at {defaults[name].default!r})"
                )
    if cfg.train_subset:
        training = int(cfg.train_subset * (1 - cfg.validation_split))
        if cfg.train_subset < 10 * 2:
            raise ValueError(f"train_subset={cfg.train_subset} is too small; allowed: 0 (all) or 20 to "
                             f"{number_text(PARAMS['train_subset'].high)}")
        held_out = round(cfg.train_subset * cfg.validation_split)
        if cfg.validation_split > 0 and held_out == 0:
            raise ValueError(
                f"validation_split={cfg.validation_split} holds out no image of train_subset={cfg.train_subset}; "
                f"allowed: 0 (no validation) or more than {0.5 / cfg.train_subset:.3g}"
            )
        if cfg.batch_size > training:
            raise ValueError(
                f"batch_size={cfg.batch_size} is larger than the {training} training images left by "
                f"train_subset={cfg.train_subset} and validation_split={cfg.validation_split}; "
                f"allowed: 1 to {training}"
            )


PRESETS: dict[str, TrainConfig] = {
    # The article: Adam 1e-3, batch 64, 5 epochs, no augmentation.
    "Seed article": TrainConfig(validation_split=0.0),
    # Under a minute on 2 CPU cores with the bundled sample.
    "Quick demo": TrainConfig(train_subset=6000, validation_split=0.1, epochs=2, batch_size=128),
    # Highest test accuracy we reach within five minutes on 2 CPU cores (bench/RESULTS.md: 99.48% median over
    # 8 seeds, 2-2.5 minutes each). Batch 256 costs less CPU per image than 64, which buys epochs; max
    # pooling and light dropout on top of the shifts/rotations; SGD with momentum and cosine decay to 0 over
    # the run, which beat Adam 3e-3 here (99.50/99.52% against 99.44/99.37% on seeds 42/43) in no more time.
    "Best accuracy": TrainConfig(
        validation_split=0.0,
        augment=True,
        pooling="max",
        dropout=0.1,
        optimizer="sgd",
        learning_rate=0.1,
        momentum=0.9,
        lr_schedule="cosine",
        batch_size=256,
        epochs=20,
    ),
}


def preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"preset={name!r} is unknown; choose one of {', '.join(PRESETS)}") from None
