"""TrainConfig: the same rules for YAML and the command line, one line naming the setting for a bad value."""

import pytest

from multibox.engine.config import TrainConfig, load_config
from multibox.errors import ConfigError


def test_yaml_and_command_line_read_numbers_alike(tmp_path):
    path = tmp_path / "run.yaml"
    # YAML 1.1 reads 5e-3 (no dot) as text; both doors must give the number
    path.write_text("lr: 5e-3\nepochs: 12\nweight_decay: 1e-4\nlr_steps: [3, 6]\ntrain_split: 2007\n")
    from_file = load_config(path)
    from_line = load_config(
        None, ["lr=5e-3", "epochs=12", "weight_decay=1e-4", "lr_steps=[3,6]", "train_split=2007"]
    )
    for config in (from_file, from_line):
        assert (config.lr, config.epochs, config.weight_decay) == (0.005, 12, 0.0001)
        assert config.lr_steps == [3, 6] and config.train_split == "2007"
        assert isinstance(config.lr, float) and isinstance(config.epochs, int)
    assert load_config(None, ["train_split=0012"]).train_split == "0012"  # text settings keep their text
    assert load_config(None, ["class_names=null", "lr_steps=80"]).lr_steps == [80]


@pytest.mark.parametrize(
    "override, message",
    [
        ("epochs=0", "epochs must be >= 1, got 0"),
        ("batch_size=0", "batch_size must be >= 1, got 0"),
        ("batch_size=-3", "batch_size must be >= 1, got -3"),
        ("batch_size=2.5", "batch_size expects an integer"),
        ("lr=0", "lr must be > 0"),
        ("lr=fast", "lr expects a number or null, got 'fast'"),
        ("amp=maybe", "amp expects true or false"),
        ("data_shape=8", "data_shape must be >= 16"),
        ("optimizer=adam", "optimizer must be one of sgd, sgd_mxnet, adamw"),
        ("schedule=linear", "schedule must be one of step, cosine"),
        ("network=resnet18", "network 'resnet18' is unknown"),
        ("nms_threshold=1.5", r"nms_threshold must be in \(0, 1\]"),
        ("momentum=1", r"momentum must be in \[0, 1\)"),
        ("network_options=[1, 2]", "network_options expects a mapping"),
        ("freeze=conv(", "freeze 'conv\\(' is not a valid regular expression"),
        ("device=gpu7", "device 'gpu7' is not a device"),
        ("lr_step=3", "unknown setting 'lr_step'"),
        ("epochs", "must look like key=value"),
    ],
)
def test_bad_command_line_values_name_the_setting(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs: -1\n", "epochs must be >= 1"),
        ("lr: '0.01x'\n", "lr expects a number"),
        ("typo: 1\n", "unknown settings \\['typo'\\]"),
        ("lr: [0.1\n", "is not valid YAML at line 2"),
        ("- lr\n- 0.1\n", "expected a mapping of settings"),
        ("augmentation: 3\n", "augmentation expects a mapping"),
    ],
)
def test_bad_yaml_files_name_the_setting_or_the_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_python_users_get_the_same_checks():
    assert TrainConfig(lr="5e-3", epochs=3.0).checked().lr == 0.005
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        TrainConfig(epochs=0).checked()
    with pytest.raises(FileNotFoundError, match="config file .* does not exist"):
        load_config("no/such/file.yaml")
