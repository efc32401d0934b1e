"""Torch dataset over the store's tables: images decoded once per item, targets for Mask R-CNN.

Images are resized here (longest side <= max_side) rather than only inside the model so that
masks are built at the training resolution: an 8 MP TACO image with 50 full-size masks would
otherwise cost gigabytes per item.
"""

from __future__ import annotations

import json
import random
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps
from pycocotools import mask as mask_utils
from torch.utils.data import Dataset


class Frames(NamedTuple):
    """The three store tables of one dataset, as pandas DataFrames."""

    images: pd.DataFrame
    objects: pd.DataFrame
    categories: pd.DataFrame


def frames_to_coco(frames: Frames) -> dict[str, Any]:
    """The frames as a COCO ground-truth dict, in original image coordinates, for pycocotools.

    Annotation ids are renumbered from 1: the store keys objects by (image_id, object_id), and
    COCO needs ids unique across the file.
    """
    images = [
        {"id": int(r.image_id), "width": int(r.width), "height": int(r.height)}
        for r in frames.images.itertuples()
    ]
    annotations = [
        {
            "id": i,
            "image_id": int(o.image_id),
            "category_id": int(o.category_id),
            "iscrowd": int(o.iscrowd),
            "bbox": [o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h],
            "area": float(o.area),
            "segmentation": json.loads(o.segmentation),
        }
        for i, o in enumerate(frames.objects.itertuples(), start=1)
    ]
    categories = [{"id": int(c.category_id), "name": c.name} for c in frames.categories.itertuples()]
    return {"images": images, "annotations": annotations, "categories": categories}


def label_mapping(categories_df: pd.DataFrame) -> dict[int, int]:
    """Contiguous model labels 1..C (0 is background) → COCO category ids, in category-id order."""
    ids = sorted(int(c) for c in categories_df["category_id"].unique())
    return {label: category_id for label, category_id in enumerate(ids, start=1)}


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Size with the longest side at most max_side (never upscaled), aspect ratio kept."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_image(path: str, orientation_applied: bool, width: int, height: int) -> Image.Image:
    """RGB image in the frame the annotations refer to (width × height of the COCO record)."""
    with Image.open(path) as raw:
        image = ImageOps.exif_transpose(raw) if orientation_applied else raw.copy()
    image = image.convert("RGB")
    if image.size != (width, height):  # annotations are in the record's frame: follow it
        image = image.resize((width, height), Image.BILINEAR)
    return image


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB → float CHW in [0, 1]."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def _parse_segmentation(text: Any) -> Any:
    if text is None or (isinstance(text, float) and np.isnan(text)) or text == "":
        return None
    seg = json.loads(text) if isinstance(text, str) else text
    if isinstance(seg, list) and not [p for p in seg if len(p) >= 6]:
        return None
    if isinstance(seg, dict) and "counts" not in seg:
        return None
    return seg


def object_mask(
    segmentation: Any, box_xyxy: np.ndarray, width: int, height: int, new_w: int, new_h: int
) -> np.ndarray:
    """uint8 mask (new_h × new_w) of one object; a box mask when the object has no segmentation.

    Polygons are scaled and rasterised at the target size (exact alignment); RLE is decoded at the
    annotated size and resized with nearest neighbour.
    """
    sx, sy = new_w / width, new_h / height
    if isinstance(segmentation, list):
        polygons = [
            (np.asarray(p, dtype=np.float64).reshape(-1, 2) * (sx, sy)).ravel().tolist()
            for p in segmentation
            if len(p) >= 6
        ]
        rles = mask_utils.frPyObjects(polygons, new_h, new_w)
        return mask_utils.decode(mask_utils.merge(rles)).astype(np.uint8)
    if isinstance(segmentation, dict):
        rle = segmentation
        if isinstance(rle["counts"], list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        full = mask_utils.decode(rle).astype(np.uint8)
        if full.shape != (new_h, new_w):
            full = np.asarray(Image.fromarray(full).resize((new_w, new_h), Image.NEAREST))
        return full
    mask = np.zeros((new_h, new_w), dtype=np.uint8)
    x1, y1, x2, y2 = box_xyxy
    mask[int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))] = 1
    return mask


