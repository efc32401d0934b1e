"""Tiles for small objects (SAHI-style): train on crops, predict with sliding tiles plus the full image.

A detector that sees an 8 MP photo at 1024 px cannot find an object of 20 px: it is 3 px by then.
Cutting the image into tiles of `tile_size` original pixels keeps small objects at their own size.

Training (`TiledDataset`): each item is one tile of one image, centred on a random object half of
the time (so objects are seen whole, anywhere in the tile) and anywhere at random otherwise (the
background between objects, so the model also learns what is not an object). Labels are clipped to
the tile; an object with less than `min_visibility` of its box inside the tile is dropped.

Prediction (`predict_tiled`): sliding tiles with `overlap`, plus the full image at the model's size
for the objects larger than a tile. Detections of a tile that touch one of its inner edges are cut
objects (a neighbouring tile, or the full pass, sees them whole) and are dropped; the rest are merged
across tiles with class-wise NMS, and masks are pasted back into the full frame.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from models.data import (
    CocoDetectionDataset,
    _parse_segmentation,
    hflip,
    image_to_tensor,
    load_image,
    object_mask,
    scaled_size,
    target_dict,
)

EDGE_MARGIN = 2.0  # px: a tile detection this close to an inner tile edge is a cut object
NMS_IOU = 0.5
MAX_DETECTIONS = 100  # per image, as COCO evaluates
TILE_BATCH = 4


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return sorted({*starts, length - tile})  # the last tile sits flush with the far edge


def tile_windows(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) windows of at most tile × tile covering the image, neighbours sharing `overlap`."""
    step = max(1, int(round(tile * (1.0 - overlap))))
    return [
        (x, y, min(x + tile, width), min(y + tile, height))
        for y in _starts(height, tile, step)
        for x in _starts(width, tile, step)
    ]


# ----- training ----------------------------------------------------------------------------------


def _shift_segmentation(segmentation: Any, dx: float, dy: float) -> Any:
    if isinstance(segmentation, list):
        return [
            (np.asarray(p, dtype=np.float64).reshape(-1, 2) - (dx, dy)).ravel().tolist() for p in segmentation
        ]
    return segmentation


