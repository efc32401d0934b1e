"""Training loop in the spirit of torchvision's references/detection engine.py.

`train_one_epoch` and `evaluate` are small and reusable; `fit` adds what a background job needs:
Adam, LR reduced on a val-mAP plateau, early stopping, one best checkpoint written atomically,
progress callbacks and cancellation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metrics.evaluation import STAT_NAMES
from models.config import TrainConfig
from models.data import CocoDetectionDataset, Frames, collate_fn
from models.progress_events import DoneEvent, EpochEvent, ProgressEvent, StepEvent

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "best.pt"
CHECKPOINT_FORMAT = 1


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _to_device(targets: Iterable[dict[str, Any]], device: torch.device) -> list[dict[str, Any]]:
    return [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: list[torch.Tensor],
    targets: list[dict[str, Any]],
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One optimiser step on a batch already on its device; returns each loss component and 'loss'
    (their sum). One function for train_one_epoch and bench/train_step_bench.py, so the bench times
    the step training runs.

    AMP is used when a GradScaler is given (CUDA). A non-finite loss raises FloatingPointError before
    the update, as in the references, instead of silently corrupting the weights.
    """
    with torch.autocast(device_type=images[0].device.type, enabled=scaler is not None):
        loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
    loss_value = float(loss.detach())
    if not math.isfinite(loss_value):
        raise FloatingPointError(f"loss is {loss_value}: { ({k: float(v) for k, v in loss_dict.items()}) }")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    values = {k: float(v.detach()) for k, v in loss_dict.items()}
    values["loss"] = loss_value
    return values


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
    log_every: int = 10,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """One pass over `loader`; returns mean losses, the step count and whether it was stopped.

    AMP is used when a GradScaler is given (CUDA). A non-finite loss raises FloatingPointError, as
    in the references, instead of silently corrupting the weights.
    """
    model.train()
    totals: dict[str, float] = {}
    steps = 0
    stopped = False
    for images, targets in loader:
        if should_stop is not None and should_stop():
            stopped = True
            break
        images = [im.to(device, non_blocking=True) for im in images]
        values = train_step(model, optimizer, images, _to_device(targets, device), scaler)
        steps += 1
        for key, value in values.items():
            totals[key] = totals.get(key, 0.0) + value
        if on_step is not None and (steps % log_every == 0 or steps == 1):
            on_step({"step": steps, "lr": optimizer.param_groups[0]["lr"], **values})
    means = {k: v / max(steps, 1) for k, v in totals.items()}
    return {"steps": steps, "stopped": stopped, "losses": means}


def _empty_stats() -> dict[str, float]:
    return dict.fromkeys(STAT_NAMES, 0.0)


