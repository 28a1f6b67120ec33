"""TrainConfig validation, JSON round trip and presets."""

import dataclasses
import json

import pytest

from core.config import CHOICES, FIELD_TYPES, PARAMS, PRESETS, RANGES, TrainConfig, applies, describe_range, preset


def test_defaults_are_the_seed_article_recipe():
    config = TrainConfig()
    assert (config.variant, config.optimizer, config.learning_rate, config.batch_size, config.epochs) == (
        "seed", "adam", 0.001, 64, 5)
    assert config.augment is False


def test_json_round_trip_keeps_every_field():
    config = TrainConfig(dataset="fashion_mnist", optimizer="sgd", momentum=0.8, lr_schedule="cosine",
                         augment=True, dropout=0.25, seed=7, train_subset=5000, validation_split=0.2)
    again = TrainConfig.from_json(config.to_json())
    assert again == config
    assert json.loads(config.to_json())["config_version"] == 1


@pytest.mark.parametrize("field_name", sorted(CHOICES))
def test_each_choice_field_rejects_unknown_values(field_name):
    with pytest.raises(ValueError) as excinfo:
        TrainConfig(**{field_name: "bogus"})
    message = str(excinfo.value)
    assert field_name in message and "'bogus'" in message
    assert CHOICES[field_name][0] in message  # names what is allowed


BAD_NUMBERS = {
    "train_subset": [-1, 60_001, 1.5, "100"],
    "validation_split": [-0.1, 0.51, "x"],
    "dropout": [-0.01, 0.95],
    "learning_rate": [0, -1e-3, 10.5, float("nan")],
    "momentum": [-0.1, 1.0],
    "batch_size": [0, 5000, 64.0, True],
    "epochs": [0, 201, 2.5],
    "seed": [-1, 2**31, None],
}


@pytest.mark.parametrize("field_name,value", [(f, v) for f, values in BAD_NUMBERS.items() for v in values])
def test_each_numeric_field_names_field_value_and_range(field_name, value):
    with pytest.raises(ValueError) as excinfo:
        TrainConfig(**{field_name: value})
    message = str(excinfo.value)
    assert field_name in message
    assert repr(value) in message
    low, high, _, _ = RANGES[field_name]
    assert (str(int(high)) if float(high).is_integer() else f"{high:g}") in message


def test_bad_combinations_are_named():
    with pytest.raises(ValueError, match="batch_size=512 is larger than the 450 training images"):
        TrainConfig(train_subset=500, validation_split=0.1, batch_size=512)
    with pytest.raises(ValueError, match="data_source='file' needs data_path"):
        TrainConfig(data_source="file")
    with pytest.raises(ValueError, match="activation='tanh' applies to the seed variant only"):
        TrainConfig(variant="lecun1998", activation="tanh")
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(augment="yes")


def test_future_and_unknown_fields_are_refused():
    with pytest.raises(ValueError, match="newer LeNet Lab"):
        TrainConfig.from_dict({"config_version": 99})
    with pytest.raises(ValueError, match="unknown config field"):
        TrainConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="not valid JSON"):
        TrainConfig.from_json("{not json")


def test_presets_exist_and_seed_article_matches_the_article():
    assert set(PRESETS) == {"Seed article", "Quick demo", "Best accuracy"}
    seed = preset("Seed article")
    assert (seed.learning_rate, seed.batch_size, seed.epochs, seed.optimizer, seed.augment) == (0.001, 64, 5, "adam", False)
    with pytest.raises(ValueError, match="preset='nope' is unknown"):
        preset("nope")


def test_every_field_describes_itself():
    """The form, the flags, the messages, the Runs table and HParams are derived from these descriptions."""
    assert set(PARAMS) == {f.name for f in dataclasses.fields(TrainConfig)}
    for name, p in PARAMS.items():
        assert p.label and p.short and p.group in ("Data", "Model", "Optimisation"), name
        if FIELD_TYPES[name] in (int, float):
            assert name in RANGES and p.step is not None, name
        for other, allowed in p.applies_when.items():
            assert set(allowed) <= set(CHOICES[other]), name
    assert describe_range("learning_rate") == "(0, 10]" and describe_range("seed") == "[0, 2147483647]"
    assert not applies(TrainConfig(optimizer="adam"), "momentum") and applies(TrainConfig(optimizer="sgd"), "momentum")
    assert not applies(TrainConfig(variant="lecun1998"), "dropout") and applies(TrainConfig(), "dropout")


def test_cli_flags_and_runs_columns_come_from_the_fields():
    from core.cli import build_parser
    from dashboard import figures_runs

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {option for action in train._actions for option in action.option_strings}
    for name, p in PARAMS.items():
        flag = "--data" if name == "data_path" else "--" + name.replace("_", "-")
        assert flag in flags, name
        assert (name in figures_runs.RUN_COLUMNS) == p.in_runs, name
        if p.in_runs and name != "dataset":
            assert name in figures_runs.SCATTER_CHOICES
    help_text = train.format_help()
    assert "allowed: (0, 10]" in help_text and "Learning rate" in help_text