class TiledDataset(CocoDetectionDataset):
    """One tile per item (one item per image per epoch), for training on small objects."""

    def __init__(self, *args: Any, tile_size: int, min_visibility: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.tile_size = tile_size
        self.min_visibility = min_visibility

    def _window(self, index: int, width: int, height: int) -> tuple[int, int, int, int]:
        tile = self.tile_size
        objects = self._objects.get(int(self.images.iloc[index]["image_id"]))
        if objects is not None and len(objects) and random.random() < 0.5:
            obj = objects.iloc[random.randrange(len(objects))]
            cx = obj["bbox_x"] + obj["bbox_w"] * random.random()  # a point of the object
            cy = obj["bbox_y"] + obj["bbox_h"] * random.random()
            x0 = int(cx - tile * random.random())
            y0 = int(cy - tile * random.random())
        else:
            x0 = random.randint(0, max(0, width - tile))
            y0 = random.randint(0, max(0, height - tile))
        x0 = min(max(0, x0), max(0, width - tile))
        y0 = min(max(0, y0), max(0, height - tile))
        return x0, y0, min(x0 + tile, width), min(y0 + tile, height)

    def tile_target(
        self, index: int, window: tuple[int, int, int, int], new_w: int, new_h: int
    ) -> dict[str, Any]:
        """Targets of the objects inside `window`, clipped to it, at new_w × new_h (the tile's size)."""
        row = self.images.iloc[index]
        x0, y0, x1, y1 = window
        tw, th = x1 - x0, y1 - y0
        sx, sy = new_w / tw, new_h / th
        boxes, labels, masks = [], [], []
        objects = self._objects.get(int(row["image_id"]))
        for obj in objects.itertuples(index=False) if objects is not None else ():
            label = self.category_to_label.get(int(obj.category_id))
            if label is None or int(obj.iscrowd) or not (obj.bbox_w > 0 and obj.bbox_h > 0):
                continue
            bx1, by1 = max(obj.bbox_x, x0), max(obj.bbox_y, y0)
            bx2, by2 = min(obj.bbox_x + obj.bbox_w, x1), min(obj.bbox_y + obj.bbox_h, y1)
            if bx2 <= bx1 or by2 <= by1:
                continue
            if (bx2 - bx1) * (by2 - by1) < self.min_visibility * obj.bbox_w * obj.bbox_h:
                continue  # mostly outside the tile: a fragment teaches the wrong extent
            box = np.array(
                [(bx1 - x0) * sx, (by1 - y0) * sy, (bx2 - x0) * sx, (by2 - y0) * sy], dtype=np.float32
            )
            if not (box[2] - box[0] >= 1e-3 and box[3] - box[1] >= 1e-3):
                continue
            seg = _parse_segmentation(getattr(obj, "segmentation", None))
            if isinstance(seg, dict):  # RLE: decoded at full size, then cut
                full = object_mask(
                    seg, box, int(row["width"]), int(row["height"]), int(row["width"]), int(row["height"])
                )
                crop = Image.fromarray(full[y0:y1, x0:x1])
                mask = (
                    np.asarray(crop.resize((new_w, new_h), Image.NEAREST))
                    if (new_w, new_h) != (tw, th)
                    else np.asarray(crop)
                )
            else:
                mask = object_mask(_shift_segmentation(seg, x0, y0), box, tw, th, new_w, new_h)
            if not mask.any():
                continue
            boxes.append(box)
            labels.append(label)
            masks.append(mask.astype(np.uint8))
        return {**target_dict(row, boxes, labels, masks, new_w, new_h), "window": window}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        row = self.images.iloc[index]
        width, height = int(row["width"]), int(row["height"])
        image = load_image(str(row["path"]), bool(row.get("orientation_applied", False)), width, height)
        window = self._window(index, width, height)
        crop = image.crop(window)
        new_w, new_h = scaled_size(crop.width, crop.height, self.max_side)
        if (new_w, new_h) != crop.size:
            crop = crop.resize((new_w, new_h), Image.BILINEAR)
        tensor = image_to_tensor(crop)
        target = self.tile_target(index, window, new_w, new_h)
        if self.train and self.hflip and random.random() < 0.5:
            tensor, target = hflip(tensor, target)
        return tensor, target


# ----- prediction --------------------------------------------------------------------------------


def _run(model: nn.Module, tensors: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    outputs: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(tensors), TILE_BATCH):
        outputs.extend(model(tensors[start : start + TILE_BATCH]))
    return outputs


def image_detections(
    model: nn.Module,
    image: Image.Image,
    device: torch.device,
    max_side: int,
    tile_size: int,
    overlap: float,
    score_threshold: float,
) -> list[dict[str, Any]]:
    """Merged detections of one image (full frame): dicts with box (x1, y1, x2, y2), score, label and
    `mask`: a float probability map with the window it covers, not yet pasted."""
    width, height = image.size
    full_size = scaled_size(width, height, max_side)
    full = image.resize(full_size, Image.BILINEAR) if full_size != (width, height) else image
    windows = [(0, 0, width, height)]
    tensors = [image_to_tensor(full).to(device)]
    if max(width, height) > tile_size:
        for window in tile_windows(width, height, tile_size, overlap):
            crop = image.crop(window)
            size = scaled_size(crop.width, crop.height, max_side)
            if size != crop.size:
                crop = crop.resize(size, Image.BILINEAR)
            windows.append(window)
            tensors.append(image_to_tensor(crop).to(device))
    candidates: list[dict[str, Any]] = []
    for index, (window, tensor, output) in enumerate(
        zip(windows, tensors, _run(model, tensors), strict=True)
    ):
        x0, y0, x1, y1 = window
        in_h, in_w = tensor.shape[-2:]
        sx, sy = (x1 - x0) / in_w, (y1 - y0) / in_h
        boxes = output["boxes"].float().cpu() * torch.tensor([sx, sy, sx, sy]) + torch.tensor(
            [x0, y0, x0, y0]
        )
        scores = output["scores"].float().cpu()
        labels = output["labels"].cpu()
        masks = output.get("masks")
        inner = (x0 > 0, y0 > 0, x1 < width, y1 < height)  # tile edges that are not image edges
        for i in range(len(scores)):
            if float(scores[i]) < score_threshold:
                continue
            bx1, by1, bx2, by2 = boxes[i].tolist()
            if index > 0 and (
                (inner[0] and bx1 <= x0 + EDGE_MARGIN)
                or (inner[1] and by1 <= y0 + EDGE_MARGIN)
                or (inner[2] and bx2 >= x1 - EDGE_MARGIN)
                or (inner[3] and by2 >= y1 - EDGE_MARGIN)
            ):
                continue  # cut by the tile: seen whole elsewhere
            candidates.append(
                {
                    "box": [max(0.0, bx1), max(0.0, by1), min(float(width), bx2), min(float(height), by2)],
                    "score": float(scores[i]),
                    "label": int(labels[i]),
                    "mask": _mask_patch(masks[i, 0], output["boxes"][i], window, sx, sy)
                    if masks is not None
                    else None,
                    "source": index,
                }
            )
    return merge(candidates)


def _mask_patch(
    probs: torch.Tensor, box: torch.Tensor, window: tuple[int, int, int, int], sx: float, sy: float
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """The mask probabilities under the detection's box only, with the full-frame window they cover.

    A model returns every mask at its whole input size: keeping those for ~100 detections of each of
    a dozen tiles would take gigabytes; the box's patch is all that is pasted back.
    """
    in_h, in_w = probs.shape
    bx1, by1, bx2, by2 = box.float().tolist()
    px0, py0 = max(0, int(np.floor(bx1)) - 1), max(0, int(np.floor(by1)) - 1)
    px1, py1 = min(in_w, int(np.ceil(bx2)) + 1), min(in_h, int(np.ceil(by2)) + 1)
    px1, py1 = max(px1, px0 + 1), max(py1, py0 + 1)
    patch = probs[py0:py1, px0:px1].float().cpu().clone()
    x0, y0 = window[0], window[1]
    target = (
        x0 + int(round(px0 * sx)),
        y0 + int(round(py0 * sy)),
        x0 + max(int(round(px1 * sx)), int(round(px0 * sx)) + 1),
        y0 + max(int(round(py1 * sy)), int(round(py0 * sy)) + 1),
    )
    return patch, target


def merge(candidates: list[dict[str, Any]], iou: float = NMS_IOU) -> list[dict[str, Any]]:
    """Class-wise NMS across tiles and the full pass; at most MAX_DETECTIONS, best score first."""
    from torchvision.ops import batched_nms

    if not candidates:
        return []
    boxes = torch.tensor([c["box"] for c in candidates], dtype=torch.float32)
    scores = torch.tensor([c["score"] for c in candidates], dtype=torch.float32)
    labels = torch.tensor([c["label"] for c in candidates], dtype=torch.int64)
    keep = batched_nms(boxes, scores, labels, iou)[:MAX_DETECTIONS]
    return [candidates[int(i)] for i in keep]


def paste_mask(mask: tuple[torch.Tensor, tuple[int, int, int, int]], width: int, height: int) -> np.ndarray:
    """A mask patch's probabilities, resized onto the full-frame window it covers → a binary mask of
    the full image."""
    probs, (x0, y0, x1, y1) = mask
    x1, y1 = min(x1, width), min(y1, height)
    resized = nn.functional.interpolate(
        probs[None, None], size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False
    )
    out = np.zeros((height, width), dtype=np.uint8)
    out[y0:y1, x0:x1] = (resized[0, 0] > 0.5).numpy()
    return out


@torch.inference_mode()
def predict_tiled(
    model: nn.Module,
    images_df: pd.DataFrame,
    device: str | torch.device,
    tile_size: int,
    overlap: float,
    score_threshold: float = 0.05,
    max_side: int = 1024,
    progress: Callable[[int, int], None] | None = None,
    label_to_category: dict[int, int] | None = None,
) -> list[dict[str, Any]]:
    """COCO result dicts like models.predict.predict, from tiles plus the full image, per 'ok' image."""
    from models.predict import prepare_prediction
    from models.train import encode_masks

    mapping, device, rows = prepare_prediction(model, images_df, device, label_to_category)
    results: list[dict[str, Any]] = []
    for done, row in enumerate(rows.itertuples(index=False), start=1):
        width, height = int(row.width), int(row.height)
        image = load_image(str(row.path), bool(getattr(row, "orientation_applied", False)), width, height)
        for det in image_detections(model, image, device, max_side, tile_size, overlap, score_threshold):
            x1, y1, x2, y2 = det["box"]
            result = {
                "image_id": int(row.image_id),
                "category_id": mapping[det["label"]],
                "score": det["score"],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
            }
            if det["mask"] is not None:
                result["segmentation"] = encode_masks(paste_mask(det["mask"], width, height)[None])[0]
            results.append(result)
        if progress is not None:
            progress(done, len(rows))
    return results
