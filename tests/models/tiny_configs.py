"""The training settings the model tests share: the light MobileNetV2 Mask R-CNN on CPU, no loader
workers, small images. Each test adds only what it is about (epochs, images, learning rate)."""

from __future__ import annotations

from typing import Any

from models.config import TrainConfig, load_config

LIGHT_CPU: dict[str, Any] = dict(
    model="maskrcnn_mobilenet_v2_fpn", pretrained_backbone=False, max_side=128, workers=0, device="cpu"
)
# The smallest job that trains, evaluates and predicts: 1 epoch on 2 images, every step logged.
FAST: dict[str, Any] = {**LIGHT_CPU, "epochs": 1, "overfit_images": 2, "batch_size": 2, "log_every": 1}


def light_config(**changes: Any) -> TrainConfig:
    """LIGHT_CPU with ``changes``, validated (models.config.load_config, no file)."""
    return load_config(**{**LIGHT_CPU, **changes})
