"""Training configuration: one TOML file of defaults, user overrides, validated into a dataclass.

Every bad value is reported as one line naming the field, so the CLI and the training form can
show it as is.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.pretrained import WEIGHT_FAMILIES
from models.pretrained import is_local as _is_local_weights

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.toml")
MODEL_NAMES = (
    "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2",
    "maskrcnn_mobilenet_v2_fpn",
    "maskrcnn_mobilenet_v3_large_fpn",
)


class ConfigError(ValueError):
    """A config value is wrong; the message is one line naming the file (if any) and the field."""

    def __init__(self, field: str, message: str, file: str | None = None):
        self.field = field
        self.file = file
        prefix = f"{file}: " if file else ""
        super().__init__(f"{prefix}field '{field}': {message}")


@dataclass(frozen=True)
class TrainConfig:
    """All training and inference parameters; defaults live in default_config.toml."""

    model: str
    pretrained_backbone: bool
    weights: str
    optimizer: str
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    workers: int
    lr_factor: float
    lr_patience: int
    min_lr: float
    early_stop_patience: int
    eval_every: int
    monitor: str
    max_side: int
    hflip: bool
    device: str
    amp: bool
    seed: int
    log_every: int
    score_threshold: float
    overfit_images: int
    folds: int
    tile_size: int
    tile_overlap: float
    tile_min_visibility: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed, validated like a loaded config."""
        return from_dict({**self.to_dict(), **changes})


_POSITIVE_INT = ("batch_size", "epochs", "eval_every", "early_stop_patience", "max_side", "log_every")
_NON_NEGATIVE_INT = ("lr_patience", "seed", "overfit_images", "folds")

# Upper bounds, checked before a job folder exists: a value past these validates as a number but
# then allocates absurdly (max_side 1e9 asks for ~9e18 bytes), overflows a seed (numpy takes
# < 2**32) or forks without limit. Each bound is far above any sane use.
MAX_SIDE_LIMIT = 8192
INT_LIMITS: dict[str, int] = {
    "batch_size": 1024,
    "epochs": 100_000,
    "eval_every": 100_000,
    "early_stop_patience": 100_000,
    "lr_patience": 100_000,
    "max_side": MAX_SIDE_LIMIT,
    "log_every": 10_000_000,
    "workers": 256,
    "seed": 2**32 - 1,
    "overfit_images": 10_000_000,
    "folds": 100,
    "tile_size": 65_536,
}
LR_LIMIT = 10.0
WEIGHT_DECAY_LIMIT = 1.0


def _check_type(name: str, value: Any, expected: type, file: str | None) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value!r}", file)
    if expected is int and isinstance(value, bool):
        raise ConfigError(name, f"must be an integer, got {value!r}", file)
    if not isinstance(value, expected):
        raise ConfigError(name, f"must be {expected.__name__}, got {type(value).__name__} {value!r}", file)
    return value


