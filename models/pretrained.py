"""Detector weights to fine-tune from: a torchvision weights name or a local state-dict file.

Practitioners start Mask R-CNN from COCO weights and replace the class-specific heads (torchvision's
fine-tuning tutorial). The `weights` config key names either a torchvision weights enum member
(``MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1``), fetched through torchvision's weights API into the
torch hub checkpoints folder, or a local ``.pth`` file holding a state dict (loaded with
``torch.load(weights_only=True)``: no code from the file runs). Every layer whose name and shape
match is loaded; the box and mask predictors always start fresh for the project's classes.

`check_weights` runs before a job folder exists, so an offline machine without the file gets one
line naming the weights and where to put the file, not a failed job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from store.errors import InputError

# torchvision weights enum → the cocolens model whose layers have the same names and shapes.
WEIGHT_FAMILIES = {
    "MaskRCNN_ResNet50_FPN_Weights": "maskrcnn_resnet50_fpn",
    "FasterRCNN_ResNet50_FPN_Weights": "maskrcnn_resnet50_fpn",
    "MaskRCNN_ResNet50_FPN_V2_Weights": "maskrcnn_resnet50_fpn_v2",
    "FasterRCNN_ResNet50_FPN_V2_Weights": "maskrcnn_resnet50_fpn_v2",
    "FasterRCNN_MobileNet_V3_Large_FPN_Weights": "maskrcnn_mobilenet_v3_large_fpn",
    "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights": "maskrcnn_mobilenet_v3_large_fpn",
}
# Class-specific layers: replaced for the project's classes (never loaded from the weights).
HEAD_PREFIXES = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.")


def is_local(spec: str) -> bool:
    """A file path rather than a torchvision weights name (names have no separators and no suffix)."""
    return spec.endswith((".pth", ".pt")) or "/" in spec or os.sep in spec


def weights_model(spec: str) -> str | None:
    """The model a torchvision weights name belongs to; None for a local file or an unknown name."""
    if is_local(spec):
        return None
    return WEIGHT_FAMILIES.get(spec.split(".", 1)[0])


def _hub_file(weights: Any) -> Path:
    from metrics.weights import checkpoints_dir

    return checkpoints_dir() / Path(weights.url).name


def _download(weights: Any) -> None:
    """Fetch the weights into the hub checkpoints folder (torchvision's own download, hash checked)."""
    weights.get_state_dict(progress=False, check_hash=True)


def _enum_member(spec: str, where: str) -> Any:
    from torchvision.models import get_weight

    try:
        return get_weight(spec)
    except (ValueError, KeyError, AttributeError):
        raise InputError(
            where,
            f"unknown torchvision weights {spec!r} (e.g. MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1, "
            f"or a local .pth path)",
            field="weights",
        ) from None


def check_weights(spec: str, model: str, where: str = "config") -> None:
    """Raise a one-line InputError unless `spec` can be loaded into `model` right now.

    A torchvision name missing from the hub folder is downloaded here (before any job exists);
    offline, the error names the weights, the file and the folder to put it in.
    """
    if not spec:
        return
    if is_local(spec):
        path = Path(spec)
        if not path.is_file():
            raise InputError(spec, "no such weights file", field="weights")
        load_weights_state(spec)  # a foreign or unsafe file fails now, not in the job
        return
    family = weights_model(spec)
    if family is None:
        known = ", ".join(sorted(WEIGHT_FAMILIES))
        raise InputError(where, f"weights {spec!r}: not a detector weights name ({known})", field="weights")
    if family != model:
        raise InputError(where, f"weights {spec!r} fit model {family!r}, not {model!r}", field="weights")
    weights = _enum_member(spec, where)
    target = _hub_file(weights)
    if target.is_file():
        return
    try:
        _download(weights)
    except Exception as error:
        reason = " ".join(str(error).split())[:120]
        raise InputError(
            where,
            f"weights {spec} not available ({type(error).__name__}: {reason}): put {target.name} "
            f"(from {weights.url}) in {target.parent}",
            field="weights",
        ) from None


def load_weights_state(spec: str) -> dict[str, Any]:
    """The state dict of `spec`: a local file (weights_only=True) or a torchvision weights name.

    A local file may hold the state dict itself, or a dict with it under 'state_dict' (cocolens
    checkpoints) or 'model' (torchvision's reference scripts).
    """
    import torch

    if not is_local(spec):
        from torchvision.models import get_weight

        return dict(get_weight(spec).get_state_dict(progress=False, check_hash=True))
    try:
        payload = torch.load(Path(spec), map_location="cpu", weights_only=True)
    except Exception as error:
        detail = " ".join(str(error).split())[:160]
        raise InputError(
            spec, f"not a weights file torch.load(weights_only=True) accepts ({detail})", field="weights"
        ) from None
    if isinstance(payload, dict):
        for key in ("state_dict", "model"):
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if not isinstance(payload, dict) or not payload or not all(torch.is_tensor(v) for v in payload.values()):
        raise InputError(spec, "holds no state dict (a mapping of layer names to tensors)", field="weights")
    return payload


def apply_weights(model: Any, state: dict[str, Any], spec: str) -> dict[str, int]:
    """Load every layer of `state` whose name and shape match `model`, except the class heads.

    Returns counts: loaded, skipped (shape differs or a head), missing (model layers left as built).
    Raises ValueError when nothing matches: the weights belong to another architecture.
    """
    own = model.state_dict()
    usable = {}
    skipped = 0
    for key, value in state.items():
        if key.startswith(HEAD_PREFIXES) or key not in own or own[key].shape != value.shape:
            skipped += 1
            continue
        usable[key] = value
    if not usable:
        raise ValueError(f"weights {spec!r} share no layer with this model: pick weights of the same model")
    model.load_state_dict(usable, strict=False)
    return {"loaded": len(usable), "skipped": skipped, "missing": len(own) - len(usable)}


def structure_pretrained(spec: str, pretrained_backbone: bool) -> bool:
    """Whether to build the frozen-batch-norm (pretrained) structure: torchvision's detection weights
    were trained with it; a local file follows the pretrained_backbone setting it was trained with."""
    return True if spec and not is_local(spec) else pretrained_backbone