def target_dict(
    row: Any, boxes: list[np.ndarray], labels: list[int], masks: list[np.ndarray], new_w: int, new_h: int
) -> dict[str, Any]:
    """torchvision's detection target for one (resized) image or tile: crowd regions are skipped
    before, so every kept object has iscrowd 0; area is the mask's pixel count."""
    mask_tensor = (
        torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, new_h, new_w), dtype=torch.uint8)
    )
    return {
        "boxes": torch.as_tensor(np.array(boxes, dtype=np.float32).reshape(-1, 4)),
        "labels": torch.as_tensor(labels, dtype=torch.int64),
        "masks": mask_tensor,
        "image_id": torch.tensor(int(row["image_id"]), dtype=torch.int64),
        "area": mask_tensor.flatten(1).sum(1).to(torch.float32),
        "iscrowd": torch.zeros(len(labels), dtype=torch.int64),
        "content_hash": str(row.get("content_hash", "") or ""),
    }


class CocoDetectionDataset(Dataset):
    """(image CHW float [0, 1], target dict) pairs for torchvision's Mask R-CNN.

    Only images with status 'ok' are used. Crowd objects and degenerate boxes are left out of the
    targets (as in torchvision's references). `label_to_category` maps model labels to COCO ids.
    """

    def __init__(
        self,
        images_df: pd.DataFrame,
        objects_df: pd.DataFrame,
        categories_df: pd.DataFrame,
        max_side: int,
        train: bool,
        label_to_category: dict[int, int] | None = None,
        hflip: bool = True,
    ):
        images = images_df
        if "status" in images.columns:
            images = images[images["status"] == "ok"]
        self.images = images.sort_values("image_id").reset_index(drop=True)
        self.label_to_category = label_to_category or label_mapping(categories_df)
        self.category_to_label = {c: lab for lab, c in self.label_to_category.items()}
        names = dict(zip(categories_df["category_id"].astype(int), categories_df["name"], strict=False))
        self.category_names = {c: str(names.get(c, c)) for c in self.label_to_category.values()}
        self.max_side = max_side
        self.train = train
        self.hflip = hflip
        wanted = objects_df[objects_df["image_id"].isin(self.images["image_id"])]
        self._objects = {int(k): g for k, g in wanted.sort_values("object_id").groupby("image_id")}

    @property
    def num_classes(self) -> int:
        """Including background."""
        return len(self.label_to_category) + 1

    def __len__(self) -> int:
        return len(self.images)

    def target_for(self, index: int, new_w: int, new_h: int) -> dict[str, Any]:
        """Targets of one image at size new_w × new_h (no augmentation)."""
        row = self.images.iloc[index]
        width, height = int(row["width"]), int(row["height"])
        sx, sy = new_w / width, new_h / height
        boxes, labels, masks = [], [], []
        objects = self._objects.get(int(row["image_id"]))
        for obj in objects.itertuples(index=False) if objects is not None else ():
            label = self.category_to_label.get(int(obj.category_id))
            if label is None or int(obj.iscrowd):
                continue
            x1, y1 = obj.bbox_x * sx, obj.bbox_y * sy
            x2, y2 = (obj.bbox_x + obj.bbox_w) * sx, (obj.bbox_y + obj.bbox_h) * sy
            x1, x2 = np.clip([x1, x2], 0, new_w)
            y1, y2 = np.clip([y1, y2], 0, new_h)
            if not (x2 - x1 >= 1e-3 and y2 - y1 >= 1e-3):
                continue  # degenerate: torchvision rejects boxes without positive area
            box = np.array([x1, y1, x2, y2], dtype=np.float32)
            seg = _parse_segmentation(getattr(obj, "segmentation", None))
            boxes.append(box)
            labels.append(label)
            masks.append(object_mask(seg, box, width, height, new_w, new_h))
        return target_dict(row, boxes, labels, masks, new_w, new_h)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        row = self.images.iloc[index]
        width, height = int(row["width"]), int(row["height"])
        image = load_image(str(row["path"]), bool(row.get("orientation_applied", False)), width, height)
        new_w, new_h = scaled_size(width, height, self.max_side)
        if (new_w, new_h) != (width, height):
            image = image.resize((new_w, new_h), Image.BILINEAR)
        tensor = image_to_tensor(image)
        target = self.target_for(index, new_w, new_h)
        if self.train and self.hflip and random.random() < 0.5:
            tensor, target = hflip(tensor, target)
        return tensor, target


def hflip(image: torch.Tensor, target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
    """Mirror an image and its targets left-right."""
    width = image.shape[-1]
    target = dict(target)
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    target["boxes"] = boxes
    target["masks"] = target["masks"].flip(-1)
    return image.flip(-1), target


def collate_fn(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[tuple, tuple]:
    """Images differ in size: keep them as tuples (torchvision's detection models batch them)."""
    return tuple(zip(*batch, strict=True))  # type: ignore[return-value]