def _validate(cfg: TrainConfig, file: str | None) -> None:
    def fail(name: str, message: str) -> None:
        raise ConfigError(name, f"{message}, got {getattr(cfg, name)!r}", file)

    if cfg.model not in MODEL_NAMES:
        fail("model", f"must be one of {', '.join(MODEL_NAMES)}")
    if cfg.weights.strip() != cfg.weights:
        fail("weights", "must not start or end with spaces")
    if cfg.weights and not _is_local_weights(cfg.weights):
        family = WEIGHT_FAMILIES.get(cfg.weights.split(".", 1)[0])
        if family is None or "." not in cfg.weights:
            fail(
                "weights", f"must be a local .pth path or a torchvision name of {', '.join(WEIGHT_FAMILIES)}"
            )
        if family != cfg.model:
            fail("weights", f"are {family} weights: set model = {family!r}")
    if cfg.optimizer != "adam":
        fail("optimizer", "must be 'adam'")
    if cfg.monitor not in ("bbox", "segm"):
        fail("monitor", "must be 'bbox' or 'segm'")
    if not cfg.lr > 0:
        fail("lr", "must be > 0")
    if cfg.weight_decay < 0:
        fail("weight_decay", "must be >= 0")
    if not 0 < cfg.lr_factor < 1:
        fail("lr_factor", "must be between 0 and 1 (exclusive)")
    if cfg.min_lr < 0:
        fail("min_lr", "must be >= 0")
    for name in _POSITIVE_INT:
        if getattr(cfg, name) < 1:
            fail(name, "must be >= 1")
    for name in _NON_NEGATIVE_INT:
        if getattr(cfg, name) < 0:
            fail(name, "must be >= 0")
    if cfg.workers < -1:
        fail("workers", "must be >= 0, or -1 for one per available core")
    if cfg.folds == 1:
        fail("folds", "must be 0 (off) or >= 2")
    if cfg.folds and cfg.overfit_images:
        fail("folds", "does not combine with overfit_images (set one of them to 0)")
    if cfg.tile_size and cfg.tile_size < 32:
        fail("tile_size", "must be 0 (off) or >= 32 pixels")
    if cfg.tile_size < 0:
        fail("tile_size", "must be 0 (off) or >= 32 pixels")
    if not 0 <= cfg.tile_overlap < 0.9:
        fail("tile_overlap", "must be >= 0 and < 0.9 (a fraction of the tile)")
    if not 0 < cfg.tile_min_visibility <= 1:
        fail("tile_min_visibility", "must be > 0 and <= 1 (a fraction of the object's box)")
    if cfg.max_side < 32:
        fail("max_side", "must be >= 32 pixels")
    for name, limit in INT_LIMITS.items():
        if getattr(cfg, name) > limit:
            fail(name, f"must be <= {limit}")
    if cfg.lr > LR_LIMIT:
        fail("lr", f"must be <= {LR_LIMIT:g}")
    if cfg.weight_decay > WEIGHT_DECAY_LIMIT:
        fail("weight_decay", f"must be <= {WEIGHT_DECAY_LIMIT:g}")
    if cfg.min_lr > cfg.lr:
        fail("min_lr", f"must be <= lr ({cfg.lr:g})")
    if not 0 <= cfg.score_threshold <= 1:
        fail("score_threshold", "must be between 0 and 1")
    device = cfg.device
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        fail("device", "must be 'auto', 'cpu', 'cuda' or 'cuda:N'")


def from_dict(values: dict[str, Any], file: str | None = None) -> TrainConfig:
    """Validate a complete mapping of field → value (unknown or missing keys are errors)."""
    fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    types = {"str": str, "bool": bool, "int": int, "float": float}
    for key in values:
        if key not in fields:
            raise ConfigError(key, f"unknown key (known: {', '.join(sorted(fields))})", file)
    missing = [name for name in fields if name not in values]
    if missing:
        raise ConfigError(missing[0], "missing", file)
    checked = {name: _check_type(name, values[name], types[fields[name]], file) for name in fields}
    cfg = TrainConfig(**checked)
    _validate(cfg, file)
    return cfg


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("(toml)", f"not valid TOML: {error}", str(path)) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            "(toml)", f"not UTF-8 text (byte {error.start}); TOML files are UTF-8", str(path)
        ) from None
    except OSError as error:
        raise ConfigError("(file)", f"cannot read: {error.strerror}", str(path)) from None


def default_values() -> dict[str, Any]:
    return _read_toml(DEFAULT_CONFIG_PATH)


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the user's TOML file (any subset of keys), then keyword overrides."""
    values = default_values()
    file = None
    if path is not None:
        file = str(path)
        user = _read_toml(Path(path))
        for key in user:
            if key not in values:
                raise ConfigError(key, f"unknown key (known: {', '.join(sorted(values))})", file)
        values.update(user)
        from_dict(values, file)  # errors in the file name the file
    if overrides:
        values.update(overrides)
    return from_dict(values, file if not overrides else None)
