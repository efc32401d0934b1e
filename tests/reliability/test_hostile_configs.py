"""Bad training configs: ``cocolens train --config bad.toml`` gives one line naming the file and field.

The config is validated before the job folder is created or a dataset is read, so a bad file
leaves the project byte-identical and costs the user no minutes of training.
"""

from __future__ import annotations

import pytest

from tests.reliability.hostile import assert_refused

# case id → (TOML text (bytes for non-text files), fragments the error line must hold)
CONFIG_CASES: dict[str, tuple[str | bytes, list[str]]] = {
    "invalid-toml": ("lr = = 3\n", ["'(toml)'", "not valid TOML"]),
    "unterminated-string": ('model = "maskrcnn\n', ["not valid TOML"]),
    "wrong-type-int": ('batch_size = "ten"\n', ["'batch_size'", "must be int", "str"]),
    "bool-for-int": ("epochs = true\n", ["'epochs'", "integer"]),
    "float-for-int": ("epochs = 2.5\n", ["'epochs'", "must be int"]),
    "negative-lr": ("lr = -0.001\n", ["'lr'", "must be > 0"]),
    "zero-lr": ("lr = 0\n", ["'lr'", "must be > 0"]),
    "nan-lr": ("lr = nan\n", ["'lr'", "must be a finite number"]),
    "unknown-model": ('model = "yolo_v99"\n', ["'model'", "must be one of", "maskrcnn_resnet50_fpn"]),
    "unknown-key": ("learning_rate = 0.1\n", ["'learning_rate'", "unknown key"]),
    "unknown-table": ("[optimizer_settings]\nbeta = 0.9\n", ["'optimizer_settings'", "unknown key"]),
    "lr-factor-above-one": ("lr_factor = 1.5\n", ["'lr_factor'", "between 0 and 1"]),
    "negative-workers": ("workers = -2\n", ["'workers'", ">= 0, or -1"]),
    "tiny-max-side": ("max_side = 8\n", ["'max_side'", ">= 32"]),
    "score-threshold-above-one": ("score_threshold = 2\n", ["'score_threshold'", "between 0 and 1"]),
    "unknown-device": ('device = "tpu"\n', ["'device'", "'auto', 'cpu'"]),
    "bad-monitor": ('monitor = "loss"\n', ["'monitor'", "'bbox' or 'segm'"]),
    # numbers that validate by type and then crash or hang the job (issue 18 item 7)
    "huge-max-side": ("max_side = 1000000000\n", ["'max_side'", "<= 8192"]),
    "seed-2-63": ("seed = 9223372036854775807\n", ["'seed'", "<= 4294967295"]),
    "lr-1e308": ("lr = 1e308\n", ["'lr'", "<= 10"]),
    "workers-100000": ("workers = 100000\n", ["'workers'", "<= 256"]),
    "batch-size-1e9": ("batch_size = 1000000000\n", ["'batch_size'", "<= 1024"]),
    "batch-size-float-1e9": ("batch_size = 1e9\n", ["'batch_size'", "must be int"]),
    "min-lr-above-lr": ("lr = 0.001\nmin_lr = 0.01\n", ["'min_lr'", "<= lr"]),
    "huge-epochs": ("epochs = 1000000000000\n", ["'epochs'", "<= 100000"]),
    "huge-weight-decay": ("weight_decay = 1e300\n", ["'weight_decay'", "<= 1"]),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    from tests.conftest import imported_small

    return imported_small(tmp_path_factory.mktemp("configs"), 2, "--workers", "1")


def _train(project, config) -> list[str]:
    # --val names no dataset: a config that wrongly passed would fail fast on it instead of training
    return [
        "train",
        "--project",
        str(project),
        "--train",
        "small",
        "--val",
        "absent",
        "--config",
        str(config),
    ]


@pytest.mark.parametrize("case_id", list(CONFIG_CASES))
def test_bad_config_is_one_line_exit_2_project_unchanged(project, tmp_path, capsys, case_id):
    text, fragments = CONFIG_CASES[case_id]
    config = tmp_path / f"{case_id}.toml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert_refused(capsys, _train(project, config), project, [str(config), *fragments])
    assert not (project / "jobs").exists(), "no job folder for a config that never ran"


def test_missing_or_folder_config(project, tmp_path, capsys):
    assert_refused(
        capsys, _train(project, tmp_path / "nope.toml"), project, ["nope.toml", "no such config file"]
    )
    assert_refused(capsys, _train(project, tmp_path), project, [str(tmp_path), "no such config file"])


def test_non_utf8_config(project, tmp_path, capsys):
    config = tmp_path / "latin1.toml"
    config.write_bytes(b'model = "caf\xe9"\n')
    assert_refused(capsys, _train(project, config), project, [str(config), "UTF-8"])


def test_infinite_lr_is_refused(project, tmp_path, capsys):
    config = tmp_path / "inf.toml"
    config.write_text("lr = inf\nscore_threshold = 2\n")  # checked after lr: a passing inf never trains
    assert_refused(capsys, _train(project, config), project, [str(config), "'lr'"])
