"""Predictions generated from ground truth, for checking matching and evaluation against pycocotools.

The mix exercises every branch of COCO matching: jittered true positives (some badly located),
misses, wrong classes, duplicates of found objects, pure false positives, and score ties.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def load_coco(name: str) -> dict:
    path = DATA / name / "annotations.json"
    if not path.is_file():
        pytest.skip(f"shared test data {path} is absent")
    return json.loads(path.read_text())


def _box_polygon(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def generate_predictions(coco: dict, seed: int = 0, with_segm: bool = False) -> list[dict]:
    """COCO results list derived from ``coco``'s annotations with controlled mistakes."""
    rng = np.random.default_rng(seed)
    cats = [c["id"] for c in coco["categories"]]
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    results: list[dict] = []

    def add(image_id: int, cat: int, box: list[float], score: float, segm=None) -> None:
        w_img, h_img = sizes[image_id]
        x, y, w, h = box
        x = float(np.clip(x, 0, w_img - 1))
        y = float(np.clip(y, 0, h_img - 1))
        w = float(max(1.0, min(w, w_img - x)))
        h = float(max(1.0, min(h, h_img - y)))
        record = {"image_id": image_id, "category_id": cat, "bbox": [x, y, w, h], "score": score}
        if with_segm:
            record["segmentation"] = segm if segm is not None else _box_polygon(x, y, w, h)
        results.append(record)

    for ann in coco["annotations"]:
        if rng.random() < 0.15:  # missed
            continue
        x, y, w, h = ann["bbox"]
        spread = 0.25 if rng.random() < 0.2 else 0.05
        jitter = rng.normal(0, spread, 4) * [w, h, w, h]
        box = [x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3]]
        cat = ann["category_id"]
        if rng.random() < 0.1:  # wrong class
            cat = int(rng.choice([c for c in cats if c != cat]))
        score = round(float(rng.uniform(0.05, 1.0)), 2)  # rounded: ties happen
        segm = None
        if with_segm and isinstance(ann["segmentation"], list) and ann["segmentation"] and rng.random() < 0.5:
            dx, dy = jitter[0], jitter[1]
            segm = [
                [v + (dx if i % 2 == 0 else dy) for i, v in enumerate(poly)] for poly in ann["segmentation"]
            ]
        add(ann["image_id"], cat, box, score, segm)
        if rng.random() < 0.1:  # duplicate
            add(ann["image_id"], cat, [b + rng.normal(0, 2) for b in box], round(score * 0.9, 2))
    for image in coco["images"]:
        for _ in range(rng.poisson(1.5)):  # background false positives
            w_img, h_img = image["width"], image["height"]
            w, h = rng.uniform(5, w_img / 3), rng.uniform(5, h_img / 3)
            box = [rng.uniform(0, w_img - w), rng.uniform(0, h_img - h), w, h]
            add(image["id"], int(rng.choice(cats)), box, round(float(rng.uniform(0.0, 0.6)), 2))
    return results


def renumber_ids(coco: dict) -> dict:
    """Copy with annotation ids 1..n (pycocotools reads id 0 as 'unmatched')."""
    out = copy.deepcopy(coco)
    for i, ann in enumerate(out["annotations"], start=1):
        ann["id"] = i
    return out


def with_crowd_regions(coco: dict, seed: int = 1, fraction: float = 0.08) -> dict:
    """Copy where some annotations become iscrowd=1 and a few big crowd boxes are added."""
    rng = np.random.default_rng(seed)
    out = copy.deepcopy(coco)
    next_id = max(a["id"] for a in out["annotations"]) + 1
    for ann in out["annotations"]:
        if rng.random() < fraction:
            ann["iscrowd"] = 1
    for image in out["images"][::3]:
        w, h = image["width"] / 2, image["height"] / 2
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        cat = int(rng.choice([c["id"] for c in out["categories"]]))
        out["annotations"].append(
            {
                "id": next_id,
                "image_id": image["id"],
                "category_id": cat,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 1,
                "segmentation": _box_polygon(x, y, w, h),
            }
        )
        next_id += 1
    return out
