import pytest

from models.config import ConfigError, load_config


def test_defaults_follow_the_seed():
    cfg = load_config()
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.workers, cfg.optimizer) == (1e-4, 10, 30, -1, "adam")
    assert (cfg.max_side, cfg.device, cfg.model, cfg.overfit_images) == (
        1024,
        "auto",
        "maskrcnn_resnet50_fpn",
        0,
    )
    assert cfg.amp is True


def test_user_file_overrides_a_subset(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('model = "maskrcnn_mobilenet_v2_fpn"\nlr = 1\nepochs = 3\n')
    cfg = load_config(path)
    assert cfg.model == "maskrcnn_mobilenet_v2_fpn"
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.epochs == 3 and cfg.batch_size == 10
    assert load_config(path, epochs=5).epochs == 5


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("lr = -0.1", "lr"),
        ('lr = "fast"', "lr"),
        ("batch_size = 0", "batch_size"),
        ("epochs = 2.5", "epochs"),
        ("workers = true", "workers"),
        ('model = "yolo"', "model"),
        ('device = "tpu"', "device"),
        ("lr_factor = 1.0", "lr_factor"),
        ("score_threshold = 1.5", "score_threshold"),
        ("overfit_images = -1", "overfit_images"),
        ('monitor = "keypoints"', "monitor"),
        ("learning_rate = 0.1", "learning_rate"),
    ],
)
def test_bad_values_name_the_file_and_field_in_one_line(tmp_path, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert f"field '{field}'" in message and str(path) in message
    assert info.value.field == field


def test_broken_toml_is_a_config_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("lr = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_keyword_overrides_are_validated():
    with pytest.raises(ConfigError, match="field 'max_side'"):
        load_config(max_side=8)


def test_replace_keeps_validation():
    cfg = load_config()
    assert cfg.replace(epochs=2).epochs == 2
    with pytest.raises(ConfigError, match="field 'eval_every'"):
        cfg.replace(eval_every=0)
