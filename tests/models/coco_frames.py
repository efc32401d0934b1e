"""Build the store's tables (images, objects, categories) straight from a COCO json, for tests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from models.data import Frames

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def seg_type(segmentation) -> str:
    if isinstance(segmentation, list):
        return "polygon" if segmentation else "none"
    if isinstance(segmentation, dict):
        return "rle_compressed" if isinstance(segmentation.get("counts"), str) else "rle"
    return "none"


def frames_from_coco(annotations: Path, images_dir: Path) -> Frames:
    coco = json.loads(Path(annotations).read_text())
    images = pd.DataFrame(
        [
            {
                "image_id": int(im["id"]),
                "file_name": im["file_name"],
                "path": str(Path(images_dir) / im["file_name"]),
                "width": int(im["width"]),
                "height": int(im["height"]),
                "status": "ok",
                "orientation_applied": True,
                "content_hash": f"hash-{im['id']}",
            }
            for im in coco["images"]
        ]
    )
    objects = pd.DataFrame(
        [
            {
                "object_id": int(a["id"]),
                "image_id": int(a["image_id"]),
                "category_id": int(a["category_id"]),
                "bbox_x": float(a["bbox"][0]),
                "bbox_y": float(a["bbox"][1]),
                "bbox_w": float(a["bbox"][2]),
                "bbox_h": float(a["bbox"][3]),
                "area": float(a.get("area", a["bbox"][2] * a["bbox"][3])),
                "iscrowd": int(a.get("iscrowd", 0)),
                "segmentation": json.dumps(a["segmentation"]) if a.get("segmentation") else "",
                "seg_type": seg_type(a.get("segmentation")),
            }
            for a in coco["annotations"]
        ]
    )
    categories = pd.DataFrame([{"category_id": int(c["id"]), "name": c["name"]} for c in coco["categories"]])
    return Frames(images, objects, categories)


def shared_frames(name: str) -> Frames:
    root = SHARED_DATA / name
    return frames_from_coco(root / "annotations.json", root / "images")
