"""TrainConfig: defaults, YAML + overrides, and one clear line for every invalid value."""

from __future__ import annotations

import pytest

from deepnets.config import TrainConfig, load_config, parse_override
from deepnets.errors import ConfigError


def test_defaults_are_valid_and_scoped():
    cfg = TrainConfig()
    assert cfg.batch_size_per_worker == cfg.global_batch_size
    assert cfg.model.name in cfg.run_name


def test_yaml_then_overrides_later_wins(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 3\noptim: {name: sgd, lr: 0.1}\nmodel: {name: vgg11}\n")
    cfg = load_config(path, ["optim.lr=0.05", "model.options.batch_norm=after_relu"])
    assert (cfg.epochs, cfg.optim.name, cfg.optim.lr) == (3, "sgd", 0.05)
    assert cfg.model.options == {"batch_norm": "after_relu"}


def test_override_values_are_yaml_scalars():
    assert parse_override("use_gpu=true") == ("use_gpu", True)
    assert parse_override("data.train_subset=500") == ("data.train_subset", 500)
    assert parse_override("name=run-1") == ("name", "run-1")


def test_per_worker_batch_is_global_over_workers():
    cfg = TrainConfig(global_batch_size=64, num_workers=4)
    assert cfg.batch_size_per_worker == 16


# (overrides, fragments the one-line message must contain)
INVALID = [
    (["optim.lr=0"], ["optim.lr", "greater than 0"]),
    (["optim.lr=-1"], ["optim.lr"]),
    (["epochs=0"], ["epochs", "greater than or equal to 1"]),
    (["global_batch_size=-8"], ["global_batch_size"]),
    (["optim.name=lbfgs"], ["optim.name", "sgd", "adamw"]),
    (["optim.lrr=0.1"], ["optim.lrr", "unknown key", "allowed: name, lr, momentum"]),
    (["epoch=3"], ["epoch", "unknown key"]),
    (["model.name=vgg17"], ["model", "unknown model 'vgg17'"]),
    (["model.options.depth=3"], ["no option 'depth'"]),
    (["model.name=vgg16", "model.options.batch_norm=sometimes"], ["batch_norm", "after_relu"]),
    (["data.dataset=imagenet"], ["data.dataset", "unknown dataset"]),
    (["data.augment=heavy"], ["data.augment", "standard"]),
    (["num_workers=4", "global_batch_size=2"], ["global_batch_size", "smaller than num_workers"]),
    (["num_workers=3", "global_batch_size=64"], ["global_batch_size", "divisible by num_workers"]),
    (["epochs=ten"], ["epochs", "valid integer"]),
    (["optim.momentum=1.5"], ["optim.momentum"]),
    (["optim.name=adam", "optim.nesterov=true"], ["nesterov"]),
    (["optim.name=adam", "optim.momentum=0.9"], ["momentum is not an option of adam"]),
    (["precision=fp8"], ["precision", "bf16"]),
    (["data.val_fraction=0.95"], ["data.val_fraction"]),
    (["name=../escape"], ["name", "pattern"]),
    (["schedule.name=linear"], ["schedule.name", "cosine"]),
    (["label_smoothing=1.0"], ["label_smoothing"]),
]


@pytest.mark.parametrize(("overrides", "fragments"), INVALID, ids=[" ".join(o) for o, _ in INVALID])
def test_invalid_config_is_one_line_naming_the_field(overrides, fragments):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("command line: ")
    for fragment in fragments:
        assert fragment in message


def test_error_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: -3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: optim\.lr"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("epochs: [1, 2", "malformed YAML"), ("- 1\n- 2\n", "expected a mapping")],
)
def test_bad_yaml_file(tmp_path, text, fragment):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)


def test_missing_file_and_bad_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["epochs"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(None, ["epochs=2", "epochs.x=1"])