def coco_stats(gt: dict[str, Any], detections: list[dict[str, Any]], iou_type: str) -> dict[str, float]:
    """The 12 COCO summary stats of `detections` against the in-memory COCO dict `gt`.

    faster-coco-eval (a C++ port of pycocotools' COCOeval, same numbers) keeps evaluation
    cheap enough to run every epoch. Annotation ids in `gt` must start at 1 (0 means unmatched).
    -1 stats (no ground truth in an area range) are reported as 0.
    """
    if not gt["annotations"] or not detections:
        return _empty_stats()
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(detections)
    evaluator = COCOeval_faster(coco_gt, coco_dt, iouType=iou_type, print_function=lambda *a, **k: None)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return {name: max(0.0, float(v)) for name, v in zip(STAT_NAMES, evaluator.stats[:12], strict=True)}


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """N×H×W binary masks → compressed RLE dicts with str counts (JSON-able)."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    out[:, 2:] -= out[:, :2]
    return out


@torch.inference_mode()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device) -> dict[str, dict[str, float]]:
    """{'bbox': {12 COCO stats}, 'segm': {...}} on the loader's images, in the dataset's frame.

    Ground truth comes from the loader's targets (like torchvision's get_coco_api_from_dataset), so
    it is exactly what the model was trained against. Labels are the model's contiguous labels.
    """
    model.eval()
    gt: dict[str, Any] = {"images": [], "annotations": [], "categories": []}
    labels_seen: set[int] = set()
    bbox_dets: list[dict[str, Any]] = []
    segm_dets: list[dict[str, Any]] = []
    next_ann_id = 1
    for images, targets in loader:
        outputs = model([im.to(device) for im in images])
        for image, target, output in zip(images, targets, outputs, strict=True):
            image_id = int(target["image_id"])
            height, width = image.shape[-2:]
            gt["images"].append({"id": image_id, "width": int(width), "height": int(height)})
            masks = target["masks"].numpy()
            boxes = _xyxy_to_xywh(target["boxes"].numpy().astype(np.float64))
            for box, label, rle, area, crowd in zip(
                boxes,
                target["labels"].tolist(),
                encode_masks(masks),
                target["area"].tolist(),
                target["iscrowd"].tolist(),
                strict=True,
            ):
                labels_seen.add(label)
                gt["annotations"].append(
                    {
                        "id": next_ann_id,
                        "image_id": image_id,
                        "category_id": label,
                        "bbox": box.tolist(),
                        "area": float(area),
                        "iscrowd": int(crowd),
                        "segmentation": rle,
                    }
                )
                next_ann_id += 1
            scores = output["scores"].float().cpu().numpy()
            labels = output["labels"].cpu().numpy()
            det_boxes = _xyxy_to_xywh(output["boxes"].float().cpu().numpy().astype(np.float64))
            det_masks = (output["masks"][:, 0] > 0.5).cpu().numpy()
            for box, label, score, rle in zip(
                det_boxes, labels, scores, encode_masks(det_masks), strict=True
            ):
                base = {"image_id": image_id, "category_id": int(label), "score": float(score)}
                bbox_dets.append({**base, "bbox": box.tolist()})
                segm_dets.append({**base, "bbox": box.tolist(), "segmentation": rle})
    labels_seen.update(d["category_id"] for d in bbox_dets)
    gt["categories"] = [{"id": label, "name": str(label)} for label in sorted(labels_seen)]
    return {"bbox": coco_stats(gt, bbox_dets, "bbox"), "segm": coco_stats(gt, segm_dets, "segm")}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def overfit_frames(frames: Frames, count: int) -> Frames:
    """The first `count` usable images of `frames` (by image id) and their objects."""
    images = frames.images
    if "status" in images.columns:
        images = images[images["status"] == "ok"]
    images = images.sort_values("image_id").head(count)
    objects = frames.objects[frames.objects["image_id"].isin(images["image_id"])]
    return Frames(images, objects, frames.categories)


def save_checkpoint(path: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Plain state_dict + JSON-able metadata, written to a temp file then renamed (never half-written)."""
    json.dumps(meta)  # fail here, not at load time, if something is not plain data
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": model.state_dict(), "meta": meta}, tmp)
    os.replace(tmp, path)


def build_detector(config: TrainConfig, num_classes: int) -> nn.Module:
    """The model to train: config.model for num_classes, started from config.weights when set.

    With weights, ImageNet backbone weights are not fetched (the detector weights overwrite them);
    the layers loaded are counted on `model.weights_loaded` and logged.
    """
    from models.detectors import build_model
    from models.pretrained import apply_weights, load_weights_state, structure_pretrained

    if not config.weights:
        return build_model(config.model, num_classes, config.pretrained_backbone, config.max_side)
    pretrained = structure_pretrained(config.weights, config.pretrained_backbone)
    model = build_model(config.model, num_classes, pretrained, config.max_side, load_weights=False)
    model.backbone_pretrained = pretrained
    counts = apply_weights(model, load_weights_state(config.weights), config.weights)
    model.weights_loaded = counts
    log.info(
        "fine-tuning from %s: %d tensors loaded, %d skipped (class heads, other shapes), %d left as built",
        config.weights,
        counts["loaded"],
        counts["skipped"],
        counts["missing"],
    )
    return model


def loader_workers(requested: int) -> int:
    """Data-loader processes for a `workers` setting: -1 means one per available core."""
    from models.devices import available_cores

    return available_cores() if requested < 0 else requested


def _loader(dataset: Any, config: TrainConfig, shuffle: bool, device: torch.device):
    batch = config.batch_size if shuffle else max(1, min(config.batch_size, 4))
    workers = loader_workers(config.workers)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


def fit(
    config: TrainConfig,
    train_frames: Frames,
    val_frames: Frames,
    out_dir: str | Path,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train `config.model` on train_frames, select on val_frames, keep only the best checkpoint.

    Progress events go to on_progress: models.progress_events' StepEvent, EpochEvent and DoneEvent
    (None: no events). should_stop() is polled between steps.
    Returns {'checkpoint': path or None, 'best_epoch', 'best_val', 'epochs_run', 'stopped', ...}.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    emit = on_progress or (lambda _p: None)
    stop = should_stop or (lambda: False)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    hflip = config.hflip
    if config.overfit_images:
        train_frames = val_frames = overfit_frames(train_frames, config.overfit_images)
        hflip = False  # memorising a handful of images is the point: no augmentation
    if config.tile_size:
        from models.tiles import TiledDataset

        train_set = TiledDataset(
            *train_frames,
            max_side=config.max_side,
            train=True,
            hflip=hflip,
            tile_size=config.tile_size,
            min_visibility=config.tile_min_visibility,
        )
    else:
        train_set = CocoDetectionDataset(*train_frames, max_side=config.max_side, train=True, hflip=hflip)
    if len(train_set) == 0:
        raise ValueError("no usable training images (status 'ok')")
    val_set = CocoDetectionDataset(
        *val_frames, max_side=config.max_side, train=False, label_to_category=train_set.label_to_category
    )
    model = build_detector(config, train_set.num_classes)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr
    )
    scaler = torch.amp.GradScaler("cuda") if (config.amp and device.type == "cuda") else None
    train_loader = _loader(train_set, config, shuffle=True, device=device)
    val_loader = _loader(val_set, config, shuffle=False, device=device)
    steps_per_epoch = len(train_loader)
    meta_base = {
        "model": config.model,
        "num_classes": train_set.num_classes,
        "pretrained_backbone": bool(getattr(model, "backbone_pretrained", False)),
        "weights": config.weights,
        "weights_loaded": getattr(model, "weights_loaded", None),
        "image_size": config.max_side,
        "label_to_category": {str(k): v for k, v in train_set.label_to_category.items()},
        "category_names": {str(k): v for k, v in train_set.category_names.items()},
        "config": config.to_dict(),
    }
    log.info(
        "training %s on %s: %d train / %d val images", config.model, device, len(train_set), len(val_set)
    )

    best_score, best_epoch, best_val = -1.0, 0, None
    checkpoint: Path | None = None
    history: list[dict[str, Any]] = []
    started = time.monotonic()
    stopped = False
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.monotonic()

        def on_step(values: dict[str, Any], _epoch: int = epoch, _start: float = epoch_start) -> None:
            elapsed = time.monotonic() - started
            done = (_epoch - 1) * steps_per_epoch + values["step"]
            eta = elapsed / done * (config.epochs * steps_per_epoch - done)
            event: StepEvent = {"event": "step", "epoch": _epoch, **values, "eta_s": eta}
            emit(event)

        result = train_one_epoch(
            model, optimizer, train_loader, device, scaler, config.log_every, on_step, stop
        )
        if result["stopped"] or stop():
            stopped = True
            break
        record: dict[str, Any] = {
            "epoch": epoch,
            "losses": result["losses"],
            "lr": optimizer.param_groups[0]["lr"],
        }
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            val = evaluate(model, val_loader, device)
            record["val"] = val
            score = val[config.monitor]["AP"]
            scheduler.step(score)
            if score > best_score:
                best_score, best_epoch, best_val = score, epoch, val
                checkpoint = out / CHECKPOINT_NAME
                save_checkpoint(checkpoint, model, {**meta_base, "epoch": epoch, "val": val})
        history.append(record)
        elapsed = time.monotonic() - started
        eta = elapsed / epoch * (config.epochs - epoch)
        ended: EpochEvent = {
            "event": "epoch",
            **record,
            "epoch_s": time.monotonic() - epoch_start,
            "eta_s": eta,
            "best_epoch": best_epoch,
        }
        emit(ended)
        if best_epoch and epoch - best_epoch >= config.early_stop_patience:
            log.info(
                "early stop at epoch %d: no val %s AP gain since epoch %d", epoch, config.monitor, best_epoch
            )
            break
    summary = {
        "checkpoint": str(checkpoint) if checkpoint else None,
        "best_epoch": best_epoch,
        "best_val": best_val,
        "epochs_run": len(history),
        "stopped": stopped,
        "device": str(device),
        "seconds": time.monotonic() - started,
        "history": history,
    }
    done: DoneEvent = {"event": "done", **{k: v for k, v in summary.items() if k != "history"}}
    emit(done)
    return summary
